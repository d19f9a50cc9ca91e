"""``cxr audit-data DATASET [--against OTHER ...]``: does anything leak between splits or datasets?

Reads existing ETL outputs (no Spark) and reports patients in more than one split, identical bytes
and near-duplicates (the ETL's rules, ``jobs.etl.near_duplicates``) across splits, and the same
between DATASET and each OTHER dataset (an external test set must share nothing with the data a
model was trained on). Exit code 1 when anything leaks, so that a pipeline can stop on it.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from jobs.data.reader import DatasetError, open_dataset
from jobs.etl import near_duplicates
from jobs.etl.selection import SPLITS

LOG = logging.getLogger(__name__)

COLUMNS = ("original_path", "patient_id", "source", "sha256", "phash", "thumbnail")
EXIT_CLEAN, EXIT_LEAK, EXIT_BAD_INPUT = 0, 1, 2


@dataclass(frozen=True)
class Images:
    """One dataset's images as the audit needs them, in one order."""

    root: str
    split: list[str]
    path: list[str]
    patient: list[str]
    source: list[str]
    sha256: list[str]
    phash: list[str]
    thumbnail: list[bytes]

    def describe(self, i: int) -> dict:
        return {
            "path": self.path[i],
            "split": self.split[i],
            "patient_id": self.patient[i],
            "source": self.source[i],
        }


def read_images(root: str) -> Images:
    """Every split of an ETL output; refuses datasets made without perceptual hashes."""
    dataset = open_dataset(root)
    columns: dict[str, list] = defaultdict(list)
    for split in SPLITS:
        if not dataset.count(split):
            continue
        missing = set(COLUMNS) - set(dataset.parquet(split).schema.names)
        if missing:
            raise DatasetError(
                f"{root}: no column(s) {sorted(missing)} in data/split={split}; the ETL that made it predates "
                "perceptual hashes: rerun `cxr etl`"
            )
        for batch in dataset.batches(split, columns=COLUMNS, batch_rows=1024):
            for name in COLUMNS:
                columns[name].extend(batch[name].tolist())
            columns["split"].extend([split] * len(batch["patient_id"]))
    if any(h is None for h in columns["phash"]):
        raise DatasetError(
            f"{root}: column 'phash' is empty (the ETL ran with --no-near-duplicates); rerun `cxr etl` without it"
        )
    hashed_by = dataset.manifest.get("near_duplicates", {}).get("method", {}).get("hash")
    if hashed_by != near_duplicates.HASH_NAME:
        raise DatasetError(
            f"{root}: its perceptual hashes are {hashed_by or 'unnamed'} (manifest.json), this audit compares "
            f"{near_duplicates.HASH_NAME}: hashes of two kinds would miss near-duplicates; rerun `cxr etl`"
        )
    return Images(
        dataset.root,
        columns["split"],
        columns["original_path"],
        columns["patient_id"],
        columns["source"],
        columns["sha256"],
        columns["phash"],
        columns["thumbnail"],
    )


def _shared(values_a: list[str], values_b: list[str]) -> list[str]:
    return sorted(set(values_a) & set(values_b))


def audit_splits(images: Images) -> dict:
    """Leaks between the splits of one dataset."""
    splits_of = defaultdict(set)
    for patient, split in zip(images.patient, images.split, strict=True):
        splits_of[patient].add(split)
    by_digest = defaultdict(set)
    for digest, split in zip(images.sha256, images.split, strict=True):
        by_digest[digest].add(split)
    pairs = near_duplicates.matches(images.phash, images.thumbnail)
    return {
        "patients_in_several_splits": {p: sorted(s) for p, s in sorted(splits_of.items()) if len(s) > 1},
        "same_bytes_in_several_splits": sorted(d for d, s in by_digest.items() if len(s) > 1),
        "near_duplicates_across_splits": [
            {"a": images.describe(i), "b": images.describe(j), "distance_bits": d, "similarity": s}
            for i, j, d, s in pairs
            if images.split[i] != images.split[j]
        ],
    }


def audit_against(images: Images, other: Images) -> dict:
    """Anything of ``other`` that is also in ``images``, whatever the splits."""
    pairs = near_duplicates.matches(images.phash, images.thumbnail, (other.phash, other.thumbnail))
    return {
        "dataset": other.root,
        "shared_patients": _shared(images.patient, other.patient),
        "same_bytes": _shared(images.sha256, other.sha256),
        "near_duplicates": [
            {"a": images.describe(i), "b": other.describe(j), "distance_bits": d, "similarity": s}
            for i, j, d, s in pairs
        ],
    }


def leaks(section: dict) -> int:
    """Number of leak findings in a report section (lists and dicts of findings)."""
    return sum(len(v) for v in section.values() if isinstance(v, list | dict))


def summary_lines(report: dict) -> list[str]:
    within = report["splits"]
    lines = [
        f"audit-data {report['dataset']}",
        f"  splits: {len(within['patients_in_several_splits'])} patients in several splits, "
        f"{len(within['same_bytes_in_several_splits'])} identical files across splits, "
        f"{len(within['near_duplicates_across_splits'])} near-duplicate pairs across splits",
    ]
    for patient, splits in within["patients_in_several_splits"].items():
        lines.append(f"    LEAK patient {patient} in {', '.join(splits)}")
    for pair in within["near_duplicates_across_splits"]:
        lines.append(
            f"    LEAK {pair['a']['path']} ({pair['a']['split']}) ~ {pair['b']['path']} ({pair['b']['split']})"
        )
    for other in report["against"]:
        lines.append(
            f"  against {other['dataset']}: {len(other['shared_patients'])} shared patients, "
            f"{len(other['same_bytes'])} identical files, {len(other['near_duplicates'])} near-duplicate pairs"
        )
        for pair in other["near_duplicates"]:
            lines.append(
                f"    LEAK {pair['a']['path']} ~ {pair['b']['path']} (similarity {pair['similarity']})"
            )
    lines.append(f"  verdict: {'LEAKS' if report['leaks'] else 'clean'} ({report['leaks']} findings)")
    return lines


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cxr audit-data",
        description="Report patient and near-duplicate overlap between a dataset's splits and against "
        "other datasets (external test sets). Exit code 1 when anything leaks.",
    )
    p.add_argument("dataset", help="ETL output (folder with manifest.json and data/)")
    p.add_argument(
        "--against", action="append", default=[], metavar="OTHER", help="another ETL output (repeatable)"
    )
    p.add_argument("--json", type=Path, help="also write the full report here")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        images = read_images(args.dataset)
        report = {"dataset": images.root, "splits": audit_splits(images), "against": []}
        for other in args.against:
            report["against"].append(audit_against(images, read_images(other)))
    except DatasetError as exc:
        LOG.error(f"cxr audit-data: error: {exc}")
        return EXIT_BAD_INPUT
    report["leaks"] = leaks(report["splits"]) + sum(leaks(o) for o in report["against"])
    for line in summary_lines(report):
        LOG.info(line)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return EXIT_LEAK if report["leaks"] else EXIT_CLEAN


if __name__ == "__main__":
    sys.exit(main())
