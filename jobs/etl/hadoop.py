"""File access through Spark's Hadoop file system, so one code path serves local paths and s3:// (EMRFS)."""

import re

_GLOB_SPECIALS = re.compile(r"([\\\[\]{}*?])")


class HadoopFiles(object):
    def __init__(self, spark):
        self._sc = spark.sparkContext
        self._jvm = self._sc._jvm
        self._conf = self._sc._jsc.hadoopConfiguration()

    def _path(self, uri):
        path = self._jvm.org.apache.hadoop.fs.Path(uri)
        return path, path.getFileSystem(self._conf)

    def qualify(self, uri):
        path, fs = self._path(uri)
        return fs.makeQualified(path).toString()

    def exists(self, uri):
        path, fs = self._path(uri)
        return fs.exists(path)

    def list_files(self, root):
        """Every file below ``root``, recursively, as ``{path as the user wrote it: qualified path}``."""
        path, fs = self._path(root)
        if not fs.exists(path):
            return None
        prefix = fs.makeQualified(path).toString().rstrip("/")
        found = {}
        iterator = fs.listFiles(path, True)
        while iterator.hasNext():
            qualified = iterator.next().getPath().toString()
            found[root.rstrip("/") + qualified[len(prefix) :]] = qualified
        return found

    def read_bytes(self, uri):
        """A small file (metadata) read on the driver, without a Spark job."""
        path, fs = self._path(uri)
        if not fs.exists(path):
            return None
        stream = fs.open(path)
        try:
            return bytes(self._jvm.org.apache.commons.io.IOUtils.toByteArray(stream))
        finally:
            stream.close()

    def write_text(self, uri, text):
        path, fs = self._path(uri)
        stream = fs.create(path, True)
        try:
            stream.write(bytearray(text.encode("utf-8")))
        finally:
            stream.close()

    def delete(self, uri):
        path, fs = self._path(uri)
        if fs.exists(path):
            fs.delete(path, True)


def as_glob(path):
    """A literal path as a Hadoop input pattern. A comma separates input paths and cannot be escaped,
    so it becomes '?' (one character); callers keep only the paths they asked for."""
    return _GLOB_SPECIALS.sub(r"\\\1", path).replace(",", "?")
