"""Training parts without training: hyperparameters, /opt/ml paths, normalisation, devices, resume logic."""

from __future__ import annotations

import json
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from jobs.contracts import sagemaker_env
from jobs.contracts.tasks import TASK_CLASSES
from jobs.experiment.arguments import training_hyperparameters
from jobs.experiment.schema import (
    BUILTIN_SCHEDULES,
    ExperimentError,
    Stage,
    parse_experiment,
)
from jobs.training.batchnorm import RANDOM_INIT_MOMENTUM, batchnorm_layers, recalibrate
from jobs.training.entry import split_argv
from jobs.training.errors import TrainingError
from jobs.training.hardware import HardwarePlan, global_batch_size, make_strategy, plan_hardware
from jobs.training.hyperparameters import parse_hyperparameters
from jobs.training.models import (
    ARCHITECTURES,
    AUGMENTATION_LAYER,
    ModelSpec,
    backbone_of,
    build_model,
    preprocessing_affine,
)
from jobs.training.schedules import Position, Progress, start_position
from jobs.training.weights import NOTOP_FILES, NOTOP_MD5, resolve_weights
from tests.refusals import accepted_values

EXPERIMENT = {
    "name": "unit",
    "etl": {"sources": [{"kind": "cohen", "uri": "cohen"}]},
    "training": {"task": "multiclass", "models": ["densenet121"], "schedule": "densenet121-three-stage"},
}


def test_experiment_hyperparameters_parse_back_to_the_same_settings():
    """The string dict the experiment makes for SageMaker is accepted and means the same schedule."""
    exp = parse_experiment(EXPERIMENT)
    hp = parse_hyperparameters(training_hyperparameters(exp, "densenet121", 1))
    assert hp.model == "densenet121" and hp.config.task == "multiclass"
    assert hp.stages == BUILTIN_SCHEDULES["densenet121-three-stage"]
    assert hp.config.early_stopping_patience is None and hp.config.batch_size == 3


def test_an_experiment_accepts_exactly_the_models_and_tasks_training_knows():
    """Behaviour on both sides: every backbone training can build and every task it can train is an
    experiment that validates and trains with those hyperparameters; anything else is refused by name."""
    for model in ARCHITECTURES:
        for task in TASK_CLASSES:
            exp = parse_experiment(
                EXPERIMENT | {"training": EXPERIMENT["training"] | {"models": [model], "task": task}}
            )
            hp = parse_hyperparameters(training_hyperparameters(exp, model, 1))
            assert (hp.model, hp.config.task) == (model, task)
    with pytest.raises(ExperimentError, match="'training.models.0'") as refused:
        parse_experiment(EXPERIMENT | {"training": EXPERIMENT["training"] | {"models": ["resnet101"]}})
    assert accepted_values(refused.value) == set(ARCHITECTURES)
    with pytest.raises(ExperimentError, match="'training.task'"):
        parse_experiment(EXPERIMENT | {"training": EXPERIMENT["training"] | {"task": "four-class"}})
    with pytest.raises(TrainingError, match="hyperparameter 'model'.*got 'resnet101'"):
        parse_hyperparameters({**training_hyperparameters(exp, "vgg19", 1), "model": "resnet101"})


def test_cli_flags_are_the_same_keys_as_hyperparameters():
    paths, flags = split_argv(["--model=vgg19", "--batch-size=4", "--model-dir=/tmp/m", "--data=s3://b/d"])
    assert paths == {"model_dir": "/tmp/m", "data": "s3://b/d"}
    assert flags == {"model": "vgg19", "batch_size": "4"}
    with pytest.raises(TrainingError, match="expected --key=value"):
        split_argv(["--model", "vgg19"])


def test_builtin_schedule_name_is_accepted():
    hp = parse_hyperparameters({"model": "small_cnn", "task": "binary", "schedule": "paper-two-phase"})
    assert [s.epochs for s in hp.stages] == [30, 30]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"model": "resnet18", "task": "binary"}, "hyperparameter 'model'"),
        (
            {
                "model": "vgg19",
                "task": "binary",
                "schedule": '[{"epochs": 1, "learning_rate": -0.1, "trainable": "head"}]',
            },
            "'schedule' stage 0 field 'learning_rate'",
        ),
        ({"model": "vgg19", "task": "binary", "schedule": "[]"}, "at least one stage"),
        ({"model": "vgg19", "task": "binary", "schedule": "fast"}, "neither a builtin schedule"),
        ({"model": "vgg19", "task": "triage"}, "hyperparameter 'task'"),
        ({"model": "vgg19"}, "missing hyperparameter"),
        ({"model": "vgg19", "task": "binary", "learning_rate": "0.1"}, "unknown hyperparameter"),
        ({"model": "vgg19", "task": "binary", "batch_size": "three"}, "hyperparameter 'batch_size'"),
    ],
)
def test_bad_hyperparameters_name_the_field(raw, message):
    with pytest.raises(TrainingError, match=re.escape(message)):
        parse_hyperparameters(raw)


def test_sagemaker_paths_follow_the_root_and_channel_variables(tmp_path):
    root = tmp_path / "ml"
    (root / "input" / "config").mkdir(parents=True)
    (root / "input" / "config" / "hyperparameters.json").write_text(
        json.dumps({"model": '"vgg19"', "seed": 3, "schedule": "[]"})
    )
    elsewhere = tmp_path / "data"
    elsewhere.mkdir()
    env = sagemaker_env.from_environ({"CXR_OPT_ML": str(root), "SM_CHANNEL_DATASET": str(elsewhere)})
    assert env.hyperparameters() == {"model": "vgg19", "seed": "3", "schedule": "[]"}  # SDK quotes undone
    assert env.channel("dataset") == elsewhere and env.channel("other") is None
    assert env.model_dir == root / "model" and env.checkpoint_dir is None
    (root / "checkpoints").mkdir()
    assert env.checkpoint_dir == root / "checkpoints"
    assert env.write_failure("boom") == root / "output" / "failure"
    assert (root / "output" / "failure").read_text() == "boom"
    assert sagemaker_env.from_environ({}, root=tmp_path / "absent").write_failure("x") is None


PREPROCESS = {
    "resnet50": keras.applications.resnet50.preprocess_input,
    "densenet121": keras.applications.densenet.preprocess_input,
    "vgg19": keras.applications.vgg19.preprocess_input,
    "inceptionv3": keras.applications.inception_v3.preprocess_input,
}


@pytest.mark.parametrize("model", sorted(PREPROCESS))
def test_in_model_normalisation_equals_keras_preprocess_input(model):
    """The affine layer inside the model reproduces each backbone's preprocess_input on [0,1] pixels."""
    pixels = np.random.default_rng(0).random((2, 4, 4, 3)).astype("float32")
    matrix, bias = preprocessing_affine(ARCHITECTURES[model].preprocessing)
    expected = PREPROCESS[model](pixels.copy() * 255.0)
    np.testing.assert_allclose(pixels @ matrix + bias, expected, rtol=1e-5, atol=1e-3)


def test_gpu_plan_mirrors_every_gpu_with_mixed_precision():
    plan = plan_hardware(
        [
            "/physical_device:GPU:0",
            "/physical_device:GPU:1",
            "/physical_device:GPU:2",
            "/physical_device:GPU:3",
        ]
    )
    assert plan.devices == ("/gpu:0", "/gpu:1", "/gpu:2", "/gpu:3")
    assert plan.mixed_precision and not plan.deterministic
    cpu = plan_hardware([])
    assert cpu.devices == () and not cpu.mixed_precision and cpu.deterministic


def test_mirrored_strategy_and_mixed_precision_on_cpu():
    """The GPU code path on the CPU: a mirrored strategy, global batch = replicas x batch, float32 output."""
    try:
        strategy = make_strategy(HardwarePlan(devices=("/cpu:0",), mixed_precision=True))
        assert type(strategy).__name__ == "MirroredStrategy"
        assert global_batch_size(3, strategy) == 3 * strategy.num_replicas_in_sync == 3
        with strategy.scope():
            model = build_model(ModelSpec("small_cnn", 2, (32, 32, 3)))
        assert model.get_layer("head_dense").compute_dtype == "float16"
        assert model(np.zeros((1, 32, 32, 3), "float32")).dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_rotation_is_a_standard_layer_that_acts_only_in_training(tmp_path):
    """Inference (predict, a plain call, after save and load) sees the image as given; fit rotates it."""
    spec = ModelSpec("small_cnn", 3, (32, 32, 3), rotation_degrees=15, seed=4)
    model = build_model(spec)
    images = np.random.default_rng(0).random((4, 32, 32, 3)).astype("float32")
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")  # no custom objects
    assert type(loaded.get_layer(AUGMENTATION_LAYER)) is keras.layers.RandomRotation
    for candidate in (model, loaded):
        rotated = keras.Model(candidate.inputs, candidate.get_layer(AUGMENTATION_LAYER).output)
        np.testing.assert_array_equal(rotated(images), images)
        np.testing.assert_array_equal(rotated.predict(images, verbose=0), images)
        assert np.abs(np.asarray(rotated(images, training=True)) - images).mean() > 1e-3
        np.testing.assert_array_equal(candidate(images), candidate.predict(images, verbose=0))

    seeds = model.get_layer(AUGMENTATION_LAYER).generator.state
    before = np.asarray(seeds).copy()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.predict(images, verbose=0)
    model.evaluate(images, np.zeros(4), verbose=0)
    np.testing.assert_array_equal(np.asarray(seeds), before)  # inference draws no rotation
    model.fit(images, np.zeros(4), epochs=1, batch_size=4, verbose=0)
    assert not np.array_equal(np.asarray(seeds), before)  # fit does
    unrotated = build_model(ModelSpec("small_cnn", 3, (32, 32, 3)))
    assert AUGMENTATION_LAYER not in [layer.name for layer in unrotated.layers]


def test_inception_resizes_small_images_inside_the_model():
    """The model still takes the dataset's 64 px images; the backbone sees its 75 px minimum."""
    model = build_model(ModelSpec("inceptionv3", 3, (64, 64, 3)))
    assert model.input_shape == (None, 64, 64, 3)
    assert backbone_of(model).input_shape == (None, 75, 75, 3)
    assert model.output_shape == (None, 3)


@pytest.mark.parametrize(
    ("progress", "expected"),
    [
        (None, Position(0, 0)),
        (Progress(0, 1), Position(0, 1)),  # a longer first stage continues it
        (Progress(0, 2), Position(1, 0)),  # a finished stage moves on
        (Progress(0, 1, stopped_early=True), Position(1, 0)),
        (Progress(1, 3), Position(2, 0)),  # all done
    ],
)
def test_resume_position(progress, expected):
    stages = (
        Stage(epochs=2, learning_rate=1e-3, trainable="head"),
        Stage(epochs=3, learning_rate=1e-5, trainable="all"),
    )
    assert start_position(stages, progress) == expected


def test_weights_from_s3_are_downloaded_and_loaded(tmp_path, monkeypatch):
    """A staged weights file (as network-isolated jobs need) comes from S3 into the backbone."""
    import boto3
    from moto import mock_aws

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    source = build_model(ModelSpec("small_cnn", 2, (32, 32, 3)))
    backbone_of(source).save_weights(tmp_path / "small_cnn.weights.h5")
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="weights")
        s3.upload_file(str(tmp_path / "small_cnn.weights.h5"), "weights", "staged/small_cnn.weights.h5")
        (tmp_path / "download").mkdir()
        local = resolve_weights(
            "s3://weights/staged/small_cnn.weights.h5", "small_cnn", str(tmp_path / "download")
        )
        with pytest.raises(TrainingError, match="cannot download s3://weights/absent.h5"):
            resolve_weights("s3://weights/absent.h5", "small_cnn", str(tmp_path))
    loaded = build_model(ModelSpec("small_cnn", 2, (32, 32, 3)), local)
    for a, b in zip(backbone_of(source).get_weights(), backbone_of(loaded).get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_missing_weights_file_says_how_to_stage():
    with pytest.raises(TrainingError, match="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"):
        resolve_weights("/nonexistent/resnet.h5", "resnet50")


def test_random_init_keras_backbone_normalises_with_batch_statistics():
    """With weights none, a keras.applications backbone's BatchNorm learns from batches (it used not to)."""
    model = build_model(ModelSpec("densenet121", 2, (32, 32, 3)), weights=None)
    bn = batchnorm_layers(backbone_of(model))[0]
    assert bn.momentum == RANDOM_INIT_MOMENTUM
    before = np.array(bn.moving_mean)
    model(np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32), training=True)
    assert not np.allclose(np.array(bn.moving_mean), before)


def test_recalibrate_sets_moving_statistics_to_the_mean_of_batch_statistics():
    inner_input = keras.Input((3,))
    inner = keras.Model(inner_input, keras.layers.BatchNormalization(momentum=0.99)(inner_input))
    outer_input = keras.Input((3,))
    model = keras.Model(outer_input, keras.layers.Dense(2)(inner(outer_input)))
    rng = np.random.default_rng(0)
    batches = [rng.normal(loc, 2.0, size=(8, 3)).astype("float32") for loc in (0.0, 5.0, -1.0)]
    inner.trainable = False  # frozen: inference-mode statistics the head learnt on are kept
    assert (
        recalibrate(model, batches) == 0
        and np.array(batchnorm_layers(model)[0].moving_mean).tolist() == [0] * 3
    )
    inner.trainable = True
    assert recalibrate(model, batches) == 1
    bn = batchnorm_layers(model)[0]
    np.testing.assert_allclose(
        np.array(bn.moving_mean), np.mean([b.mean(axis=0) for b in batches], 0), rtol=1e-5
    )
    np.testing.assert_allclose(
        np.array(bn.moving_variance), np.mean([b.var(axis=0) for b in batches], 0), rtol=1e-4
    )
    assert bn.momentum == 0.99


def test_a_stage_that_trains_the_same_layers_keeps_the_compiled_step_and_ends_where_a_recompile_does():
    """Restarting Adam in place is a fresh Adam: the weights equal those of compiling the stage anew."""
    from jobs.experiment.schema import Stage
    from jobs.training.schedules import configure_stage

    first = Stage(epochs=1, learning_rate=1e-3, trainable="all")
    second = Stage(epochs=1, learning_rate=1e-4, trainable="all")
    rng = np.random.default_rng(0)
    x, y = rng.random((24, 32, 32, 3)).astype("float32"), rng.integers(0, 2, 24)
    tf.config.experimental.enable_op_determinism()
    weights, steps = [], []
    for reuse in (False, True):
        keras.utils.set_random_seed(3)
        model = build_model(ModelSpec("small_cnn", 2, (32, 32, 3)))
        configure_stage(model, first)
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
        step = model.train_function
        configure_stage(model, second, first if reuse else None)
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
        weights.append([np.array(w) for w in model.weights])
        steps.append(model.train_function is step)
    assert steps == [False, True]  # recompiled once, reused once
    assert all(np.array_equal(a, b) for a, b in zip(*weights, strict=True))


def test_every_pretrained_backbone_has_an_imagenet_file_to_stage_and_check():
    """Without one, ``cxr preflight`` and ``cxr stage-weights`` skip the model and an isolated cloud job
    fails only when it trains."""
    missing = [
        name
        for name, arch in ARCHITECTURES.items()
        if arch.pretrained and not (name in NOTOP_FILES and name in NOTOP_MD5)
    ]
    assert missing == [], f"add the ImageNet file and MD5 of {missing} to jobs/training/weights.py"
