"""``cxr run --local --container``: training and evaluation inside the image built from containers/.

The plan's steps (``jobs.plan.steps``) keep their arguments; only the program and the places change, from this
checkout's Python to `docker run` with each location mounted where SageMaker puts it
(``jobs.contracts.sagemaker_env``): training reads the dataset channel and writes the model folder, evaluation gets
the processing job's paths as its arguments.
Containers run without a network, as network-isolated SageMaker jobs do.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

from jobs.contracts import sagemaker_env
from jobs.experiment.paths import ROOT
from jobs.experiment.schema import Experiment
from jobs.plan import runner
from jobs.plan.locations import Place, Ref, refs, render
from jobs.plan.runner import LocalLayout, Step
from jobs.plan.steps import PlannedStep, build_plan

IMAGE = "cxr-pipeline:local"
BASE_IMAGE_VARIABLE = "CXR_BASE_IMAGE"  # e.g. cxr-base:cpu from containers/build-base.sh
CONTAINER_KINDS = ("train", "evaluate")  # the SageMaker jobs whose contract the image must keep
ENGINE_HINT = 'start one with `eval "$(containers/engine.sh start)"`, or run without --container'


def docker_problem() -> str | None:
    """None when a Docker engine answers; else one line saying what is missing."""
    if shutil.which("docker") is None:
        return f"no docker command found; install Docker (Debian: docker.io) and {ENGINE_HINT}"
    probe = subprocess.run(["docker", "info"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"no Docker engine answers (`docker info` failed); {ENGINE_HINT}"
    return None


def docker_run(mounts: dict[str, tuple[str, bool]], arguments: list[str]) -> list[str]:
    """``docker run`` of IMAGE, no network, as this user, with host folder -> (container path, read-only)."""
    volumes = [
        arg
        for host, (inside, read_only) in mounts.items()
        for arg in ("-v", f"{host}:{inside}{':ro' if read_only else ''}")
    ]
    user = ["--user", f"{os.getuid()}:{os.getgid()}", "-e", "HOME=/tmp"]
    return ["docker", "run", "--rm", "--network", "none", *user, *volumes, IMAGE, *arguments]


def container_command(step: PlannedStep, place: Place) -> list[str]:
    """A training or evaluation step as ``docker run``: each location it names is mounted where the
    SageMaker job finds it (``jobs.contracts.sagemaker_env``), outputs writable, inputs read-only. Training gets its
    dataset and model folder from the contract and only its hyperparameters as arguments, as on SageMaker."""
    if step.kind == "train":
        inside, named = sagemaker_env.training_path, [*step.inputs, step.output]
    else:
        inside, named = sagemaker_env.processing_path, refs(step.arguments)
    mounts = {}
    for ref in named:
        host = Path(place(ref.folder))
        if ref.folder in step.outputs:
            host.mkdir(parents=True, exist_ok=True)
        mounts[str(host)] = (inside(ref.folder), ref.folder not in step.outputs)
    return docker_run(mounts, [step.kind, *render(step.arguments, inside)])


def build_command(base_image: str | None = None) -> list[str]:
    """The same build the CDK asset makes, on ``base_image`` (the Dockerfile's default when None)."""
    base_image = base_image or os.environ.get(BASE_IMAGE_VARIABLE)
    base = ["--build-arg", f"BASE_IMAGE={base_image}"] if base_image else []
    dockerfile = str(ROOT / "containers" / "Dockerfile")
    return ["docker", "build", "--network", "host", *base, "-f", dockerfile, "-t", IMAGE, str(ROOT)]


def container_plan(exp: Experiment, layout: LocalLayout, data_root: Path) -> list[Step]:
    """The local plan with training and evaluation in the image, after building it."""
    build = Step("build image", build_command(), done_marker=None, key="")
    local = runner.plan(exp, layout, data_root)

    def place(ref: Ref) -> str:
        return layout.place(exp, data_root, ref)

    moved = [
        replace(step, command=container_command(planned, place)) if planned.kind in CONTAINER_KINDS else step
        for planned, step in zip(build_plan(exp), local, strict=True)
    ]
    return [build, *moved]
