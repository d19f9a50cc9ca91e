"""Driver-side file access (listing, metadata, manifest) through Spark's Hadoop file system, so one
code path serves local paths and s3:// (EMRFS). Executors read the images themselves: see blobs."""

from collections import namedtuple

Listed = namedtuple("Listed", ["qualified", "size"])


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
        """Every file below ``root``, recursively, as ``{path as the user wrote it: Listed}``.

        One listStatus per folder: the recursive listFiles fetches each file's permissions and block
        locations, which took 2.2 to 3.0 s for 256 local files (listStatus: under 0.5 s).
        """
        path, fs = self._path(root)
        if not fs.exists(path):
            return None
        prefix = fs.makeQualified(path).toString().rstrip("/")
        found = {}
        folders = [path]
        while folders:
            for status in fs.listStatus(folders.pop()):
                if status.isDirectory():
                    folders.append(status.getPath())
                else:
                    qualified = status.getPath().toString()
                    found[root.rstrip("/") + qualified[len(prefix) :]] = Listed(qualified, status.getLen())
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

    def rename(self, source, target):
        """Within one file system: atomic for local folders and files (EMRFS copies on S3)."""
        path, fs = self._path(source)
        if not fs.rename(path, self._path(target)[0]):
            raise IOError("could not rename {} to {}".format(source, target))

    def delete(self, uri):
        path, fs = self._path(uri)
        if fs.exists(path):
            fs.delete(path, True)
