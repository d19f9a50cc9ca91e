"""Runs one CreateTrainingJob or CreateProcessingJob request through the SageMaker Python SDK's local mode.

Run by .venv-sagemaker's Python (the SDK cannot share .venv): ``python tests/sagemaker_sdk_job.py JOB.json``,
where JOB.json holds ``operation`` ("CreateTrainingJob" or "CreateProcessingJob"), ``request`` (the API
request, S3 URIs replaced by file:// ones, instance type "local") and ``work`` (a folder of ours). The SDK's
own ``LocalSagemakerClient`` does the rest: config files, mounts, environment, ``docker-compose up``,
model.tar.gz. It writes ``work/describe.json`` (the Describe*Job answer, or ``{"error": ...}``).

Offline, with documented settings only: region and static dummy credentials from the environment (no
instance metadata lookup), telemetry off (``TelemetryOptOut`` in a config file named by
``SAGEMAKER_USER_CONFIG_OVERRIDE``), the local-mode config (``container_root``) set on the session. One
thing no setting reaches: the compose file always attaches the containers to a bridge network
``sagemaker-local``, which this machine's engine must not create (``--bridge=none``), and
``local.container_config``'s ``network_mode`` is refused next to it by compose. So ``docker-compose`` is
found first in a folder of ours, where a shim rewrites each service to ``network_mode: none`` (SageMaker's
network isolation) and hands the file to the real docker-compose.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

# Also keeps what the SDK wrote for the test to read (its compose file and the /opt/ml config files, which
# the SDK deletes after the job): under work/seen/.
SHIM = """#!{python}
import os, shutil, sys, yaml
arguments = sys.argv[1:]
path = arguments[arguments.index("-f") + 1]
seen = {seen!r}
shutil.copy(path, os.path.join(seen, "docker-compose.yaml"))
with open(path) as f:
    compose = yaml.safe_load(f)
for service in compose["services"].values():
    for volume in service["volumes"]:
        host, inside = volume.split(":")[:2]
        if inside in ("/opt/ml/input", "/opt/ml/config"):
            shutil.copytree(host, os.path.join(seen, inside.strip("/").replace("/", "-")), dirs_exist_ok=True)
    service.pop("networks", None)
    service["network_mode"] = "none"
compose.pop("networks", None)
with open(path, "w") as f:
    yaml.safe_dump(compose, f)
os.execv({real!r}, [{real!r}, *arguments])
"""


def _offline_environment(work: Path) -> None:
    """Settings that keep the SDK off the network, set before it is imported."""
    config = work / "sagemaker-config.yaml"
    config.write_text(
        "SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n"
    )
    os.environ.update(
        {
            "SAGEMAKER_USER_CONFIG_OVERRIDE": str(config),
            "SAGEMAKER_ADMIN_CONFIG_OVERRIDE": str(config),
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "local-mode",
            "AWS_SECRET_ACCESS_KEY": "local-mode",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.pop("AWS_PROFILE", None)


def _compose_shim(work: Path) -> None:
    """Puts the network shim first on PATH as ``docker-compose`` (see the module's docstring)."""
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        raise SystemExit(
            "the docker compose v2 plugin answers: local mode would use it with network sagemaker-local "
            "and bypass the shim; run where only docker-compose (Debian's 1.29) is installed"
        )
    real = shutil.which("docker-compose")
    if real is None:
        raise SystemExit("docker-compose is missing: apt-get install docker-compose")
    folder, seen = work / "bin", work / "seen"
    folder.mkdir(exist_ok=True)
    seen.mkdir(exist_ok=True)
    shim = folder / "docker-compose"
    shim.write_text(SHIM.format(python=sys.executable, real=real, seen=str(seen)))
    shim.chmod(0o755)
    os.environ["PATH"] = f"{folder}{os.pathsep}{os.environ['PATH']}"


def main(job_file: str) -> int:
    job = json.loads(Path(job_file).read_text())
    work = Path(job["work"])
    _offline_environment(work)
    _compose_shim(work)
    from sagemaker.core.local.local_session import LocalSagemakerClient, LocalSession

    session = LocalSession()
    session.config = {"local": {"container_root": str(work / "container-root")}}
    (work / "container-root").mkdir(exist_ok=True)
    client = LocalSagemakerClient(session)
    request = job["request"]
    try:
        if job["operation"] == "CreateTrainingJob":
            client.create_training_job(**request)
            answer = client.describe_training_job(request["TrainingJobName"])
        else:
            client.create_processing_job(**request)
            answer = client.describe_processing_job(request["ProcessingJobName"])
    except Exception as exc:  # the job's failure is the answer the test reads
        (work / "describe.json").write_text(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 1
    (work / "describe.json").write_text(json.dumps(answer, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
