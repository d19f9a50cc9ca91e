"""`cxr run` reuses a step only for the same inputs, one run per runs folder, no orphans (issue 17)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from jobs.cli import main as cxr
from jobs.experiment.schema import load_experiment
from jobs.plan import runner

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "experiments" / "demo.json"


def _subset(sample: Path, target: Path, per_source: int = 4) -> Path:
    """A few real images of each source with the real metadata files: a second, smaller data root."""
    for source in ("cohen", "nih"):
        (target / source / "images").mkdir(parents=True)
        for meta in (sample / source).glob("*.csv"):
            shutil.copy2(meta, target / source / meta.name)
        for image in sorted((sample / source / "images").iterdir())[:per_source]:
            shutil.copy2(image, target / source / "images" / image.name)
    return target


def _finish(steps: list[runner.Step]) -> None:
    """Leaves every step's outputs and key as a finished run would."""
    for step in steps:
        step.done_marker.parent.mkdir(parents=True, exist_ok=True)
        step.done_marker.write_text("output")
        step.mark_done()


def test_another_data_root_or_changed_source_files_rerun_the_etl_and_everything_after(sample, tmp_path):
    """Case 1: the key covers the resolved sources and their listing (sizes, modification times)."""
    exp = load_experiment(DEMO)
    layout = runner.LocalLayout(tmp_path / "runs")
    _finish(runner.plan(exp, layout, sample))
    assert all(step.is_done() for step in runner.plan(exp, layout, sample))

    other = _subset(sample, tmp_path / "other")
    assert not any(step.is_done() for step in runner.plan(exp, layout, other))

    _finish(runner.plan(exp, layout, other))
    replaced = next((other / "nih" / "images").iterdir())
    os.utime(replaced, ns=(replaced.stat().st_atime_ns, replaced.stat().st_mtime_ns + 10**9))
    # the demo's external sets read Cohen only: their ETLs stand, everything that reads NIH reruns
    done = {step.name for step in runner.plan(exp, layout, other) if step.is_done()}
    assert done == {f"etl external {e.name}" for e in exp.evaluation.external} != set()
    replaced = next((other / "cohen" / "images").iterdir())
    os.utime(replaced, ns=(replaced.stat().st_atime_ns, replaced.stat().st_mtime_ns + 10**9))
    assert not any(step.is_done() for step in runner.plan(exp, layout, other))


def _marker_step(tmp_path: Path, script: str, key: str = "k") -> runner.Step:
    marker = tmp_path / "model" / "model.keras"
    return runner.Step("train", [sys.executable, "-c", script, str(marker)], marker, key)


WRITE = "import pathlib, sys; p = pathlib.Path(sys.argv[1]); p.parent.mkdir(exist_ok=True); p.write_text('weights')"
KILLED_WHILE_WRITING = (
    "import os, pathlib, signal, sys; pathlib.Path(sys.argv[1]).write_bytes(b''); "
    "os.kill(os.getpid(), signal.SIGKILL)"
)


def test_an_interrupted_force_rerun_is_not_counted_as_done(tmp_path):
    """Case 5: the key is removed before a step reruns, so a half-rewritten output is never skipped."""
    lines: list[str] = []
    assert runner.run_steps([_marker_step(tmp_path, WRITE)], force=False, echo=lines.append)
    assert not runner.run_steps([_marker_step(tmp_path, KILLED_WHILE_WRITING)], force=True, echo=lines.append)
    assert (tmp_path / "model" / "model.keras").read_bytes() == b""
    assert runner.run_steps([_marker_step(tmp_path, WRITE)], force=False, echo=lines.append)
    assert "skipped" not in lines[-2] and (tmp_path / "model" / "model.keras").read_text() == "weights"


def test_a_failed_write_leaves_the_previous_file(tmp_path):
    """Case 2/5: outputs are written under a temporary name in the same folder and renamed into place."""
    from jobs.atomic import replace_atomically

    target = tmp_path / "model.keras"
    target.write_text("previous model")

    def killed_half_way(staging: Path) -> None:
        staging.write_text("half a mod")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        replace_atomically(target, killed_half_way)
    assert target.read_text() == "previous model" and os.listdir(tmp_path) == ["model.keras"]


RUNNER = """
import sys
from pathlib import Path
from jobs.plan import runner
child = [sys.executable, "-c", sys.argv[2], sys.argv[1]]
runner.run_steps([runner.Step("slow", child, Path(sys.argv[1]) / "never", "k")], force=False)
"""
# The step writes its pid and its own child's pid, then works for a minute.
STEP = """
import os, subprocess, sys, time
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
open(os.path.join(sys.argv[1], "pids"), "w").write(f"{os.getpid()} {grandchild.pid}")
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie has exited: only its parent has not collected it yet
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_until(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_the_steps_die_with_the_runner(signum, tmp_path):
    """Case 6 (orphans): killing only the `cxr run` parent stops the step and what the step started."""
    parent = subprocess.Popen([sys.executable, "-c", RUNNER, str(tmp_path), STEP], cwd=ROOT)
    pids_file = tmp_path / "pids"
    assert _wait_until(lambda: pids_file.exists() and " " in pids_file.read_text(), 30)
    pids = [int(p) for p in pids_file.read_text().split()]
    try:
        parent.send_signal(signum)
        parent.wait(15)
        assert _wait_until(lambda: not any(_alive(p) for p in pids), 15), "a step outlived its runner"
    finally:
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


HOLD = """
import sys, time
from pathlib import Path
from jobs.plan import run_lock
with run_lock.hold(Path(sys.argv[1]), "experiment demo"):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_run_in_the_same_runs_folder_is_refused_while_the_first_lives(tmp_path, capsys):
    """Case 2: two `cxr run` in one runs folder would write one dataset twice; the second is refused."""
    runs = tmp_path / "runs"
    first = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(runs)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert first.stdout.readline().strip() == "held"
        code = cxr(["run", "demo", "--local", f"--runs-dir={runs}", f"--data-root={tmp_path / 'none'}"])
        err = capsys.readouterr().err
        assert code == 2 and "in use by another `cxr run`" in err and f"pid {first.pid}" in err
        assert not (runs / "datasets").exists()
    finally:
        first.kill()
        first.wait()


def test_a_stale_lock_is_taken_over_and_a_lock_of_another_host_is_not(tmp_path):
    """Case 2: a lock left by a killed run (its pid gone on this host) does not block the next run."""
    from jobs.plan import run_lock

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = tmp_path / run_lock.LOCK_FILE
    lock.write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename, "what": "experiment demo"}))
    notes: list[str] = []
    with run_lock.hold(tmp_path, "experiment demo", echo=notes.append):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert "stale lock" in notes[0] and not lock.exists()

    lock.write_text(json.dumps({"pid": os.getpid(), "host": "elsewhere", "what": "experiment demo"}))
    with pytest.raises(run_lock.RunLockError, match="elsewhere"), run_lock.hold(tmp_path, "experiment demo"):
        pass


def test_an_unwritable_runs_folder_is_reported_before_any_step(tmp_path, capsys):
    """Case 6: the output folder's writability is checked first."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert cxr(["run", "demo", "--local", f"--runs-dir={blocker / 'runs'}"]) == 2
    assert "cannot write there" in capsys.readouterr().err


def test_another_experiment_with_the_same_name_is_refused_unless_forced(tmp_path, monkeypatch, capsys):
    """Case 4: an experiment's folder records its digest; another file with that name may not mix in."""
    ran: list[int] = []
    monkeypatch.setattr(runner, "run_steps", lambda steps, force, workers: ran.append(len(steps)) or True)
    first = tmp_path / "demo.json"
    shutil.copy(DEMO, first)
    other = json.loads(DEMO.read_text())
    other["training"]["models"] = ["resnet50"]
    other["training"]["task"] = "multiclass"
    second = tmp_path / "other" / "demo.json"
    second.parent.mkdir()
    second.write_text(json.dumps(other))
    runs = f"--runs-dir={tmp_path / 'runs'}"

    assert cxr(["run", str(first), "--local", runs]) == 0
    assert cxr(["run", str(second), "--local", runs]) == 2
    err = capsys.readouterr().err
    assert "another experiment named 'demo'" in err and str(first) in err and "--force" in err
    assert len(ran) == 1
    assert cxr(["run", str(second), "--local", runs, "--force"]) == 0 and len(ran) == 2
    record = json.loads((tmp_path / "runs" / "experiments" / "demo" / "experiment.json").read_text())
    assert record["file"] == str(second) and record["digest"] == load_experiment(second).digest()
