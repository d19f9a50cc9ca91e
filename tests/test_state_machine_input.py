"""The execution input built from an experiment, its validator, the metric-line contract (no CDK)."""

from __future__ import annotations

import copy
import json
import re

import pytest

from jobs.contracts.metric_lines import METRIC_NAMES, format_metric_line, metric_definitions, metric_regex
from jobs.contracts.sagemaker_env import (
    AUDIT_OUTPUT_DIR,
    EVALUATION_DATASET_DIR,
    EVALUATION_EXTERNAL_DIR,
    EVALUATION_MODEL_DIR,
    EVALUATION_OUTPUT_DIR,
)
from jobs.experiment.arguments import (
    etl_arguments,
    evaluation_arguments,
    external_etl_arguments,
    training_hyperparameters,
)
from jobs.experiment.schema import ExperimentError, parse_experiment
from jobs.plan.pipeline_input import (
    ETL_COMMAND,
    INPUT_RULES,
    MAX_EXTERNAL_SETS,
    cloud_source_uris,
    etl_arguments_of,
    execution_name,
    new_run_id,
    state_machine_input,
    validate_state_machine_input,
)

RUN = "20260101-120000"
LOCATIONS = {
    "raw_uri": "s3://raw-bucket",
    "datasets_uri": "s3://datasets-bucket",
    "artifacts_uri": "s3://artifacts-bucket",
    "run_id": RUN,
}


@pytest.fixture()
def experiment():
    return parse_experiment(
        {
            "name": "paper-binary",
            "etl": {
                "sources": [{"kind": "cohen", "uri": "cohen"}, {"kind": "nih", "uri": "s3://other/nih/"}],
                "caps": {"COVID-19": 196, "Normal": 500},
            },
            "training": {"task": "binary", "models": ["resnet50", "small_cnn"]},
        }
    )


EXTERNALS = [
    {"name": "hospital-b", "sources": [{"kind": "folders", "uri": "hospital-b/"}]},
    {"name": "nih_2020", "sources": [{"kind": "nih", "uri": "s3://other/nih-2020"}]},
]


def _with_externals(experiment, externals=EXTERNALS):
    raw = experiment.model_dump(mode="json")
    raw["evaluation"]["external"] = externals
    return parse_experiment(raw)


def test_input_carries_the_local_runners_arguments_exactly(experiment):
    """ETL args, hyperparameters and evaluation args are those of jobs.experiment.schema, with s3:// locations."""
    payload = state_machine_input(experiment, **LOCATIONS)
    sources = ["s3://raw-bucket/cohen", "s3://other/nih"]
    assert etl_arguments_of(payload) == etl_arguments(experiment, sources, payload["dataset"]["uri"])
    assert payload["etl"]["stepArguments"][0] == ETL_COMMAND
    for item, model in zip(payload["models"], experiment.training.models, strict=True):
        assert item["model"] == model and item["hyperparameters"] == training_hyperparameters(
            experiment, model, 1
        )
    assert payload["evaluation"]["arguments"] == evaluation_arguments(
        experiment, model_dir=EVALUATION_MODEL_DIR, data=EVALUATION_DATASET_DIR, output=EVALUATION_OUTPUT_DIR
    )


def test_dataset_location_is_keyed_by_the_etl_settings(experiment):
    """Same ETL settings, same dataset prefix (so a finished ETL is found and skipped)."""
    payload = state_machine_input(experiment, **LOCATIONS)
    key = experiment.dataset_key()
    assert payload["dataset"] == {
        "key": key,
        "uri": f"s3://datasets-bucket/datasets/{key}",
        "bucket": "datasets-bucket",
        "manifestKey": f"datasets/{key}/manifest.json",
    }


def test_input_is_a_pure_function_of_its_arguments(experiment):
    """Same experiment and locations, same JSON; another run id changes only run-specific names."""
    first, again = state_machine_input(experiment, **LOCATIONS), state_machine_input(experiment, **LOCATIONS)
    assert json.dumps(first, sort_keys=True) == json.dumps(again, sort_keys=True)
    other = state_machine_input(experiment, **{**LOCATIONS, "run_id": "20260101-120001"})
    assert (
        other["dataset"] == first["dataset"]
        and other["models"][0]["trainingJobName"] != first["models"][0]["trainingJobName"]
    )


def test_job_names_fit_sagemaker_limits_even_for_long_names(experiment):
    """Job names: cxr- prefix, at most 63 characters of [a-zA-Z0-9-], distinct per model and kind."""
    long = experiment.model_copy(update={"name": "a" * 63})
    payload = state_machine_input(long, **LOCATIONS)
    names = [m[k] for m in payload["models"] for k in ("trainingJobName", "evaluationJobName")]
    names += [m["modelCard"]["name"] for m in payload["models"]]  # model card names follow the same rule
    names += [payload["report"]["jobName"], payload["audit"]["jobName"]]
    assert len(set(names)) == len(names)
    for name in names:
        assert re.fullmatch(r"cxr-[a-zA-Z0-9](-*[a-zA-Z0-9]){0,58}", name) and len(name) <= 63, name
    assert len(execution_name(long, RUN)) <= 80


def test_valid_input_has_no_problems(experiment):
    """The builder's output passes its own validator."""
    assert validate_state_machine_input(state_machine_input(experiment, **LOCATIONS)) == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda p: p.update(task="segmentation"), "'task'"),
        (lambda p: p["models"][0].update(model="alexnet"), "models[0]: input field 'models[].model'"),
        (lambda p: p.pop("dataset"), "'dataset.bucket'"),
        (lambda p: p["etl"].update(stepArguments=[ETL_COMMAND, "--output=s3://x"]), "names no source"),
        (lambda p: p.update(models=[]), "'models' is empty"),
        (lambda p: p["etl"]["stepArguments"].__setitem__(0, "/bin/sh"), "must start with"),
        (lambda p: p["models"][1]["modelCard"].pop("key"), "models[1]: input field 'models[].modelCard.key'"),
    ],
)
def test_validator_names_the_broken_field(experiment, change, field):
    """Each broken input is reported with a message naming the field."""
    payload = copy.deepcopy(state_machine_input(experiment, **LOCATIONS))
    change(payload)
    problems = validate_state_machine_input(payload)
    assert problems and field in problems[0], problems


def test_rules_have_unique_names_and_absolute_paths():
    """Rule names become state names: they must be unique; paths are JSONPaths from the input root."""
    assert len({r.name for r in INPUT_RULES}) == len(INPUT_RULES)
    assert all(r.path.startswith("$.") for r in INPUT_RULES)


def test_local_source_paths_are_refused_in_the_cloud(experiment):
    """An absolute local path cannot be read by EMR: the message names the field and the fix."""
    local = experiment.model_copy(
        update={
            "etl": experiment.etl.model_copy(
                update={"sources": [experiment.etl.sources[0].model_copy(update={"uri": "/home/me/cohen"})]}
            )
        }
    )
    with pytest.raises(ExperimentError, match=r"etl\.sources\.0\.uri"):
        cloud_source_uris(local, "s3://raw-bucket")


def test_bad_run_id_and_locations_are_refused(experiment):
    """Run ids must fit job names; bucket locations must be s3:// URIs."""
    with pytest.raises(ExperimentError, match="run id"):
        state_machine_input(experiment, **{**LOCATIONS, "run_id": "Run_1"})
    with pytest.raises(ExperimentError, match="datasets_uri"):
        state_machine_input(experiment, **{**LOCATIONS, "datasets_uri": "/tmp/datasets"})
    assert re.fullmatch(r"\d{8}-\d{6}", new_run_id())


def test_metric_lines_round_trip_through_their_regexes():
    """Every metric printed by format_metric_line is read back by its own regex, and only by it."""
    for name in METRIC_NAMES:
        line = format_metric_line(name, 1.5e-05)
        hits = [d["Name"] for d in metric_definitions() if re.search(d["Regex"], line)]
        assert hits == [name]
        assert float(re.search(metric_regex(name), line).group(1)) == 1.5e-05


def test_metric_lines_refuse_unknown_names_and_non_finite_values():
    with pytest.raises(ValueError, match="unknown metric"):
        format_metric_line("f1", 0.5)
    with pytest.raises(ValueError, match="not a finite number"):
        format_metric_line("val_loss", float("nan"))


def test_external_sets_are_carried_with_their_own_dataset_and_etl_step(experiment):
    """Each external set: a test-only dataset keyed like the local run's, under datasets/, and its EMR step
    with the local runner's arguments (sources resolved against the raw bucket like the dataset's)."""
    exp = _with_externals(experiment)
    payload = state_machine_input(exp, **LOCATIONS)
    assert [e["name"] for e in payload["externals"]] == ["hospital-b", "nih_2020"]
    sources = {"hospital-b": ["s3://raw-bucket/hospital-b"], "nih_2020": ["s3://other/nih-2020"]}
    for external in payload["externals"]:
        key = exp.external_dataset_key(external["name"])
        assert key != exp.dataset_key()
        assert external["dataset"] == {
            "key": key,
            "uri": f"s3://datasets-bucket/datasets/{key}",
            "bucket": "datasets-bucket",
            "manifestKey": f"datasets/{key}/manifest.json",
        }
        assert external["etl"]["stepArguments"] == [
            ETL_COMMAND,
            *external_etl_arguments(
                exp, external["name"], sources[external["name"]], external["dataset"]["uri"]
            ),
        ]
        assert "--test-only" in external["etl"]["stepArguments"]
    assert validate_state_machine_input(payload) == []


def test_evaluation_and_audit_read_the_external_sets_where_the_job_mounts_them(experiment):
    """The evaluation's --external and the audit's --against point at the ProcessingInputs' LocalPaths,
    and each of those inputs copies that set's dataset."""
    exp = _with_externals(experiment)
    payload = state_machine_input(exp, **LOCATIONS)
    inside = {e["name"]: f"{EVALUATION_EXTERNAL_DIR}/{e['name']}" for e in payload["externals"]}
    assert payload["evaluation"]["arguments"] == evaluation_arguments(
        exp,
        model_dir=EVALUATION_MODEL_DIR,
        data=EVALUATION_DATASET_DIR,
        output=EVALUATION_OUTPUT_DIR,
        externals=inside,
    )
    mounted = {
        i["S3Input"]["LocalPath"]: i["S3Input"]["S3Uri"] for i in payload["evaluation"]["processingInputs"]
    }
    expected = {EVALUATION_DATASET_DIR: payload["dataset"]["uri"]}
    expected |= {inside[e["name"]]: e["dataset"]["uri"] for e in payload["externals"]}
    assert mounted == expected
    names = [i["InputName"] for i in payload["evaluation"]["processingInputs"]]
    assert len(set(names)) == len(names) and "model" not in names
    assert payload["audit"]["arguments"] == [
        "audit-data",
        EVALUATION_DATASET_DIR,
        *(f"--against={inside[name]}" for name in ("hospital-b", "nih_2020")),
        f"--json={AUDIT_OUTPUT_DIR}/audit.json",
    ]
    assert payload["audit"]["uri"].startswith("s3://artifacts-bucket/runs/paper-binary/")


def test_without_external_sets_the_input_has_an_empty_list_and_only_the_dataset_input(experiment):
    payload = state_machine_input(experiment, **LOCATIONS)
    assert payload["externals"] == []
    assert [i["InputName"] for i in payload["evaluation"]["processingInputs"]] == ["dataset"]
    assert not any(a.startswith("--external=") for a in payload["evaluation"]["arguments"])


def test_external_sources_on_local_disks_and_too_many_sets_are_refused(experiment):
    """A local path in an external set names its own field; more sets than a processing job mounts fail."""
    local = _with_externals(
        experiment, [EXTERNALS[0], {"name": "mine", "sources": [{"kind": "folders", "uri": "/data/x"}]}]
    )
    with pytest.raises(ExperimentError, match=r"evaluation\.external\.1\.sources\.0\.uri"):
        state_machine_input(local, **LOCATIONS)
    many = [
        {"name": f"set{i}", "sources": [{"kind": "folders", "uri": f"s{i}"}]}
        for i in range(MAX_EXTERNAL_SETS + 1)
    ]
    with pytest.raises(ExperimentError, match=r"field 'evaluation\.external' lists 9 sets"):
        state_machine_input(_with_externals(experiment, many), **LOCATIONS)
    assert state_machine_input(_with_externals(experiment, many[:-1]), **LOCATIONS)["externals"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda p: p.pop("externals"), "'externals' is missing"),
        (lambda p: p["externals"][1]["etl"]["stepArguments"].__setitem__(0, "/bin/sh"), "externals[1]: "),
        (lambda p: p["externals"][0]["dataset"].update(manifestKey="x"), "externals[0]: "),
        (lambda p: p["audit"].pop("jobName"), "'audit.jobName'"),
        (lambda p: p["evaluation"].update(processingInputs=[]), "'evaluation.processingInputs'"),
    ],
)
def test_validator_names_the_broken_external_field(experiment, change, field):
    payload = copy.deepcopy(state_machine_input(_with_externals(experiment), **LOCATIONS))
    change(payload)
    problems = validate_state_machine_input(payload)
    assert problems and field in problems[0], problems


def test_every_model_and_seed_gets_its_own_jobs_card_and_folders(experiment):
    """Seeds are items of the training Map: names and S3 prefixes carry the seed, nothing is shared."""
    raw = experiment.model_dump(mode="json")
    raw["training"]["seeds"] = [1, 2]
    payload = state_machine_input(parse_experiment(raw), **LOCATIONS)
    items = payload["models"]
    assert [(i["model"], i["seed"]) for i in items] == [
        (m, s) for m in experiment.training.models for s in (1, 2)
    ]
    for field in ("trainingJobName", "evaluationJobName", "checkpointUri", "evaluationUri"):
        assert len({i[field] for i in items}) == len(items), field
    assert len({i["modelCard"]["name"] for i in items}) == len(items)
    assert all(i["hyperparameters"]["seed"] == str(i["seed"]) for i in items)
    assert all(i["trainingJobName"].endswith(f"-s{i['seed']}") for i in items)
    assert all(i["evaluationUri"].endswith(f"/{i['model']}/seed-{i['seed']}") for i in items)
    assert "--seeds=1,2" in payload["report"]["arguments"]
