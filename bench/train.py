"""Benchmark of the training input pipeline.

1. ``fit``: training images/s of our tf.data pipeline (Parquet files, cached after the first epoch, and
   streamed every epoch) vs ``model.fit`` on the same images as in-memory numpy arrays: one model (its
   +-15 degree rotation layer included), same batch and steps, taking turns in one process; medians.
2. ``alone``: the pipeline without a model, in images/s per core, on 1 and on 2 cores (``taskset`` plus TF's
   thread pools; one fresh process per measurement, the two core counts taking turns), cached and streamed,
   and with the rotation moved onto the CPU (a parallel map), as it would run without a GPU.
3. ``profile``: where the CPU time of one image goes, stage by stage, on one core (stages added in turn).
4. ``memory``: peak RSS (one fresh process each) of one epoch with the training data 1x and 4x the given
   dataset (rows repeated into a temporary copy), the pipeline streaming; the in-memory baseline for contrast.

    PYTHONPATH=. python bench/train.py --data=/tmp/ds224 [--model=small_cnn] [--batch=16] [--repeats=5]
        [--rotation=15] [--sections=fit,alone,profile,memory]

Targets: pipeline >= 0.95x the in-memory images/s; peak memory at 4x <= 1.15x that at 1x; the pipeline
alone at 224 px >= 1,500 images/s per core. Other processes on the machine move absolute figures; the
ratios come from measurements that took turns, so a load shared by both sides cancels out.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASK = "multiclass"
SECTIONS = ("fit", "alone", "profile", "memory")
EVERYTHING = 2**40  # a cache budget any split fits in
SHUFFLE = 1024
ALONE_EPOCHS = 3


def _setup(data: str, model_name: str, rotation: float):
    import keras

    from jobs.contracts.tasks import task_classes
    from jobs.data.reader import open_dataset
    from jobs.experiment.schema import Stage
    from jobs.training.models import ModelSpec, build_model
    from jobs.training.schedules import configure_stage

    keras.utils.set_random_seed(1)
    ds = open_dataset(data)
    spec = ModelSpec(model_name, len(task_classes(TASK)), ds.image_shape, rotation_degrees=rotation, seed=1)
    model = build_model(spec)
    configure_stage(model, Stage(epochs=1, learning_rate=1e-4, trainable="all"))
    return ds, model


def _pipeline(ds, batch: int, cache_bytes: int, steps: int = 0):
    from jobs.training.inputs import training_dataset
    from jobs.training.randomness import EpochSeeds

    return training_dataset(ds, TASK, batch, EpochSeeds(1), SHUFFLE, cache_bytes, max_steps=steps)


def _in_memory(ds, images: int):
    from jobs.contracts.tasks import task_targets
    from jobs.data.reader import to_float

    train = ds.load("train", columns=("image", "label_index"))
    return to_float(train["image"][:images]), task_targets(TASK, train["label_index"][:images])


def _spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def throughput(data: str, model_name: str, batch: int, repeats: int, rotation: float) -> dict:
    """The three inputs take turns on one model; each timed call is one whole epoch of the train split."""
    ds, model = _setup(data, model_name, rotation)
    images = ds.count("train")
    x, y = _in_memory(ds, images)
    cached, streamed = _pipeline(ds, batch, EVERYTHING), _pipeline(ds, batch, 0)
    fits = {
        "in_memory": lambda: model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=True),
        "pipeline_cached": lambda: model.fit(cached, epochs=1, verbose=0, shuffle=False),
        "pipeline_streamed": lambda: model.fit(streamed, epochs=1, verbose=0, shuffle=False),
    }
    for fit in fits.values():  # warm-up: graph tracing, and the cache's first epoch
        fit()
    runs: dict[str, list[float]] = {name: [] for name in fits}
    for _ in range(repeats):
        for name, fit in fits.items():
            start = time.perf_counter()
            fit()
            runs[name].append(images / (time.perf_counter() - start))
    # Ratios per repeat (the turns of one repeat share the machine's load), then their spread.
    ratios = {
        name: _spread([p / m for p, m in zip(runs[name], runs["in_memory"], strict=True)])
        for name in ("pipeline_cached", "pipeline_streamed")
    }
    return {
        "model": model_name,
        "image_shape": list(ds.image_shape),
        "rotation_degrees": rotation,
        "batch": batch,
        "images_per_epoch": images,
        "images_per_s": {name: _spread(values) for name, values in runs.items()},
        "ratio_to_in_memory": ratios,
    }


def _rate(data, epochs: int) -> tuple[float, float]:
    """(images per second of wall time, images per second of this process's CPU time, all threads).

    The second is the CPU cost per image, which other processes on the machine hardly move.
    """
    wall, cpu, count = time.perf_counter(), time.process_time(), 0
    for _ in range(epochs):
        for images, _targets in data:
            count += int(images.shape[0])
    return count / (time.perf_counter() - wall), count / (time.process_time() - cpu)


def _limit_threads(cores: int) -> None:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(cores)
    tf.config.threading.set_inter_op_parallelism_threads(cores)


def _on_cores(data, cores: int):
    import tensorflow as tf

    options = tf.data.Options()
    options.threading.private_threadpool_size = cores
    return data.with_options(options)


def measure_alone(data: str, batch: int, cores: int, rotation: float) -> dict[str, tuple[float, float]]:
    """(wall, CPU) images/s of the pipeline without a model (the caller pins this process to ``cores``)."""
    import tensorflow as tf

    from jobs.data.reader import open_dataset
    from jobs.training.models import rotation_layer

    _limit_threads(cores)
    ds = open_dataset(data)
    variants = {"cached": _pipeline(ds, batch, EVERYTHING), "streamed": _pipeline(ds, batch, 0)}
    if rotation:
        rotate = rotation_layer(rotation, seed=1)
        variants["cached_rotation_on_cpu"] = variants["cached"].map(
            lambda images, targets: (rotate(images, training=True), targets),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    variants = {name: _on_cores(variant, cores) for name, variant in variants.items()}
    for variant in variants.values():
        _rate(variant, 1)  # warm-up; fills the cache
    return {name: _rate(variant, ALONE_EPOCHS) for name, variant in variants.items()}


def measure_profile(data: str, batch: int, rotation: float) -> dict[str, float]:
    """CPU microseconds per image of the pipeline's stages, each added to the ones before (one core)."""
    import tensorflow as tf

    from jobs.data.reader import open_dataset
    from jobs.training.inputs import record_batches
    from jobs.training.models import rotation_layer

    _limit_threads(1)
    ds = open_dataset(data)
    records = record_batches(ds, "train", TASK)
    examples = records.unbatch().cache()
    batches = examples.shuffle(SHUFFLE, seed=1).batch(batch)
    scaled = batches.map(lambda images, targets: (tf.cast(images, tf.float32) / 255.0, targets))
    rotate = rotation_layer(rotation or 15.0, seed=1)
    stages = {
        "read Parquet into uint8 record batches (stream)": records,
        "slice to images (from the cache)": examples.batch(1024),  # one big batch: slicing, little copying
        "+ shuffle and batch": batches,
        "+ cast to float32 and x / 255": scaled,
        "+ rotation on the CPU": scaled.map(lambda images, targets: (rotate(images, training=True), targets)),
    }
    stages = {name: _on_cores(stage, 1) for name, stage in stages.items()}
    for stage in stages.values():
        _rate(stage, 1)
    return {name: 1e6 / _rate(stage, ALONE_EPOCHS)[1] for name, stage in stages.items()}


def measure_memory(data: str, model_name: str, batch: int, mode: str, rotation: float) -> int:
    """One epoch over the whole training split; returns this process's peak RSS in bytes."""
    ds, model = _setup(data, model_name, rotation)
    if mode == "pipeline":
        model.fit(_pipeline(ds, batch, 0), epochs=1, verbose=0, shuffle=False)  # streamed
    else:
        x, y = _in_memory(ds, ds.count("train"))
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def repeated_copy(data: str, target: Path, times: int) -> Path:
    """The dataset with its training rows repeated, written in row groups of the source's size."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from jobs.data.reader import open_dataset

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


def _subprocess(args: argparse.Namespace, data: str, flag: str, cores: int | None = None) -> str:
    """This script in a fresh process (optionally pinned to the first ``cores`` cores); its last line."""
    command = [
        sys.executable,
        __file__,
        f"--data={data}",
        f"--model={args.model}",
        f"--batch={args.batch}",
        f"--rotation={args.rotation}",
        flag,
    ]
    if cores is not None:
        command = [
            "taskset",
            "-c",
            ",".join(str(core) for core in sorted(os.sched_getaffinity(0))[:cores]),
        ] + command
    proc = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", "PATH": "/usr/bin:/bin"},
    )
    return proc.stdout.strip().splitlines()[-1]


def alone(args: argparse.Namespace) -> dict:
    """1 and 2 cores take turns, one fresh process each; images/s per core and the 1 -> 2 core scaling."""
    runs: dict[int, list[dict[str, list[float]]]] = {1: [], 2: []}
    for _ in range(args.repeats):
        for cores in runs:
            runs[cores].append(json.loads(_subprocess(args, args.data, f"--measure-alone={cores}", cores)))
    variants, wall, cpu = list(runs[1][0]), 0, 1
    return {
        variant: {
            "per_core_1": _spread([r[variant][wall] for r in runs[1]]),
            "per_core_2": _spread([r[variant][wall] / 2 for r in runs[2]]),
            "scaling_1_to_2": _spread(
                [b[variant][wall] / a[variant][wall] for a, b in zip(runs[1], runs[2], strict=True)]
            ),
            "per_cpu_second": _spread([r[variant][cpu] for cores in runs for r in runs[cores]]),
        }
        for variant in variants
    }


def memory(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="cxr-bench-") as tmp:
        four = str(repeated_copy(args.data, Path(tmp) / "x4", 4))
        peak = {
            f"{mode}_{scale}": int(_subprocess(args, data, f"--measure-memory={mode}"))
            for mode in ("pipeline", "in_memory")
            for scale, data in (("1x", args.data), ("4x", four))
        }
    return {
        "peak_rss_mib": {key: value / 2**20 for key, value in peak.items()},
        "growth_4x": {mode: peak[f"{mode}_4x"] / peak[f"{mode}_1x"] for mode in ("pipeline", "in_memory")},
    }


def _range(spread: dict, digits: int = 0) -> str:
    return f"{spread['median']:,.{digits}f} ({spread['min']:,.{digits}f} to {spread['max']:,.{digits}f})"


def _print_fit(speed: dict, repeats: int) -> None:
    ips, ratio = speed["images_per_s"], speed["ratio_to_in_memory"]
    print(
        f"fit ({speed['model']}, {speed['image_shape'][0]} px, rotation {speed['rotation_degrees']:g} deg in the "
        f"model, batch {speed['batch']}, {speed['images_per_epoch']} images per epoch, median (min to max) of "
        f"{repeats}): in-memory {_range(ips['in_memory'], 1)} images/s; pipeline cached "
        f"{_range(ips['pipeline_cached'], 1)}, ratio {_range(ratio['pipeline_cached'], 3)}; streamed "
        f"{_range(ips['pipeline_streamed'], 1)}, ratio {_range(ratio['pipeline_streamed'], 3)} (target >= 0.95)",
        flush=True,
    )


def _print_alone(result: dict, repeats: int) -> None:
    for variant, figures in result.items():
        print(
            f"pipeline alone, {variant}: images/s per core on 1 core {_range(figures['per_core_1'])}, on 2 cores "
            f"{_range(figures['per_core_2'])}; 1 -> 2 cores x{_range(figures['scaling_1_to_2'], 2)}; per second "
            f"of CPU time {_range(figures['per_cpu_second'])} (median (min to max) of {repeats}; target >= 1,500 "
            "per core)",
            flush=True,
        )


def _print_profile(stages: dict[str, float]) -> None:
    print("profile, one core, CPU microseconds per image (each stage added to those before):")
    previous = None
    for name, micros in stages.items():
        step = (
            "" if previous is None or name.startswith(("read", "slice")) else f" (+{micros - previous:,.0f})"
        )
        print(f"  {name}: {micros:,.0f}{step}")
        previous = micros


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="an ETL output folder")
    parser.add_argument("--model", default="small_cnn")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rotation", type=float, default=15.0, help="degrees; the paper's +-15")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, of {SECTIONS}")
    parser.add_argument("--measure-memory", choices=("pipeline", "in_memory"), help=argparse.SUPPRESS)
    parser.add_argument("--measure-alone", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--measure-profile", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure_memory:
        print(measure_memory(args.data, args.model, args.batch, args.measure_memory, args.rotation))
        return 0
    if args.measure_alone:
        print(json.dumps(measure_alone(args.data, args.batch, args.measure_alone, args.rotation)))
        return 0
    if args.measure_profile:
        print(json.dumps(measure_profile(args.data, args.batch, args.rotation)))
        return 0
    sections = args.sections.split(",")
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"--sections: unknown {unknown}; choose from {SECTIONS}")

    print(
        f"cores available: {len(os.sched_getaffinity(0))}, load average {os.getloadavg()[0]:.1f}", flush=True
    )
    results: dict[str, dict] = {}
    if "fit" in sections:
        results["fit"] = throughput(args.data, args.model, args.batch, args.repeats, args.rotation)
        _print_fit(results["fit"], args.repeats)
    if "alone" in sections:
        results["alone"] = alone(args)
        _print_alone(results["alone"], args.repeats)
    if "profile" in sections:
        results["profile"] = json.loads(_subprocess(args, args.data, "--measure-profile", 1))
        _print_profile(results["profile"])
    if "memory" in sections:
        results["memory"] = memory(args)
        mib, growth = results["memory"]["peak_rss_mib"], results["memory"]["growth_4x"]
        print(
            f"peak RSS, one epoch: pipeline (streamed) 1x {mib['pipeline_1x']:.0f} MiB, 4x "
            f"{mib['pipeline_4x']:.0f} MiB, ratio {growth['pipeline']:.3f} (target <= 1.15); in-memory 1x "
            f"{mib['in_memory_1x']:.0f} MiB, 4x {mib['in_memory_4x']:.0f} MiB, ratio {growth['in_memory']:.3f}",
            flush=True,
        )
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
