"""An experiment's steps as data: the one place that knows which entry point reads and writes what.

``build_plan`` turns an experiment into steps (ETL, external ETLs, data audit, one training and one
evaluation per model and seed, the report). A step names its locations by role (``Ref``), never by
path: the local runner (``jobs.plan.runner``), the container runner (``jobs.plan.containers``) and the Step
Functions input (``jobs.plan.pipeline_input``) each map roles to their own places, so no code has to parse a
command line back into its parts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from jobs.experiment.arguments import (
    audit_arguments,
    etl_arguments,
    evaluation_arguments,
    external_etl_arguments,
    hyperparameters_to_argv,
    report_arguments,
    training_hyperparameters,
)
from jobs.experiment.schema import Experiment, ModelRun
from jobs.plan.locations import Argument, Ref

StepKind = Literal["etl", "audit-data", "train", "evaluate", "report"]


@dataclass(frozen=True)
class PlannedStep:
    """One entry-point call: ``kind`` is the ``cxr`` subcommand, ``arguments`` its arguments with every
    location a ``Ref``. ``inputs`` are what must exist first (the steps writing them run earlier, and a
    change to them reruns this one); ``outputs[0]`` holds ``marker``, the file that says it finished.
    ``key`` digests the settings that change the outputs (not the places)."""

    kind: StepKind
    name: str
    arguments: tuple[Argument, ...]
    inputs: tuple[Ref, ...]
    outputs: tuple[Ref, ...]
    marker: str
    key: str
    run: ModelRun | None = None
    hyperparameters: dict[str, str] = field(default_factory=dict)
    sources: tuple[Ref, ...] = ()

    @property
    def output(self) -> Ref:
        return self.outputs[0]


DATASET = Ref("dataset")
AUDIT = Ref("audit")
EVALUATIONS = Ref("evaluations")
REPORT = Ref("report")


def source_refs(uris: list[str]) -> tuple[Ref, ...]:
    """Each ETL source as a ``raw`` location: relative URIs resolve against the runner's raw-data root."""
    return tuple(Ref("raw", uri) for uri in uris)


def audit_step(externals: dict[str, Ref]) -> PlannedStep:
    """The data audit of the dataset against the external sets (name -> location). The plan has one only
    with external sets; the state machine's input always carries its (then trivial) arguments."""
    return PlannedStep(
        "audit-data",
        "audit-data",
        tuple(audit_arguments(DATASET, externals, AUDIT.at("audit.json"))),
        inputs=(DATASET, *externals.values()),
        outputs=(AUDIT,),
        marker="audit.json",
        key="audit",
    )


def build_plan(exp: Experiment) -> list[PlannedStep]:
    """Every step of ``exp`` in an order that runs each after its inputs."""
    sources = source_refs([s.uri for s in exp.etl.sources])
    steps = [
        PlannedStep(
            "etl",
            "etl",
            tuple(etl_arguments(exp, list(sources), DATASET)),
            inputs=(),
            outputs=(DATASET,),
            marker="manifest.json",
            key=exp.dataset_key(),
            sources=sources,
        )
    ]
    externals = {e.name: Ref("external", e.name) for e in exp.evaluation.external}
    for name, location in externals.items():
        uris = source_refs([s.uri for s in exp.external_etl(name).sources])
        steps.append(
            PlannedStep(
                "etl",
                f"etl external {name}",
                tuple(external_etl_arguments(exp, name, list(uris), location)),
                inputs=(),
                outputs=(location,),
                marker="manifest.json",
                key=exp.external_dataset_key(name),
                sources=uris,
            )
        )
    # Evaluations read the external sets only after the audit found no leak into them.
    checked: tuple[Ref, ...] = ()
    if externals:
        steps.append(audit_step(externals))
        checked = (AUDIT, *externals.values())
    runs = exp.runs()
    for run in runs:
        hyperparameters = training_hyperparameters(exp, run.model, run.seed)
        steps.append(
            PlannedStep(
                "train",
                f"train {run.label}",
                tuple(hyperparameters_to_argv(hyperparameters)),
                inputs=(DATASET,),
                outputs=(Ref("model", run.folder),),
                marker="config.json",
                key=exp.model_key(run.model, run.seed),
                run=run,
                hyperparameters=hyperparameters,
            )
        )
    for run in runs:
        model, out = Ref("model", run.folder), Ref("evaluation", run.folder)
        arguments = evaluation_arguments(exp, model_dir=model, data=DATASET, output=out, externals=externals)
        steps.append(
            PlannedStep(
                "evaluate",
                f"evaluate {run.label}",
                tuple(arguments),
                inputs=(model, DATASET, *checked),
                outputs=(out,),
                marker="metrics.json",
                key=exp.evaluation_key(run.model, run.seed),
                run=run,
            )
        )
    arguments = report_arguments(exp, evaluations=EVALUATIONS, dataset=DATASET, output=REPORT)
    evaluations = tuple(Ref("evaluation", run.folder) for run in runs)
    steps.append(
        PlannedStep(
            "report",
            "report",
            tuple(arguments),
            inputs=(*evaluations, DATASET),
            outputs=(REPORT,),
            marker="report.html",
            key=exp.report_key(),
        )
    )
    return steps
