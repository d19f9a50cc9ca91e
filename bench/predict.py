"""Benchmark of ``cxr predict``.

1. Images/s of ``cxr predict`` on the test split's original files (read, decode, resize, score, write)
   against ``cxr evaluate`` on the same images (its Parquet rows: scoring, shortcut audit, metrics;
   bootstrap and Grad-CAM off), per model, with random initial weights; the two alternate, medians.
2. Peak memory (max RSS, one fresh process each) of ``cxr predict`` on 100 and on 1,000 inputs (the
   sample's files, repeated): batched streaming keeps it flat. The baseline is the same preprocessing
   and scoring with every image held in memory, as a one-off script (or ``cxr evaluate``) does.

    cxr etl --source cohen=DIR/cohen --source nih=DIR/nih --image-size 224 --output /tmp/ds224
    PYTHONPATH=. python bench/predict.py --data=/tmp/ds224 [--models small_cnn,densenet121] [--repeats 3]

Target: peak memory at 1,000 inputs <= 1.15x that at 100.
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
from itertools import cycle, islice
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASK = "multiclass"


def save_random_model(name: str, image_shape: tuple[int, int, int], target: Path) -> Path:
    """A training-contract folder for ``name`` with random initial weights (no training: speed only)."""
    import keras

    from jobs.contracts.tasks import task_classes
    from jobs.training.models import ModelSpec, build_model

    keras.utils.set_random_seed(1)
    classes = task_classes(TASK)
    target.mkdir(parents=True)
    build_model(ModelSpec(name, len(classes), image_shape)).save(target / "model.keras")
    config = {"model": name, "task": TASK, "classes": list(classes), "image_shape": list(image_shape)}
    (target / "config.json").write_text(json.dumps(config))
    history = {"stages": [{"epochs": 1, "learning_rate": 1e-3, "trainable": "head"}], "epochs": []}
    (target / "history.json").write_text(json.dumps(history))
    return target


def test_files(data: str) -> list[str]:
    from jobs.data.reader import open_dataset

    return [str(p) for p in open_dataset(data).load("test", columns=("original_path",))["original_path"]]


def throughput(data: str, model_dir: Path, files: list[str], repeats: int, scratch: Path) -> dict:
    """Whole-command wall time of each, alternated; images/s = test images / seconds."""
    from jobs.evaluation.entry import main as evaluate
    from jobs.prediction.entry import main as predict

    commands = {
        "predict": lambda: predict([f"--model={model_dir}", *files, f"--output={scratch / 'p'}"]),
        "evaluate": lambda: evaluate(
            [
                f"--model-dir={model_dir}",
                f"--data={data}",
                f"--output={scratch / 'e'}",
                "--bootstrap-samples=0",
                "--gradcam-examples=0",
            ]
        ),
    }
    for command in commands.values():  # warm-up: graph tracing, file cache
        assert command() == 0
    runs: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeats):
        for name, command in commands.items():
            start = time.perf_counter()
            assert command() == 0
            runs[name].append(len(files) / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in runs.items()}


def measure_memory(model_dir: str, files: list[str]) -> int:
    """One ``cxr predict`` over ``files`` in this process; returns the peak RSS in bytes."""
    from jobs.prediction.entry import main as predict

    with tempfile.TemporaryDirectory(prefix="cxr-bench-out-") as out:
        assert predict([f"--model={model_dir}", *files, f"--output={out}"]) == 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure_in_memory(model_dir: str, files: list[str]) -> int:
    """The baseline: every input prepared into one array, then scored; returns the peak RSS in bytes."""
    import numpy as np

    from jobs.etl.blobs import read_blob
    from jobs.evaluation.evaluate import probability_fn, read_model_dir
    from jobs.prediction.preprocess import prepare

    model, config, _ = read_model_dir(Path(model_dir))
    size = int(config["image_shape"][0])
    images = np.stack([prepare(read_blob(f), f, size).image for f in files])
    probability_fn(model)(images)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _memory_in_subprocess(model_dir: Path, files: list[str], count: int, scratch: Path, mode: str) -> int:
    listing = scratch / f"inputs-{count}.txt"
    listing.write_text("\n".join(islice(cycle(files), count)))
    proc = subprocess.run(
        [sys.executable, __file__, f"--measure-memory={model_dir}", f"--inputs={listing}", f"--mode={mode}"],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2", "PATH": "/usr/bin:/bin"},
    )
    return int(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="an ETL output folder (224 px for the figures in the README)")
    parser.add_argument("--models", default="small_cnn,densenet121", help="'' skips the speed part")
    parser.add_argument("--memory-model", default="small_cnn")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--measure-memory", help=argparse.SUPPRESS)
    parser.add_argument("--inputs", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=("predict", "in_memory"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure_memory:
        measure = measure_memory if args.mode == "predict" else measure_in_memory
        print(measure(args.measure_memory, Path(args.inputs).read_text().splitlines()))
        return 0
    if not args.data:
        parser.error("--data is required")

    from jobs.data.reader import open_dataset

    shape = open_dataset(args.data).image_shape
    files = test_files(args.data)
    result: dict = {"image_shape": list(shape), "test_images": len(files), "repeats": args.repeats}
    with tempfile.TemporaryDirectory(prefix="cxr-bench-") as tmp:
        scratch = Path(tmp)
        for name in filter(None, args.models.split(",")):
            model_dir = save_random_model(name, shape, scratch / name)
            ips = throughput(args.data, model_dir, files, args.repeats, scratch)
            result[name] = {"images_per_s": ips, "ratio": ips["predict"] / ips["evaluate"]}
            print(
                f"{name} ({shape[0]} px, {len(files)} test images, median of {args.repeats}): "
                f"cxr predict {ips['predict']:.1f} images/s, cxr evaluate {ips['evaluate']:.1f} images/s, "
                f"ratio {result[name]['ratio']:.2f}",
                flush=True,
            )
        model_dir = save_random_model(args.memory_model, shape, scratch / f"memory-{args.memory_model}")
        memory = {
            f"{mode}_{n}": _memory_in_subprocess(model_dir, files, n, scratch, mode) / 2**20
            for mode in ("predict", "in_memory")
            for n in (100, 1000)
        }
    growth = {mode: memory[f"{mode}_1000"] / memory[f"{mode}_100"] for mode in ("predict", "in_memory")}
    result |= {"peak_rss_mib": memory, "memory_growth": growth}
    print(
        f"peak RSS ({args.memory_model}): cxr predict 100 inputs {memory['predict_100']:.0f} MiB, 1,000 inputs "
        f"{memory['predict_1000']:.0f} MiB, ratio {growth['predict']:.3f} (target <= 1.15); all in memory "
        f"{memory['in_memory_100']:.0f} vs {memory['in_memory_1000']:.0f} MiB, ratio {growth['in_memory']:.3f}"
    )
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
