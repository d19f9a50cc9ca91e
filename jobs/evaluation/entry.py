"""``evaluate`` (console script, container entry point) and ``cxr evaluate``: arguments in, files out."""

from __future__ import annotations

import argparse
import logging
import re
import sys
import tarfile
import tempfile
from pathlib import Path

from jobs.atomic import NotWritableError
from jobs.console import configure_logging
from jobs.data.reader import DatasetError
from jobs.evaluation.evaluate import EvaluationError, EvaluationRequest, run_evaluation
from jobs.evaluation.source_report import SET_KINDS
from jobs.evaluation.thresholds import DEFAULT_RULE, parse_rule

LOG = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,40}$")


def _external(text: str) -> tuple[str, str]:
    name, sep, uri = text.partition("=")
    if not sep or not uri or not _NAME.match(name):
        raise argparse.ArgumentTypeError(
            f"--external {text!r}: use NAME=URI with NAME of letters, digits, - or _ "
            "(e.g. --external padchest=s3://bucket/datasets/padchest)"
        )
    return name, uri


def _external_kind(text: str) -> tuple[str, str]:
    name, _, kind = text.partition("=")
    if kind not in SET_KINDS or not _NAME.match(name):
        raise argparse.ArgumentTypeError(
            f"--external-kind {text!r}: use NAME=KIND with KIND one of {'/'.join(SET_KINDS)} "
            "(e.g. --external-kind hannover=external)"
        )
    return name, kind


def _operating_rule(text: str) -> str:
    try:
        parse_rule(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--operating-rule: {exc}") from None
    return text


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="evaluate", description="Evaluate one trained model on an ETL test split."
    )
    p.add_argument(
        "--model-dir",
        required=True,
        help="training output: model.keras, config.json, history.json "
        "(or a SageMaker model.tar.gz holding them)",
    )
    p.add_argument("--data", required=True, help="ETL output root (local path or s3://)")
    p.add_argument("--output", required=True, help="folder for metrics.json, predictions.csv and the figures")
    p.add_argument("--split", default="test", choices=("train", "validation", "test"))
    p.add_argument(
        "--external",
        type=_external,
        action="append",
        default=[],
        metavar="NAME=URI",
        help="another ETL output evaluated as an external test set (repeatable)",
    )
    p.add_argument(
        "--external-kind",
        type=_external_kind,
        action="append",
        default=[],
        metavar="NAME=KIND",
        help="how the report names external set NAME: external or within-source (default: within-source "
        "when its two or more classes all come from one source, else external)",
    )
    p.add_argument("--bootstrap-samples", type=int, default=1000)
    p.add_argument("--gradcam-examples", type=int, default=2, help="correct and wrong examples per class")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--operating-rule",
        type=_operating_rule,
        default=DEFAULT_RULE,
        help="how the COVID-19 threshold is chosen on the validation split: 'youden' or "
        "'target_sensitivity:S' (e.g. target_sensitivity:0.95); test and external sets use it unchanged",
    )
    return p


def model_location(model_dir: str, scratch: Path) -> Path:
    """The folder holding model.keras: the given one, or ``model.tar.gz`` (SageMaker's packing) unpacked."""
    path = Path(model_dir)
    archive = path / "model.tar.gz"
    if not (path / "model.keras").exists() and archive.is_file():
        with tarfile.open(archive) as tar:
            # the "data" filter refuses links and absolute paths; Pythons before 3.11.4 lack it
            tar.extractall(scratch, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        return scratch
    return path


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    args = parser().parse_args(argv)
    if len(dict(args.external)) != len(args.external):
        LOG.error("evaluate: each --external NAME may be given once")
        return 2
    unknown = sorted(set(dict(args.external_kind)) - set(dict(args.external)))
    if unknown:
        LOG.error(f"evaluate: --external-kind names no --external set: {', '.join(unknown)}")
        return 2
    with tempfile.TemporaryDirectory(prefix="cxr-model-") as scratch:
        request = EvaluationRequest(
            model_dir=model_location(args.model_dir, Path(scratch)),
            data=args.data,
            output=Path(args.output),
            split=args.split,
            externals=dict(args.external),
            external_kinds=dict(args.external_kind),
            bootstrap_samples=args.bootstrap_samples,
            gradcam_examples=args.gradcam_examples,
            seed=args.seed,
            operating_rule=args.operating_rule,
        )
        try:
            result = run_evaluation(request)
        except (EvaluationError, DatasetError, NotWritableError) as exc:
            LOG.error(f"evaluate: {exc}")
            return 2
    report = result["test"]["report"]
    LOG.info(
        f"evaluate: {result['model']} on {args.split}: accuracy {report['accuracy']:.3f}, macro F1 "
        f"{report['macro avg']['f1-score']:.3f}; audit: {result['test']['audit']['verdict']['level']}; "
        f"wrote {args.output}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
