"""``cxr predict`` (and the ``predict`` console script the batch job runs): arguments in, files out."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from collections import Counter
from pathlib import Path

from jobs.cloud.aws import DEFAULT_STACK, CloudError
from jobs.console import configure_logging
from jobs.evaluation.evaluate import EvaluationError, read_model_dir
from jobs.prediction.inputs import IMAGE_SUFFIXES, list_inputs
from jobs.prediction.model import ModelSourceError, local_model_dir, model_id, operating_point
from jobs.prediction.predict import NOTICE, PredictionSettings, run_predictions, write_summary
from jobs.prediction.preprocess import DEFAULT_MIN_SIDE

LOG = logging.getLogger(__name__)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cxr predict",
        description=f"Score chest X-rays (PNG, JPEG, DICOM) with a trained model. {NOTICE.capitalize()}.",
    )
    p.add_argument(
        "--model",
        required=True,
        help="training output folder, a SageMaker model.tar.gz, or an s3:// URI of either; with --cloud "
        "also an approved model package (ARN) or a model package group (its newest approved package)",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help=f"files, folders (recursive; names ending {', '.join(IMAGE_SUFFIXES)}) or s3:// prefixes",
    )
    p.add_argument("--output", help="folder for predictions.csv/.jsonl, summary.json (with --cloud: s3://)")
    p.add_argument(
        "--cloud",
        action="store_true",
        help="run as a SageMaker Processing job of the deployed stack: `--cloud --model M s3://IN/ s3://OUT/`",
    )
    p.add_argument("--stack", default=DEFAULT_STACK, help="deployed stack name, with --cloud")
    p.add_argument("--region", help="AWS region, with --cloud (default: your AWS configuration)")
    p.add_argument("--as-uri", action="append", default=[], metavar="DIR=URI", help=argparse.SUPPRESS)
    p.add_argument(
        "--operating-point",
        metavar="FILE_OR_EVAL_DIR",
        help="operating_point.json, or the evaluation folder holding it (default: the one saved with the "
        "model; without any, the decision is the argmax and the output says so)",
    )
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument(
        "--min-side",
        type=int,
        default=DEFAULT_MIN_SIDE,
        help=f"refuse images with a side shorter than this many pixels (default {DEFAULT_MIN_SIDE})",
    )
    p.add_argument("--gradcam", action="store_true", help="write a Grad-CAM overlay PNG per scored image")
    return p


def _cloud(args: argparse.Namespace) -> int:
    from jobs.prediction.cloud import start_prediction

    locations = [*args.inputs, *([args.output] if args.output else [])]
    if len(locations) != 2 or not all(u.startswith("s3://") for u in locations):
        LOG.error("cxr predict --cloud: give one s3:// input prefix and one s3:// output prefix")
        return 2
    try:
        name = start_prediction(args.model, *locations, args.operating_point, args.stack, args.region)
    except CloudError as exc:
        LOG.error(f"cxr predict --cloud: error: {exc}")
        return 2
    LOG.info(f"cxr predict --cloud: started processing job {name}; results in {locations[1]} ({NOTICE})")
    return 0


def main(argv: list[str] | None = None) -> int:
    configure_logging()
    args = parser().parse_args(argv)
    if args.cloud:
        return _cloud(args)
    if not args.output:
        LOG.error("cxr predict: error: --output is required (a local folder)")
        return 2
    args.output = Path(args.output)
    with tempfile.TemporaryDirectory(prefix="cxr-predict-") as scratch:
        try:
            model_dir = local_model_dir(args.model, Path(scratch))
            model, config, _ = read_model_dir(model_dir)
            point = operating_point(model_dir, args.operating_point)
            classes = tuple(config["classes"])
            if point is not None and point.class_names != classes:
                raise ModelSourceError(
                    f"operating point for classes {list(point.class_names)}, but {args.model} has "
                    f"{list(classes)}; pass the evaluation folder of this model with --operating-point"
                )
            settings = PredictionSettings(
                output=args.output,
                model_id=model_id(model_dir),
                classes=classes,
                image_size=int(config["image_shape"][0]),
                point=point,
                batch_size=args.batch_size,
                min_side=args.min_side,
                gradcam=args.gradcam,
                aliases=tuple(tuple(a.split("=", 1)) for a in args.as_uri),
            )
        except (ModelSourceError, EvaluationError) as exc:
            LOG.error(f"cxr predict: error: {exc}")
            return 2
        skipped: Counter = Counter()
        summary = run_predictions(model, list_inputs(args.inputs, skipped), settings)
    summary.skipped = skipped
    write_summary(settings, summary, args.model, args.inputs)
    if point is None:
        LOG.warning("cxr predict: no operating point for this model: decisions are the argmax")
    LOG.info(f"cxr predict: {summary.line()}; wrote {args.output} ({NOTICE})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
