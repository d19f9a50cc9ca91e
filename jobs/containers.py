"""``cxr run --local --container``: training and evaluation inside the image built from containers/.

The steps keep their arguments; only the program changes, from this checkout's Python to `docker run`
with the folders mounted where SageMaker puts them (``jobs.sagemaker_env``): training reads the dataset
channel and writes the model folder, evaluation gets the processing job's paths as its arguments.
Containers run without a network, as network-isolated SageMaker jobs do.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

from jobs import sagemaker_env
from jobs.runner import Step

IMAGE = "cxr-pipeline:local"
BASE_IMAGE_VARIABLE = "CXR_BASE_IMAGE"  # e.g. cxr-base:cpu from containers/build-base.sh
ROOT = Path(__file__).resolve().parents[1]
ENGINE_HINT = 'start one with `eval "$(containers/engine.sh start)"`, or run without --container'


def docker_problem() -> str | None:
    """None when a Docker engine answers; else one line saying what is missing."""
    if shutil.which("docker") is None:
        return f"no docker command found; install Docker (Debian: docker.io) and {ENGINE_HINT}"
    probe = subprocess.run(["docker", "info"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"no Docker engine answers (`docker info` failed); {ENGINE_HINT}"
    return None


def _flag(command: list[str], name: str) -> str:
    return next(arg.split("=", 1)[1] for arg in command if arg.startswith(f"--{name}="))


def docker_run(mounts: dict[str, tuple[str, bool]], arguments: list[str]) -> list[str]:
    """``docker run`` of IMAGE, no network, as this user, with host folder -> (container path, read-only)."""
    volumes = [
        arg
        for host, (inside, read_only) in mounts.items()
        for arg in ("-v", f"{host}:{inside}{':ro' if read_only else ''}")
    ]
    user = ["--user", f"{os.getuid()}:{os.getgid()}", "-e", "HOME=/tmp"]
    return ["docker", "run", "--rm", "--network", "none", *user, *volumes, IMAGE, *arguments]


def _containerised(step: Step) -> Step:
    kind, arguments = step.command[3], step.command[4:]
    data, model_dir = _flag(arguments, "data"), _flag(arguments, "model-dir")
    if kind == "train":
        Path(model_dir).mkdir(parents=True, exist_ok=True)
        mounts = {
            data: (sagemaker_env.channel_dir(sagemaker_env.DATASET_CHANNEL), True),
            model_dir: (f"{sagemaker_env.DEFAULT_ROOT}/{sagemaker_env.MODEL_DIR}", False),
        }
        hyperparameters = [a for a in arguments if not a.startswith(("--data=", "--model-dir="))]
        return replace(step, command=docker_run(mounts, ["train", *hyperparameters]))
    output = _flag(arguments, "output")
    Path(output).mkdir(parents=True, exist_ok=True)
    inside = {
        model_dir: sagemaker_env.EVALUATION_MODEL_DIR,
        data: sagemaker_env.EVALUATION_DATASET_DIR,
        output: sagemaker_env.EVALUATION_OUTPUT_DIR,
    }
    moved = []  # the arguments in their order, host paths replaced by the container's
    for argument in arguments:
        if argument.startswith("--external="):  # an external test set: one more read-only input
            name, _, host = argument[len("--external=") :].partition("=")
            inside[host] = sagemaker_env.external_dir(name)
            moved.append(f"--external={name}={inside[host]}")
        else:
            moved.append(_moved(argument, inside))
    mounts = {host: (path, host != output) for host, path in inside.items()}
    return replace(step, command=docker_run(mounts, ["evaluate", *moved]))


def _moved(argument: str, inside: dict[str, str]) -> str:
    """``--flag=HOST_PATH`` -> ``--flag=CONTAINER_PATH`` for the mounted folders; others unchanged."""
    flag, sep, value = argument.partition("=")
    return f"{flag}={inside[value]}" if sep and value in inside else argument


def build_command(base_image: str | None = None) -> list[str]:
    """The same build the CDK asset makes, on ``base_image`` (the Dockerfile's default when None)."""
    base_image = base_image or os.environ.get(BASE_IMAGE_VARIABLE)
    base = ["--build-arg", f"BASE_IMAGE={base_image}"] if base_image else []
    dockerfile = str(ROOT / "containers" / "Dockerfile")
    return ["docker", "build", "--network", "host", *base, "-f", dockerfile, "-t", IMAGE, str(ROOT)]


def in_container(steps: list[Step]) -> list[Step]:
    # Always run: Docker's layer cache makes an unchanged build take seconds, and it catches code changes.
    build = Step("build image", build_command(), done_marker=ROOT / "containers" / "no-such-marker", key="")
    moved = [_containerised(s) if s.command[3] in ("train", "evaluate") else s for s in steps]
    return [build, *moved]
