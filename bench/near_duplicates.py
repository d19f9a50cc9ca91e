"""Measures the near-duplicate rules on the real sample: what they find and what they confuse.

Positives: every sample image against itself re-encoded as JPEG quality 70, resized by a few
pixels, cropped by 1, 2 and 3% on each side, and by 3% on two sides (a shifted crop). Negatives: every pair of distinct sample images,
split into pairs of different patients and pairs of one patient (other days). Prints the missed-
and false-match rates of the hashes alone per Hamming threshold, then of the two stages per
similarity threshold (candidates within ``CANDIDATE_DISTANCE`` bits), then the pairs found.

Usage: .venv/bin/python bench/near_duplicates.py [--sample ../shared/data/cxr-sample]
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from jobs.etl import imaging
from jobs.etl import near_duplicates as nd

ROOT = Path(__file__).resolve().parents[1]


def jpeg(rgb: np.ndarray, quality: int = 70) -> np.ndarray:
    _, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return imaging.decode_rgb(data.tobytes())


def shrink(rgb: np.ndarray, dx: int = 7, dy: int = 5) -> np.ndarray:
    return cv2.resize(rgb, (rgb.shape[1] - dx, rgb.shape[0] - dy), interpolation=cv2.INTER_AREA)


def crop(rgb: np.ndarray, fraction: float) -> np.ndarray:
    dy, dx = int(rgb.shape[0] * fraction), int(rgb.shape[1] * fraction)
    return rgb[dy : rgb.shape[0] - dy, dx : rgb.shape[1] - dx]


CHANGES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "jpeg q70": jpeg,
    "resize -7x-5 px": shrink,
    "crop 1%/side": lambda rgb: crop(rgb, 0.01),
    "crop 2%/side": lambda rgb: crop(rgb, 0.02),
    "crop 3%/side": lambda rgb: crop(rgb, 0.03),
    "crop 3% top+left": lambda rgb: rgb[int(rgb.shape[0] * 0.03) :, int(rgb.shape[1] * 0.03) :],
}


def patients(sample: Path) -> dict[str, str]:
    """File name -> patient id, from the sources' own metadata."""
    out = {}
    with open(sample / "cohen" / "metadata.csv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            out.setdefault(row["filename"], "cohen:" + row["patientid"])
    with open(sample / "nih" / "Data_Entry_2017.csv", newline="", encoding="utf-8") as f:
        for row in csv.reader(f):
            out[row[0]] = "nih:" + row[3]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sample", type=Path, default=ROOT.parent / "shared" / "data" / "cxr-sample")
    args = parser.parse_args()
    paths = sorted(p for kind in ("cohen", "nih") for p in (args.sample / kind / "images").iterdir())
    hashes, thumbs = [], []
    changed: dict[str, list[tuple[int, float]]] = {name: [] for name in CHANGES}
    for path in paths:
        rgb = imaging.decode_rgb(path.read_bytes())
        own_hashes, own_thumbnail = nd.describe(rgb)
        hashes.append(own_hashes)
        thumbs.append(own_thumbnail)
        own = nd.Views(thumbs[-1])
        for name, change in CHANGES.items():
            other_hashes, other_thumbnail = nd.describe(change(rgb))
            distance = nd.close_pairs([own_hashes], 64, [other_hashes])[0][2]
            changed[name].append((distance, nd.similarity(own, nd.Views(other_thumbnail))))
    owner = patients(args.sample)
    ids = [owner.get(p.name, p.name) for p in paths]
    pairs = nd.close_pairs(hashes, 64)
    distance = np.array([d for _, _, d in pairs])
    same = np.array([ids[i] == ids[j] for i, j, _ in pairs])
    n_other, n_same = int(np.sum(~same)), int(np.sum(same))
    print(
        f"{len(paths)} images; {len(pairs)} pairs of distinct images: {n_other} of two patients, {n_same} of one"
    )

    def rates(missed: list[float], false_other: int, false_same: int) -> str:
        return (
            " | ".join(f"{m:6.1%}" for m in missed)
            + f" | {false_other} ({false_other / n_other:.3%}), {false_same} ({false_same / n_same:.1%})"
        )

    print("\nhashes alone: bits | missed: " + " | ".join(CHANGES) + " | false: two patients, one patient")
    for t in range(0, 21, 2):
        missed = [np.mean([d > t for d, _ in v]) for v in changed.values()]
        hit = distance <= t
        print(f"{t:4} | " + rates(missed, int(np.sum(hit & ~same)), int(np.sum(hit & same))))

    print(f"\nhash <= {nd.CANDIDATE_DISTANCE} bits, then similarity >= s: s | missed ... | false ...")
    scored = [
        (i, j, nd.similarity(nd.Views(thumbs[i]), nd.Views(thumbs[j])))
        for i, j, _ in nd.close_pairs(hashes, nd.CANDIDATE_DISTANCE)
    ]
    for s in (0.75, 0.80, 0.85, 0.88, 0.90, 0.92):
        missed = [np.mean([d > nd.CANDIDATE_DISTANCE or v < s for d, v in c]) for c in changed.values()]
        other = sum(1 for i, j, v in scored if v >= s and ids[i] != ids[j])
        own = sum(1 for i, j, v in scored if v >= s and ids[i] == ids[j])
        print(f"{s:.2f} | " + rates(missed, other, own))
    lowest = {name: round(min(v for _, v in c), 3) for name, c in changed.items()}
    print(f"\nlowest similarity of a changed copy: {lowest}")
    print("highest similarity of distinct pairs (all of one patient, then the best of two patients):")
    ranked = sorted(scored, key=lambda t: -t[2])
    shown = [t for t in ranked if ids[t[0]] == ids[t[1]] and t[2] >= nd.MIN_SIMILARITY]
    shown += [t for t in ranked if ids[t[0]] != ids[t[1]]][:3]
    for i, j, v in shown:
        print(
            f"  {v:.3f}  {paths[i].relative_to(args.sample)}  {paths[j].relative_to(args.sample)}  ({ids[i]}, {ids[j]})"
        )


if __name__ == "__main__":
    main()
