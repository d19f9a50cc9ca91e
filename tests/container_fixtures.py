"""Fixtures of the container tests (tests/test_container_image.py, tests/test_sagemaker_local_mode.py), one
per session: the image on the local base, the demo's resolved requests with S3 as local folders, and one
training job run as our emulation runs it (the SDK's local-mode run is compared with it).
"""

from __future__ import annotations

import json
import subprocess

import pytest

from jobs.cloud.stage_weights import INDEX
from jobs.contracts.sagemaker_env import WEIGHTS_CHANNEL
from jobs.experiment.schema import parse_experiment
from jobs.plan import containers
from jobs.plan.pipeline_input import state_machine_input
from tests.cdk_support import ROOT, synthesize
from tests.sagemaker_local import (
    BASE_IMAGE,
    ENGINE,
    MODEL,
    map_items,
    resolve,
    run_training,
    start_engine,
    state,
)

S3 = {"raw_uri": "s3://raw", "datasets_uri": "s3://datasets", "artifacts_uri": "s3://artifacts"}


@pytest.fixture(scope="session")
def image() -> str:
    """The project image on the local base, built once (Docker's cache makes a rebuild take seconds)."""
    started, host = start_engine()
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("DOCKER_HOST", host)
            env.setenv("DOCKER_BUILDKIT", "0")
            build = {"check": True, "timeout": 1200, "stdout": subprocess.DEVNULL}
            subprocess.run([str(ROOT / "containers" / "build-base.sh"), BASE_IMAGE], **build)
            subprocess.run(containers.build_command(BASE_IMAGE), **build)
            yield containers.IMAGE
    finally:
        if started:
            subprocess.run([str(ENGINE), "stop"], check=False)


@pytest.fixture(scope="session")
def job(small_dataset, tmp_path_factory):
    """The demo's execution input, the Map item of the small CNN, and S3 as local folders."""
    template = synthesize().template
    # The demo with the one model these tests train: the report job then expects exactly its evaluation.
    demo = json.loads((ROOT / "experiments" / "demo.json").read_text())
    demo["training"]["models"] = [MODEL]
    demo["training"]["seeds"] = 1
    # An external test set, mounted as the definition says (the demo's own ones when it has some).
    demo["evaluation"]["external"] = demo["evaluation"].get("external") or [
        {"name": "other-hospital", "sources": [{"kind": "folders", "uri": "other-hospital"}]}
    ]
    payload = state_machine_input(parse_experiment(demo), run_id="r1", **S3)
    (item,) = [i for i in map_items(template, payload) if i["item"]["model"] == MODEL]
    training = resolve(state(template, "Train")["Parameters"], item)
    s3_root = tmp_path_factory.mktemp("s3")
    # The weights prefix as `cxr stage-weights` leaves it when no backbone file is staged (the demo's
    # models start from random weights): its index only.
    weights = s3_root / "weights"
    weights.mkdir()
    (weights / INDEX).write_text(json.dumps({"keras_notop": {}}))
    (weights_channel,) = [c for c in training["InputDataConfig"] if c["ChannelName"] == WEIGHTS_CHANNEL]
    s3 = {
        payload["dataset"]["uri"]: small_dataset,
        training["CheckpointConfig"]["S3Uri"]: s3_root / "checkpoints",
        weights_channel["DataSource"]["S3DataSource"]["S3Uri"]: weights,
    }
    # Each external set's ETL output: the sample's test split under a manifest of its own (so it leaks).
    from tests.contract_models import external_copy  # imports Keras: only when the tests run

    for external in payload["externals"]:
        s3[external["dataset"]["uri"]] = external_copy(small_dataset, s3_root / external["name"])
    return template, payload, item, training, s3


@pytest.fixture(scope="session")
def trained(image, job, tmp_path_factory):
    """One uninterrupted training job, as the state machine starts it."""
    root = tmp_path_factory.mktemp("opt-ml")
    _, _, _, training, s3 = job
    code, log, _ = run_training(image, training, s3, root, "cxr-test-train")
    assert code == 0, log[-3000:]
    return root, log
