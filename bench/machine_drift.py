"""Does the same seed train the same model on another CPU? This machine plays other CPUs.

oneDNN chooses its kernels by the instruction sets the CPU has; ``ONEDNN_MAX_CPU_ISA`` caps what it may
use, so a run capped at AVX2 computes as an AVX2-only machine would, and ``TF_ENABLE_ONEDNN_OPTS=0``
as a build without oneDNN. Each variant trains the demo's small CNN in a fresh process with op
determinism on and the same seed; the weights are compared with the uncapped run's, and a second
uncapped run shows what a rerun on the same machine gives.

    PYTHONPATH=. python bench/machine_drift.py --data=runs/datasets/<demo key> [--epochs=3] [--model=small_cnn]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "this CPU": {},
    "this CPU again": {},
    "AVX2-only CPU (ONEDNN_MAX_CPU_ISA=AVX2)": {"ONEDNN_MAX_CPU_ISA": "AVX2"},
    "AVX-512 without bf16/VNNI (ONEDNN_MAX_CPU_ISA=AVX512_CORE)": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE"},
    "TensorFlow without oneDNN (TF_ENABLE_ONEDNN_OPTS=0)": {"TF_ENABLE_ONEDNN_OPTS": "0"},
}


def train(data: str, model_name: str, epochs: int, out: str) -> None:
    """One deterministic training run; writes its weights (.npz) and the test split's ROC AUC."""
    import keras
    import tensorflow as tf
    from sklearn.metrics import roc_auc_score

    from jobs.contracts.tasks import task_classes, task_targets
    from jobs.data.reader import open_dataset, to_float
    from jobs.experiment.schema import Stage
    from jobs.training.inputs import training_dataset
    from jobs.training.models import ModelSpec, build_model
    from jobs.training.randomness import EpochSeeds
    from jobs.training.schedules import configure_stage

    keras.utils.set_random_seed(1)
    tf.config.experimental.enable_op_determinism()
    ds = open_dataset(data)
    model = build_model(
        ModelSpec(model_name, len(task_classes("binary")), ds.image_shape, rotation_degrees=15, seed=1)
    )
    configure_stage(model, Stage(epochs=epochs, learning_rate=1e-3, trainable="all"))
    seeds = EpochSeeds(1)
    model.fit(
        training_dataset(ds, "binary", 16, seeds, 1024, 2**40), epochs=epochs, verbose=0, callbacks=[seeds]
    )
    test = ds.load("test", columns=("image", "label_index"))
    scores = model(to_float(test["image"]), training=False).numpy()[:, 0]
    auc = roc_auc_score(task_targets("binary", test["label_index"]) == 0, scores)
    np.savez(out, *[np.asarray(w) for w in model.weights])
    Path(out).with_suffix(".json").write_text(json.dumps({"test_roc_auc": auc}))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default="small_cnn")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default="/tmp/cxr-machine-drift")
    parser.add_argument("--train", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.train:
        train(args.data, args.model, args.epochs, args.train)
        return 0
    Path(args.out).mkdir(parents=True, exist_ok=True)
    results = {}
    for number, (name, env) in enumerate(VARIANTS.items()):
        out = f"{args.out}/{number}.npz"
        command = [sys.executable, __file__, f"--data={args.data}", f"--model={args.model}"]
        command += [f"--epochs={args.epochs}", f"--train={out}"]
        environ = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env}
        subprocess.run(command, check=True, cwd=ROOT, env=environ, capture_output=True)
        weights = np.load(out)
        results[name] = (
            [weights[k] for k in sorted(weights, key=lambda k: int(k.split("_")[1]))],
            json.loads(Path(out).with_suffix(".json").read_text())["test_roc_auc"],
        )
    reference, reference_auc = results["this CPU"]
    for name, (weights, auc) in results.items():
        digest = hashlib.sha256(b"".join(w.tobytes() for w in weights)).hexdigest()[:12]
        largest = max(float(np.abs(a - b).max()) for a, b in zip(weights, reference, strict=True))
        print(
            f"{name:62} weights {digest}  max |difference| {largest:.2e}  test ROC AUC {auc:.4f} "
            f"({auc - reference_auc:+.4f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
