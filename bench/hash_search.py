"""How the driver's near-duplicate candidate search scales: banded (multi-index) vs brute force.

The ETL compares every image's full hash with all three hashes of every other image on the driver
(``jobs.etl.near_duplicates.close_pairs``). Synthetic images here: three random 64-bit hashes each,
and one in ten paired with a copy whose full hash is 2 to 8 bits away (the pairs to find). Random
hashes are the easy case for the bands: chest X-rays cluster (0.19% of the sample's pairs of two
patients are within 8 bits), so real data yields more candidates, and each of those costs a
thumbnail check (about 0.5 ms) that no search can avoid. Both searches must return the same pairs.

Usage: .venv/bin/python bench/hash_search.py [--sizes 10000,50000] [--brute-force-up-to 10000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from jobs.etl import near_duplicates as nd


def synthetic_hashes(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, 2**64, (n, len(nd.HASH_ZOOMS)), dtype=np.uint64)
    copies = np.arange(0, n - 1, 10)
    for k in copies:
        flips = rng.choice(64, int(rng.integers(1, 5)) * 2, replace=False)
        rows[k + 1] = rows[k]
        rows[k + 1, 0] ^= np.uint64(sum(1 << int(b) for b in flips))
    return [" ".join(f"{int(h):016x}" for h in row) for row in rows]


def timed(hashes: list[str], search: str) -> tuple[float, list]:
    started = time.perf_counter()
    pairs = nd.close_pairs(hashes, nd.CANDIDATE_DISTANCE, search=search)
    return time.perf_counter() - started, pairs


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,50000", help="comma-separated numbers of images")
    parser.add_argument("--brute-force-up-to", type=int, default=10000, help="larger sizes: banded only")
    args = parser.parse_args()
    banded_per_10k = {}
    for n in (int(s) for s in args.sizes.split(",")):
        hashes = synthetic_hashes(n)
        banded_s, pairs = timed(hashes, "banded")
        banded_per_10k[n] = banded_s * 10000 / n
        line = f"{n} images, {len(pairs)} pairs within {nd.CANDIDATE_DISTANCE} bits: banded {banded_s:.2f} s"
        if n <= args.brute_force_up_to:
            brute_s, expected = timed(hashes, "brute-force")
            assert pairs == expected, "the banded search must find exactly the brute force's pairs"
            line += f", brute force {brute_s:.2f} s; RATIO brute force / banded: {brute_s / banded_s:.1f}x"
            line += f" (brute force at 50,000 images by n^2: {brute_s * (50000 / n) ** 2 / 60:.0f} min)"
        print(line, flush=True)
    print(
        "banded seconds per 10,000 images: "
        + ", ".join(f"{t:.2f} at {n}" for n, t in banded_per_10k.items())
        + " (flat = linear; it grows with the candidates, n^2 / 2^21 per band)"
    )


if __name__ == "__main__":
    main()
