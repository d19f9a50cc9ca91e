"""Bad input is refused up front with a message, never a traceback or a silent guess (issue 17 case 6,
issue 16 "schema = runtime rules")."""

from __future__ import annotations

import itertools
import json
import random
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from botocore.config import Config

from jobs.cli import main as cxr
from jobs.cloud import aws as cloud
from jobs.etl.errors import EtlError
from jobs.etl.settings import parse_settings
from jobs.experiment.arguments import etl_arguments
from jobs.experiment.schema import ExperimentError, load_experiment, parse_experiment

ROOT = Path(__file__).resolve().parents[1]
DEMO = json.loads((ROOT / "experiments" / "demo.json").read_text())


def _demo(**training: object) -> dict:
    raw = json.loads(json.dumps(DEMO))
    raw["training"].update(training)
    return raw


@pytest.mark.parametrize(
    "change",
    [{"batch_size": True}, {"seed": False}, {"batch_size": "16"}],
    ids=["true-batch", "false-seed", "string-batch"],
)
def test_booleans_and_strings_are_not_numbers(change):
    """Case 6: `true` was accepted as batch size 1."""
    with pytest.raises(ExperimentError, match=f"training.{next(iter(change))}"):
        parse_experiment(_demo(**change))


STAGE = {"epochs": 2, "learning_rate": 1e-3, "trainable": "head"}


@pytest.mark.parametrize(
    "change, field",
    [
        ({"schedule": [dict(STAGE, learning_rate=1e6)]}, "training.schedule.0.learning_rate"),
        ({"schedule": [STAGE, dict(STAGE, epochs=100_000)]}, "training.schedule.1.epochs"),
        ({"batch_size": 1_000_000}, "training.batch_size"),
    ],
    ids=["learning-rate-1e6", "epochs-1e5", "batch-1e6"],
)
def test_unusual_values_need_the_experiment_to_say_so(change, field):
    """Case 6: a learning rate of 1e6 trained without a word."""
    with pytest.raises(ExperimentError, match=f"{field} = .*allow_unusual"):
        parse_experiment(_demo(**change))
    meant = parse_experiment({**_demo(**change), "allow_unusual": True})
    assert meant.allow_unusual


def test_a_folder_or_a_binary_file_as_the_experiment_is_exit_2(tmp_path, capsys):
    """Case 6: a folder or binary file given as the experiment gave a traceback."""
    binary = tmp_path / "weights.json"
    binary.write_bytes(random.Random(3).randbytes(4096))
    for given, message in ((tmp_path, "a folder, not an experiment file"), (binary, "not a text file")):
        assert cxr(["run", str(given), "--local", f"--runs-dir={tmp_path / 'runs'}"]) == 2
        err = capsys.readouterr().err
        assert str(given) in err and message in err


def _etl_refusal(raw: dict, sources: list[str]) -> str | None:
    try:
        parse_settings(etl_arguments(parse_experiment(raw), sources, "/tmp/out"))
    except EtlError as exc:
        return str(exc)
    return None


FRACTIONS = [0.05, 0.2, 0.3, 0.5, 0.6, 0.7, 0.9]


def test_the_schema_refuses_exactly_the_splits_the_etl_refuses():
    """Issue 16: the schema accepted test 0.6 + validation 0.5, which the ETL refused on EMR."""
    for test_fraction, validation_fraction in itertools.product(FRACTIONS, [0.0, *FRACTIONS]):
        raw = json.loads(json.dumps(DEMO))
        raw["etl"].update(test_fraction=test_fraction, validation_fraction=validation_fraction)
        args = etl_arguments(load_experiment(ROOT / "experiments" / "demo.json"), ["/a", "/b"], "/tmp/out")
        args = [a for a in args if not a.startswith(("--test-fraction", "--validation-fraction"))]
        args += [f"--test-fraction={test_fraction}", f"--validation-fraction={validation_fraction}"]
        try:
            parse_settings(args)
            etl_problem = None
        except EtlError as exc:
            etl_problem = str(exc)
        try:
            parse_experiment(raw)
            schema_problem = None
        except ExperimentError as exc:
            schema_problem = str(exc)
        assert (etl_problem is None) == (schema_problem is None), (test_fraction, validation_fraction)
        if etl_problem:  # the same rule, the same words
            assert etl_problem.split(": ", 1)[1] in schema_problem


def test_every_shipped_experiment_passes_the_etls_own_checks():
    for path in sorted((ROOT / "experiments").glob("*.json")):
        raw = json.loads(path.read_text())
        assert _etl_refusal(raw, [f"/source{i}" for i in range(len(raw["etl"]["sources"]))]) is None, (
            path.name
        )


@pytest.fixture
def silent_endpoint():
    """A local endpoint that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_a_dead_endpoint_fails_in_seconds(silent_endpoint, monkeypatch):
    """Case 6: `cxr status` waited 181 s on an endpoint that accepts and never answers."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", silent_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    # The shipped limits (asserted below) with a 1 s read, so that the test itself stays short.
    shipped = getattr(cloud, "AWS_CONFIG", Config())
    monkeypatch.setattr(cloud, "AWS_CONFIG", shipped.merge(Config(read_timeout=1)), raising=False)
    outcome: list[BaseException] = []

    def status() -> None:
        try:
            cloud.stack_outputs("CxrPipeline")
        except BaseException as exc:  # noqa: BLE001 - the test reports what happened
            outcome.append(exc)

    started = time.monotonic()
    caller = threading.Thread(target=status, daemon=True)
    caller.start()
    caller.join(15)
    assert not caller.is_alive(), "still waiting after 15 s"
    assert isinstance(outcome[0], cloud.CloudError) and "timeout" in str(outcome[0]).lower()
    assert time.monotonic() - started < 10
    limits = shipped.retries["total_max_attempts"] * (shipped.connect_timeout + shipped.read_timeout)
    assert limits <= 30


@pytest.fixture(scope="module")
def evaluated(small_dataset, tmp_path_factory) -> Path:
    from tests.contract_models import evaluated_experiment

    return evaluated_experiment(small_dataset, tmp_path_factory.mktemp("evaluation"))


@pytest.mark.slow
def test_a_truncated_model_file_says_so(evaluated, small_dataset, tmp_path, capsys):
    """Case 6: a truncated model.keras reported "File not found"."""
    from jobs.evaluation.entry import main as evaluate

    model_dir = shutil.copytree(evaluated / "models" / "constant", tmp_path / "model")
    data = (model_dir / "model.keras").read_bytes()
    (model_dir / "model.keras").write_bytes(data[: len(data) // 2])
    code = evaluate([f"--model-dir={model_dir}", f"--data={small_dataset}", f"--output={tmp_path / 'o'}"])
    assert code == 2 and "corrupt or truncated model file" in capsys.readouterr().err


@pytest.mark.slow
def test_the_report_collects_only_the_planned_models_and_says_which(
    evaluated, small_dataset, tmp_path, capsys
):
    """Case 4: a report showed a binary ResNet50 left over beside a multiclass small CNN."""
    out = tmp_path / "report"
    args = ["report", str(evaluated / "experiment"), f"--output={out}", f"--manifest={small_dataset}"]
    assert cxr([*args, "--models=small_cnn"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert [m["model"] for m in report["models"]] == ["small_cnn"]
    assert [x["model"] for x in report["left_out"]] == ["constant"]
    said = capsys.readouterr().out
    assert "1 run(s) (small_cnn seed " in said and "left out constant" in said
    assert "left out constant" in (out / "report.html").read_text()
    assert cxr([*args, "--models=small_cnn,resnet50"]) == 2
    assert "no evaluation of resnet50" in capsys.readouterr().err
