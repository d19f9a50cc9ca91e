"""``cxr``: one command line for every step. Each subcommand is a thin wrapper over an entry point."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_ROOT = ROOT.parent / "shared" / "data" / "cxr-sample"


def _etl(argv: list[str]) -> int:
    from jobs.etl import spark_job

    return spark_job.main(argv, session_factory=spark_job.local_session)


def _entry_point(module: str) -> Callable[[list[str]], int]:
    """A subcommand that is an entry point's own ``main(argv)``, imported only when used."""

    def run(argv: list[str]) -> int:
        return importlib.import_module(module).main(argv)

    return run


def _run(argv: list[str]) -> int:
    from jobs import experiment_record, run_lock, runner
    from jobs.experiment import ExperimentError, load_experiment

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
    args = parser.parse_args(argv)
    try:
        exp = load_experiment(find_experiment(args.experiment))
    except ExperimentError as exc:
        print(f"cxr run: error: {exc}", file=sys.stderr)
        return 2
    if args.container:
        from jobs import containers

        problem = containers.docker_problem()
        if problem:
            print(f"cxr run --container: {problem}", file=sys.stderr)
            return 3
    layout = runner.LocalLayout(args.runs_dir.resolve())
    try:
        with run_lock.hold(layout.root, f"experiment {exp.name}"):
            note = experiment_record.claim(
                layout.experiment(exp), exp, find_experiment(args.experiment), args.force
            )
            if note:
                print(note)
            if args.container:
                steps = containers.container_plan(exp, layout, args.data_root)
            else:
                steps = runner.plan(exp, layout, args.data_root)
            print(f"experiment {exp.name}: {len(steps)} steps, outputs in {layout.experiment(exp)}")
            if not runner.run_steps(steps, force=args.force):
                return 1
    except (run_lock.RunLockError, experiment_record.ExperimentClash) as exc:
        print(f"cxr run: error: {exc}", file=sys.stderr)
        return 2
    for line in runner.headline(layout.report(exp)):
        print(line)
    return 0


def _cloud(argv: list[str], command: str) -> int:
    from jobs import cloud
    from jobs.costs import CostError
    from jobs.experiment import ExperimentError, load_experiment

    parser = argparse.ArgumentParser(prog=f"cxr {command}", description=COMMANDS[command][0])
    parser.add_argument(
        "--stack", default=cloud.DEFAULT_STACK, help="deployed stack name (default CxrPipeline)"
    )
    parser.add_argument("--region", help="AWS region (default: your AWS configuration)")
    if command == "upload-data":
        parser.add_argument(
            "--data-root",
            type=Path,
            default=DEFAULT_DATA_ROOT,
            help="folder with the sources (cohen/, nih/, ...), default: the bundled sample",
        )
        parser.add_argument("--prefix", default="", help="key prefix in the raw bucket (default: none)")
    elif command in ("start", "preflight"):
        parser.add_argument("experiment", help="experiment file, or the name of one in experiments/")
        if command == "start":
            parser.add_argument(
                "--skip-preflight", action="store_true", help="start without `cxr preflight`'s checks"
            )
            parser.add_argument(
                "--dry-run",
                action="store_true",
                help="print the cost estimate and the input it would send; call no AWS",
            )
            parser.add_argument(
                "-c",
                "--context",
                action="append",
                default=[],
                metavar="KEY=VALUE",
                help="CDK context the stack was deployed with, as `cdk deploy -c` (default: cdk.json)",
            )
    elif command == "stage-weights":
        parser.add_argument(
            "models",
            nargs="*",
            metavar="MODEL",
            help="e.g. resnet50 densenet121 vgg19 inceptionv3 (none: only the index the channel needs)",
        )
    elif command == "status":
        parser.add_argument("execution_arn", nargs="?", help="execution ARN (default: the latest)")
    else:
        parser.add_argument("execution_arn", help="execution ARN (from `cxr start`)")
        parser.add_argument("--output", type=Path, default=Path("runs/results"), help="download folder")
    args = parser.parse_args(argv)
    try:
        needs_experiment = command in ("start", "preflight")
        exp = load_experiment(find_experiment(args.experiment)) if needs_experiment else None
        if command == "start" and args.dry_run:
            return _dry_run(exp, args.context)
        outputs = cloud.stack_outputs(args.stack, args.region)
        if command == "upload-data":
            cloud.upload_data(args.data_root, outputs, args.prefix)
        elif command == "stage-weights":
            from jobs.stage_weights import stage_weights

            stage_weights(args.models, outputs)
        elif command == "preflight" or (command == "start" and not args.skip_preflight):
            from jobs import preflight

            described, _ = cloud.described_outputs(args.stack, args.region)
            checks = cloud._call(lambda: preflight.preflight(exp, outputs, described), "preflight")
            print(preflight.cost_line(exp, described))
            if not preflight.report(checks):
                print(f"cxr {command}: fix the MISSING items above, then rerun", file=sys.stderr)
                return 1
        if command == "start":
            for name, value in cloud.start(exp, outputs).items():
                print(f"{name}: {value}")
        elif command == "status":
            state = cloud.status(args.execution_arn, outputs)
            print(f"{state['executionArn']}: {state['status']}")
            for step, where in state["steps"].items():
                print(f"  {where:8} {step}")
            print("  training jobs (SageMaker console): " + ", ".join(state["trainingJobs"]))
            if state["error"]:
                print(f"  error: {state['error']}: {state['cause']}")
        elif command == "results":
            written = cloud.results(args.execution_arn, outputs, args.output)
            print(f"{len(written)} file(s) in {args.output}; open {args.output / 'report.html'}")
    except (cloud.CloudError, ExperimentError, CostError) as exc:
        print(f"cxr {command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


def _dry_run(exp, context: list[str]) -> int:
    """`cxr start --dry-run`: the estimate for the deployed context and the input, with placeholder buckets."""
    from jobs import cloud
    from jobs.costs import CostError, cdk_context, estimate_cost, format_estimate

    bad = [item for item in context if "=" not in item]
    if bad:
        raise CostError(f"--context {bad[0]!r}: write KEY=VALUE, e.g. -c useSpot=true")
    estimate = estimate_cost(exp, cdk_context(dict(item.split("=", 1) for item in context)))
    for line in format_estimate(estimate):
        print(line)
    print("input (buckets are placeholders for the stack's outputs):")
    print(json.dumps(cloud.execution_input(exp, cloud.PLACEHOLDER_OUTPUTS), indent=2))
    return 0


def find_experiment(name: str) -> Path:
    path = Path(name)
    if path.suffix != ".json" and not path.exists():
        path = ROOT / "experiments" / f"{name}.json"
    return path


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
        _entry_point("jobs.audit_data"),
    ),
    "predict": (
        "score new X-rays (PNG, JPEG, DICOM) with a trained model; research use only",
        _entry_point("jobs.prediction.entry"),
    ),
    "run": ("run an experiment end to end on this machine (--local)", _run),
    **{
        name: (help_text, lambda argv, name=name: _cloud(argv, name))
        for name, help_text in (
            (
                "upload-data",
                "upload raw sources to the deployed stack's raw-data bucket (only new or changed files)",
            ),
            (
                "stage-weights",
                "download Keras's ImageNet weights, check their hashes, stage them for the training jobs",
            ),
            (
                "preflight",
                "check in seconds what a run needs in the account: image, weights, data, quotas",
            ),
            (
                "start",
                "run `cxr preflight`, then start one state-machine execution for an experiment",
            ),
            ("status", "state of each step of an execution (default: the latest) and its training jobs"),
            (
                "results",
                "download the report (and the data audit, with external sets) of a finished execution",
            ),
        )
    },
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
