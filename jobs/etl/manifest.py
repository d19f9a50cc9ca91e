"""The manifest written beside the Parquet data: what is in it, how it was made, what was refused."""

import hashlib
import json
from collections import Counter, defaultdict

from jobs.etl.labels import CLASSES
from jobs.etl.selection import SPLITS

FORMAT = "cxr-dataset/1"


def fingerprint(settings, metadata_digests, image_digests):
    """Changes when any setting, metadata file or kept image changes; where the output goes does not count."""
    settings = {k: v for k, v in settings.items() if k != "output"}
    payload = json.dumps(
        {"settings": settings, "metadata": sorted(metadata_digests.items()), "images": sorted(image_digests)},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _nested(rows, outer, inner):
    table = defaultdict(Counter)
    for row in rows:
        table[row[outer]][row[inner]] += 1
    return {k: dict(sorted(v.items())) for k, v in sorted(table.items())}


def build_manifest(rows, settings, rejected, excluded, metadata_digests, image_size, inputs):
    """``rows``: one dict per kept image with path, label, source, patient_id, split and sha256."""
    patients = defaultdict(set)
    for row in rows:
        patients[row["split"]].add(row["patient_id"])
    return {
        "format": FORMAT,
        "classes": list(CLASSES),
        "image_shape": [image_size, image_size, 3],
        "pixels": "uint8 RGB, row-major; readers scale by 1/255 to the paper's [0,1]",
        "data": "data/split=<train|validation|test>/*.parquet",
        "counts": {
            "inputs": inputs,
            "images": len(rows),
            "rejected": len(rejected),
            "by_split": {s: sum(1 for r in rows if r["split"] == s) for s in SPLITS},
            "by_class": dict(sorted(Counter(r["label"] for r in rows).items())),
            "by_source": dict(sorted(Counter(r["source"] for r in rows).items())),
            "by_split_class": _nested(rows, "split", "label"),
            "by_split_source": _nested(rows, "split", "source"),
            "patients_by_split": {s: len(patients[s]) for s in SPLITS},
        },
        "rejected_by_reason": dict(sorted(Counter(r["reason"].split(":")[0] for r in rejected).items())),
        "excluded_by_rule": dict(sorted(excluded.items())),
        "rejected": sorted(rejected, key=lambda r: (r["source"], r["path"])),
        "settings": settings,
        "metadata_sha256": metadata_digests,
        "fingerprint": fingerprint(settings, metadata_digests, [r["sha256"] for r in rows]),
    }


def summary_lines(manifest):
    c = manifest["counts"]
    lines = [
        "ETL summary: {} inputs selected by the rules, {} images written, {} rejected".format(
            c["inputs"], c["images"], c["rejected"]
        ),
        "  by split : " + ", ".join("{} {}".format(k, v) for k, v in c["by_split"].items()),
        "  by class : " + ", ".join("{} {}".format(k, v) for k, v in c["by_class"].items()),
        "  by source: " + ", ".join("{} {}".format(k, v) for k, v in c["by_source"].items()),
        "  patients : " + ", ".join("{} {}".format(k, v) for k, v in c["patients_by_split"].items()),
    ]
    for reason, n in manifest["rejected_by_reason"].items():
        lines.append("  rejected : {} x {}".format(n, reason))
    for rule, n in manifest["excluded_by_rule"].items():
        lines.append("  excluded : {} x {}".format(n, rule))
    near = manifest.get("near_duplicates")
    if near:
        lines.append(
            "  near-duplicates: {} groups of {} images, each kept in one split".format(
                len(near["groups"]), sum(len(g["members"]) for g in near["groups"])
            )
        )
        for pair in near["cross_source"]:
            lines.append(
                "  WARNING near-duplicates across sources ({}): {} ~ {} (similarity {})".format(
                    " / ".join(pair["sources"]), pair["a"], pair["b"], pair["similarity"]
                )
            )
    for group in manifest.get("merged_patients", []):
        lines.append(
            "  joined   : patients {} in {} ({})".format(
                ", ".join(group["patients"]), group["split"], "; ".join(group["because"])
            )
        )
    lines.append("  fingerprint {}".format(manifest["fingerprint"][:16]))
    return lines
