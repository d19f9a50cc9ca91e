"""Deterministic choices made on the driver: adult filter, per-class caps, duplicates, splits.

Ordering uses SHA-256 of (seed, key), not ``random``, so results are the same on Python 3.7 (EMR)
and 3.11 (local) and do not depend on input order.
"""

import hashlib
from collections import Counter, defaultdict

SPLITS = ("train", "validation", "test")


def seeded_order(keys, seed, salt):
    return sorted(
        set(keys), key=lambda k: hashlib.sha256("{}:{}:{}".format(seed, salt, k).encode()).hexdigest()
    )


def drop_children(candidates, adult_age=18.0):
    """Keeps adults and images whose age is unknown; returns (kept, number dropped)."""
    kept = [c for c in candidates if c["age"] is None or c["age"] >= adult_age]
    return kept, len(candidates) - len(kept)


def apply_caps(candidates, caps, seed):
    """At most ``caps[label]`` images per class, taking whole patients in seeded order."""
    by_label = defaultdict(list)
    for c in candidates:
        by_label[c["label"]].append(c)
    kept = []
    for label, items in sorted(by_label.items()):
        cap = caps.get(label)
        if cap is None or len(items) <= cap:
            kept.extend(items)
            continue
        by_patient = defaultdict(list)
        for c in items:
            by_patient[c["patient_id"]].append(c)
        taken = 0
        for patient in seeded_order(by_patient, seed, "cap:" + label):
            group = by_patient[patient]
            if taken + len(group) <= cap:
                kept.extend(group)
                taken += len(group)
    return kept


def find_duplicates(digests):
    """``{path: sha256}`` -> ``{duplicate path: path kept}``; the first path in sorted order is kept."""
    first = {}
    duplicates = {}
    for path in sorted(digests):
        digest = digests[path]
        if digest in first:
            duplicates[path] = first[digest]
        else:
            first[digest] = path
    return duplicates


def assign_splits(images, test_fraction, validation_fraction, seed):
    """``[(path, patient_id, label)]`` -> ``{path: split}``: by patient, stratified by class, seeded.

    A patient goes wholly to one split, decided with their most frequent class (ties: first class
    name), so the 5 NIH patients with both a normal and a pneumonia image never straddle splits.
    """
    labels_of = defaultdict(Counter)
    for _, patient, label in images:
        labels_of[patient][label] += 1
    primary = {
        p: sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] for p, counts in labels_of.items()
    }
    patients_by_class = defaultdict(list)
    for patient, label in primary.items():
        patients_by_class[label].append(patient)
    split_of_patient = {}
    for _, patients in sorted(patients_by_class.items()):
        sizes = {p: sum(labels_of[p].values()) for p in patients}
        total = float(sum(sizes.values()))
        targets = (("test", test_fraction * total), ("validation", validation_fraction * total))
        filled = Counter()
        for patient in seeded_order(patients, seed, "split"):
            split = "train"
            for name, target in targets:
                if filled[name] + sizes[patient] / 2.0 <= target:
                    split = name
                    break
            filled[split] += sizes[patient]
            split_of_patient[patient] = split
    return {path: split_of_patient[patient] for path, patient, _ in images}
