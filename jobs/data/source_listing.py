"""A cheap fingerprint of the ETL's sources, so that a finished ETL is reused only for the same files.

Hashing every image would cost as much as the ETL; a listing (path, size, modification time) catches
another data root, an added, removed, replaced or edited file, and takes about a second for 100,000
files. Remote sources (s3://) count by URI only here: the ETL's manifest digests their metadata.
"""

from __future__ import annotations

import hashlib
import os


def _listing(folder: str) -> list[tuple[str, int, int]]:
    entries = []
    for parent, folders, files in os.walk(folder):
        folders.sort()
        for name in sorted(files):
            path = os.path.join(parent, name)
            try:
                stat = os.stat(path)
            except OSError:
                continue  # a broken link: the ETL reports it as a missing file
            entries.append((os.path.relpath(path, folder), stat.st_size, stat.st_mtime_ns))
    return entries


def sources_fingerprint(uris: list[str]) -> str:
    """A digest of the resolved URIs and, for local folders, their listing with sizes and mtimes."""
    digest = hashlib.sha256()
    for uri in uris:
        digest.update(f"{uri}\n".encode())
        if "://" not in uri:
            for entry in _listing(uri):
                digest.update(f"{entry}\n".encode())
    return digest.hexdigest()[:16]
