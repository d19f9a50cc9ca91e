"""Which images must share a split: a patient's images, and one radiograph under several names.

Driver side, pure: patient ids are joined (union-find) when one file is named by several metadata
records, when two files hold the same bytes, and when two files are near-duplicates; the joined
group is what ``selection.assign_splits`` keeps together. Everything joined is reported.
"""

from jobs.etl.near_duplicates import CANDIDATE_DISTANCE, HASH_NAME, MIN_SIMILARITY, UnionFind


class Joins(object):
    """Patient ids joined into split groups, with the reason for each join."""

    def __init__(self, patients):
        self.found = UnionFind(patients)
        self.reasons = []

    def join(self, patients, reason):
        patients = sorted(set(patients))
        for other in patients[1:]:
            self.found.union(patients[0], other)
        if len(patients) > 1:
            self.reasons.append((patients, reason))

    def group_of(self, patient):
        return self.found.find(patient)

    def merged(self, split_of_group):
        """Manifest entries: each group of several patient ids, its split and why it was joined."""
        out = []
        for root, members in sorted(self.found.groups().items()):
            why = sorted(
                {reason for patients, reason in self.reasons if self.found.find(patients[0]) == root}
            )
            out.append({"patients": members, "split": split_of_group.get(root), "because": why})
        return out


def near_duplicate_report(images, pairs, split_of):
    """``images``: kept candidates (dicts with path, source, patient_id, label); ``pairs``: ``(i, j,
    distance, similarity)`` indices into ``images``. Returns the manifest's ``near_duplicates`` block."""
    found = UnionFind()
    for i, j, _, _ in pairs:
        found.union(i, j)
    groups = []
    for root, members in sorted(found.groups().items()):
        edges = [p for p in pairs if found.find(p[0]) == root]
        groups.append(
            {
                "members": [
                    {
                        "path": images[k]["path"],
                        "source": images[k]["source"],
                        "patient_id": images[k]["patient_id"],
                        "label": images[k]["label"],
                        "split": split_of[images[k]["path"]],
                    }
                    for k in members
                ],
                "sources": sorted({images[k]["source"] for k in members}),
                "pairs": [_pair(images, p) for p in edges],
            }
        )
    return {
        "method": {
            "hash": HASH_NAME,
            "candidate_distance_bits": CANDIDATE_DISTANCE,
            "min_similarity": MIN_SIMILARITY,
            "measured_by": "bench/near_duplicates.py",
        },
        "groups": groups,
        "cross_source": [_pair(images, p) for p in pairs if images[p[0]]["source"] != images[p[1]]["source"]],
    }


def _pair(images, pair):
    i, j, distance, similarity = pair
    return {
        "a": images[i]["path"],
        "b": images[j]["path"],
        "sources": [images[i]["source"], images[j]["source"]],
        "distance_bits": distance,
        "similarity": similarity,
    }
