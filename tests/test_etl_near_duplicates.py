"""Near-duplicate rules on real radiographs: re-encoded, resized and cropped copies are found,
different radiographs are not (no Spark; the ETL's use of them is in test_etl_data_trust.py)."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest

from jobs.etl import imaging, near_duplicates, selection
from jobs.etl.grouping import Joins


def jpeg70(rgb: np.ndarray) -> np.ndarray:
    _, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 70])
    return imaging.decode_rgb(data.tobytes())


def resized(rgb: np.ndarray) -> np.ndarray:
    return cv2.resize(rgb, (rgb.shape[1] - 6, rgb.shape[0] - 4), interpolation=cv2.INTER_AREA)


def cropped(rgb: np.ndarray) -> np.ndarray:
    dy, dx = rgb.shape[0] // 50, rgb.shape[1] // 50
    return rgb[dy:-dy, dx:-dx]


CHANGES = (jpeg70, resized, cropped)


@pytest.fixture(scope="module")
def nih_images(sample) -> dict[str, np.ndarray]:
    """Every NIH image of the sample, decoded: one hospital, so the hardest look-alikes."""
    return {p.name: imaging.decode_rgb(p.read_bytes()) for p in sorted((sample / "nih" / "images").iterdir())}


def _describe(images: list[np.ndarray]) -> tuple[list[str], list[bytes]]:
    described = [near_duplicates.describe(i) for i in images]
    return [h for h, _ in described], [t for _, t in described]


def test_changed_copies_are_found_and_nothing_else(nih_images):
    originals = list(nih_images.values())[::5]  # 51 radiographs of 50 patients
    images = originals + [change(rgb) for change in CHANGES for rgb in originals]
    pairs = near_duplicates.matches(*_describe(images))
    n = len(originals)
    same_original = {(i % n, j % n) for i, j, _, _ in pairs}
    assert {(k, k) for k in range(n)} <= same_original, "a copy was missed"
    assert same_original == {(k, k) for k in range(n)}, "two different radiographs were matched"
    assert len(pairs) == 6 * n  # each group of 4 (original + 3 copies) is fully connected


def test_other_radiographs_of_the_same_patient_are_mostly_not_matched(sample, nih_images):
    by_patient: dict[str, list[str]] = {}
    with open(sample / "nih" / "Data_Entry_2017.csv", newline="") as f:
        for row in csv.reader(f):
            if row[0] in nih_images:
                by_patient.setdefault(row[3], []).append(row[0])
    names = [n for group in by_patient.values() if len(group) > 1 for n in group]
    pairs = near_duplicates.matches(*_describe([nih_images[n] for n in names]))
    same_patient = [(names[i], names[j]) for i, j, _, _ in pairs if names[i][:8] == names[j][:8]]
    other_visits = sum(len(g) * (len(g) - 1) // 2 for g in by_patient.values())
    assert len(pairs) == len(same_patient)  # never two patients
    assert len(same_patient) <= 0.1 * other_visits, same_patient


def test_hashes_are_64_bits_and_stable_under_jpeg(sample):
    rgb = imaging.decode_rgb((sample / "cohen" / "images" / "16745_2_1.PNG").read_bytes())
    hashes, thumbnail = near_duplicates.describe(rgb)
    full, *zoomed = hashes.split()
    assert len(full) == 16 and len(zoomed) == 2 and len(thumbnail) == 64 * 64
    assert near_duplicates.close_pairs([hashes], 2, [near_duplicates.describe(jpeg70(rgb))[0]])


def _reference_pairs(hashes: list[str], threshold: int, others: list[str] | None = None) -> list[tuple]:
    """The candidate rule spelled out on Python ints: every pair, every full-vs-any hash combination."""
    a = [[int(h, 16) for h in text.split()] for text in hashes]
    b = a if others is None else [[int(h, 16) for h in text.split()] for text in others]
    pairs = []
    for i, x in enumerate(a):
        for j in range(i + 1 if others is None else 0, len(b)):
            y = b[j]
            d = min(bin(u ^ v).count("1") for u, v in [(x[0], h) for h in y] + [(h, y[0]) for h in x])
            if d <= threshold:
                pairs.append((i, j, d))
    return pairs


def _flipped(value: int, bits: list[int]) -> int:
    for b in bits:
        value ^= 1 << b
    return value


def _planted(rng: np.random.Generator) -> list[str]:
    """Random hashes, and copies of some that differ by 7, 8 or 9 bits: all in one band, spread over
    the bands, across a band's edge, and in a zoomed hash only."""
    rows = [[int(x) for x in rng.integers(0, 2**64, 3, dtype=np.uint64)] for _ in range(300)]
    flips = [
        list(range(8)),
        list(range(9)),
        list(range(17, 25)),
        [0, 1, 2, 21, 22, 23, 42, 43],
        [5, 6, 26, 27, 28, 47, 48, 63],
        [0, 1, 2, 21, 22, 23, 42, 43, 44],
        list(range(7)),
        sorted(rng.choice(64, 8, replace=False).tolist()),
    ]
    for k, bits in enumerate(flips):
        full, z3, z6 = rows[k]
        other = [int(x) for x in rng.integers(0, 2**64, 2, dtype=np.uint64)]
        rows.append([_flipped(full, bits), z3, z6])
        rows.append([other[0], _flipped(full, bits), other[1]])
    return [" ".join(f"{h:016x}" for h in row) for row in rows]


def test_banded_search_finds_exactly_the_brute_force_pairs(nih_images):
    rng = np.random.default_rng(7)
    planted = _planted(rng)
    expected = _reference_pairs(planted, near_duplicates.CANDIDATE_DISTANCE)
    assert {d for _, _, d in expected} >= {7, 8}  # the edge cases are there
    for search in ("banded", "brute-force"):
        assert (
            near_duplicates.close_pairs(planted, near_duplicates.CANDIDATE_DISTANCE, search=search)
            == expected
        )
    assert near_duplicates.close_pairs(planted[:150], 8, planted[150:], search="banded") == _reference_pairs(
        planted[:150], 8, planted[150:]
    )
    real, _ = _describe(list(nih_images.values()))
    for threshold in (8, 10):  # the candidate rule, and a radius of 3 bits per band (distances are even)
        expected = _reference_pairs(real, threshold)
        assert any(d == threshold for _, _, d in expected)
        assert near_duplicates.close_pairs(real, threshold, search="banded") == expected
    assert near_duplicates.close_pairs(real[:100], 8, real[100:], search="banded") == _reference_pairs(
        real[:100], 8, real[100:]
    )


def test_joined_patients_land_in_one_split():
    """A patient joined to another by a shared image follows that patient's split, whatever the seed."""
    images = [(f"p{k}/img", f"p{k}", "Normal") for k in range(40)]
    joins = Joins([p for _, p, _ in images])
    joins.join(["p3", "p17", "p29"], "one file, several metadata records: x.png")
    for seed in range(5):
        splits = selection.assign_splits(
            [(path, joins.group_of(p), label) for path, p, label in images], 0.2, 0.1, seed
        )
        assert len({splits["p3/img"], splits["p17/img"], splits["p29/img"]}) == 1
    merged = joins.merged({joins.group_of("p3"): "test"})
    assert merged == [
        {
            "patients": ["p17", "p29", "p3"],
            "split": "test",
            "because": ["one file, several metadata records: x.png"],
        }
    ]


def test_union_find_joins_chains():
    found = near_duplicates.UnionFind()
    found.union("c", "b")
    found.union("b", "a")
    found.union("x", "y")
    assert found.groups() == {"a": ["a", "b", "c"], "x": ["x", "y"]}
