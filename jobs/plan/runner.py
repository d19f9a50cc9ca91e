"""``cxr run EXPERIMENT --local``: the whole experiment on this machine, step by step.

Each step of the experiment's plan (``jobs.plan.steps``, which the state machine's input is rendered from
too) runs as a child process, so a crash in one model's training
cannot take the others down. A step whose outputs exist for the same inputs and settings is skipped:
each step's key chains the keys of the steps it reads from, and the ETL's key covers the resolved
source URIs and a listing of the source files, so other data reruns the ETL and everything after it.
A step's key is removed before it runs and written (atomically) only after it succeeded.
"""

from __future__ import annotations

import hashlib
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from jobs.atomic import write_text_atomically
from jobs.contracts.results.report import Figure, read_report
from jobs.data.source_listing import sources_fingerprint
from jobs.experiment.arguments import is_absolute_uri
from jobs.experiment.schema import Experiment, ModelRun
from jobs.plan import child_processes
from jobs.plan.locations import Bound, Place, Ref, joined, render
from jobs.plan.steps import PlannedStep, build_plan


@dataclass(frozen=True)
class Step:
    """One command. It is done when ``done_marker`` exists and was made with the same ``key``; a step
    without a marker always runs (building the image: Docker's cache makes that quick)."""

    name: str
    command: list[str]
    done_marker: Path | None
    key: str
    log: Path | None = None  # everything the step printed (the console leaves out TensorFlow's C++ lines)
    after: tuple[str, ...] = ()  # the steps that write what this one reads

    @property
    def _key_file(self) -> Path | None:
        return self.done_marker.parent / ".cxr-step-key" if self.done_marker else None

    def is_done(self) -> bool:
        key_file = self._key_file
        return bool(
            key_file and self.done_marker.exists() and key_file.exists() and key_file.read_text() == self.key
        )

    def mark_done(self) -> None:
        if self._key_file:
            write_text_atomically(self._key_file, self.key)

    def forget(self) -> None:
        """Before a (re)run: outputs half-rewritten by a killed run must never pass as done."""
        if self._key_file:
            self._key_file.unlink(missing_ok=True)


@dataclass(frozen=True)
class LocalLayout:
    """Where a local run writes. Datasets are shared by experiments with the same ETL settings."""

    root: Path

    def dataset(self, exp: Experiment) -> Path:
        return self.root / "datasets" / exp.dataset_key()

    def external_dataset(self, exp: Experiment, name: str) -> Path:
        return self.root / "datasets" / exp.external_dataset_key(name)

    def experiment(self, exp: Experiment) -> Path:
        return self.root / "experiments" / exp.name

    def model(self, exp: Experiment, run: ModelRun) -> Path:
        return self.experiment(exp) / "models" / run.folder

    def evaluation(self, exp: Experiment, run: ModelRun) -> Path:
        return self.experiment(exp) / "evaluations" / run.folder

    def report(self, exp: Experiment) -> Path:
        return self.experiment(exp) / "report"

    def place(self, exp: Experiment, data_root: Path, ref: Ref) -> str:
        """Where a role lives on this machine; raw sources resolve against ``data_root``."""
        folders = {
            "dataset": lambda: self.dataset(exp),
            "external": lambda: self.external_dataset(exp, ref.name),
            "audit": lambda: self.experiment(exp) / "audit-data",
            "model": lambda: self.experiment(exp) / "models" / ref.name,
            "evaluation": lambda: self.experiment(exp) / "evaluations" / ref.name,
            "evaluations": lambda: self.experiment(exp) / "evaluations",
            "report": lambda: self.report(exp),
        }
        if ref.role == "raw":
            folder = ref.name if is_absolute_uri(ref.name) else str(data_root.resolve() / ref.name.strip("/"))
            return joined(folder.rstrip("/"), ref.path)
        return joined(str(folders[ref.role]()), ref.path)


# The locations a training job gets from SageMaker's contract (channels, model folder) are flags locally.
TRAINING_LOCATION_FLAGS = {"dataset": "--data=", "model": "--model-dir="}


def plan(exp: Experiment, layout: LocalLayout, data_root: Path) -> list[Step]:
    """The experiment's steps (``jobs.plan.steps``) as child-process commands of this checkout's ``cxr``."""
    steps = build_plan(exp)

    def place(ref: Ref) -> str:
        return layout.place(exp, data_root, ref)

    keys = local_keys(steps, place)
    writers = {ref: step.name for step in steps for ref in step.outputs}
    cli = [sys.executable, "-m", "jobs.cli"]
    return [
        Step(
            step.name,
            [*cli, step.kind, *local_arguments(step, place)],
            Path(place(step.output.at(step.marker))),
            keys[step.name],
            layout.experiment(exp) / "logs" / f"{step.name.replace(' ', '-')}.log",
            tuple(dict.fromkeys(writers[ref] for ref in step.inputs)),
        )
        for step in steps
    ]


def local_arguments(step: PlannedStep, place: Place) -> list[str]:
    """A step's arguments with local places; training also gets its data and model folders as flags."""
    contract = []
    if step.kind == "train":
        contract = [Bound(TRAINING_LOCATION_FLAGS[ref.role], ref) for ref in (*step.inputs, step.output)]
    return render([*contract, *step.arguments], place)


def local_keys(steps: list[PlannedStep], place: Place) -> dict[str, str]:
    """Each step's key chained with the keys of the steps that wrote its inputs, and for an ETL with a
    listing of its source files: other data, or any change upstream, reruns a step and all after it."""
    writer: dict[Ref, str] = {}
    keys: dict[str, str] = {}
    for step in steps:
        parts = [step.key, *(keys[writer[ref]] for ref in step.inputs)]
        if step.sources:
            parts.append(f"sources:{sources_fingerprint([place(ref) for ref in step.sources])}")
        keys[step.name] = hashlib.sha256(" ".join(parts).encode()).hexdigest()[:32]
        for ref in step.outputs:
            writer[ref] = step.name
    return keys


def run_steps(steps: list[Step], force: bool, echo: Callable[[str], None] = print, workers: int = 1) -> bool:
    """Runs what is not done yet, up to ``workers`` steps at a time, each once the steps it reads from
    have finished; a failed step starts nothing new (later steps need its outputs) and fails the run.

    Side by side, one step's single-threaded parts (graph tracing, Python, a JVM starting) use the core
    the other's arithmetic leaves; each step stays deterministic, so the outputs are the same.
    """
    started = time.time()
    numbers = {step.name: n for n, step in enumerate(steps, 1)}
    finished: set[str] = set()
    pending = list(steps)
    running: dict[str, threading.Thread] = {}
    codes: dict[str, int] = {}
    step_started: dict[str, float] = {}
    failed = False

    def prefix(step: Step) -> str:
        return f"[{numbers[step.name]}/{len(steps)}] {step.name}"

    def run(step: Step) -> None:
        label = f"[{step.name}] " if workers > 1 else ""
        codes[step.name] = child_processes.call(step.command, step.log, label)

    while pending or running:
        for name in [n for n, thread in running.items() if not thread.is_alive()]:
            step = next(s for s in steps if s.name == name)
            running.pop(name)
            elapsed = time.time() - step_started[name]
            if codes[name] != 0:
                failed = True
                echo(
                    f"{prefix(step)}: FAILED with exit code {codes[name]} after {elapsed:.0f} s; "
                    + (f"its whole output is in {step.log}; " if step.log else "")
                    + "rerun after fixing, finished steps will be skipped"
                )
                continue
            step.mark_done()
            finished.add(name)
            echo(f"{prefix(step)}: finished in {elapsed:.0f} s (total {time.time() - started:.0f} s)")
        ready = [] if failed else [s for s in pending if all(a in finished for a in s.after)]
        for step in ready:
            if step.is_done() and not force:
                pending.remove(step)
                finished.add(step.name)
                echo(f"{prefix(step)}: done before, skipped ({step.done_marker.parent})")
        for step in [s for s in ready if s in pending][: max(0, workers - len(running))]:
            pending.remove(step)
            echo(f"{prefix(step)}: running")
            step.forget()
            step_started[step.name] = time.time()
            running[step.name] = threading.Thread(target=run, args=(step,), daemon=True)
            if workers == 1:  # in this thread: signals reach the step's guard as they always did
                running[step.name].run()
            else:
                running[step.name].start()
        if failed and not running:
            return False
        alive = [thread for thread in running.values() if thread.is_alive()]
        if alive:
            alive[0].join(timeout=0.2)
        elif pending and not ready:
            raise ValueError(f"steps wait for steps that are not in the run: {[s.name for s in pending]}")
    return not failed


def _spread(figure: Figure) -> str:
    if figure.median is None:
        return "n/a"
    low, high = figure.min, figure.max
    return f"{figure.median:.3f}" + (f" (seeds {low:.3f} to {high:.3f})" if low != high else "")


def headline(report_dir: Path) -> list[str]:
    """The lines printed at the end of a run: each model's internal figures over its seeds, the sentences
    the seeds support, then the report's path."""
    lines = []
    summary = report_dir / "report.json"
    if summary.exists():
        across_seeds = read_report(summary).across_seeds
        for m in across_seeds:
            internal = m.rows[0].figures
            lines.append(
                f"  {m.model:12} {len(m.seeds)} seed(s): macro F1 {_spread(internal['macro_f1'])}, "
                f"ROC AUC {_spread(internal['roc_auc'])}; shortcut audit: {m.audit.level}"
            )
        for m in across_seeds:
            lines += [f"  - {sentence}" for sentence in m.sentences]
    lines.append(f"report: {report_dir / 'report.html'}")
    return lines
