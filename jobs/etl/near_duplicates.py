"""Near-duplicates: the same radiograph re-encoded, resized or cropped, under another name or source.

Two stages, both measured on the real sample (``bench/near_duplicates.py``; README, "Near-duplicates"):

1. Candidates: 64-bit DCT perceptual hashes (pHash: grayscale, area-resized to 32x32, 2-D DCT, the
   8x8 lowest frequencies against their median) of the image and of its centre zoomed by 3% and 6%.
   A pair is a candidate when one image's full hash is within ``CANDIDATE_DISTANCE`` bits of any
   hash of the other. DCT because JPEG re-encoding and rescaling leave the low frequencies alone
   (0-2 bits) where an average hash moves with brightness; the zoomed hashes because a crop is a
   zoom, which moves a single hash by up to 18 bits on a 3% crop.
2. A hash cannot decide alone: chest X-rays share their layout, so radiographs of different
   patients come within 4 bits. A candidate pair is one image when the best normalised correlation
   of their high-passed 64x64 thumbnails, over small zooms and shifts, reaches ``MIN_SIMILARITY``.

Pure numpy/cv2, Python 3.7: hashes and thumbnails are made on EMR's executors.
"""

import cv2
import numpy as np

HASH_NAME = "dct-phash-64"
HASH_SIDE = 32
LOW_FREQUENCIES = 8
THUMBNAIL_SIDE = 64
WORK_SIDE = 256
HASH_ZOOMS = (1.0, 1.03, 1.06)
CANDIDATE_DISTANCE = 8
MIN_SIMILARITY = 0.85
_HIGH_PASS_SIGMA = 3.0
_MARGIN = 6
_ZOOMS = (1.0, 1.02, 1.04, 1.06, 1.08)
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def perceptual_hash(gray):
    """2-D uint8 grayscale -> 16 hex digits (64 bits)."""
    small = cv2.resize(gray, (HASH_SIDE, HASH_SIDE), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:LOW_FREQUENCIES, :LOW_FREQUENCIES].ravel()
    return "{:016x}".format(int.from_bytes(np.packbits(low > np.median(low)).tobytes(), "big"))


def describe(rgb):
    """(H, W, 3) uint8 RGB -> (hashes, thumbnail): the hashes of the image and of its centre zoomed
    by each of ``HASH_ZOOMS`` (space-separated hex), and 64x64 grayscale bytes for the second stage.
    Both come from one grayscale shrink to ``WORK_SIDE`` square: a full-size pass per hash would
    cost half as much again as decoding."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    work = cv2.resize(gray, (WORK_SIDE, WORK_SIDE), interpolation=cv2.INTER_AREA)
    hashes = []
    for zoom in HASH_ZOOMS:
        margin = int(round(WORK_SIDE * (1 - 1 / zoom) / 2))
        hashes.append(perceptual_hash(work[margin : WORK_SIDE - margin, margin : WORK_SIDE - margin]))
    side = (THUMBNAIL_SIDE, THUMBNAIL_SIDE)
    return " ".join(hashes), cv2.resize(work, side, interpolation=cv2.INTER_AREA).tobytes()


def hash_matrix(hashes):
    """Space-separated zoomed hashes -> (n, zooms) uint64 array (for vectorised distances)."""
    return np.array([[int(h, 16) for h in text.split()] for text in hashes], dtype=np.uint64).reshape(
        len(hashes), len(HASH_ZOOMS)
    )


def _bits(a, b):
    xor = np.bitwise_xor(a, b)
    return _POPCOUNT[xor.view(np.uint8)].reshape(xor.shape + (8,)).sum(axis=-1)


def close_pairs(hashes, threshold, others=None):
    """``[(i, j, distance)]``: one image's full hash within ``threshold`` bits of any hash of the other;
    i < j within ``hashes``, or, with ``others``, every i of ``hashes`` against every j of ``others``.
    O(n*m), vectorised per row."""
    a = hash_matrix(hashes)
    b = a if others is None else hash_matrix(others)
    pairs = []
    for i in range(len(a)):
        start = i + 1 if others is None else 0
        rest = b[start:]
        d = np.minimum(_bits(rest, a[i, 0]).min(axis=1), _bits(rest[:, :1], a[i]).min(axis=1))
        for j in np.nonzero(d <= threshold)[0]:
            pairs.append((i, int(j) + start, int(d[j])))
    return pairs


class Views(object):
    """One image's high-passed thumbnail and its zoomed centres, computed once for all its pairs."""

    def __init__(self, thumbnail_bytes):
        side = THUMBNAIL_SIDE
        gray = np.frombuffer(thumbnail_bytes, np.uint8).reshape(side, side).astype(np.float32)
        self.full = gray - cv2.GaussianBlur(gray, (0, 0), _HIGH_PASS_SIGMA)
        self.templates = []
        for zoom in _ZOOMS:
            n = int(round(side * zoom))
            zoomed = cv2.resize(self.full, (n, n), interpolation=cv2.INTER_LINEAR)
            start = (n - side) // 2 + _MARGIN
            self.templates.append(
                zoomed[start : start + side - 2 * _MARGIN, start : start + side - 2 * _MARGIN]
            )


def similarity(a, b):
    """Best normalised correlation of either image's zoomed centre anywhere in the other (1 = same)."""
    best = -1.0
    for one, other in ((a, b), (b, a)):
        for template in one.templates:
            best = max(best, float(cv2.matchTemplate(other.full, template, cv2.TM_CCOEFF_NORMED).max()))
    return best


def matches(hashes, thumbnails, others=None):
    """``[(i, j, distance, similarity)]``: the pairs judged to be one radiograph (see the module's doc).

    ``others``: ``(hashes, thumbnails)`` of another dataset, to compare across instead of within."""
    other_hashes, other_thumbnails = (hashes, thumbnails) if others is None else others
    candidates = close_pairs(hashes, CANDIDATE_DISTANCE, None if others is None else other_hashes)
    left = {}
    right = left if others is None else {}
    found = []
    for i, j, distance in candidates:
        if i not in left:
            left[i] = Views(thumbnails[i])
        if j not in right:
            right[j] = Views(other_thumbnails[j])
        score = similarity(left[i], right[j])
        if score >= MIN_SIMILARITY:
            found.append((i, j, distance, round(score, 4)))
    return found


class UnionFind(object):
    """Groups of keys joined by pairs; each group's representative is its smallest key."""

    def __init__(self, keys=()):
        self.parent = {k: k for k in keys}

    def find(self, key):
        self.parent.setdefault(key, key)
        root = key
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[key] != root:
            self.parent[key], key = root, self.parent[key]
        return root

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            low, high = sorted((ra, rb))
            self.parent[high] = low

    def groups(self):
        """{representative: sorted members} for groups of two or more."""
        members = {}
        for key in self.parent:
            members.setdefault(self.find(key), []).append(key)
        return {root: sorted(keys) for root, keys in members.items() if len(keys) > 1}
