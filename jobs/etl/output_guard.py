"""The ETL never writes into its sources and never deletes what it did not write.

Before anything is read, the output folder is compared with every source (neither may contain the
other) and claimed: an existing folder is overwritten only when it carries the marker a previous ETL
wrote (or its manifest); the marker is written first, which also proves the folder is writable
before minutes of decoding.
"""

import json
import os

from jobs.etl.errors import EtlError

MARKER = ".cxr-etl-output"
LOCAL_PREFIX = "file:"


def _comparable(uri):
    """A qualified URI in a form where containment is a prefix test: local paths with links resolved."""
    if uri.startswith(LOCAL_PREFIX):
        path = uri[len(LOCAL_PREFIX) :]
        path = "/" + path.lstrip("/") if path.startswith("//") else path
        return os.path.realpath(path).rstrip("/") + "/"
    return uri.rstrip("/") + "/"


def overlap(output, source):
    """None, or how the (qualified) output and source overlap."""
    out, src = _comparable(output), _comparable(source)
    if out == src:
        return "is the source folder"
    if out.startswith(src):
        return "lies inside the source folder"
    if src.startswith(out):
        return "contains the source folder"
    return None


def check_apart(output, sources):
    """``sources``: [(flag text, qualified URI)]. Raises before anything is read or deleted."""
    for flag, source in sources:
        how = overlap(output, source)
        if how:
            raise EtlError(
                "--output {} {} of {}: the ETL overwrites its output, which would delete the "
                "images it reads; choose an output folder outside every source".format(output, how, flag)
            )


def _written_by_etl(files, output, listing):
    if output + "/" + MARKER in listing:
        return True
    data = files.read_bytes(output + "/manifest.json") if output + "/manifest.json" in listing else None
    try:
        return data is not None and json.loads(data.decode("utf-8")).get("format", "").startswith(
            "cxr-dataset/"
        )
    except ValueError:
        return False


def claim(files, output):
    """Refuses a non-empty folder the ETL did not write; then writes the marker (a writability test)."""
    listing = files.list_files(output) or {}
    if listing and not _written_by_etl(files, output, listing):
        raise EtlError(
            "--output {}: the folder holds {} file(s) that the ETL did not write (no {} marker); "
            "the ETL replaces its output folder, so choose a new or empty folder".format(
                output, len(listing), MARKER
            )
        )
    try:
        files.write_text(output + "/" + MARKER, "written by cxr etl; this folder is replaced on rerun\n")
    except Exception as exc:  # noqa: BLE001 - Hadoop's Java errors arrive as Py4J exceptions
        raise EtlError(
            "--output {}: cannot write there ({}); choose a writable output folder".format(
                output, str(exc).strip().splitlines()[0][:300]
            )
        ) from None
