"""The fixed cost of one job run through the SageMaker SDK's local mode, against plain ``docker run``.

The same trivial processing job (``python3 -c print`` in the project image), in turns: ``docker run
--network none`` (how ``cxr run --container`` runs a step) and ``LocalSagemakerClient.create_processing_job``
through tests/sagemaker_sdk_job.py (how the tests run local mode). Prints each pair, the medians, the
ratio, and the peak RSS of the SDK and compose processes. Needs the engine, the image and .venv-sagemaker:

    eval "$(containers/engine.sh start)" && make image && .venv/bin/python bench/local_mode.py --runs 5
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "cxr-pipeline:local"
PROGRAM = ["python3", "-c", "print('job ran')"]


def plain() -> float:
    start = time.monotonic()
    done = subprocess.run(
        ["docker", "run", "--rm", "--network", "none", "--entrypoint", PROGRAM[0], IMAGE, *PROGRAM[1:]],
        capture_output=True,
        text=True,
    )
    assert "job ran" in done.stdout, done.stderr
    return time.monotonic() - start


def local_mode(work: Path, python: Path) -> tuple[float, float]:
    """(seconds, peak RSS in MiB of the SDK's process and its children)."""
    request = {
        "ProcessingJobName": "trivial",
        "AppSpecification": {"ImageUri": IMAGE, "ContainerEntrypoint": PROGRAM},
        "ProcessingResources": {
            "ClusterConfig": {"InstanceCount": 1, "InstanceType": "local", "VolumeSizeInGB": 1}
        },
    }
    work.mkdir(parents=True)
    job = work / "job.json"
    job.write_text(json.dumps({"operation": "CreateProcessingJob", "request": request, "work": str(work)}))
    driver = [str(python), str(ROOT / "tests" / "sagemaker_sdk_job.py"), str(job)]
    start = time.monotonic()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%M", "unshare", "--net", *driver], capture_output=True, text=True
    )
    seconds = time.monotonic() - start
    assert done.returncode == 0 and "job ran" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]
    return seconds, int(done.stderr.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--python", type=Path, default=ROOT / ".venv-sagemaker" / "bin" / "python")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cxr-bench-local-mode-"))
    try:
        ours, sdk, rss = [], [], []
        for run in range(args.runs):
            ours.append(plain())
            seconds, peak = local_mode(work / str(run), args.python)
            sdk.append(seconds)
            rss.append(peak)
            print(
                f"{run}: docker run {ours[-1]:.2f} s, local mode {seconds:.2f} s, SDK + compose {peak:.0f} MiB"
            )
        baseline, measured = statistics.median(ours), statistics.median(sdk)
        print(
            f"median: docker run {baseline:.2f} s, local mode {measured:.2f} s: {measured / baseline:.1f}x, "
            f"+{measured - baseline:.1f} s a job; peak RSS {statistics.median(rss):.0f} MiB"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
