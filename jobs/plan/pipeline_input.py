"""The input of one Step Functions execution, built from the same experiment object the local runner uses.

Every argument an entry point gets in the cloud is computed here, client side, by the functions of
``jobs.experiment.schema``; the state machine only moves them into place. The rules the state machine's
first state checks live here too (``INPUT_RULES``, ``MODEL_RULES``), so ``validate_state_machine_input``
and the deployed Choice state say the same thing about the same input.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from jobs.contracts.sagemaker_env import processing_path
from jobs.evaluation.sagemaker_card import SAGEMAKER_MODEL_CARD_FILE
from jobs.experiment.arguments import is_absolute_uri, source_uris
from jobs.experiment.schema import MODEL_NAMES, TASKS, Experiment, ExperimentError
from jobs.plan.locations import Ref, render
from jobs.plan.steps import DATASET, audit_step, build_plan

INPUT_VERSION = 1

# The EMR bootstrap action installs this wrapper on every node: spark-submit (client mode) of the ETL
# script with the job package as --py-files. An EMR step runs it followed by exactly `cxr etl`'s arguments.
ETL_COMMAND = "/home/hadoop/cxr/run-etl"


JOB_NAME_PREFIX = "cxr-"

_RUN_ID = re.compile(r"^[0-9a-z](?:[0-9a-z-]{0,22}[0-9a-z])?$")
_JOB_NAME_MAX = 63
_EXECUTION_NAME_MAX = 80
# CreateProcessingJob takes at most 10 ProcessingInputs; the evaluation also mounts the model and the dataset.
MAX_EXTERNAL_SETS = 8


@dataclass(frozen=True)
class InputRule:
    """One check of the first state: the value at ``path`` must exist and pass ``kind``, else ``message``.

    kinds: ``present`` (any value), ``string`` (any string), ``equals`` (the number or string
    ``values[0]``), ``one_of``
    (a string in ``values``), ``matches`` (a string matching the glob ``values[0]``, ``*`` only).
    """

    name: str
    path: str
    kind: Literal["present", "string", "equals", "one_of", "matches"]
    message: str
    values: tuple[Any, ...] = ()


_FIX = "build the input with `cxr start` (jobs.plan.pipeline_input.state_machine_input)"

INPUT_RULES: tuple[InputRule, ...] = (
    InputRule(
        "Version",
        "$.version",
        "equals",
        f"input field 'version' must be {INPUT_VERSION}; {_FIX}",
        (INPUT_VERSION,),
    ),
    InputRule(
        "Experiment", "$.experiment", "string", f"input field 'experiment' (the name) is missing; {_FIX}"
    ),
    InputRule("RunId", "$.runId", "string", f"input field 'runId' is missing; {_FIX}"),
    InputRule(
        "Task",
        "$.task",
        "one_of",
        f"input field 'task' is missing or unknown: use one of {', '.join(TASKS)}",
        TASKS,
    ),
    InputRule(
        "DatasetBucket",
        "$.dataset.bucket",
        "string",
        f"input field 'dataset.bucket' is missing: the dataset's bucket is needed; {_FIX}",
    ),
    InputRule(
        "DatasetManifest",
        "$.dataset.manifestKey",
        "matches",
        f"input field 'dataset.manifestKey' is missing or does not end in /manifest.json; {_FIX}",
        ("*/manifest.json",),
    ),
    InputRule(
        "DatasetUri",
        "$.dataset.uri",
        "matches",
        f"input field 'dataset.uri' is missing or not an s3:// URI; {_FIX}",
        ("s3://*",),
    ),
    InputRule(
        "EtlCommand",
        "$.etl.stepArguments[0]",
        "equals",
        f"input field 'etl.stepArguments' must start with {ETL_COMMAND}; {_FIX}",
        (ETL_COMMAND,),
    ),
    InputRule(
        "EtlSources",
        "$.etl.stepArguments[1]",
        "matches",
        "input field 'etl.stepArguments' names no source: the ETL needs at least one --source=KIND=URI; "
        "add sources to the experiment's etl.sources",
        ("--source=*",),
    ),
    InputRule(
        "Externals",
        "$.externals",
        "present",
        f"input field 'externals' is missing (an empty list when the experiment has no external sets); {_FIX}",
    ),
    InputRule(
        "Models",
        "$.models[0]",
        "present",
        "input field 'models' is empty: list at least one model in the experiment's training.models",
    ),
    InputRule(
        "Evaluation",
        "$.evaluation.arguments[0]",
        "string",
        f"input field 'evaluation.arguments' is missing; {_FIX}",
    ),
    InputRule(
        "EvaluationInputs",
        "$.evaluation.processingInputs[0].S3Input.S3Uri",
        "matches",
        f"input field 'evaluation.processingInputs' is missing or does not start with the dataset's s3:// input; {_FIX}",
        ("s3://*",),
    ),
    InputRule("AuditJob", "$.audit.jobName", "string", f"input field 'audit.jobName' is missing; {_FIX}"),
    InputRule("ReportJob", "$.report.jobName", "string", f"input field 'report.jobName' is missing; {_FIX}"),
    InputRule(
        "ReportUri",
        "$.report.uri",
        "matches",
        f"input field 'report.uri' is missing or not s3://; {_FIX}",
        ("s3://*",),
    ),
)

# Checked on every element of ``models`` (a Map state in the cloud), before anything starts.
MODEL_RULES: tuple[InputRule, ...] = (
    InputRule(
        "Model",
        "$.model",
        "one_of",
        f"input field 'models[].model' is missing or unknown: use one of {', '.join(MODEL_NAMES)}",
        MODEL_NAMES,
    ),
    InputRule(
        "Seed",
        "$.seed",
        "present",
        f"input field 'models[].seed' is missing (one item per model and seed); {_FIX}",
    ),
    InputRule(
        "TrainingJobName",
        "$.trainingJobName",
        "string",
        f"input field 'models[].trainingJobName' is missing; {_FIX}",
    ),
    InputRule(
        "Hyperparameters",
        "$.hyperparameters.task",
        "string",
        f"input field 'models[].hyperparameters' is missing or has no task; {_FIX}",
    ),
    InputRule(
        "TrainingOutput",
        "$.outputUri",
        "matches",
        f"input field 'models[].outputUri' is missing or not s3://; {_FIX}",
        ("s3://*",),
    ),
    InputRule(
        "EvaluationJobName",
        "$.evaluationJobName",
        "string",
        f"input field 'models[].evaluationJobName' is missing; {_FIX}",
    ),
    InputRule(
        "EvaluationUri",
        "$.evaluationUri",
        "matches",
        f"input field 'models[].evaluationUri' is missing or not s3://; {_FIX}",
        ("s3://*",),
    ),
    InputRule(
        "ModelCardName",
        "$.modelCard.name",
        "string",
        f"input field 'models[].modelCard.name' is missing; {_FIX}",
    ),
    InputRule(
        "ModelCardBucket",
        "$.modelCard.bucket",
        "string",
        f"input field 'models[].modelCard.bucket' is missing; {_FIX}",
    ),
    InputRule(
        "ModelCardKey",
        "$.modelCard.key",
        "matches",
        f"input field 'models[].modelCard.key' is missing or does not end in /{SAGEMAKER_MODEL_CARD_FILE}; {_FIX}",
        (f"*/{SAGEMAKER_MODEL_CARD_FILE}",),
    ),
)

# Checked on every element of ``externals`` (a Map in the cloud), before anything starts.
EXTERNAL_RULES: tuple[InputRule, ...] = (
    InputRule("Name", "$.name", "string", f"input field 'externals[].name' is missing; {_FIX}"),
    InputRule(
        "Bucket",
        "$.dataset.bucket",
        "string",
        f"input field 'externals[].dataset.bucket' is missing; {_FIX}",
    ),
    InputRule(
        "Manifest",
        "$.dataset.manifestKey",
        "matches",
        f"input field 'externals[].dataset.manifestKey' is missing or does not end in /manifest.json; {_FIX}",
        ("*/manifest.json",),
    ),
    InputRule(
        "EtlCommand",
        "$.etl.stepArguments[0]",
        "equals",
        f"input field 'externals[].etl.stepArguments' must start with {ETL_COMMAND}; {_FIX}",
        (ETL_COMMAND,),
    ),
    InputRule(
        "Sources",
        "$.etl.stepArguments[1]",
        "matches",
        "input field 'externals[].etl.stepArguments' names no source: add sources to the experiment's "
        "evaluation.external[].sources",
        ("--source=*",),
    ),
)


def new_run_id(now: datetime | None = None) -> str:
    """A run id that sorts by time and fits every name it goes into: ``YYYYMMDD-HHMMSS`` (UTC)."""
    return (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")


def execution_name(exp: Experiment, run_id: str) -> str:
    """The Step Functions execution name (80 characters at most): ``<experiment>-<run id>``."""
    return f"{exp.name[: _EXECUTION_NAME_MAX - len(run_id) - 1]}-{run_id}"


def _job_name(exp: Experiment, run_id: str, kind: str, model: str = "") -> str:
    """A SageMaker job name, unique per run: ``cxr-...``, at most 63 characters of [a-zA-Z0-9-].

    The fixed prefix lets the state machine's role be scoped to ``training-job/cxr-*``.
    """
    tail = "-".join(p for p in (run_id, kind, model.replace("_", "-")) if p)
    room = _JOB_NAME_MAX - len(JOB_NAME_PREFIX) - len(tail) - 1
    return f"{JOB_NAME_PREFIX}{exp.name[:room].rstrip('-')}-{tail}"


def _s3(uri: str, field: str) -> str:
    if not uri.startswith("s3://") or len(uri) <= len("s3://"):
        raise ExperimentError(f"{field}: {uri!r} is not an s3:// URI (take it from the stack's outputs)")
    return uri.rstrip("/")


def _bucket_and_key(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key); the key may be empty."""
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def _model_card(exp: Experiment, run_id: str, model: str, evaluation_uri: str) -> dict[str, str]:
    """Where the state machine reads the evaluation's SageMaker Model Card content, and the card's name
    (unique per run and model; model card names allow what job names allow)."""
    bucket, key = _bucket_and_key(f"{evaluation_uri}/{SAGEMAKER_MODEL_CARD_FILE}")
    return {"name": _job_name(exp, run_id, "card", model), "bucket": bucket, "key": key}


def cloud_source_uris(exp: Experiment, raw_uri: str, external: str | None = None) -> list[str]:
    """Each ETL source as an s3:// URI; relative ones resolve against the raw-data bucket.
    ``external``: the sources of that external test set instead of the experiment's own."""
    raw_uri = _s3(raw_uri, "raw_uri")
    etl, field = exp.etl, "etl.sources"
    if external is not None:
        names = [e.name for e in exp.evaluation.external]
        etl, field = exp.external_etl(external), f"evaluation.external.{names.index(external)}.sources"
    for i, src in enumerate(etl.sources):
        if is_absolute_uri(src.uri) and not src.uri.startswith("s3://"):
            raise ExperimentError(
                f"experiment '{exp.name}': field '{field}.{i}.uri' is {src.uri!r}, which the "
                "cloud cannot read; use a path relative to the raw-data bucket or an s3:// URI"
            )
    return source_uris(exp, raw_uri, etl)


def _dataset_location(datasets_uri: str, key: str) -> dict[str, str]:
    """An ETL output under ``<datasets_uri>/datasets/<key>``: its URI, bucket and manifest key."""
    bucket, prefix = _bucket_and_key(datasets_uri)
    dataset_prefix = "/".join(p for p in (prefix, "datasets", key) if p)
    return {
        "key": key,
        "uri": f"s3://{bucket}/{dataset_prefix}",
        "bucket": bucket,
        "manifestKey": f"{dataset_prefix}/manifest.json",
    }


def processing_input(name: str, local_path: str, s3_uri: str, *, s3_uri_path: bool = False) -> dict[str, Any]:
    """One CreateProcessingJob input: the S3 prefix copied to ``local_path`` before the job starts. The
    state machine's own inputs select their URI with a JSONPath (``s3_uri_path``); the execution input's
    are written out here."""
    return {
        "InputName": name,
        "S3Input": {
            "S3Uri.$" if s3_uri_path else "S3Uri": s3_uri,
            "LocalPath": local_path,
            "S3DataType": "S3Prefix",
            "S3InputMode": "File",
            "S3DataDistributionType": "FullyReplicated",
        },
    }


def _check_external_count(exp: Experiment) -> None:
    if len(exp.evaluation.external) > MAX_EXTERNAL_SETS:
        raise ExperimentError(
            f"experiment '{exp.name}': field 'evaluation.external' lists {len(exp.evaluation.external)} "
            f"sets; the cloud evaluation job mounts at most {MAX_EXTERNAL_SETS}: split the experiment"
        )


def _one(renderings: list[list[str]], kind: str) -> list[str]:
    """The arguments every job of one kind shares (the Map passes one list to all of them)."""
    if any(r != renderings[0] for r in renderings):
        raise ValueError(f"the {kind} jobs' arguments differ inside the job; the input carries one list")
    return renderings[0]


def state_machine_input(
    exp: Experiment, *, raw_uri: str, datasets_uri: str, artifacts_uri: str, run_id: str
) -> dict[str, Any]:
    """The execution input of one experiment run (pure: same arguments, same dict): the experiment's plan
    (``jobs.plan.steps``) with the EMR steps' locations in S3 and the SageMaker jobs' on their mount points.

    ``raw_uri``, ``datasets_uri`` and ``artifacts_uri`` are the stack's bucket URIs (its outputs), with an
    optional prefix. The dataset lives at ``<datasets_uri>/datasets/<dataset key>`` so an unchanged ETL
    configuration finds its finished dataset and the state machine skips the ETL.
    """
    if not _RUN_ID.match(run_id):
        raise ExperimentError(
            f"run id {run_id!r}: use 1-24 lower-case letters, digits and '-' (see new_run_id)"
        )
    _check_external_count(exp)
    raw_uri, datasets_uri = _s3(raw_uri, "raw_uri"), _s3(datasets_uri, "datasets_uri")
    cloud_source_uris(exp, raw_uri)  # refuses sources the cloud cannot read, naming the field
    for external in exp.evaluation.external:
        cloud_source_uris(exp, raw_uri, external.name)
    dataset = _dataset_location(datasets_uri, exp.dataset_key())
    external_datasets = {
        e.name: _dataset_location(datasets_uri, exp.external_dataset_key(e.name))
        for e in exp.evaluation.external
    }

    def in_s3(ref: Ref) -> str:
        """Where the EMR steps read and write."""
        if ref.role == "raw":
            return ref.name.rstrip("/") if is_absolute_uri(ref.name) else f"{raw_uri}/{ref.name.strip('/')}"
        return (dataset if ref.role == "dataset" else external_datasets[ref.name])["uri"]

    steps = build_plan(exp)
    etl = {step.output: [ETL_COMMAND, *render(step.arguments, in_s3)] for step in steps if step.kind == "etl"}
    jobs = {
        kind: [s for s in steps if s.kind == kind] for kind in ("audit-data", "train", "evaluate", "report")
    }
    externals = [
        {"name": name, "dataset": location, "etl": {"stepArguments": etl[Ref("external", name)]}}
        for name, location in external_datasets.items()
    ]
    # The evaluation and the data audit mount the dataset and each external set at the same paths.
    data_inputs = [
        processing_input("dataset", processing_path(DATASET), dataset["uri"]),
        *(
            processing_input(f"external-{name}", processing_path(Ref("external", name)), location["uri"])
            for name, location in external_datasets.items()
        ),
    ]
    run_uri = f"{_s3(artifacts_uri, 'artifacts_uri')}/runs/{exp.name}/{run_id}"
    tmp_uri = f"{_s3(artifacts_uri, 'artifacts_uri')}/tmp/checkpoints/{exp.name}/{run_id}"
    models = [
        {
            "model": step.run.model,
            "seed": step.run.seed,
            "trainingJobName": _job_name(exp, run_id, "train", step.run.slug),
            "hyperparameters": step.hyperparameters,
            "outputUri": f"{run_uri}/training",
            "checkpointUri": f"{tmp_uri}/{step.run.folder}",
            "evaluationJobName": _job_name(exp, run_id, "eval", step.run.slug),
            "evaluationUri": f"{run_uri}/evaluation/{step.run.folder}",
            "modelCard": _model_card(exp, run_id, step.run.slug, f"{run_uri}/evaluation/{step.run.folder}"),
        }
        for step in jobs["train"]
    ]
    audit = jobs["audit-data"][0] if jobs["audit-data"] else audit_step({})
    return {
        "version": INPUT_VERSION,
        "experiment": exp.name,
        "runId": run_id,
        "task": exp.training.task,
        "dataset": dataset,
        "etl": {"stepArguments": etl[DATASET]},
        "externals": externals,
        "audit": {
            "jobName": _job_name(exp, run_id, "audit"),
            "uri": f"{run_uri}/audit-data",
            "arguments": ["audit-data", *render(audit.arguments, processing_path)],
        },
        "models": models,
        "evaluation": {
            "arguments": _one([render(s.arguments, processing_path) for s in jobs["evaluate"]], "evaluation"),
            "processingInputs": data_inputs,
        },
        "report": {
            "jobName": _job_name(exp, run_id, "report"),
            "evaluationsUri": f"{run_uri}/evaluation",
            "uri": f"{run_uri}/report",
            "arguments": ["report", *render(jobs["report"][0].arguments, processing_path)],
        },
    }


def etl_arguments_of(payload: dict[str, Any]) -> list[str]:
    """The ``cxr etl`` arguments inside an execution input (what the EMR step passes to the ETL)."""
    return list(payload["etl"]["stepArguments"][1:])


_MISSING = object()
_PATH_PART = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


def _lookup(document: Any, path: str) -> Any:
    """The value at a simple JSONPath (``$.a.b[0].c``), or ``_MISSING``."""
    value = document
    for key, index in _PATH_PART.findall(path[1:]):
        if key and isinstance(value, dict) and key in value:
            value = value[key]
        elif index and isinstance(value, list) and int(index) < len(value):
            value = value[int(index)]
        else:
            return _MISSING
    return value


def rule_holds(rule: InputRule, document: Any) -> bool:
    """The Python twin of the Choice conditions the state machine builds from ``rule``."""
    value = _lookup(document, rule.path)
    if value is _MISSING:
        return False
    if rule.kind == "present":
        return True
    if rule.kind == "equals":
        return type(value) is type(rule.values[0]) and value == rule.values[0]
    if not isinstance(value, str):
        return False
    if rule.kind == "one_of":
        return value in rule.values
    if rule.kind == "matches":
        return fnmatch.fnmatchcase(value, rule.values[0])
    return True


def validate_state_machine_input(payload: Any) -> list[str]:
    """Every problem the state machine's first states reject ``payload`` for (the first one fails it)."""
    problems = [rule.message for rule in INPUT_RULES if not rule_holds(rule, payload)]
    for field, rules in (("models", MODEL_RULES), ("externals", EXTERNAL_RULES)):
        items = payload.get(field) if isinstance(payload, dict) else None
        for i, item in enumerate(items if isinstance(items, list) else []):
            problems += [f"{field}[{i}]: {rule.message}" for rule in rules if not rule_holds(rule, item)]
    return problems
