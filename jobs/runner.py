"""``cxr run EXPERIMENT --local``: the whole experiment on this machine, step by step.

Each step runs the same entry point, with the same arguments, that the state machine runs in the
cloud (``jobs.experiment`` builds both), as a child process, so a crash in one model's training
cannot take the others down. A step whose outputs exist for the same inputs and settings is skipped:
each step's key chains the keys of the steps it reads from, and the ETL's key covers the resolved
source URIs and a listing of the source files, so other data reruns the ETL and everything after it.
A step's key is removed before it runs and written (atomically) only after it succeeded.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from jobs import child_processes
from jobs.atomic import write_text_atomically
from jobs.experiment import (
    Experiment,
    audit_arguments,
    etl_arguments,
    evaluation_arguments,
    external_etl_arguments,
    hyperparameters_to_argv,
    report_arguments,
    source_uris,
    training_hyperparameters,
)
from jobs.source_listing import sources_fingerprint


@dataclass(frozen=True)
class Step:
    """One entry-point call. It is done when ``done_marker`` exists and was made with the same ``key``."""

    name: str
    command: list[str]
    done_marker: Path
    key: str

    @property
    def _key_file(self) -> Path:
        return self.done_marker.parent / ".cxr-step-key"

    def is_done(self) -> bool:
        return (
            self.done_marker.exists() and self._key_file.exists() and self._key_file.read_text() == self.key
        )

    def mark_done(self) -> None:
        write_text_atomically(self._key_file, self.key)

    def forget(self) -> None:
        """Before a (re)run: outputs half-rewritten by a killed run must never pass as done."""
        self._key_file.unlink(missing_ok=True)


@dataclass(frozen=True)
class LocalLayout:
    """Where a local run writes. Datasets are shared by experiments with the same ETL settings."""

    root: Path

    def dataset(self, exp: Experiment) -> Path:
        return self.root / "datasets" / exp.dataset_key()

    def external_dataset(self, exp: Experiment, name: str) -> Path:
        return self.root / "datasets" / exp.external_dataset_key(name)

    def external_datasets(self, exp: Experiment) -> dict[str, str]:
        """Every external test set's dataset by name, in the experiment's order."""
        return {e.name: str(self.external_dataset(exp, e.name)) for e in exp.evaluation.external}

    def experiment(self, exp: Experiment) -> Path:
        return self.root / "experiments" / exp.name

    def model(self, exp: Experiment, model: str) -> Path:
        return self.experiment(exp) / "models" / model

    def evaluation(self, exp: Experiment, model: str) -> Path:
        return self.experiment(exp) / "evaluations" / model

    def report(self, exp: Experiment) -> Path:
        return self.experiment(exp) / "report"


def plan(exp: Experiment, layout: LocalLayout, data_root: Path) -> list[Step]:
    cli = [sys.executable, "-m", "jobs.cli"]
    dataset = layout.dataset(exp)
    sources = source_uris(exp, str(data_root.resolve()))
    etl_key = f"{exp.dataset_key()} sources:{sources_fingerprint(sources)}"
    steps = [
        Step(
            "etl",
            [*cli, "etl", *etl_arguments(exp, sources, str(dataset))],
            dataset / "manifest.json",
            etl_key,
        )
    ]
    externals_checked = external_steps(exp, layout, data_root, etl_key)
    steps += externals_checked
    # Evaluations read the external sets too: their keys chain the audit's, which chains every dataset's.
    evaluation_data_key = externals_checked[-1].key if externals_checked else etl_key
    externals = layout.external_datasets(exp)
    for model in exp.training.models:
        model_dir = layout.model(exp, model)
        hyperparameters = hyperparameters_to_argv(training_hyperparameters(exp, model))
        steps.append(
            Step(
                f"train {model}",
                [*cli, "train", f"--data={dataset}", f"--model-dir={model_dir}", *hyperparameters],
                model_dir / "config.json",
                f"{exp.model_key(model)} data:{etl_key}",
            )
        )
    for model in exp.training.models:
        out = layout.evaluation(exp, model)
        arguments = evaluation_arguments(
            exp,
            model_dir=str(layout.model(exp, model)),
            data=str(dataset),
            output=str(out),
            externals=externals,
        )
        steps.append(
            Step(
                f"evaluate {model}",
                [*cli, "evaluate", *arguments],
                out / "metrics.json",
                f"{exp.evaluation_key(model)} data:{evaluation_data_key}",
            )
        )
    report = layout.report(exp)
    arguments = report_arguments(
        exp, evaluations=str(layout.experiment(exp) / "evaluations"), dataset=str(dataset), output=str(report)
    )
    report_key = f"{exp.report_key()} data:{etl_key}"
    steps.append(Step("report", [*cli, "report", *arguments], report / "report.html", report_key))
    return steps


def external_steps(exp: Experiment, layout: LocalLayout, data_root: Path, etl_key: str) -> list[Step]:
    """One test-only ETL per external test set, then an audit that fails the run when one of them
    shares a patient, a file or a near-duplicate with the experiment's dataset."""
    cli = [sys.executable, "-m", "jobs.cli"]
    steps = []
    for external in exp.evaluation.external:
        out = layout.external_dataset(exp, external.name)
        sources = source_uris(exp, str(data_root.resolve()), exp.external_etl(external.name))
        steps.append(
            Step(
                f"etl external {external.name}",
                [*cli, "etl", *external_etl_arguments(exp, external.name, sources, str(out))],
                out / "manifest.json",
                f"{exp.external_dataset_key(external.name)} sources:{sources_fingerprint(sources)}",
            )
        )
    if steps:
        externals = layout.external_datasets(exp)
        audit = layout.experiment(exp) / "audit-data"
        arguments = audit_arguments(str(layout.dataset(exp)), externals, str(audit / "audit.json"))
        steps.append(
            Step(
                "audit-data",
                [*cli, "audit-data", *arguments],
                audit / "audit.json",
                " ".join([etl_key, *(step.key for step in steps)]),
            )
        )
    return steps


def run_steps(steps: list[Step], force: bool, echo: Callable[[str], None] = print) -> bool:
    """Runs what is not done yet; a failed step stops the run (later steps need its outputs)."""
    started = time.time()
    for number, step in enumerate(steps, 1):
        prefix = f"[{number}/{len(steps)}] {step.name}"
        if step.is_done() and not force:
            echo(f"{prefix}: done before, skipped ({step.done_marker.parent})")
            continue
        echo(f"{prefix}: running")
        step_started = time.time()
        step.forget()
        code = child_processes.call(step.command)
        if code != 0:
            echo(
                f"{prefix}: FAILED with exit code {code} after {time.time() - step_started:.0f} s; "
                f"rerun after fixing, finished steps will be skipped"
            )
            return False
        step.mark_done()
        echo(
            f"{prefix}: finished in {time.time() - step_started:.0f} s (total {time.time() - started:.0f} s)"
        )
    return True


def _figure(value: float | None, ci: list[float] | None = None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def headline(report_dir: Path) -> list[str]:
    """The lines printed at the end of a run: each model's main figures, then the report's path."""
    lines = []
    summary = report_dir / "report.json"
    if summary.exists():
        for m in json.loads(summary.read_text())["models"]:
            verdict = (m["audit"].get("verdict") or {}).get("level", "n/a")
            lines.append(
                f"  {m['model']:12} accuracy {_figure(m['accuracy'], m['accuracy_ci'])}  "
                f"macro F1 {_figure(m['table']['macro avg']['f1-score'], m['macro_f1_ci'])}  "
                f"shortcut audit: {verdict}"
            )
    lines.append(f"report: {report_dir / 'report.html'}")
    return lines
