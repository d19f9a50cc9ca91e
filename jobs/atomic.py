"""Files replaced in one step: a reader (or a rerun after a kill) sees the old file or the new one,
never a half-written one. Staging files sit in the same folder, so the rename never crosses disks."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def replace_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """``write(staging)`` writes the whole file; only then does it take ``path``'s name.

    The staging name keeps ``path``'s suffix (Keras refuses to save a model to a name without
    ``.keras``) and starts with a dot, so folder scans for outputs do not pick it up.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".partial-{os.getpid()}-{path.name}")
    try:
        write(staging)
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)


def write_text_atomically(path: Path, text: str) -> None:
    replace_atomically(path, lambda staging: staging.write_text(text, encoding="utf-8"))


def check_writable(folder: Path, flag: str) -> None:
    """Fails before any work when ``folder`` cannot take outputs, not after it (``flag`` names the option)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise NotWritableError(
            f"{flag} {folder}: cannot write there ({exc.strerror or exc}); choose a writable folder"
        ) from None


class NotWritableError(OSError):
    """An output folder that cannot be written; the message names the option and the folder."""
