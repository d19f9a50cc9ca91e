"""Step processes that die with the runner: killed, interrupted or crashed, no step is left writing.

Each step runs under a small guard (``python -m jobs.plan.child_processes COMMAND...``) that starts it as
the leader of its own process group. A signal to the runner (Ctrl-C, ``kill``, a closed terminal) is
passed to the guard, and the guard passes it to the step's whole group. A runner killed outright
(SIGKILL: no handler runs) makes the kernel send the guard SIGTERM (Linux's parent-death signal).
Whatever is left of the group when the step ends, or a grace period after a signal, gets SIGKILL.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import IO, TextIO

PR_SET_PDEATHSIG = 1
# TensorFlow's and absl's C++ log lines ("E0000 00:00:17... 4315 node_def_util.cc:682] ..."), the second
# line of cpu_feature_guard's message, and the JVM's start-up lines of a local Spark session: they look like
# errors to a reader and are not; with a log file they go there only.
CHATTER = re.compile(
    "|".join(
        (
            r"^[IWEF]\d{4} [\d:.]+\s+\d+ [\w./-]+:\d+\] ",
            r"^WARNING: All log messages before absl::InitializeLog",
            r"^To enable the following instructions: .*rebuild TensorFlow with the appropriate compiler flags",
            r"^WARNING: Using incubator modules: jdk\.incubator",
            r"^Using Spark's default log4j profile",
            r'^Setting default log level to "WARN"',
            r"^To adjust logging level use sc\.setLogLevel",
            r"^\d\d/\d\d/\d\d [\d:]{8} WARN Utils: (?:Your hostname, .* resolves to a loopback|Set SPARK_LOCAL_IP"
            r"|Service 'SparkUI' could not bind on port)",
            r"^\d\d/\d\d/\d\d [\d:]{8} WARN NativeCodeLoader: Unable to load native-hadoop library",
        )
    )
)
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
GRACE_S = 10


def _die_with(parent: int):
    """Runs in the guard between fork and exec: ask the kernel for SIGTERM when the runner dies."""

    def arm() -> None:
        if sys.platform.startswith("linux"):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the runner died before the request took effect
            os._exit(1)

    return arm


def _handle(signals: tuple[int, ...], handler) -> dict:
    previous = {}
    try:
        for signum in signals:
            previous[signum] = signal.signal(signum, handler)
    except ValueError:  # not the main thread: no handlers there; the parent-death signal still holds
        pass
    return previous


def _pump(source: IO[str], console: TextIO, log: TextIO, lock: threading.Lock, label: str) -> None:
    """Every line to the log; to the console too, after ``label``, unless it is C++ chatter."""
    for line in source:
        with lock:
            log.write(line)
            log.flush()
        if not CHATTER.match(line):
            console.write(label + line)
            console.flush()


def call(command: list[str], log: Path | None = None, label: str = "") -> int:
    """Like ``subprocess.call``, but the child and its own children never outlive this process.

    With ``log``, everything the step prints is kept in that file, and the console shows all of it but
    TensorFlow's C++ log lines, each after ``label`` (which step said it, when several run at once)."""
    guarded = [sys.executable, "-m", "jobs.plan.child_processes", *command]
    piped = {}
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        environ = {**os.environ, "PYTHONUNBUFFERED": "1"}  # progress lines as they happen, not at exit
        piped = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True, "env": environ}
    # Its own group: a terminal's Ctrl-C reaches the runner only, which passes it on once.
    guard = subprocess.Popen(guarded, process_group=0, preexec_fn=_die_with(os.getpid()), **piped)
    pumps = []
    if log is not None:
        handle, lock = log.open("w"), threading.Lock()
        pumps = [
            threading.Thread(target=_pump, args=(stream, console, handle, lock, label), daemon=True)
            for stream, console in ((guard.stdout, sys.stdout), (guard.stderr, sys.stderr))
        ]
        for pump in pumps:
            pump.start()

    def forward(signum: int, _frame: FrameType | None) -> None:
        guard.send_signal(signum)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    previous = _handle(FORWARDED, forward)
    try:
        return guard.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if guard.poll() is None:
            guard.terminate()
        guard.wait()  # the guard ends within its grace period: the step is gone when this returns
        for pump in pumps:
            pump.join(timeout=GRACE_S)
        if log is not None:
            handle.close()


def _kill_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signum)


def guard(command: list[str]) -> int:
    """Runs ``command`` as a process group; passes signals to the group and leaves nothing behind."""
    step = subprocess.Popen(command, process_group=0)

    def stop(signum: int, _frame: FrameType | None) -> None:
        _kill_group(step.pid, signum)
        signal.alarm(GRACE_S)  # then SIGKILL, whether or not the step obeyed

    _handle(FORWARDED, stop)
    signal.signal(signal.SIGALRM, lambda *_: _kill_group(step.pid, signal.SIGKILL))
    code = step.wait()
    _kill_group(step.pid, signal.SIGKILL)  # what the step started and left running
    return 128 - code if code < 0 else code  # killed by signal N: the shell's 128 + N


if __name__ == "__main__":
    sys.exit(guard(sys.argv[1:]))
