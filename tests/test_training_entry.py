"""The container entry point against a temporary /opt/ml tree: every model and task, resume, determinism,
and bad inputs that must fail before training with the reason in the failure file."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from jobs.contracts import sagemaker_env
from jobs.contracts.metric_lines import METRIC_NAMES, metric_regex
from jobs.contracts.tasks import task_classes
from jobs.data.reader import open_dataset, to_float
from jobs.experiment.schema import MODEL_NAMES
from jobs.training import entry, models
from jobs.training.weights import NOTOP_FILES

ROOT = Path(__file__).resolve().parents[1]
ONE_EPOCH = '[{"epochs": 1, "learning_rate": 0.001, "trainable": "%s"}]'


def opt_ml(tmp_path: Path, dataset: Path, hyperparameters: dict[str, str], checkpoints: bool = False) -> Path:
    """A SageMaker-shaped tree: string hyperparameters, the dataset as the 'dataset' channel."""
    root = tmp_path / "opt_ml"
    (root / "input" / "config").mkdir(parents=True, exist_ok=True)
    (root / "input" / "data").mkdir(parents=True, exist_ok=True)
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    channel = root / "input" / "data" / "dataset"
    if dataset is not None and not channel.exists():
        channel.symlink_to(dataset, target_is_directory=True)
    if checkpoints:
        (root / "checkpoints").mkdir(exist_ok=True)
    return root


def tiny(model: str, task: str, trainable: str = "head", **extra: str) -> dict[str, str]:
    return {
        "model": model,
        "task": task,
        "weights": "none",
        "schedule": ONE_EPOCH % trainable,
        "batch_size": "4",
        "max_steps_per_epoch": "2",
        "dense_units": "8",
        "seed": "7",
        **extra,
    }


@pytest.fixture
def container(monkeypatch, tmp_path):
    """Runs the entry point as the container does, with /opt/ml at a temporary root."""

    def run(hyperparameters, dataset, checkpoints=False, argv=()):
        root = opt_ml(tmp_path, dataset, hyperparameters, checkpoints)
        monkeypatch.setenv(sagemaker_env.ROOT_VARIABLE, str(root))
        keras.backend.clear_session()
        return root, entry.main(list(argv))

    return run


@pytest.mark.slow
@pytest.mark.parametrize("task", ["binary", "multiclass"])
@pytest.mark.parametrize("model_name", MODEL_NAMES)  # an ETL fixture run at 64 px, one stage of 1 epoch
def test_each_model_trains_for_each_task(model_name, task, small_dataset, tmp_path, capsys):
    """Outputs follow the CONTRACT, and the saved model reloads and predicts what the trained one did.

    The big backbones train their head only (fine-tuning them all is minutes of graph tracing on this CPU);
    the small CNN fine-tunes everything for the multiclass task, so both kinds of stage run here.
    """
    trainable = "all" if (model_name, task) == ("small_cnn", "multiclass") else "head"
    root = opt_ml(tmp_path, small_dataset, tiny(model_name, task, trainable))
    keras.backend.clear_session()
    trained = entry.run([], sagemaker_env.from_environ({}, root=root))
    out = capsys.readouterr().out

    ds = open_dataset(small_dataset)
    model_dir = root / "model"
    config = json.loads((model_dir / "config.json").read_text())
    assert config["model"] == model_name and config["task"] == task
    assert config["classes"] == list(task_classes(task))
    assert config["image_shape"] == list(ds.image_shape) and config["dataset_fingerprint"] == ds.fingerprint
    assert config["hyperparameters"]["schedule"] == ONE_EPOCH % trainable and config["weights"] == "none"
    history = json.loads((model_dir / "history.json").read_text())
    assert history["stages"] == [{"epochs": 1, "learning_rate": 0.001, "trainable": trainable}]
    assert [(e["stage"], e["epoch"]) for e in history["epochs"]] == [(0, 0)]
    for name in METRIC_NAMES:
        printed = [float(v) for v in re.findall(metric_regex(name), out)]
        key = {"train_loss": "loss", "train_accuracy": "accuracy"}.get(name, name)
        assert printed == [pytest.approx(history["epochs"][0][key], rel=1e-5)]  # 6 significant digits

    images = to_float(next(ds.batches("test", batch_rows=5))["image"])
    reloaded = keras.models.load_model(model_dir / "model.keras")  # no custom objects
    assert reloaded.input_shape == (None, *ds.image_shape)
    before, after = np.asarray(trained(images, training=False)), np.asarray(reloaded(images, training=False))
    assert before.shape == (5, len(task_classes(task)))
    np.testing.assert_allclose(before.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(after, before, atol=1e-6)


def histories(root: Path) -> list[dict]:
    return json.loads((root / "model" / "history.json").read_text())["epochs"]


def test_same_seed_same_history_other_seed_other_history(container, small_dataset, tmp_path):
    """Shuffle, rotation, dropout and init are seeded: bit-identical on CPU; the seed matters."""
    runs = []
    for seed in ("11", "11", "12"):
        root, code = container(
            tiny(
                "small_cnn", "multiclass", "all", seed=seed, rotation_degrees="15", class_weights="balanced"
            ),
            small_dataset,
        )
        assert code == 0
        runs.append(histories(root))
        shutil.rmtree(root)
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_a_model_trained_with_rotation_is_evaluated_with_grad_cam(container, small_dataset, tmp_path):
    """The rotation layer inside the saved model is no obstacle to `cxr evaluate`: metrics and Grad-CAM."""
    from jobs.evaluation.entry import main as evaluate
    from jobs.evaluation.gradcam import find_target_layer

    root, code = container(tiny("small_cnn", "multiclass", rotation_degrees="15"), small_dataset)
    assert code == 0
    model = keras.models.load_model(root / "model" / "model.keras", compile=False)
    assert models.AUGMENTATION_LAYER in [layer.name for layer in model.layers]
    assert find_target_layer(model) == ("small_cnn", "block4_pool")
    out = tmp_path / "evaluation"
    argv = [f"--model-dir={root / 'model'}", f"--data={small_dataset}", f"--output={out}"]
    assert evaluate([*argv, "--bootstrap-samples=20", "--gradcam-examples=1"]) == 0
    assert (out / "metrics.json").exists() and list((out / "gradcam").glob("*.png"))


def test_restarted_job_resumes_from_its_checkpoint(container, small_dataset, capsys):
    """Spot interruption: a rerun with the same checkpoints continues at the next epoch, not from scratch,
    and draws what an uninterrupted run draws (shuffle, rotation, dropout): the same history."""
    hp = tiny("small_cnn", "binary", rotation_degrees="15", dropout="0.5")
    root, code = container(hp, small_dataset, checkpoints=True)
    assert code == 0
    first = histories(root)
    state = json.loads((root / "checkpoints" / "state.json").read_text())
    assert state["progress"] == {"stage": 0, "epochs_done": 1, "stopped_early": False}
    capsys.readouterr()

    longer = {
        **hp,
        "schedule": '[{"epochs": 2, "learning_rate": 0.001, "trainable": "head"}, '
        '{"epochs": 1, "learning_rate": 0.0001, "trainable": "all"}]',
    }
    root, code = container(longer, small_dataset, checkpoints=True)
    out = capsys.readouterr().out
    assert code == 0
    assert "resuming from" in out and "stage 1 epoch 2" in out
    assert out.count("epoch 1/2 stage 1/2") == 0 and out.count("epoch 2/2 stage 1/2") == 1
    resumed = histories(root)
    assert [(e["stage"], e["epoch"]) for e in resumed] == [(0, 0), (0, 1), (1, 0)]
    assert resumed[0] == first[0]

    other_task = {**longer, "task": "multiclass"}
    root, code = container(other_task, small_dataset, checkpoints=True)
    assert code == 1
    assert (
        "written by another training run (task: checkpoint 'binary' vs now 'multiclass')"
        in (root / "output" / "failure").read_text()
    )

    shutil.rmtree(root)
    root, code = container(longer, small_dataset)
    assert code == 0
    assert histories(root) == resumed


def dataset_without(source: Path, target: Path, label: str) -> Path:
    """A real ETL output minus one class: what an ETL for another task (or a failed source) leaves."""
    manifest = json.loads((source / "manifest.json").read_text())
    for split_dir in sorted((source / "data").glob("split=*")):
        out = target / "data" / split_dir.name
        out.mkdir(parents=True)
        split = split_dir.name.split("=")[1]
        for part in split_dir.glob("*.parquet"):
            table = pq.read_table(part)
            pq.write_table(table.filter(pc.not_equal(table["label"], label)), out / part.name)
        manifest["counts"]["by_split"][split] -= manifest["counts"]["by_split_class"][split].pop(label, 0)
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model": "resnet18"}, "hyperparameter 'model'"),
        ({"schedule": '[{"epochs": 1, "learning_rate": -0.001, "trainable": "head"}]'}, "learning_rate"),
        ({"schedule": "[]"}, "the schedule needs at least one stage"),
        ({"task": "multiclass", "channel_dataset": "no-pneumonia"}, "has no images of ['Pneumonia']"),
        ({"channel_dataset": "none"}, "no data: the training job has no 'dataset' channel"),
    ],
)
def test_bad_input_fails_before_training_with_a_reason(
    change, message, container, small_dataset, tmp_path, capsys
):
    data = {"none": None, "no-pneumonia": None}.get(change.get("channel_dataset"), small_dataset)
    if change.get("channel_dataset") == "no-pneumonia":
        data = dataset_without(small_dataset, tmp_path / "no-pneumonia", "Pneumonia")
    hp = {**tiny("small_cnn", "binary"), **{k: v for k, v in change.items() if k != "channel_dataset"}}
    root, code = container(hp, data)
    assert code == 1
    assert message in (root / "output" / "failure").read_text()
    assert "METRIC" not in capsys.readouterr().out
    assert not (root / "model").exists()


def test_binary_still_trains_on_a_dataset_without_pneumonia(container, small_dataset, tmp_path):
    """The class check is per task: COVID-19 vs Normal is still a binary dataset."""
    data = dataset_without(small_dataset, tmp_path / "no-pneumonia", "Pneumonia")
    root, code = container(tiny("small_cnn", "binary"), data)
    assert code == 0 and (root / "model" / "model.keras").exists()


def test_unavailable_imagenet_weights_fail_at_once_with_staging_advice(container, small_dataset, monkeypatch):
    """No download in tests: the backbone constructor fails as Keras does offline."""

    def offline(**kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3]")

    monkeypatch.setitem(
        models.ARCHITECTURES,
        "resnet50",
        models.ARCHITECTURES["resnet50"].__class__(offline, "caffe", 32, True),
    )
    root, code = container({**tiny("resnet50", "binary"), "weights": "imagenet"}, small_dataset)
    failure = (root / "output" / "failure").read_text()
    assert code == 1
    assert (
        "URL fetch failure" in failure
        and NOTOP_FILES["resnet50"] in failure
        and "cxr stage-weights resnet50" in failure
    )


def test_imagenet_weights_come_from_the_weights_channel(container, small_dataset, monkeypatch, tmp_path):
    """A network-isolated job: the backbone gets the staged file of its 'weights' channel, not a download."""
    received = []

    def record(**kwargs):
        received.append(kwargs["weights"])
        raise RuntimeError("recorded")

    monkeypatch.setitem(
        models.ARCHITECTURES,
        "resnet50",
        models.ARCHITECTURES["resnet50"].__class__(record, "caffe", 32, True),
    )
    staged = tmp_path / "opt_ml" / "input" / "data" / sagemaker_env.WEIGHTS_CHANNEL / "keras"
    staged.mkdir(parents=True)
    (staged / Path(NOTOP_FILES["resnet50"]).name).write_bytes(b"staged")
    root, code = container({**tiny("resnet50", "binary"), "weights": "imagenet"}, small_dataset)
    assert code != 0 and received == [str(staged / Path(NOTOP_FILES["resnet50"]).name)]


def test_cli_flags_and_a_separate_process_write_the_failure_file(small_dataset, tmp_path):
    """`python -m jobs.training.entry` as the container's `train` runs it: real exit code, real file."""
    root = opt_ml(tmp_path, small_dataset, {"task": "binary"})
    env = {**os.environ, sagemaker_env.ROOT_VARIABLE: str(root), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "train", "--model=alexnet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1
    assert "hyperparameter 'model'" in (root / "output" / "failure").read_text()
    assert "training failed" in proc.stderr


# SageMaker writes the job's instance type to resourceconfig.json ("How Amazon SageMaker AI Provides Training
# Information": current_instance_type); ml.p3.8xlarge has 4 V100s, ml.m5.xlarge none.
@pytest.mark.parametrize(
    ("instance_type", "environ", "trains"),
    [
        ("ml.p3.8xlarge", {}, False),
        ("ml.g5.2xlarge", {}, False),
        (None, {"SM_NUM_GPUS": "4"}, False),
        ("ml.m5.xlarge", {"SM_NUM_GPUS": "0"}, True),
    ],
)
def test_a_gpu_host_whose_gpus_tensorflow_cannot_see_fails_instead_of_training_on_the_cpu(
    instance_type, environ, trains, container, small_dataset, tmp_path, monkeypatch
):
    """This machine's TensorFlow sees no GPU: on a GPU instance that is a driver/CUDA mismatch, and the job
    exits 1 with the reason in the failure file before any training; on a CPU instance it trains."""
    config = tmp_path / "opt_ml" / sagemaker_env.RESOURCE_CONFIG_FILE
    config.parent.mkdir(parents=True)
    if instance_type:
        config.write_text(json.dumps({"current_host": "algo-1", "current_instance_type": instance_type}))
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    root, code = container(tiny("small_cnn", "binary"), small_dataset)
    assert (code == 0) == trains
    if not trains:
        failure = (root / "output" / "failure").read_text()
        assert "TensorFlow sees none" in failure and (instance_type or "SM_NUM_GPUS=4") in failure
        assert not (root / "model" / "model.keras").exists()


def tensorboard_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """(step, value) of every scalar in a TensorBoard run folder, read with TensorBoard's own reader."""
    import tensorflow as tf
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    events.Reload()
    return {
        tag: [(e.step, float(tf.make_ndarray(e.tensor_proto))) for e in events.Tensors(tag)]
        for tag in events.Tags()["tensors"]
    }


TWO_STAGES = '[{"epochs": 2, "learning_rate": 0.001, "trainable": "all"}, {"epochs": 1, "learning_rate": 0.0001, "trainable": "all"}]'


def test_tensorboard_logs_one_curve_across_stages_at_sagemakers_path(container, small_dataset, tmp_path):
    """In a job's tree the logs land in output/tensorboard (TensorBoardOutputConfig's LocalPath): one
    point per epoch of the whole schedule, the values history.json holds, a few kB; a fresh rerun's only."""
    hyperparameters = tiny("small_cnn", "binary", schedule=TWO_STAGES)
    root = opt_ml(tmp_path, small_dataset, hyperparameters)
    (root / "output").mkdir()
    for _ in range(2):  # a rerun without a checkpoint starts the curve anew
        keras.backend.clear_session()
        entry.run([], sagemaker_env.from_environ({}, root=root))
    logs = root / sagemaker_env.TENSORBOARD_DIR
    assert sagemaker_env.TENSORBOARD_LOCAL_PATH == "/opt/ml/" + sagemaker_env.TENSORBOARD_DIR
    history = histories(root)
    train, validation = tensorboard_scalars(logs / "train"), tensorboard_scalars(logs / "validation")
    assert [step for step, _ in train["epoch_loss"]] == [0, 1, 2]
    assert [v for _, v in train["epoch_loss"]] == pytest.approx([e["loss"] for e in history], rel=1e-5)
    assert [v for _, v in validation["epoch_loss"]] == pytest.approx(
        [e["val_loss"] for e in history], rel=1e-5
    )
    assert sum(f.stat().st_size for f in logs.rglob("*") if f.is_file()) < 50_000
    assert not (root / "model" / "tensorboard").exists()


def test_tensorboard_logs_change_no_number_of_the_run(container, small_dataset, tmp_path):
    """The same seeded run with and without the logs: identical history and predictions. Without a job's
    tree (no output/), the logs go beside the model."""
    hyperparameters = tiny("small_cnn", "binary", schedule=TWO_STAGES, rotation_degrees="15")
    runs = []
    for argv in ([], ["--tensorboard-dir=none"]):
        root, code = container(hyperparameters, small_dataset, argv=argv)
        assert code == 0
        model_dir = root / "model"
        assert (model_dir / "tensorboard").is_dir() == (not argv)
        images = to_float(next(open_dataset(small_dataset).batches("test", batch_rows=4))["image"])
        predicted = np.asarray(keras.models.load_model(model_dir / "model.keras")(images, training=False))
        runs.append((histories(root), predicted))
        shutil.rmtree(root)
    assert runs[0][0] == runs[1][0]
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
