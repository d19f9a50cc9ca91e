"""The one logging configuration of every entry point: what library code logs is what a person reads.

Library modules log through ``logging.getLogger(__name__)``; each entry point (``cxr``, ``train``,
``evaluate``, ``predict``) calls ``configure_logging`` first. Progress goes to stdout as plain lines (SageMaker
reads its metric lines there, and ``cxr run`` copies each step's output into the step's log file);
warnings and errors go to stderr. The EMR side cannot import this module (the ETL imports nothing outside
``jobs/etl``), so ``jobs.etl.spark_job`` configures the same plain format when spark-submit runs it.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO

FORMAT = "%(message)s"


class _Console(logging.StreamHandler):
    """Writes to ``sys.stdout``/``sys.stderr`` as they are when a line is logged, not when configured: a
    redirect (pytest's capture, ``contextlib.redirect_stdout``) then sees the lines too."""

    def __init__(self, errors: bool) -> None:
        super().__init__()
        self._errors = errors

    @property
    def stream(self) -> TextIO:  # type: ignore[override]
        return sys.stderr if self._errors else sys.stdout

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        """StreamHandler's constructor sets a stream; this handler always looks it up."""


class _Below(logging.Filter):
    def __init__(self, level: int) -> None:
        super().__init__()
        self._level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < self._level


def configure_logging(level: int = logging.INFO) -> None:
    """Installs the console handlers on the ``jobs`` logger once; calling it again changes only the level."""
    root = logging.getLogger("jobs")
    root.setLevel(level)
    if any(isinstance(h, _Console) for h in root.handlers):
        return
    progress, problems = _Console(errors=False), _Console(errors=True)
    progress.addFilter(_Below(logging.WARNING))
    problems.setLevel(logging.WARNING)
    for handler in (progress, problems):
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
    root.propagate = False
