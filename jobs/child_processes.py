"""Step processes that die with the runner: killed, interrupted or crashed, no step is left writing.

Each step runs in its own process group. A signal to the runner (Ctrl-C, ``kill``, a closed terminal)
is passed to the whole group; a runner killed outright (SIGKILL, where no handler runs) takes its
child along through Linux's parent-death signal. A Spark driver's JVM exits when its Python parent
goes (it watches its stdin), so the group covers everything a step starts.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from types import FrameType

PR_SET_PDEATHSIG = 1
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
GRACE_S = 10.0


def _die_with(parent: int):
    """Runs in the child between fork and exec: ask the kernel for SIGKILL when the parent dies."""

    def arm() -> None:
        if sys.platform.startswith("linux"):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)

    return arm


def _stop_group(child: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(child.pid, signum)
        child.wait(GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
    except ProcessLookupError:
        pass


def call(command: list[str]) -> int:
    """Like ``subprocess.call``, but the child and its own children never outlive this process."""
    child = subprocess.Popen(command, process_group=0, preexec_fn=_die_with(os.getpid()))

    def forward(signum: int, _frame: FrameType | None) -> None:
        _stop_group(child, signum)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    previous = {}
    try:
        for signum in FORWARDED:
            previous[signum] = signal.signal(signum, forward)
    except ValueError:  # not the main thread: no handlers there; the parent-death signal still holds
        pass
    try:
        return child.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if child.poll() is None:
            _stop_group(child, signal.SIGTERM)
