"""``cxr run --local --container``: training and evaluation inside the image built from containers/.

The steps keep their arguments; only the program changes, from this checkout's Python to
`docker run` with SageMaker's /opt/ml mounts, which is what a SageMaker local-mode run does.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

from jobs.runner import Step

IMAGE = "cxr-pipeline:local"
ROOT = Path(__file__).resolve().parents[1]


def docker_problem() -> str | None:
    """None when a Docker engine answers; else one line saying what is missing."""
    if shutil.which("docker") is None:
        return "no docker command found; install Docker, or run without --container"
    probe = subprocess.run(["docker", "info"], capture_output=True, text=True)
    if probe.returncode != 0:
        return "no Docker engine is running (`docker info` failed); start one, or run without --container"
    return None


def _flag(command: list[str], name: str) -> str:
    return next(arg.split("=", 1)[1] for arg in command if arg.startswith(f"--{name}="))


def _containerised(step: Step) -> Step:
    kind = step.command[3]
    rest = [
        a
        for a in step.command[4:]
        if not a.startswith(("--data=", "--model-dir=", "--output=", "--external="))
    ]
    mounts = ["-v", f"{_flag(step.command, 'data')}:/opt/ml/input/data/train:ro"]
    for arg in step.command[4:]:
        if arg.startswith("--external="):  # an external test set: one more read-only input channel
            name, _, path = arg[len("--external=") :].partition("=")
            mounts += ["-v", f"{path}:/opt/ml/input/data/external-{name}:ro"]
            rest.append(f"--external={name}=/opt/ml/input/data/external-{name}")
    if kind == "train":
        mounts += ["-v", f"{_flag(step.command, 'model-dir')}:/opt/ml/model"]
    else:
        mounts += [
            "-v",
            f"{_flag(step.command, 'model-dir')}:/opt/ml/input/data/model:ro",
            "-v",
            f"{_flag(step.command, 'output')}:/opt/ml/output/data",
        ]
    return replace(step, command=["docker", "run", "--rm", *mounts, IMAGE, kind, *rest])


def in_container(steps: list[Step]) -> list[Step]:
    # Always run: Docker's layer cache makes an unchanged build take seconds, and it catches code changes.
    build = Step(
        "build image",
        ["docker", "build", "-f", str(ROOT / "containers" / "Dockerfile"), "-t", IMAGE, str(ROOT)],
        done_marker=ROOT / "containers" / "no-such-marker",
        key="",
    )
    moved = [_containerised(s) if s.command[3] in ("train", "evaluate") else s for s in steps]
    return [build, *moved]
