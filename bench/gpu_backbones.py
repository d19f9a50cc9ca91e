"""GPU benchmark of the training step: each backbone, two batch sizes, fp32 and mixed precision, fed by the
input pipeline or by one in-memory batch repeated (so the difference is what the input costs).

NOT YET RUN: written for a machine with NVIDIA GPUs (ml.p3.8xlarge: 4 V100); no GPU was lent to the task
that wrote it. It needs no data: it writes a dataset of random pixels in the ETL's format (Parquet + manifest)
of the size each backbone is measured at (224 px; InceptionV3 299 px), so the pipeline does its real work.

    PYTHONPATH=. python bench/gpu_backbones.py [--models=resnet50,densenet121,vgg19,inceptionv3]
        [--batches=3,32] [--steps=30] [--output=$OUT/gpu_backbones.json]

Per configuration it prints one line (images/s over one epoch after a warm-up epoch, all GPUs together,
rotation layer active) and, at the end, the JSON of all of them.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZES = {"inceptionv3": 299}  # the rest at the paper's 224 px
TASK = "multiclass"


def random_dataset(root: Path, size: int, rows: int) -> Path:
    """An ETL-shaped dataset (train and validation splits) of random uint8 pixels."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from jobs.etl.labels import CLASSES

    rng = np.random.default_rng(0)
    labels = rng.integers(0, len(CLASSES), rows)
    for split in ("train", "validation"):
        folder = root / "data" / f"split={split}"
        folder.mkdir(parents=True)
        pixels = rng.integers(0, 256, (rows, size * size * 3), dtype=np.uint8)
        table = pa.table({"image": [row.tobytes() for row in pixels], "label_index": labels.astype(np.int32)})
        pq.write_table(table, folder / "part-00000.parquet", row_group_size=64)
    per_class = {name: int((labels == i).sum()) for i, name in enumerate(CLASSES)}
    manifest = {
        "classes": list(CLASSES),
        "image_shape": [size, size, 3],
        "fingerprint": f"random-{size}",
        "counts": {
            "by_split": {"train": rows, "validation": rows},
            "by_split_class": {"train": per_class, "validation": per_class},
        },
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def measure(name: str, data: Path, per_replica: int, mixed: bool, source: str) -> float:
    """Images/s of one epoch of the train split on every visible GPU (global batch = per replica x GPUs).

    The pipeline's warm-up epoch fills its cache, as in a real run; in-memory repeats one batch.
    """
    import keras
    import tensorflow as tf

    from jobs.contracts.tasks import task_classes
    from jobs.data.reader import open_dataset
    from jobs.experiment.schema import Stage
    from jobs.training.hardware import HardwarePlan, detect_hardware, global_batch_size, make_strategy
    from jobs.training.inputs import training_dataset
    from jobs.training.models import ModelSpec, build_model
    from jobs.training.schedules import configure_stage

    keras.backend.clear_session()
    strategy = make_strategy(HardwarePlan(devices=detect_hardware().devices, mixed_precision=mixed))
    batch = global_batch_size(per_replica, strategy)
    ds = open_dataset(data)
    with strategy.scope():
        model = build_model(
            ModelSpec(name, len(task_classes(TASK)), ds.image_shape, rotation_degrees=15, seed=1)
        )
        configure_stage(model, Stage(epochs=1, learning_rate=1e-4, trainable="all"))
    steps = ds.count("train") // batch
    if source == "pipeline":  # the whole split: a cache is only kept once an epoch has read to the end
        inputs = training_dataset(ds, TASK, batch, 1, 1024, 2**40)
    else:
        images = np.random.default_rng(0).random((batch, *ds.image_shape), dtype=np.float32)
        labels = np.zeros(batch, dtype=np.int64)
        inputs = tf.data.Dataset.from_tensors((images, labels)).repeat(steps)
    model.fit(inputs, epochs=1, verbose=0)  # warm-up: tracing, cache filling
    start = time.perf_counter()
    model.fit(inputs, epochs=1, verbose=0)
    images = ds.count("train") if source == "pipeline" else steps * batch
    return images / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet50,densenet121,vgg19,inceptionv3")
    parser.add_argument("--batches", default="3,32", help="per-GPU batch sizes")
    parser.add_argument("--steps", type=int, default=30, help="steps per epoch at the largest batch")
    parser.add_argument("--output", help="where to write the JSON as well")
    args = parser.parse_args(argv)
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    print(f"GPUs: {[gpu.name for gpu in gpus] or 'none (this measures the CPU)'}", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="cxr-gpu-bench-") as tmp:
        datasets: dict[int, Path] = {}
        for name in args.models.split(","):
            size = SIZES.get(name, 224)
            rows = args.steps * max(int(b) for b in args.batches.split(",")) * max(1, len(gpus))
            if size not in datasets:
                datasets[size] = random_dataset(Path(tmp) / f"d{size}", size, rows)
            for per_replica in (int(b) for b in args.batches.split(",")):
                for mixed in (False, True):
                    for source in ("pipeline", "in_memory"):
                        ips = measure(name, datasets[size], per_replica, mixed, source)
                        row = {
                            "model": name,
                            "size": size,
                            "per_gpu_batch": per_replica,
                            "mixed_precision": mixed,
                            "input": source,
                            "images_per_s": ips,
                        }
                        results.append(row)
                        print(json.dumps(row), flush=True)
    if args.output:
        Path(args.output).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
