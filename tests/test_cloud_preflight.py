"""`cxr stage-weights` and `cxr preflight` against moto: what a new account lacks is named with its fix."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import boto3
import pytest

from jobs.cli import main as cxr
from jobs.cloud import aws as cloud
from jobs.cloud import preflight
from jobs.cloud.stage_weights import INDEX, stage_weights, weights_key
from jobs.contracts import stack_outputs as names
from jobs.contracts.sagemaker_env import WEIGHTS_CHANNEL, from_environ
from jobs.experiment.schema import load_experiment, parse_experiment
from jobs.training import weights
from tests.cdk_support import synthesize
from tests.moto_support import mocked_aws

ROOT = Path(__file__).resolve().parents[1]
REGION = "us-east-1"
FAKE_WEIGHTS = b"not really resnet50 weights"
REPOSITORY, TAG = "cdk-assets", "abc123"


@pytest.fixture(scope="module")
def deployed_settings() -> str:
    """The PipelineSettings output exactly as the real stack writes it (cdk.json's context)."""
    return synthesize().template["Outputs"][names.SETTINGS]["Value"]


@pytest.fixture
def aws(monkeypatch):
    with mocked_aws(monkeypatch, REGION):
        yield


@pytest.fixture
def stack(aws, deployed_settings) -> dict[str, str]:
    """Buckets, a state machine, and a stack whose outputs name them (no image pushed, nothing staged)."""
    s3 = boto3.client("s3")
    for bucket in ("cxr-raw", "cxr-datasets", "cxr-artifacts"):
        s3.create_bucket(Bucket=bucket)
    arn = boto3.client("stepfunctions").create_state_machine(
        name="cxr", definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        roleArn="arn:aws:iam::123456789012:role/sfn",
    )["stateMachineArn"]  # fmt: skip
    boto3.client("ecr").create_repository(repositoryName=REPOSITORY)
    outputs = {
        names.RAW_BUCKET: "cxr-raw",
        names.DATASETS_BUCKET: "cxr-datasets",
        names.ARTIFACTS_BUCKET: "cxr-artifacts",
        names.STATE_MACHINE: arn,
        names.TRAINING_IMAGE: f"123456789012.dkr.ecr.{REGION}.amazonaws.com/{REPOSITORY}:{TAG}",
        names.SETTINGS: deployed_settings,
    }
    template = {
        "Resources": {"Nothing": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {k: {"Value": v} for k, v in outputs.items()},
    }
    boto3.client("cloudformation").create_stack(StackName="CxrPipeline", TemplateBody=json.dumps(template))
    return outputs


class FakeServiceQuotas:
    """Service Quotas as a new account answers (moto has no SageMaker quotas): ``applied`` by name."""

    def __init__(self, applied: dict[str, float]) -> None:
        self.applied = applied

    def _page(self, ServiceCode: str, NextToken: str | None = None) -> dict:
        quotas = [
            {"QuotaName": name, "QuotaCode": f"L-{abs(hash(name)) % 10**8:08d}", "Value": value}
            for name, value in self.applied.items()
            if (ServiceCode == "ec2") == name.startswith("Running On-Demand")
        ]
        return {"Quotas": quotas}

    list_service_quotas = list_aws_default_service_quotas = _page


def _fetch_fake(url: str, target: Path) -> None:
    target.write_bytes(FAKE_WEIGHTS)


def _stage_everything(monkeypatch, models: list[str]) -> None:
    for model in models:
        monkeypatch.setitem(weights.NOTOP_MD5, model, hashlib.md5(FAKE_WEIGHTS).hexdigest())
    stage_weights(models, cloud.stack_outputs(), fetch=_fetch_fake, echo=lambda _: None)


def test_notop_hashes_and_files_are_those_keras_publishes():
    """Each MD5 and file name is in keras/src/applications' source (read as text, Keras not imported)."""
    sources = Path(importlib.util.find_spec("keras").submodule_search_locations[0]) / "src" / "applications"
    text = "\n".join(p.read_text() for p in sources.glob("*.py"))
    templated = "{weights_name}_weights_tf_dim_ordering_tf_kernels_notop.h5"  # how resnet.py names its files
    for model, path in weights.NOTOP_FILES.items():
        name = Path(path).name
        assert weights.NOTOP_MD5[model] in text, model
        assert name in text or (templated in text and name == templated.format(weights_name=model)), model


def test_stage_weights_uploads_the_checked_file_once_and_an_index(stack, monkeypatch):
    """The downloaded file's MD5 is checked, the object lands under weights/, a rerun sends nothing."""
    _stage_everything(monkeypatch, ["resnet50"])
    s3 = boto3.client("s3")
    body = s3.get_object(Bucket="cxr-artifacts", Key=weights_key("resnet50"))["Body"].read()
    assert body == FAKE_WEIGHTS
    index = json.loads(s3.get_object(Bucket="cxr-artifacts", Key=names.WEIGHTS_PREFIX + INDEX)["Body"].read())
    assert index == {"keras_notop": {"resnet50": weights_key("resnet50")}}
    fetched = []
    stage_weights(["resnet50"], cloud.stack_outputs(), fetch=lambda u, t: fetched.append(u), echo=print)
    assert fetched == []


def test_stage_weights_refuses_a_file_whose_hash_differs(stack):
    """A download that is not Keras's file is reported and nothing is uploaded."""
    with pytest.raises(cloud.CloudError, match="MD5 .* Keras publishes 4d473c1dd8becc155b73f8504c6f6626"):
        stage_weights(["resnet50"], cloud.stack_outputs(), fetch=_fetch_fake, echo=print)
    assert boto3.client("s3").list_objects_v2(Bucket="cxr-artifacts").get("KeyCount") == 0


def test_training_takes_imagenet_weights_from_the_weights_channel(tmp_path):
    """With /opt/ml/input/data/weights holding the staged file, 'imagenet' resolves to it (no download)."""
    staged = tmp_path / "input" / "data" / WEIGHTS_CHANNEL / "keras" / Path(weights.NOTOP_FILES["vgg19"]).name
    staged.parent.mkdir(parents=True)
    staged.write_bytes(FAKE_WEIGHTS)
    channel = from_environ({}, root=tmp_path).channel(WEIGHTS_CHANNEL)
    assert weights.resolve_weights("imagenet", "vgg19", staged_dir=channel) == str(staged)
    assert weights.resolve_weights("imagenet", "resnet50", staged_dir=channel) == "imagenet"
    assert weights.resolve_weights("imagenet", "vgg19", staged_dir=None) == "imagenet"


def _preflight(quotas: dict[str, float], experiment: str = "paper-binary", exp=None) -> list[preflight.Check]:
    exp = exp or load_experiment(ROOT / "experiments" / f"{experiment}.json")
    described, _ = cloud.described_outputs()
    return preflight.preflight(
        exp, cloud.stack_outputs(), described, preflight.Quotas(FakeServiceQuotas(quotas))
    )


ENOUGH = {
    "ml.p3.8xlarge for training job usage": 1,
    "ml.m5.2xlarge for processing job usage": 1,
    "ml.m5.large for processing job usage": 1,
    "Running On-Demand Standard (A, C, D, H, I, M, R, T, Z) instances": 64,
}


def _ready(stack, monkeypatch) -> None:
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json"}
    boto3.client("ecr").put_image(repositoryName=REPOSITORY, imageManifest=json.dumps(manifest), imageTag=TAG)
    _stage_everything(monkeypatch, ["resnet50", "densenet121", "vgg19", "inceptionv3"])
    for source in ("cohen", "nih"):
        boto3.client("s3").put_object(Bucket="cxr-raw", Key=f"{source}/metadata.csv", Body=b"x")


def test_a_ready_account_passes_every_check(stack, monkeypatch):
    """Image pushed, weights staged, raw data uploaded, quotas for one model at a time: all ok."""
    _ready(stack, monkeypatch)
    checks = _preflight(ENOUGH)
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]
    assert any(c.name.startswith("quota ml.p3.8xlarge") for c in checks)
    assert any("EMR cluster vCPUs" in c.detail for c in checks)  # m5.xlarge + 7 x m5.2xlarge = 60 vCPUs


def test_a_new_account_gets_each_missing_item_with_its_fix(stack):
    """No image, no weights, no data, 0 ml.p3.8xlarge: each one is named with the command that fixes it."""
    checks = {c.name: c for c in _preflight({**ENOUGH, "ml.p3.8xlarge for training job usage": 0})}
    missing = {name: c.fix for name, c in checks.items() if not c.ok}
    assert "npx cdk deploy" in missing["training image"]
    assert missing["weights channel"].startswith("cxr stage-weights resnet50 densenet121 vgg19 inceptionv3")
    assert missing["ImageNet weights vgg19"] == "cxr stage-weights vgg19"
    assert "cxr upload-data" in missing["raw data s3://cxr-raw/cohen"]
    quota = missing["quota ml.p3.8xlarge for training job usage"]
    assert "request-service-quota-increase" in quota and "--service-code sagemaker" in quota
    assert "--desired-value 1" in quota and "servicequotas/home/services/sagemaker/quotas/L-" in quota
    assert checks["quota ml.m5.2xlarge for processing job usage"].ok


def test_external_sets_raw_data_is_checked_until_their_dataset_exists(stack, monkeypatch):
    """An external set's sources are checked like the dataset's; once its manifest exists, they are not."""
    _ready(stack, monkeypatch)
    raw = load_experiment(ROOT / "experiments" / "paper-binary.json").model_dump(mode="json")
    raw["evaluation"]["external"] = [
        {"name": "hospital-b", "sources": [{"kind": "folders", "uri": "hospital-b"}]}
    ]
    exp = parse_experiment(raw)
    checks = {c.name: c for c in _preflight(ENOUGH, exp=exp)}
    missing = {name: c.fix for name, c in checks.items() if not c.ok}
    assert list(missing) == ["raw data s3://cxr-raw/hospital-b"]
    assert "cxr upload-data" in missing["raw data s3://cxr-raw/hospital-b"]
    key = f"datasets/{exp.external_dataset_key('hospital-b')}/manifest.json"
    boto3.client("s3").put_object(Bucket="cxr-datasets", Key=key, Body=b"{}")
    checks = {c.name: c for c in _preflight(ENOUGH, exp=exp)}
    assert all(c.ok for c in checks.values()) and "raw data s3://cxr-raw/hospital-b" not in checks
    assert checks["external test set hospital-b"].detail == f"s3://cxr-datasets/{key} exists: no ETL"


def test_start_refuses_to_start_when_preflight_fails(stack, monkeypatch, capsys):
    """`cxr start` runs the preflight first: a missing item means no execution."""
    real_client = preflight._client
    monkeypatch.setattr(
        preflight,
        "_client",
        lambda service, region=None: (
            FakeServiceQuotas(ENOUGH) if service == "service-quotas" else real_client(service, region)
        ),
    )
    assert cxr(["start", "paper-binary"]) == 1
    out = capsys.readouterr().out
    assert "MISSING training image" in out and "fix: npx cdk deploy" in out
    sfn = boto3.client("stepfunctions")
    assert sfn.list_executions(stateMachineArn=stack[names.STATE_MACHINE])["executions"] == []
    _ready(stack, monkeypatch)
    assert cxr(["start", "paper-binary"]) == 0
    assert len(sfn.list_executions(stateMachineArn=stack[names.STATE_MACHINE])["executions"]) == 1
