"""``cxr``: one command line for every step. Each subcommand is a thin wrapper over an entry point."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from jobs.console import configure_logging
from jobs.experiment.paths import DEFAULT_DATA_ROOT, find_experiment

LOG = logging.getLogger(__name__)


def _etl(argv: list[str]) -> int:
    from jobs.etl import spark_job

    return spark_job.main(argv, session_factory=spark_job.local_session)


def _entry_point(module: str) -> Callable[[list[str]], int]:
    """A subcommand that is an entry point's own ``main(argv)``, imported only when used."""

    def run(argv: list[str]) -> int:
        return importlib.import_module(module).main(argv)

    return run


def _run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cxr run",
        description=(
            "Run one experiment end to end: ETL, training and evaluation of each model, report. "
            "Finished steps (same inputs and settings) are skipped."
        ),
    )
    parser.add_argument("experiment", help="experiment file, or the name of one in experiments/")
    parser.add_argument(
        "--local", action="store_true", required=True, help="run on this machine (`cxr start` runs in AWS)"
    )
    parser.add_argument(
        "--container",
        action="store_true",
        help="run training and evaluation inside the image from containers/ (needs a Docker engine)",
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        default=DEFAULT_DATA_ROOT,
        help="folder that relative source URIs are relative to (default: the bundled sample)",
    )
    parser.add_argument(
        "--runs-dir", type=Path, default=Path("runs"), help="where outputs go (default runs/)"
    )
    parser.add_argument("--force", action="store_true", help="rerun steps even when their outputs exist")
    parser.add_argument(
        "--jobs",
        type=int,
        default=2,
        help="steps run side by side when one does not need the other's outputs (default 2: on a 2-core "
        "CPU one step's graph tracing and Python use the core the other's arithmetic leaves; 1: one at "
        "a time)",
    )
    return parser


def _run(argv: list[str]) -> int:
    from jobs.experiment import record
    from jobs.experiment.schema import ExperimentError, load_experiment
    from jobs.plan import run_lock, runner

    parser = _run_parser()
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    try:
        exp = load_experiment(find_experiment(args.experiment))
    except ExperimentError as exc:
        LOG.error(f"cxr run: error: {exc}")
        return 2
    if args.container:
        from jobs.plan import containers

        problem = containers.docker_problem()
        if problem:
            LOG.error(f"cxr run --container: {problem}")
            return 3
    layout = runner.LocalLayout(args.runs_dir.resolve())
    try:
        with run_lock.hold(layout.root, f"experiment {exp.name}"):
            note = record.claim(layout.experiment(exp), exp, find_experiment(args.experiment), args.force)
            if note:
                LOG.info(note)
            if args.container:
                steps = containers.container_plan(exp, layout, args.data_root)
            else:
                steps = runner.plan(exp, layout, args.data_root)
            LOG.info(f"experiment {exp.name}: {len(steps)} steps, outputs in {layout.experiment(exp)}")
            if not runner.run_steps(steps, force=args.force, workers=args.jobs):
                return 1
    except (run_lock.RunLockError, record.ExperimentClash) as exc:
        LOG.error(f"cxr run: error: {exc}")
        return 2
    for line in runner.headline(layout.report(exp)):
        LOG.info(line)
    return 0


def _cloud_subcommands() -> dict:
    from jobs.cloud.commands import SUBCOMMANDS  # boto3 and the cost tables load only for a cloud command

    return SUBCOMMANDS


def _cloud(command: str, argv: list[str]) -> int:
    from jobs.cloud import commands

    return commands.main(command, argv)


COMMANDS: dict[str, tuple[str, Callable[[list[str]], int]]] = {
    "etl": ("PySpark ETL: raw sources -> Parquet dataset + manifest.json", _etl),
    "train": (
        "train one model: dataset -> model.keras + history.json + config.json",
        _entry_point("jobs.training.entry"),
    ),
    "evaluate": (
        "one trained model on the test split: metrics, Grad-CAM, shortcut audit",
        _entry_point("jobs.evaluation.entry"),
    ),
    "report": (
        "one HTML page + report.json for a whole experiment's evaluations",
        _entry_point("jobs.evaluation.report"),
    ),
    "readme-table": (
        "the README's results block (machine, across-seeds table, sentences) from a run's report.json",
        _entry_point("jobs.evaluation.readme_table"),
    ),
    "audit-data": (
        "patient and near-duplicate overlap between splits and against other datasets (exit 1 on a leak)",
        _entry_point("jobs.data.audit"),
    ),
    "predict": (
        "score new X-rays (PNG, JPEG, DICOM) with a trained model; research use only",
        _entry_point("jobs.prediction.entry"),
    ),
    "run": ("run an experiment end to end on this machine (--local)", _run),
    "tensorboard": (
        "TensorBoard over an experiment's learning curves (or a folder of TensorBoard logs)",
        _entry_point("jobs.training.tensorboard_cli"),
    ),
    **{
        name: (description, lambda argv, name=name: _cloud(name, argv))
        for name, (description, _, _) in _cloud_subcommands().items()
    },
}


def main(argv: list[str] | None = None) -> int:
    configure_logging()
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
