"""Benchmark of the training input pipeline.

1. Training images/s of our tf.data pipeline (streaming the Parquet files) vs ``model.fit`` on the same
   images as in-memory numpy arrays: same model, batch and steps, alternated in one process; medians.
2. Peak memory (max RSS, one fresh process per measurement) of one training epoch when the training
   data is 1x and 4x the given dataset (its rows repeated into a temporary copy); the in-memory
   baseline is measured too, for contrast.

    PYTHONPATH=. python bench/train.py --data=/tmp/ds128 [--model=small_cnn] [--batch=16] [--repeats=5]

Targets: pipeline >= 0.95x the in-memory images/s; peak memory at 4x <= 1.15x that at 1x.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASK = "multiclass"


def _setup(data: str, model_name: str):
    import keras

    from jobs.dataset import open_dataset
    from jobs.experiment import Stage
    from jobs.tasks import task_classes
    from jobs.training.models import ModelSpec, build_model
    from jobs.training.schedules import configure_stage

    keras.utils.set_random_seed(1)
    ds = open_dataset(data)
    model = build_model(ModelSpec(model_name, len(task_classes(TASK)), ds.image_shape))
    configure_stage(model, Stage(epochs=1, learning_rate=1e-4, trainable="all"))
    return ds, model


def _pipeline(ds, batch: int, steps: int):
    from jobs.training.inputs import training_dataset
    from jobs.training.randomness import EpochSeeds

    return training_dataset(
        ds, TASK, batch, seeds=EpochSeeds(1), shuffle_buffer=1024, rotation_degrees=0, max_steps=steps
    )


def _in_memory(ds, images: int):
    from jobs.dataset import to_float
    from jobs.tasks import task_targets

    train = ds.load("train", columns=("image", "label_index"))
    return to_float(train["image"][:images]), task_targets(TASK, train["label_index"][:images])


def throughput(data: str, model_name: str, batch: int, repeats: int) -> dict:
    """Alternates the two inputs on one model; each timed call is one whole epoch of ``steps`` batches."""
    ds, model = _setup(data, model_name)
    steps = ds.count("train") // batch
    pipeline = _pipeline(ds, batch, steps)
    x, y = _in_memory(ds, steps * batch)
    runs: dict[str, list[float]] = {"pipeline": [], "in_memory": []}
    fits = {
        "pipeline": lambda: model.fit(pipeline, epochs=1, verbose=0, shuffle=False),
        "in_memory": lambda: model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=True),
    }
    for fit in fits.values():  # warm-up: graph tracing
        fit()
    for _ in range(repeats):
        for name, fit in fits.items():
            start = time.perf_counter()
            fit()
            runs[name].append(steps * batch / (time.perf_counter() - start))
    result = {name: statistics.median(values) for name, values in runs.items()}
    return {
        "model": model_name,
        "image_shape": list(ds.image_shape),
        "batch": batch,
        "steps": steps,
        "repeats": repeats,
        "images_per_s": result,
        "ratio": result["pipeline"] / result["in_memory"],
    }


def measure_memory(data: str, model_name: str, batch: int, mode: str) -> int:
    """One epoch over the whole training split; returns this process's peak RSS in bytes."""
    ds, model = _setup(data, model_name)
    if mode == "pipeline":
        model.fit(_pipeline(ds, batch, 0), epochs=1, verbose=0, shuffle=False)
    else:
        x, y = _in_memory(ds, ds.count("train"))
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def repeated_copy(data: str, target: Path, times: int) -> Path:
    """The dataset with its training rows repeated, written in row groups of the source's size."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from jobs.dataset import open_dataset

    ds = open_dataset(data)
    manifest = json.loads(json.dumps(ds.manifest))
    for split in ("train", "validation"):
        out = target / "data" / f"split={split}"
        out.mkdir(parents=True)
        for part in sorted(Path(data, "data", f"split={split}").glob("*.parquet")):
            source = pq.ParquetFile(part)
            rows_per_group = max(source.metadata.row_group(i).num_rows for i in range(source.num_row_groups))
            table = source.read()
            copies = times if split == "train" else 1
            pq.write_table(pa.concat_tables([table] * copies), out / part.name, row_group_size=rows_per_group)
    counts = manifest["counts"]
    counts["by_split"]["train"] *= times
    counts["by_split_class"]["train"] = {k: v * times for k, v in counts["by_split_class"]["train"].items()}
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


def _memory_in_subprocess(data: str, args: argparse.Namespace, mode: str) -> int:
    command = [
        sys.executable,
        __file__,
        f"--data={data}",
        f"--model={args.model}",
        f"--batch={args.batch}",
        f"--measure-memory={mode}",
    ]
    proc = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", "PATH": "/usr/bin:/bin"},
    )
    return int(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="an ETL output folder")
    parser.add_argument("--model", default="small_cnn")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--measure-memory", choices=("pipeline", "in_memory"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure_memory:
        print(measure_memory(args.data, args.model, args.batch, args.measure_memory))
        return 0

    speed = throughput(args.data, args.model, args.batch, args.repeats)
    ips = speed["images_per_s"]
    print(
        f"throughput ({args.model}, {speed['image_shape'][0]} px, batch {args.batch}, "
        f"{speed['steps']} steps, median of {args.repeats}): pipeline {ips['pipeline']:.1f} images/s, "
        f"in-memory {ips['in_memory']:.1f} images/s, ratio {speed['ratio']:.3f} (target >= 0.95)",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="cxr-bench-") as tmp:
        four = str(repeated_copy(args.data, Path(tmp) / "x4", 4))
        memory = {
            f"{mode}_{scale}": _memory_in_subprocess(data, args, mode)
            for mode in ("pipeline", "in_memory")
            for scale, data in (("1x", args.data), ("4x", four))
        }
    mib = {key: value / 2**20 for key, value in memory.items()}
    growth = {mode: memory[f"{mode}_4x"] / memory[f"{mode}_1x"] for mode in ("pipeline", "in_memory")}
    print(
        f"peak RSS, one epoch: pipeline 1x {mib['pipeline_1x']:.0f} MiB, 4x {mib['pipeline_4x']:.0f} MiB, "
        f"ratio {growth['pipeline']:.3f} (target <= 1.15); in-memory 1x {mib['in_memory_1x']:.0f} MiB, "
        f"4x {mib['in_memory_4x']:.0f} MiB, ratio {growth['in_memory']:.3f}"
    )
    print(json.dumps({**speed, "peak_rss_mib": mib, "memory_growth_4x": growth}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
