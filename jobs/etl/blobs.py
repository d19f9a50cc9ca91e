"""Executor-side reads of image files by URI: local paths and S3, the two places images live.

Spark's binaryFiles is not used: it serialises the whole Hadoop configuration (about 1,100
properties, 110 kB) once per file, which on the sample cost more than decoding the image.
URIs are split by hand, not with urllib: Hadoop prints paths unescaped, so '#', '?' and '%'
are part of file names.
"""

import os

S3_SCHEMES = ("s3", "s3a", "s3n")
_clients = {}


def _split(uri):
    """(scheme, rest) with scheme '' for a plain path."""
    scheme, sep, rest = uri.partition(":")
    if not sep or "/" in scheme or len(scheme) < 2:
        return "", uri
    return scheme.lower(), rest


def check_readable(uri):
    """Raises ValueError on the driver, before any task starts, for a URI executors cannot read."""
    _readable_split(uri)


def _readable_split(uri):
    scheme, rest = _split(uri)
    if scheme not in ("", "file") + S3_SCHEMES:
        raise ValueError("{}: images must be local files or s3:// objects, not {}:".format(uri, scheme))
    return scheme, rest


def _s3_client():
    if "s3" not in _clients:
        import boto3  # only executors that read S3 load it (EMR nodes get it from the bootstrap action)
        from botocore.config import Config

        # Bounded waits: a stalled read fails the task (Spark retries it) instead of hanging the job.
        config = Config(connect_timeout=10, read_timeout=60, retries={"max_attempts": 5, "mode": "standard"})
        _clients["s3"] = boto3.client("s3", config=config)
    return _clients["s3"]


def read_blob(uri):
    """The file's bytes, or None when it does not exist (a rejection, not a crash)."""
    scheme, rest = _readable_split(uri)
    if scheme in S3_SCHEMES:
        bucket, _, key = rest.lstrip("/").partition("/")
        client = _s3_client()
        try:
            return client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except client.exceptions.NoSuchKey:
            return None
    path = rest if scheme else uri
    if path.startswith("//"):  # file://host/path or file:///path: drop the (local) authority
        path = "/" + path[2:].partition("/")[2]
    if not os.path.isfile(path):
        return None
    with open(path, "rb") as f:
        return f.read()
