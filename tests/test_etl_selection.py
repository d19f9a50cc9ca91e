"""Caps, duplicates and patient splits: deterministic and leak-free."""

from __future__ import annotations

from collections import Counter

from jobs.etl import selection


def _images(n_patients: int, per_patient: int, label: str) -> list[tuple[str, str, str]]:
    return [
        (f"{label}/{p}/{i}.png", f"{label}:{p}", label) for p in range(n_patients) for i in range(per_patient)
    ]


def test_splits_are_patient_disjoint_stratified_and_seeded():
    images = _images(60, 2, "COVID-19") + _images(100, 1, "Normal") + _images(70, 3, "Pneumonia")
    splits = selection.assign_splits(images, 0.2, 0.1, seed=7)
    patients_in = {s: {p for path, p, _ in images if splits[path] == s} for s in selection.SPLITS}
    assert not patients_in["train"] & patients_in["test"]
    assert not patients_in["train"] & patients_in["validation"]
    assert not patients_in["validation"] & patients_in["test"]
    for label in ("COVID-19", "Normal", "Pneumonia"):
        per_split = Counter(splits[path] for path, _, lab in images if lab == label)
        total = sum(per_split.values())
        assert abs(per_split["test"] / total - 0.2) < 0.04, (label, per_split)
        assert abs(per_split["validation"] / total - 0.1) < 0.04, (label, per_split)
    assert splits == selection.assign_splits(list(reversed(images)), 0.2, 0.1, seed=7)
    assert splits != selection.assign_splits(images, 0.2, 0.1, seed=8)


def test_a_patient_with_two_classes_stays_in_one_split():
    images = _images(50, 1, "Normal") + _images(50, 1, "Pneumonia")
    images += [("x/normal.png", "shared", "Normal"), ("x/pneumonia.png", "shared", "Pneumonia")]
    splits = selection.assign_splits(images, 0.2, 0.1, seed=1)
    assert splits["x/normal.png"] == splits["x/pneumonia.png"]


def test_caps_take_whole_patients_deterministically():
    candidates = [{"path": p, "patient_id": pid, "label": lab} for p, pid, lab in _images(30, 3, "COVID-19")]
    kept = selection.apply_caps(candidates, {"COVID-19": 20}, seed=3)
    assert len(kept) == 18
    per_patient = Counter(c["patient_id"] for c in kept)
    assert set(per_patient.values()) == {3}
    again = selection.apply_caps(list(reversed(candidates)), {"COVID-19": 20}, seed=3)
    assert sorted(c["path"] for c in again) == sorted(c["path"] for c in kept)


def test_duplicates_keep_the_first_path():
    assert selection.find_duplicates({"b.png": "h1", "a.png": "h1", "c.png": "h2"}) == {"b.png": "a.png"}


def test_children_are_dropped_only_when_age_is_known():
    kept, dropped = selection.drop_children([{"age": 8.0}, {"age": None}, {"age": 40.0}])
    assert (len(kept), dropped) == (2, 1)
