"""Where the demo's training time goes, and what XLA or a smaller image buys on this CPU.

One fresh process per (model, variant), the variants taking turns, each timing with the project's own
pipeline and model builder: the first epoch (graph tracing included), the median of the later epochs, one
validation pass, and the BatchNorm recompute over the train split. Variants:

- ``baseline``: as ``cxr train`` runs on a CPU (op determinism on);
- ``jit``: the same with ``model.compile(jit_compile=True)`` (XLA);
- ``nondeterministic``: op determinism off;
- ``no_grappler`` / ``grappler_light``: TensorFlow's graph optimizer off, or only its remapper and pruning;
- ``size96`` / ``size64``: the images resized in the pipeline, the model built for that size.

    PYTHONPATH=. python bench/demo_training.py --data=runs/datasets/<demo key> [--models=small_cnn,densenet121]
        [--variants=baseline,jit,...] [--epochs=3] [--repeats=1]

Prints one JSON line per measurement, then each variant's ratio to the baseline of the same model and
repeat (epoch time after the first; first-epoch time).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASK = "binary"
VARIANTS = ("baseline", "jit", "nondeterministic", "no_grappler", "grappler_light", "size96", "size64")
# Grappler rewrites the whole training graph before its first run; "light" keeps only the remapper (which
# fuses conv + bias + activation into oneDNN kernels) and pruning.
LIGHT_GRAPPLER = {
    "layout_optimizer": False,
    "constant_folding": False,
    "shape_optimization": False,
    "arithmetic_optimization": False,
    "dependency_optimization": False,
    "loop_optimization": False,
    "function_optimization": False,
    "debug_stripper": False,
    "scoped_allocator_optimization": False,
    "pin_to_host_optimization": False,
    "implementation_selector": False,
    "auto_mixed_precision": False,
}


def measure(data: str, model_name: str, variant: str, epochs: int, batch: int) -> dict:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    from jobs.contracts.tasks import task_classes
    from jobs.data.reader import open_dataset
    from jobs.experiment.schema import Stage
    from jobs.training.batchnorm import recalibrate
    from jobs.training.inputs import evaluation_dataset, training_dataset
    from jobs.training.models import ModelSpec, build_model, set_trainable
    from jobs.training.randomness import EpochSeeds

    keras.utils.set_random_seed(1)
    if variant == "no_grappler":
        tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    if variant == "grappler_light":
        tf.config.optimizer.set_experimental_options(LIGHT_GRAPPLER)
    if variant != "nondeterministic":
        tf.config.experimental.enable_op_determinism()
    ds = open_dataset(data)
    size = {"size96": 96, "size64": 64}.get(variant)
    shape = (size, size, 3) if size else ds.image_shape
    model = build_model(ModelSpec(model_name, len(task_classes(TASK)), shape, rotation_degrees=15, seed=1))
    set_trainable(model, Stage(epochs=1, learning_rate=1e-3, trainable="all").trainable)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=variant == "jit",
    )

    def resized(data: tf.data.Dataset) -> tf.data.Dataset:
        return data.map(lambda x, y: (tf.image.resize(x, (size, size)), y)) if size else data

    seeds = EpochSeeds(1)
    train = resized(training_dataset(ds, TASK, batch, seeds, 1024, 2**40))
    validation = resized(evaluation_dataset(ds, "validation", TASK, batch))
    epoch_times = []
    for epoch in range(epochs):
        start = time.perf_counter()
        model.fit(train, epochs=epoch + 1, initial_epoch=epoch, verbose=0, shuffle=False, callbacks=[seeds])
        epoch_times.append(time.perf_counter() - start)
    start = time.perf_counter()
    model.evaluate(validation, verbose=0)
    validation_s = time.perf_counter() - start
    start = time.perf_counter()
    recalibrate(model, resized(evaluation_dataset(ds, "train", TASK, batch)).map(lambda x, _: x))
    recompute_s = time.perf_counter() - start
    return {
        "model": model_name,
        "variant": variant,
        "image_shape": list(shape),
        "train_images": ds.count("train"),
        "first_epoch_s": epoch_times[0],
        "later_epoch_s": statistics.median(epoch_times[1:]) if len(epoch_times) > 1 else None,
        "validation_pass_s": validation_s,
        "batchnorm_recompute_s": recompute_s,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="the demo's ETL output folder")
    parser.add_argument("--models", default="small_cnn,densenet121")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per process (the first traces)")
    parser.add_argument("--batch", type=int, default=16, help="the demo's batch size")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--measure", nargs=2, metavar=("MODEL", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.data, *args.measure, args.epochs, args.batch)))
        return 0
    results = []
    for repeat in range(args.repeats):
        for model in args.models.split(","):
            for variant in args.variants.split(","):
                command = [sys.executable, __file__, f"--data={args.data}", f"--epochs={args.epochs}"]
                command += [f"--batch={args.batch}", "--measure", model, variant]
                out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
                result = dict(json.loads(out.stdout.strip().splitlines()[-1]), repeat=repeat)
                print(json.dumps(result), flush=True)
                results.append(result)
    for r in results:
        base = next(
            b
            for b in results
            if (b["model"], b["repeat"], b["variant"]) == (r["model"], r["repeat"], "baseline")
        )
        later = (
            r["later_epoch_s"] / base["later_epoch_s"]
            if r["later_epoch_s"] and base["later_epoch_s"]
            else None
        )
        print(
            f"{r['model']:12} {r['variant']:17} repeat {r['repeat']}: epoch {r['later_epoch_s'] or 0:6.1f} s "
            f"(x{later or 0:.2f} of baseline), first epoch {r['first_epoch_s']:6.1f} s "
            f"(x{r['first_epoch_s'] / base['first_epoch_s']:.2f}), validation {r['validation_pass_s']:.1f} s, "
            f"BatchNorm recompute {r['batchnorm_recompute_s']:.1f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
