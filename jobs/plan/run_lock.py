"""One ``cxr run`` per runs folder: a second one is refused with a message naming the first.

The lock file says who holds it (host, pid, the process's start time, the experiment). A lock whose
process is gone on this host, or whose pid now belongs to another process, is stale: it is taken
over and the takeover is reported. A lock held from another host is never guessed about.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

LOCK_FILE = ".cxr-run.lock"


class RunLockError(RuntimeError):
    """The runs folder is in use, or cannot be written; the message says by whom and what to do."""


def _started(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux); None where /proc does not say."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(holder: dict) -> bool:
    try:
        os.kill(int(holder["pid"]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    started = _started(int(holder["pid"]))
    return started is None or holder.get("started_ticks") in (None, started)


def _describe(holder: dict) -> str:
    return (
        f"pid {holder.get('pid')} on {holder.get('host')}, {holder.get('what')}, since {holder.get('since')}"
    )


def _try_create(path: Path, record: dict) -> bool:
    """Creates the lock with its content in one step (link of a finished file): never half-written."""
    staging = path.with_name(f"{path.name}.{os.getpid()}")
    staging.write_text(json.dumps(record))
    try:
        os.link(staging, path)
        return True
    except FileExistsError:
        return False
    finally:
        staging.unlink(missing_ok=True)


def _holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {"pid": "?", "host": "?", "what": "unreadable lock file"}


@contextmanager
def hold(folder: Path, what: str, echo: Callable[[str], None] = print) -> Iterator[None]:
    """Holds ``folder``'s lock for the block; refuses when a live run holds it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / LOCK_FILE
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_ticks": _started(os.getpid()),
            "what": what,
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        while not _try_create(path, record):
            holder = _holder(path)
            if not holder:
                continue  # released between our attempt and the read
            if holder.get("host") != record["host"] or _alive(holder):
                raise RunLockError(
                    f"{folder} is in use by another `cxr run` ({_describe(holder)}); wait for it to "
                    f"finish, or use another --runs-dir. If that run is gone, delete {path}"
                )
            echo(f"note: removing a stale lock of a run that is gone ({_describe(holder)})")
            path.unlink(missing_ok=True)
    except OSError as exc:
        raise RunLockError(
            f"--runs-dir {folder}: cannot write there ({exc.strerror or exc}); choose a writable folder"
        ) from None
    try:
        yield
    finally:
        if _holder(path).get("pid") == record["pid"]:
            path.unlink(missing_ok=True)
