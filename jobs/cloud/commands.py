"""The cloud subcommands of ``cxr`` (``upload-data``, ``stage-weights``, ``preflight``, ``start``, ``status``,
``results``): one function each for its arguments and one for what it does, over ``jobs.cloud.aws``.

boto3 (``jobs.cloud.aws``) loads only when one of them runs: ``cxr train`` in the image never pays for it."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from pathlib import Path

from jobs.experiment.paths import DEFAULT_DATA_ROOT, find_experiment
from jobs.experiment.schema import ExperimentError, load_experiment

LOG = logging.getLogger(__name__)

Outputs = dict[str, str]


def _upload_data_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-root",
        type=Path,
        default=DEFAULT_DATA_ROOT,
        help="folder with the sources (cohen/, nih/, ...), default: the bundled sample",
    )
    parser.add_argument("--prefix", default="", help="key prefix in the raw bucket (default: none)")


def _stage_weights_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "models",
        nargs="*",
        metavar="MODEL",
        help="e.g. resnet50 densenet121 vgg19 inceptionv3 (none: only the index the channel needs)",
    )


def _preflight_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment", help="experiment file, or the name of one in experiments/")


def _start_arguments(parser: argparse.ArgumentParser) -> None:
    _preflight_arguments(parser)
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


def _status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("execution_arn", nargs="?", help="execution ARN (default: the latest)")


def _results_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("execution_arn", help="execution ARN (from `cxr start`)")
    parser.add_argument("--output", type=Path, default=Path("runs/results"), help="download folder")


def upload_data(args: argparse.Namespace, outputs: Outputs) -> int:
    from jobs.cloud import aws

    aws.upload_data(args.data_root, outputs, args.prefix)
    return 0


def stage_weights(args: argparse.Namespace, outputs: Outputs) -> int:

    from jobs.cloud.stage_weights import stage_weights as stage

    stage(args.models, outputs)
    return 0


def preflight(args: argparse.Namespace, outputs: Outputs) -> int:
    """Every check in seconds; 1 when something the run needs is missing."""
    from jobs.cloud import aws
    from jobs.cloud import preflight as checks

    exp = load_experiment(find_experiment(args.experiment))
    described, _ = aws.described_outputs(args.stack, args.region)
    found = aws._call(lambda: checks.preflight(exp, outputs, described), "preflight")
    print(checks.cost_line(exp, described))
    if not checks.report(found):
        LOG.error(f"cxr {args.command}: fix the MISSING items above, then rerun")
        return 1
    return 0


def start(args: argparse.Namespace, outputs: Outputs) -> int:
    from jobs.cloud import aws

    if not args.skip_preflight and preflight(args, outputs) != 0:
        return 1
    for name, value in aws.start(load_experiment(find_experiment(args.experiment)), outputs).items():
        print(f"{name}: {value}")
    return 0


def status(args: argparse.Namespace, outputs: Outputs) -> int:
    from jobs.cloud import aws

    state = aws.status(args.execution_arn, outputs)
    print(f"{state['executionArn']}: {state['status']}")
    for step, where in state["steps"].items():
        print(f"  {where:8} {step}")
    print("  training jobs (SageMaker console): " + ", ".join(state["trainingJobs"]))
    if state["error"]:
        print(f"  error: {state['error']}: {state['cause']}")
    return 0


def results(args: argparse.Namespace, outputs: Outputs) -> int:
    from jobs.cloud import aws

    written = aws.results(args.execution_arn, outputs, args.output)
    print(f"{len(written)} file(s) in {args.output}; open {args.output / 'report.html'}")
    return 0


def dry_run(args: argparse.Namespace) -> int:
    """`cxr start --dry-run`: the estimate for the deployed context and the input, with placeholder buckets."""
    from jobs.cloud import aws
    from jobs.cloud.costs import CostError, cdk_context, estimate_cost, format_estimate

    exp = load_experiment(find_experiment(args.experiment))
    bad = [item for item in args.context if "=" not in item]
    if bad:
        raise CostError(f"--context {bad[0]!r}: write KEY=VALUE, e.g. -c useSpot=true")
    estimate = estimate_cost(exp, cdk_context(dict(item.split("=", 1) for item in args.context)))
    for line in format_estimate(estimate):
        print(line)
    print("input (buckets are placeholders for the stack's outputs):")
    print(json.dumps(aws.execution_input(exp, aws.PLACEHOLDER_OUTPUTS), indent=2))
    return 0


Subcommand = tuple[
    str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace, Outputs], int]
]
SUBCOMMANDS: dict[str, Subcommand] = {
    "upload-data": (
        "upload raw sources to the deployed stack's raw-data bucket (only new or changed files)",
        _upload_data_arguments,
        upload_data,
    ),
    "stage-weights": (
        "download Keras's ImageNet weights, check their hashes, stage them for the training jobs",
        _stage_weights_arguments,
        stage_weights,
    ),
    "preflight": (
        "check in seconds what a run needs in the account: image, weights, data, quotas",
        _preflight_arguments,
        preflight,
    ),
    "start": (
        "run `cxr preflight`, then start one state-machine execution for an experiment",
        _start_arguments,
        start,
    ),
    "status": (
        "state of each step of an execution (default: the latest) and its training jobs",
        _status_arguments,
        status,
    ),
    "results": (
        "download the report (and the data audit, with external sets) of a finished execution",
        _results_arguments,
        results,
    ),
}


def main(command: str, argv: list[str]) -> int:
    from jobs.cloud import aws
    from jobs.cloud.costs import CostError

    description, add_arguments, action = SUBCOMMANDS[command]
    parser = argparse.ArgumentParser(prog=f"cxr {command}", description=description)
    parser.add_argument(
        "--stack", default=aws.DEFAULT_STACK, help="deployed stack name (default CxrPipeline)"
    )
    parser.add_argument("--region", help="AWS region (default: your AWS configuration)")
    add_arguments(parser)
    args = parser.parse_args(argv)
    args.command = command
    try:
        if getattr(args, "dry_run", False):
            return dry_run(args)
        return action(args, aws.stack_outputs(args.stack, args.region))
    except (aws.CloudError, ExperimentError, CostError) as exc:
        LOG.error(f"cxr {command}: error: {exc}")
        return 2
