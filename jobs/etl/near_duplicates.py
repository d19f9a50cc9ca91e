"""Near-duplicates: the same radiograph re-encoded, resized or cropped, under another name or source.

Two stages, both measured on the real sample (``bench/near_duplicates.py``; README, "Near-duplicates"):

1. Candidates: 64-bit DCT perceptual hashes (pHash: grayscale, area-resized to 32x32, 2-D DCT, the
   8x8 lowest frequencies against their median) of the image and of its centre zoomed by 3% and 6%,
   all three made from its 64x64 thumbnail.
   A pair is a candidate when one image's full hash is within ``CANDIDATE_DISTANCE`` bits of any
   hash of the other. DCT because JPEG re-encoding and rescaling leave the low frequencies alone
   (0-2 bits) where an average hash moves with brightness; the zoomed hashes because a crop is a
   zoom, which moves a single hash by up to 18 bits on a 3% crop.
2. A hash cannot decide alone: chest X-rays share their layout, so radiographs of different
   patients come within 4 bits. A candidate pair is one image when the best normalised correlation
   of their high-passed 64x64 thumbnails, over small zooms and shifts, reaches ``MIN_SIMILARITY``.

Pure numpy/cv2, Python 3.7: hashes and thumbnails are made on EMR's executors.
"""

import os
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from itertools import combinations
from math import factorial

import cv2
import numpy as np

from jobs.etl import imaging

# Named in each manifest; the audit compares only datasets hashed alike (v2: from the thumbnail of the
# 224 px image, 2026-11-29; v1 shrank the full-size file to 256 px).
HASH_NAME = "dct-phash-64-v2"
HASH_SIDE = 32
LOW_FREQUENCIES = 8
THUMBNAIL_SIDE = 64
BASIS_SIDE = 224
HASH_ZOOMS = (1.0, 1.03, 1.06)
CANDIDATE_DISTANCE = 8
HASH_BANDS = 3
_PROBES_PER_CHUNK = 1 << 20
_PAIRS_PER_TASK = 256
MIN_SIMILARITY = 0.85
_HIGH_PASS_SIGMA = 3.0
_MARGIN = 6
_ZOOMS = (1.0, 1.02, 1.04, 1.06, 1.08)
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _median(values):
    """``np.median`` of a 1-D float32 array of even length, bit for bit (the mean of the two middle
    values in float32), without its generic machinery: that cost a tenth of a millisecond a call."""
    half = len(values) // 2
    middle = np.partition(values, (half - 1, half))
    return (middle[half - 1] + middle[half]) / 2


def perceptual_hash(gray):
    """2-D uint8 grayscale -> 16 hex digits (64 bits)."""
    small = cv2.resize(gray, (HASH_SIDE, HASH_SIDE), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:LOW_FREQUENCIES, :LOW_FREQUENCIES].ravel()
    return "{:016x}".format(int.from_bytes(np.packbits(low > _median(low)).tobytes(), "big"))


def hash_basis(image):
    """Any-size gray or RGB -> the ``BASIS_SIDE`` square gray image that hashes and thumbnail come from:
    the gray of ``imaging.resize_rgb(rgb, 224)``. At the paper's 224 px that is the ETL's own output,
    so it costs nothing more; a gray file's plane resized alone gives the same values, a third of
    the work of resizing its RGB (both tested)."""
    if image.shape[:2] != (BASIS_SIDE, BASIS_SIDE):
        image = imaging.resize_rgb(image, BASIS_SIDE)
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def describe(image):
    """(H, W) uint8 gray or (H, W, 3) RGB -> (hashes, thumbnail): the hashes of the image and of its
    centre zoomed by each of ``HASH_ZOOMS`` (space-separated hex), and 64x64 grayscale bytes for the
    second stage. The hashes come from the thumbnail: a shrink of at most 2x keeps the low frequencies
    the DCT looks at, and takes microseconds where zooming a larger image took a tenth of a
    millisecond per hash (OpenCV's general area shrink)."""
    side = THUMBNAIL_SIDE
    thumbnail = cv2.resize(hash_basis(image), (side, side), interpolation=cv2.INTER_AREA)
    hashes = []
    for zoom in HASH_ZOOMS:
        margin = int(round(side * (1 - 1 / zoom) / 2))
        hashes.append(perceptual_hash(thumbnail[margin : side - margin, margin : side - margin]))
    return " ".join(hashes), thumbnail.tobytes()


def hash_matrix(hashes):
    """Space-separated zoomed hashes -> (n, zooms) uint64 array (for vectorised distances)."""
    return np.array([[int(h, 16) for h in text.split()] for text in hashes], dtype=np.uint64).reshape(
        len(hashes), len(HASH_ZOOMS)
    )


def _bits(a, b):
    xor = np.bitwise_xor(a, b)
    return _POPCOUNT[xor.view(np.uint8)].reshape(xor.shape + (8,)).sum(axis=-1)


def _distances(a, b):
    """Rows of (zooms) hashes -> per row, the fewest bits between one's full hash and any of the other's."""
    return np.minimum(_bits(b, a[:, :1]).min(axis=1), _bits(a, b[:, :1]).min(axis=1))


def _brute_force(a, b, threshold, within):
    """Every pair, vectorised per row: O(n*m), cheaper only for few images or a wide threshold."""
    pairs = []
    for i in range(len(a)):
        start = i + 1 if within else 0
        d = _distances(a[i : i + 1], b[start:])
        for j in np.nonzero(d <= threshold)[0]:
            pairs.append((i, int(j) + start, int(d[j])))
    return pairs


def _bands(threshold):
    """Multi-index hashing: the 64 bits in ``HASH_BANDS`` bands; a pair within ``threshold`` bits is
    within ``threshold // HASH_BANDS`` bits on at least one band (else it would differ by more).
    ``[(shift, width)]`` and that radius."""
    edges = [64 * k // HASH_BANDS for k in range(HASH_BANDS + 1)]
    return [(edges[k], edges[k + 1] - edges[k]) for k in range(HASH_BANDS)], threshold // HASH_BANDS


def _probes(threshold):
    """Band values one query looks up: per band, every pattern of up to the radius flipped bits."""
    bands, radius = _bands(threshold)
    return sum(factorial(w) // (factorial(r) * factorial(w - r)) for _, w in bands for r in range(radius + 1))


@lru_cache(maxsize=None)
def _flips(width, radius):
    return np.array(
        [sum(1 << b for b in bits) for r in range(radius + 1) for bits in combinations(range(width), r)],
        dtype=np.int64,
    )


def _band_hits(queries, table, owners, shift, width, masks):
    """(query index, owner) for every table hash whose band is one of the query's band's ``masks``
    flips away: sorted band values, binary search per flipped query, in chunks of bounded memory."""
    band = (1 << width) - 1
    keys = ((table >> np.uint64(shift)) & np.uint64(band)).astype(np.int64)
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    wanted = ((queries >> np.uint64(shift)) & np.uint64(band)).astype(np.int64)
    step = max(1, _PROBES_PER_CHUNK // len(masks))
    for start in range(0, len(queries), step):
        probes = (wanted[start : start + step, None] ^ masks[None, :]).ravel()
        first = np.searchsorted(keys, probes, side="left")
        # Most probes hit nothing: only the hits need the second search, for their counts.
        hit = np.nonzero(keys[np.minimum(first, len(keys) - 1)] == probes)[0]
        first = first[hit]
        counts = np.searchsorted(keys, probes[hit], side="right") - first
        found = hit[np.repeat(np.arange(len(hit)), counts)]
        offsets = np.arange(len(found)) - np.repeat(np.cumsum(counts) - counts, counts)
        yield start + found // len(masks), owners[order[np.repeat(first, counts) + offsets]]


def _banded(a, b, threshold, within):
    """The pairs ``_brute_force`` finds, from the candidates that share a band up to a few bits: each
    image's full hash is looked up among all hashes of the others, in both directions."""
    zooms = a.shape[1]
    searches = [(a[:, 0], b, False)] if within else [(a[:, 0], b, False), (b[:, 0], a, True)]
    found = []
    for queries, table, swapped in searches:
        owners = np.repeat(np.arange(len(table)), zooms)
        bands, radius = _bands(threshold)
        for shift, width in bands:
            for q, o in _band_hits(queries, table.ravel(), owners, shift, width, _flips(width, radius)):
                i, j = (o, q) if swapped else (q, o)
                if within:
                    i, j = np.minimum(i, j)[i != j], np.maximum(i, j)[i != j]
                d = _distances(a[i], b[j])
                close = d <= threshold
                found.append(np.stack([i[close], j[close], d[close]], axis=1))
    if not found:
        return []
    pairs = np.unique(np.concatenate(found), axis=0)  # sorted by i, then j, as _brute_force
    return [tuple(int(x) for x in row) for row in pairs]


def close_pairs(hashes, threshold, others=None, search=None):
    """``[(i, j, distance)]``: one image's full hash within ``threshold`` bits of any hash of the other;
    i < j within ``hashes``, or, with ``others``, every i of ``hashes`` against every j of ``others``.
    ``search``: "banded" (sub-quadratic, see ``_bands``) or "brute-force"; by default the banded
    search unless a query would probe more band values than there are hashes to compare."""
    a = hash_matrix(hashes)
    b = a if others is None else hash_matrix(others)
    if search is None:
        search = "banded" if _probes(threshold) < b.size else "brute-force"
    if search not in _SEARCHES:
        raise ValueError("search={!r}: use one of {}".format(search, ", ".join(sorted(_SEARCHES))))
    return _SEARCHES[search](a, b, threshold, others is None)


_SEARCHES = {"banded": _banded, "brute-force": _brute_force}


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

    ``others``: ``(hashes, thumbnails)`` of another dataset, to compare across instead of within.
    The pairs are scored on all the driver's cores (cv2 releases the GIL): the driver works alone
    while the executors wait for the splits."""
    other_hashes, other_thumbnails = (hashes, thumbnails) if others is None else others
    candidates = close_pairs(hashes, CANDIDATE_DISTANCE, None if others is None else other_hashes)
    if not candidates:
        return []
    workers = os.cpu_count() or 1
    chunk = max(1, min(_PAIRS_PER_TASK, -(-len(candidates) // (4 * workers))))
    firsts, seconds = {i for i, _, _ in candidates}, {j for _, j, _ in candidates}
    with ThreadPoolExecutor(workers) as pool:
        if others is None:
            left = right = _views(pool, firsts | seconds, thumbnails)
        else:
            left, right = _views(pool, firsts, thumbnails), _views(pool, seconds, other_thumbnails)

        def scored(pairs):
            return [(i, j, d, similarity(left[i], right[j])) for i, j, d in pairs]

        tasks = [candidates[k : k + chunk] for k in range(0, len(candidates), chunk)]
        return [
            (i, j, d, round(score, 4))
            for part in pool.map(scored, tasks)
            for i, j, d, score in part
            if score >= MIN_SIMILARITY
        ]


def _views(pool, keys, thumbnails):
    return dict(pool.map(lambda k: (k, Views(thumbnails[k])), sorted(keys)))


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
