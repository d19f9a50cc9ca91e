"""``cxr``: one command line for every step. Each subcommand is a thin wrapper over an entry point."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable


def _etl(argv: list[str]) -> int:
    from jobs.etl import spark_job

    return spark_job.main(argv, session_factory=spark_job.local_session)


def _train(argv: list[str]) -> int:
    from jobs.training import entry

    return entry.main(argv)


COMMANDS: dict[str, tuple[str, Callable[[list[str]], int]]] = {
    "etl": ("PySpark ETL: raw sources -> Parquet dataset + manifest.json", _etl),
    "train": ("train one model: dataset -> model.keras + history.json + config.json", _train),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="cxr", description="COVID-19 chest X-ray pipeline: local and AWS.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, _) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        parser.error(f"unknown command {name!r}; one of: {', '.join(COMMANDS)}")
    return COMMANDS[name][1](rest)


if __name__ == "__main__":
    sys.exit(main())
