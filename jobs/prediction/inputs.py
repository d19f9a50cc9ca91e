"""The inputs of ``cxr predict``: files, folders (recursive) and s3:// prefixes, listed lazily.

Listing is a generator, so a prefix of a million images costs one page of keys at a time. In a folder
or prefix only image names are taken (``IMAGE_SUFFIXES``); the others are counted as skipped and the
summary says how many, so nothing is dropped without a word. A file named on the command line is
always tried.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import PurePosixPath

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom")


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_SUFFIXES)


def split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def _s3_keys(uri: str, s3) -> Iterator[str]:
    bucket, prefix = split_s3(uri)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if not item["Key"].endswith("/"):
                yield f"s3://{bucket}/{item['Key']}"


def _local_files(folder: str) -> Iterator[str]:
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            yield os.path.join(root, name)


def list_inputs(sources: Iterable[str], skipped: Counter, s3=None) -> Iterator[str]:
    """Every input URI in command-line order; ``skipped`` counts non-image names by suffix."""
    for source in sources:
        if source.startswith("s3://"):
            if s3 is None:
                import boto3

                s3 = boto3.client("s3")
            candidates: Iterable[str] = _s3_keys(source, s3)
        elif os.path.isdir(source):
            candidates = _local_files(source)
        else:
            yield source
            continue
        for uri in candidates:
            if is_image_name(uri):
                yield uri
            else:
                skipped[PurePosixPath(uri).suffix.lower() or "(no suffix)"] += 1
