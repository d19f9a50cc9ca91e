"""Each entry point's arguments, built from the experiment: the plan (``jobs.plan.steps``) uses these for the
local runner, the container and the state machine alike, so the three cannot drift apart."""

from __future__ import annotations

import json

from jobs.experiment.schema import EtlConfig, Experiment
from jobs.plan.locations import Argument, Location, flag


def source_uris(exp: Experiment, data_root: str, etl: EtlConfig | None = None) -> list[str]:
    """Each ETL source's URI: absolute ones (``s3://...``, ``/path``) as written, relative ones under
    ``data_root`` (locally the sample or download folder; in AWS the raw-data bucket). ``etl``: another
    ETL block than the experiment's own (an external test set's)."""
    return [
        src.uri.rstrip("/") if is_absolute_uri(src.uri) else f"{data_root.rstrip('/')}/{src.uri.strip('/')}"
        for src in (etl or exp.etl).sources
    ]


def is_absolute_uri(uri: str) -> bool:
    return "://" in uri or uri.startswith("/")


def etl_arguments(exp: Experiment, source_uris: list[Location], output_uri: Location) -> list[Argument]:
    """Arguments of ``cxr etl`` (and of the EMR spark-submit step) for this experiment."""
    return etl_config_arguments(exp.etl, source_uris, output_uri)


def external_etl_arguments(
    exp: Experiment, name: str, source_uris: list[Location], output_uri: Location
) -> list[Argument]:
    """Arguments of ``cxr etl`` for external test set ``name``: a test-only dataset."""
    return [*etl_config_arguments(exp.external_etl(name), source_uris, output_uri), "--test-only"]


def etl_config_arguments(etl: EtlConfig, source_uris: list[Location], output_uri: Location) -> list[Argument]:
    args = [
        argument
        for src, uri in zip(etl.sources, source_uris, strict=True)
        for argument in (flag(f"--source={src.kind}=", uri), *src.filter_arguments())
    ]
    args += [
        flag("--output=", output_uri),
        f"--image-size={etl.image_size}",
        f"--view={etl.view}",
        f"--modality={etl.modality}",
        f"--covid-finding={etl.covid_finding}",
        f"--pneumonia-finding={etl.pneumonia_finding}",
        f"--normal-finding={etl.normal_finding}",
        f"--min-images-per-class={etl.min_images_per_class}",
        f"--test-fraction={etl.test_fraction}",
        f"--validation-fraction={etl.validation_fraction}",
        f"--seed={etl.seed}",
    ]
    args += [f"--cap={label}={n}" for label, n in sorted(etl.caps.items())]
    args += [f"--label={r.source}:{r.finding}={r.label}" for r in etl.label_rules]
    if etl.adults_only:
        args.append("--adults-only")
    return args


def training_hyperparameters(exp: Experiment, model: str, seed: int) -> dict[str, str]:
    """SageMaker hyperparameters (string values) of one model and seed; ``train`` takes the same as
    ``--key=value``."""
    t = exp.training
    return {
        "model": model,
        "task": t.task,
        "schedule": json.dumps([s.model_dump() for s in t.stages()]),
        "batch_size": str(t.batch_size),
        "weights": t.weights,
        "normalisation": t.normalisation,
        "rotation_degrees": str(t.rotation_degrees),
        "class_weights": t.class_weights,
        "early_stopping_patience": str(t.early_stopping_patience or 0),
        "dropout": str(t.dropout),
        "seed": str(seed),
    }


def hyperparameters_to_argv(hyperparameters: dict[str, str]) -> list[str]:
    return [f"--{key.replace('_', '-')}={value}" for key, value in sorted(hyperparameters.items())]


def evaluation_arguments(
    exp: Experiment,
    *,
    model_dir: Location,
    data: Location,
    output: Location,
    externals: dict[str, Location] | None = None,
) -> list[Argument]:
    """Arguments of ``evaluate`` (``cxr evaluate``). ``externals``: external test set name -> its dataset."""
    ev = exp.evaluation
    externals = externals or {}
    return [
        flag("--model-dir=", model_dir),
        flag("--data=", data),
        flag("--output=", output),
        f"--bootstrap-samples={ev.bootstrap_samples}",
        f"--gradcam-examples={ev.gradcam_examples}",
        *(flag(f"--external={name}=", externals[name]) for name in sorted(externals)),
        *(f"--external-kind={e.name}={e.kind}" for e in ev.external if e.kind and e.name in externals),
        f"--operating-rule={ev.operating_rule}",
    ]


def audit_arguments(dataset: Location, externals: dict[str, Location], report: Location) -> list[Argument]:
    """Arguments of ``cxr audit-data``: the experiment's dataset against each external test set's
    (name -> location), the full report written to ``report``; run before any evaluation reads them."""
    return [
        flag("", dataset),
        *(flag("--against=", location) for location in externals.values()),
        flag("--json=", report),
    ]


def report_arguments(
    exp: Experiment, *, evaluations: Location, dataset: Location, output: Location
) -> list[Argument]:
    """Arguments of ``cxr report``: a folder of per-run evaluations, the dataset (for its manifest)."""
    args = [
        flag("", evaluations),
        flag("--output=", output),
        flag("--manifest=", dataset),
        f"--experiment-name={exp.name}",
        f"--models={','.join(exp.training.models)}",
        f"--seeds={','.join(str(seed) for seed in exp.training.seed_list())}",
    ]
    if exp.paper_reference:
        args.append(f"--paper-reference={exp.paper_reference}")
    return args
