"""Tiny real Keras models that follow the training <-> evaluation contract exactly, for evaluation tests.

Input (H, W, 3) float [0,1] -> Rescaling (normalisation inside the model) -> a NESTED keras.Model backbone
-> GlobalAveragePooling2D -> Dense -> Dropout -> Dense softmax; saved as model.keras + history.json +
config.json. Evaluation cannot import the training code, so these stand in for its output.
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np

from jobs.contracts.tasks import task_classes, task_targets
from jobs.data.reader import open_dataset, to_float


def tiny_backbone(image_shape: tuple[int, int, int]) -> keras.Model:
    inputs = keras.Input(image_shape)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="conv_a")(inputs)
    x = keras.layers.Conv2D(16, 3, padding="same", name="conv_b")(x)
    x = keras.layers.BatchNormalization(name="bn_b")(x)
    x = keras.layers.Activation("relu", name="relu_b")(x)
    return keras.Model(inputs, x, name="tiny_backbone")


def contract_model(backbone: keras.Model, n_classes: int, seed: int = 0) -> keras.Model:
    """Wraps a headless backbone the way training does; normalisation to [-1, 1] as a Rescaling layer."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(backbone.input_shape[1:])
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="normalise")(inputs)
    x = backbone(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dense(16, activation="relu", name="head_dense")(x)
    x = keras.layers.Dropout(0.5, name="head_dropout")(x)
    outputs = keras.layers.Dense(n_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="classifier")


def train_contract_model(
    dataset_root: Path, model_dir: Path, task: str = "multiclass", name: str = "small_cnn", seed: int = 0
) -> Path:
    """Fits the tiny model on the real train split (two 1-epoch stages) and writes the contract's files."""
    dataset = open_dataset(dataset_root)
    classes = task_classes(task)
    model = contract_model(tiny_backbone(dataset.image_shape), len(classes), seed)
    train, validation = dataset.load("train"), dataset.load("validation")
    x, y = to_float(train["image"]), task_targets(task, train["label_index"])
    val = (to_float(validation["image"]), task_targets(task, validation["label_index"]))
    stages = [
        {"epochs": 1, "learning_rate": 1e-3, "trainable": "head"},
        {"epochs": 1, "learning_rate": 1e-4, "trainable": "all"},
    ]
    epochs = []
    for index, stage in enumerate(stages):
        model.get_layer("tiny_backbone").trainable = stage["trainable"] == "all"
        model.compile(
            optimizer=keras.optimizers.Adam(stage["learning_rate"]),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        fit = model.fit(x, y, validation_data=val, epochs=stage["epochs"], batch_size=16, verbose=0)
        epochs += [
            {"stage": index, "epoch": e, **{k: float(v[e]) for k, v in fit.history.items()}}
            for e in range(stage["epochs"])
        ]
    write_model_dir(model, model_dir, name, task, dataset, {"stages": stages, "epochs": epochs})
    return model_dir


def write_model_dir(
    model: keras.Model, model_dir: Path, name: str, task: str, dataset, history: dict
) -> None:
    model_dir.mkdir(parents=True, exist_ok=True)
    model.save(model_dir / "model.keras")
    (model_dir / "history.json").write_text(json.dumps(history))
    (model_dir / "config.json").write_text(
        json.dumps(
            {
                "model": name,
                "task": task,
                "classes": list(task_classes(task)),
                "image_shape": list(dataset.image_shape),
                "normalisation": "backbone",
                "weights": "none",
                "hyperparameters": {"model": name, "task": task, "batch_size": "16", "seed": "0"},
                "dataset_fingerprint": dataset.fingerprint,
                "dataset_uri": dataset.root,
            }
        )
    )


def constant_model(image_shape: tuple[int, int, int], probabilities: list[float]) -> keras.Model:
    """A contract-shaped model that answers the same probabilities for every image."""
    model = contract_model(tiny_backbone(image_shape), len(probabilities))
    head = model.get_layer("predictions")
    kernel, bias = head.get_weights()
    head.set_weights([np.zeros_like(kernel), np.log(np.asarray(probabilities, dtype=np.float32))])
    return model


_EXPERIMENTS: dict[Path, Path] = {}


def external_copy(dataset_root: Path, target: Path) -> Path:
    """Another ETL output (an 'external' test set): the real test split under a manifest of its own."""
    import shutil

    manifest = json.loads((dataset_root / "manifest.json").read_text())
    shutil.copytree(dataset_root / "data" / "split=test", target / "data" / "split=test")
    manifest["fingerprint"] = "external-" + manifest["fingerprint"]
    test = manifest["counts"]["by_split"]["test"]
    manifest["counts"]["by_split"] = {"train": 0, "validation": 0, "test": test}
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


def evaluated_experiment(dataset_root: Path, root: Path) -> Path:
    """Once per test session: an experiment folder with two evaluated models (trained, constant).

    ``root/models/<name>`` are the training outputs, ``root/experiment/<name>`` the evaluations.
    """
    from jobs.evaluation.entry import main

    if dataset_root not in _EXPERIMENTS:
        models, experiment = root / "models", root / "experiment"
        train_contract_model(dataset_root, models / "small_cnn")
        dataset = open_dataset(dataset_root)
        constant = constant_model(dataset.image_shape, [0.2, 0.5, 0.3])
        write_model_dir(
            constant,
            models / "constant",
            "constant",
            "multiclass",
            dataset,
            {
                "stages": [{"epochs": 1, "learning_rate": 1e-3, "trainable": "head"}],
                "epochs": [{"stage": 0, "epoch": 0, "loss": 1.0, "accuracy": 0.4}],
            },
        )
        external = external_copy(dataset_root, root / "external")
        for name in ("small_cnn", "constant"):
            code = main(
                [
                    f"--model-dir={models / name}",
                    f"--data={dataset_root}",
                    f"--output={experiment / name}",
                    f"--external=other={external}",
                    "--bootstrap-samples=200",
                    "--gradcam-examples=2",
                ]
            )
            assert code == 0
        _EXPERIMENTS[dataset_root] = root
    return _EXPERIMENTS[dataset_root]
