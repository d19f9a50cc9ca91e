"""ETL settings and their command line (the same for ``cxr etl`` and EMR's spark-submit)."""

import argparse

from jobs.etl.defaults import PAPER
from jobs.etl.errors import EtlError
from jobs.etl.labels import CLASSES, canonical_label
from jobs.etl.sources import KIND_NAMES, KINDS, LABELLED_KIND_NAMES

# Bumped whenever the ETL writes other values for the same settings and inputs (2: near-duplicate
# hash v2, 2026-11-29). Dataset keys include it, so a newer ETL never takes an older one's output
# for its own, locally or in S3.
OUTPUT_VERSION = 2


def _source(text):
    kind, sep, uri = text.partition("=")
    if not sep or kind not in KIND_NAMES or not uri:
        raise argparse.ArgumentTypeError(
            "expected KIND=DIR with KIND one of {}, got {!r}".format("/".join(KIND_NAMES), text)
        )
    return kind, uri.rstrip("/")


def _cap(text):
    name, sep, number = text.partition("=")
    label = canonical_label(name)
    if not sep or label is None or not number.isdigit():
        raise argparse.ArgumentTypeError(
            "expected CLASS=N with CLASS one of {}, got {!r}".format("/".join(CLASSES), text)
        )
    return label, int(number)


def _label_rule(text):
    """``KIND:FINDING=CLASS``, e.g. ``cohen:Pneumocystis=Pneumonia``."""
    kind, _, rest = text.partition(":")
    finding, sep, name = rest.rpartition("=")
    label = canonical_label(name)
    if kind not in LABELLED_KIND_NAMES or not sep or not finding.strip() or label is None:
        raise argparse.ArgumentTypeError(
            "expected KIND:FINDING=CLASS with KIND one of {} and CLASS one of {}, got {!r}".format(
                "/".join(LABELLED_KIND_NAMES), "/".join(CLASSES), text
            )
        )
    return kind, finding.strip(), label


def label_rules(rules):
    """``[(kind, finding, class)]`` in order -> ``{kind: ((finding, class), ...)}`` for ``sources.Rules``."""
    by_kind = {}
    for kind, finding, label in rules:
        by_kind.setdefault(kind, []).append((finding, label))
    return {kind: tuple(pairs) for kind, pairs in by_kind.items()}


class _SourceFilter(argparse.Action):
    """``--include/--exclude COLUMN=TEXT``: a filter of the ``--source`` given just before it."""

    def __call__(self, parser, namespace, text, option_string=None):
        column, sep, value = text.partition("=")
        if not sep or not column.strip() or not value.strip():
            parser.error(
                "{}: expected COLUMN=TEXT (a metadata column and a substring), got {!r}".format(
                    option_string, text
                )
            )
        sources = getattr(namespace, "source", None) or []
        if not sources:
            parser.error(
                "{} {}: give it after the --source whose rows it filters".format(option_string, text)
            )
        kind, uri = sources[-1]
        if kind not in LABELLED_KIND_NAMES:
            parser.error(
                "{} {} after --source {}={}: a {} source has no metadata columns to filter on; filter "
                "one of {} by its metadata, or move the files out of the folder".format(
                    option_string, text, kind, uri, kind, "/".join(LABELLED_KIND_NAMES)
                )
            )
        rules = list(getattr(namespace, self.dest, None) or [])
        rules.append((len(sources) - 1, self.const, column.strip(), value.strip()))
        setattr(namespace, self.dest, rules)


def _fraction(text):
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError("a fraction in [0, 1) is needed, got {}".format(text))
    return value


def build_parser(prog="cxr etl"):
    p = argparse.ArgumentParser(
        prog=prog,
        description=(
            "Select, decode and resize chest X-rays into a Parquet dataset (uint8 RGB) with manifest.json. "
            "Runs on local Spark or, unchanged, as an EMR spark-submit step."
        ),
    )
    p.add_argument(
        "--source",
        action="append",
        type=_source,
        required=True,
        metavar="KIND=DIR",
        help="a raw source: {}. Repeat for several. s3:// on EMR.".format(
            ", ".join("{}=DIR ({})".format(name, kind.layout) for name, kind in KINDS.items())
        ),
    )
    for mode, verb in (("include", "keep only"), ("exclude", "drop")):
        p.add_argument(
            "--" + mode,
            action=_SourceFilter,
            const=mode,
            dest="source_filter",
            default=[],
            metavar="COLUMN=TEXT",
            help="{} the previous --source's rows whose metadata COLUMN contains TEXT (case-insensitive; "
            "repeat for any-of), e.g. --source cohen=DIR --{} location=Hannover; each row it drops is "
            "counted in the manifest".format(verb, mode),
        )
    p.add_argument("--output", required=True, help="output folder or s3:// prefix (overwritten)")
    p.add_argument(
        "--image-size",
        type=int,
        default=PAPER["image_size"],
        help="side of the square output images (default %(default)s)",
    )
    p.add_argument("--view", default=PAPER["view"], help="keep this view position only (default %(default)s)")
    p.add_argument(
        "--modality", default=PAPER["modality"], help="Cohen modality to keep (default %(default)s)"
    )
    p.add_argument(
        "--covid-finding", default=PAPER["covid_finding"], help="Cohen finding substring for COVID-19"
    )
    p.add_argument("--pneumonia-finding", default=PAPER["pneumonia_finding"], help="NIH label for pneumonia")
    p.add_argument("--normal-finding", default=PAPER["normal_finding"], help="NIH label for normal")
    p.add_argument(
        "--label",
        action="append",
        type=_label_rule,
        default=[],
        metavar="KIND:FINDING=CLASS",
        help="map a finding of a source to a class, in order, first match wins (Cohen: substring of "
        "'finding'; NIH: one of the 'Finding Labels'); a kind given here replaces its paper rules, "
        "e.g. cohen:COVID-19=COVID-19 cohen:Pneumocystis=Pneumonia",
    )
    p.add_argument(
        "--cap",
        action="append",
        type=_cap,
        default=[],
        metavar="CLASS=N",
        help="at most N images of CLASS, whole patients in seeded order (paper: COVID-19=196, "
        "Pneumonia=500, Normal=500)",
    )
    p.add_argument("--adults-only", action="store_true", help="drop images of patients under 18 (age known)")
    p.add_argument(
        "--min-images-per-class",
        type=int,
        default=PAPER["min_images_per_class"],
        help="stop when a class ends with fewer usable images (default %(default)s)",
    )
    p.add_argument(
        "--test-fraction",
        type=_fraction,
        default=PAPER["test_fraction"],
        help="share of images for test (default %(default)s)",
    )
    p.add_argument(
        "--validation-fraction",
        type=_fraction,
        default=PAPER["validation_fraction"],
        help="share of images for validation, carved from the training part (default %(default)s)",
    )
    p.add_argument("--seed", type=int, default=PAPER["seed"], help="seed of caps and splits")
    p.add_argument(
        "--test-only",
        action="store_true",
        help="an external test set: every image in the test split, one class allowed",
    )
    p.add_argument(
        "--no-near-duplicates",
        action="store_true",
        help="skip perceptual hashes and near-duplicate groups (only for measuring their cost)",
    )
    p.add_argument("--partitions", type=int, default=0, help="decode tasks (default: 2 per core)")
    p.add_argument(
        "--file-mb", type=int, default=64, help="about this many MB of pixels per Parquet file (default 64)"
    )
    return p


def split_fractions_problem(test_fraction, validation_fraction):
    """The split rule, owned here (Python 3.7, no pydantic) and enforced by the experiment schema too,
    so an experiment that would fail on EMR is refused before any cluster starts."""
    total = test_fraction + validation_fraction
    if total >= 1:
        return (
            "test_fraction + validation_fraction is {:g}; it must be below 1 so that images are "
            "left for training".format(total)
        )
    return None


def parse_settings(argv):
    args = build_parser().parse_args(argv)
    problem = split_fractions_problem(args.test_fraction, args.validation_fraction)
    if problem:
        raise EtlError("--test-fraction/--validation-fraction: " + problem)
    if args.file_mb < 1:
        raise EtlError("--file-mb must be at least 1")
    if args.image_size < 32:
        raise EtlError("--image-size must be at least 32 pixels")
    return args


def settings_record(args):
    """The settings as they go into the manifest and the fingerprint."""
    record = dict(vars(args))
    record["source"] = [list(s) for s in args.source]
    record["cap"] = dict(args.cap)
    record["label"] = [list(rule) for rule in args.label]
    record["source_filter"] = [list(rule) for rule in args.source_filter]
    record.pop("partitions")  # how the work is spread over the cores never changes the output
    return record
