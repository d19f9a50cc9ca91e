"""ETL benchmark on the real sample: Spark vs a plain loop, our Parquet vs the paper's CSV.

Prints four ratios, each against a baseline measured in the same run:
  1. images/s per core of the Spark job (warm session) vs a single-process loop over the same
     decode+resize function;
  2. bytes per image of our Parquet (uint8) vs the paper's format (flattened [0,1] floats as CSV);
  3. seconds to load the train split as float32 arrays from ours vs from that CSV;
  4. the whole job with near-duplicate detection (perceptual hashes, thumbnails, pair checks) vs
     the same job with --no-near-duplicates, in wall time and in CPU seconds of the driver, the
     JVM and the Python workers together (which other processes on a shared machine move less).

With --scale K the sample is copied K times (each copy's bytes made distinct by padding after
the image's end marker, so deduplication keeps them), to separate Spark's fixed cost per job
from its cost per image. The copies are near-duplicates by construction, so at --scale K the
near-duplicate cost (4.) is a worst case: every image is in a group of K.

With --hashing-only, only 4. is measured (more repeats in the same time).

Usage: .venv/bin/python bench/etl.py [--sample ../shared/data/cxr-sample] [--scale 1] [--csv-images 60]
       [--hashing-only]
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from jobs.data.reader import open_dataset, to_float
from jobs.etl import decoding, imaging, spark_job
from jobs.etl.batching import balanced_batches

ROOT = Path(__file__).resolve().parents[1]


def plain_loop(paths: list[Path], size: int) -> float:
    """One process on one core: OpenCV's thread pool is off here as in each Spark task."""
    imaging.use_one_thread()
    started = time.perf_counter()
    for path in paths:
        imaging.decode_and_resize(path.read_bytes(), size)
    return time.perf_counter() - started


def scaled_sample(sample: Path, copies: int, into: Path) -> Path:
    """The sample's Cohen and NIH sources with every image and its metadata row repeated ``copies`` times."""
    for kind, metadata, column in (
        ("cohen", "metadata.csv", "filename"),
        ("nih", "Data_Entry_2017.csv", "Image Index"),
    ):
        (into / kind / "images").mkdir(parents=True)
        with open(sample / kind / metadata, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            fields, rows = reader.fieldnames, list(reader)
        present = {p.name: p.read_bytes() for p in (sample / kind / "images").iterdir()}
        copied = []
        for copy in range(copies):
            for row in rows:
                data = present.get(row[column])
                if data is None:
                    continue
                name = f"{copy}-{row[column]}"
                (into / kind / "images" / name).write_bytes(data + b"\0" * copy)
                copied.append({**row, column: name})
        with open(into / kind / metadata, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(copied)
    return into


def tree_cpu_seconds() -> float:
    """CPU seconds of this process and all its descendants (the JVM, Spark's Python workers), the
    reaped ones included, from /proc (Linux)."""
    children: dict[int, list[int]] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:  # gone meanwhile
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
        ticks[int(entry)] = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    total, todo = 0, [os.getpid()]
    while todo:
        pid = todo.pop()
        total += ticks.get(pid, 0)
        todo += children.get(pid, [])
    return total / os.sysconf("SC_CLK_TCK")


def timed_run(spark, sample: Path, out: Path, size: int, *extra: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one whole job."""
    cpu = tree_cpu_seconds()
    wall = spark_run(spark, sample, out, size, *extra)
    return wall, tree_cpu_seconds() - cpu


def spark_run(spark, sample: Path, out: Path, size: int, *extra: str) -> float:
    started = time.perf_counter()
    code = spark_job.main(
        [
            f"--source=cohen={sample / 'cohen'}",
            f"--source=nih={sample / 'nih'}",
            f"--output={out}",
            f"--image-size={size}",
            *extra,
        ],
        session_factory=lambda: spark,
    )
    assert code == 0
    return time.perf_counter() - started


def spark_decode_stage(spark, paths: list[Path], size: int) -> float:
    """The decode+resize alone as a Spark job over the same files (no selection, split or write)."""
    sc = spark.sparkContext
    batches = balanced_batches(
        {f"file:{p.resolve()}": p.stat().st_size for p in paths}, 2 * sc.defaultParallelism
    )
    started = time.perf_counter()
    count = sc.parallelize(batches, len(batches)).mapPartitions(decoding.decode_batches(size)).count()
    assert count == len(paths), count
    return time.perf_counter() - started


def write_paper_csv(images: np.ndarray, labels: np.ndarray, path: Path) -> None:
    """The paper's format: one row per image, 224*224*3 floats in [0,1], then the label."""
    flat = to_float(images).reshape(len(images), -1)
    frame = pd.DataFrame(flat)
    frame["label"] = labels
    frame.to_csv(path, index=False, float_format="%.8f")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sample", type=Path, default=ROOT.parent / "shared" / "data" / "cxr-sample")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--scale", type=int, default=1, choices=range(1, 65), metavar="1..64", help="copies of the sample"
    )
    parser.add_argument("--csv-images", type=int, default=60, help="train images written to the CSV baseline")
    parser.add_argument("--hashing-only", action="store_true", help="measure only the near-duplicates' cost")
    args = parser.parse_args()

    spark = spark_job.local_session("cxr-bench")
    cores = spark.sparkContext.defaultParallelism
    with tempfile.TemporaryDirectory() as tmp:
        if args.scale > 1:
            args.sample = scaled_sample(args.sample, args.scale, Path(tmp) / "scaled")
        paths = sorted((args.sample / "cohen" / "images").iterdir()) + sorted(
            (args.sample / "nih" / "images").iterdir()
        )
        out = Path(tmp) / "ds"
        unhashed = Path(tmp) / "unhashed"
        spark_run(spark, args.sample, out, args.size)  # warm-up: JVM, Python workers, imports
        spark_run(spark, args.sample, unhashed, args.size, "--no-near-duplicates")
        if not args.hashing_only:
            spark_decode_stage(spark, paths, args.size)
        # Interleaved, so that a machine that speeds up or slows down meanwhile affects all four alike;
        # with and without near-duplicates take turns at going first.
        loop_times, stage_times, spark_times, hashed, plain = [], [], [], [], []
        for repeat in range(args.repeats):
            if not args.hashing_only:
                loop_times.append(plain_loop(paths, args.size))
                stage_times.append(spark_decode_stage(spark, paths, args.size))
            turns = [(hashed, out, ()), (plain, unhashed, ("--no-near-duplicates",))]
            for times, into, extra in turns if repeat % 2 == 0 else turns[::-1]:
                times.append(timed_run(spark, args.sample, into, args.size, *extra))
        spark_times = [wall for wall, _ in hashed]
        n = len(paths)
        print(f"images: {n} (sample x{args.scale}), Spark cores: {cores}, repeats: {args.repeats} (medians)")
        for kind, column in (("wall time", 0), ("CPU seconds (driver + JVM + Python workers)", 1)):
            with_, without = [t[column] for t in hashed], [t[column] for t in plain]
            each = sorted(a / b for a, b in zip(with_, without, strict=True))
            print(
                f"RATIO whole ETL job with / without near-duplicates (hashes, thumbnails, pairs), {kind}: "
                f"{statistics.median(with_) / statistics.median(without):.3f}x "
                f"(medians {statistics.median(with_):.2f} / {statistics.median(without):.2f} s; "
                f"per repeat {' '.join(f'{r:.2f}' for r in each)}; target <= 1.1)"
            )
        if args.hashing_only:
            spark.stop()
            return
        loop_ips = n / statistics.median(loop_times)
        print(f"plain loop (read+decode+resize), 1 process, 1 thread: {loop_ips:.1f} images/s")
        for name, times in (
            ("Spark decode stage (read+decode+resize: the loop's work)", stage_times),
            ("Spark whole ETL job (+list, select, hash, dedupe, split, write Parquet)", spark_times),
        ):
            ips = n / statistics.median(times)
            each = sorted(loop / (spark * cores) for loop, spark in zip(loop_times, times, strict=True))
            print(f"{name}: {ips:.1f} images/s = {ips / cores:.1f} per core")
            print(
                f"RATIO per-core Spark / plain loop, {name.split(' (')[0]}: {ips / cores / loop_ips:.2f}x "
                f"(per repeat {each[0]:.2f}..{each[-1]:.2f}; target >= 0.8)"
            )

        dataset = open_dataset(out)
        parquet_bytes = sum(p.stat().st_size for p in (out / "data").rglob("*.parquet"))
        train = dataset.load("train", columns=("image", "label_index"))
        subset = train["image"][: args.csv_images]
        csv_path = Path(tmp) / "paper.csv"
        write_paper_csv(subset, train["label_index"][: args.csv_images], csv_path)
        ours_per_image = parquet_bytes / n
        csv_per_image = csv_path.stat().st_size / len(subset)
        print(f"bytes/image: ours {ours_per_image / 1e3:.0f} kB, paper CSV {csv_per_image / 1e3:.0f} kB")
        print(f"RATIO bytes CSV / ours: {csv_per_image / ours_per_image:.1f}x (target >= 15)")

        def load_ours() -> float:
            started = time.perf_counter()
            to_float(dataset.load("train", columns=("image", "label_index"))["image"])
            return (time.perf_counter() - started) / dataset.count("train")

        def load_csv() -> float:
            started = time.perf_counter()
            frame = pd.read_csv(csv_path)
            frame.drop(columns="label").to_numpy(np.float32).reshape(-1, args.size, args.size, 3)
            return (time.perf_counter() - started) / len(subset)

        ours_s = statistics.median(load_ours() for _ in range(args.repeats))
        csv_s = statistics.median(load_csv() for _ in range(args.repeats))
        print(f"load train split as float32, per image: ours {ours_s * 1e3:.2f} ms, CSV {csv_s * 1e3:.1f} ms")
        print(f"RATIO load time CSV / ours: {csv_s / ours_s:.0f}x (target >= 20)")
    spark.stop()


if __name__ == "__main__":
    main()
