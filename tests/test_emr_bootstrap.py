"""The EMR bootstrap action: what it runs, in which order, and whether the pinned wheels fit EMR 5.32's Python.

EMR 5.32 nodes run Amazon Linux 2's Python 3.7 with pip 9, which reads only manylinux1 wheels; the
pinned numpy and OpenCV wheels are manylinux2010 and manylinux2014. The bootstrap must upgrade pip first
(from the same hash-pinned file) and install wheels only.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.tags import compatible_tags, cpython_tags
from packaging.utils import parse_wheel_filename
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
BOOTSTRAP = ROOT / "jobs" / "etl" / "emr-bootstrap.sh"
REQUIREMENTS = ROOT / "jobs" / "etl" / "emr-requirements.txt"
LINE = re.compile(
    r"^(?P<name>[A-Za-z0-9_.-]+)==(?P<version>\S+) --hash=sha256:(?P<hash>[0-9a-f]{64})\s+# (?P<wheel>\S+\.whl)$"
)
# What pip >= 19.3 accepts on EMR 5.32 (CPython 3.7m, glibc 2.26), and the older pip 9 the node ships.
EMR_PLATFORMS = ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64", "linux_x86_64"]
EMR_TAGS = set(cpython_tags((3, 7), abis=["cp37m", "abi3", "none"], platforms=EMR_PLATFORMS)) | set(
    compatible_tags((3, 7), interpreter="cp37", platforms=EMR_PLATFORMS)
)
PIP9_PLATFORMS = {"manylinux1_x86_64", "linux_x86_64", "any"}


def _pins() -> list[dict[str, str]]:
    lines = [
        s
        for s in (raw.strip() for raw in REQUIREMENTS.read_text().splitlines())
        if s and not s.startswith("#")
    ]
    pins = []
    for line in lines:
        match = LINE.match(line)
        assert match, f"{REQUIREMENTS.name}: {line!r} is not 'NAME==VERSION --hash=sha256:HEX  # WHEEL.whl'"
        pins.append(match.groupdict())
    return pins


def test_every_requirement_is_pinned_with_a_hash_and_names_its_wheel():
    """--require-hashes needs every package (dependencies too) pinned to a version and a sha256."""
    pins = _pins()
    names = {p["name"].lower() for p in pins}
    assert {"pip", "numpy", "opencv-python-headless", "boto3", "botocore", "s3transfer", "jmespath"} <= names
    for pin in pins:
        wheel_name, wheel_version, _, _ = parse_wheel_filename(pin["wheel"])
        assert (str(wheel_name), wheel_version) == (pin["name"].lower(), Version(pin["version"])), pin


def test_every_wheel_installs_on_emr_5_32_python_3_7():
    """Each pinned wheel carries a tag that CPython 3.7 on manylinux2014 x86_64 accepts."""
    for pin in _pins():
        tags = parse_wheel_filename(pin["wheel"])[3]
        assert tags & EMR_TAGS, f"{pin['wheel']} does not install on CPython 3.7 / manylinux2014_x86_64"


def test_pinned_pip_reads_the_wheels_the_nodes_pip_cannot_and_still_runs_python_3_7():
    """Some wheels need pip >= 19.3 (manylinux2014), so the pin is at least that and at most 24.0 (3.7)."""
    pins = {p["name"]: p for p in _pins()}
    newer = [
        p["wheel"]
        for p in pins.values()
        if not {t.platform for t in parse_wheel_filename(p["wheel"])[3]} & PIP9_PLATFORMS
    ]
    assert newer, "no wheel needs a newer pip: drop the pip upgrade"
    assert Version("19.3") <= Version(pins["pip"]["version"]) < Version("24.1")


def _run_bootstrap(tmp_path: Path) -> list[list[str]]:
    """Runs the real script with stand-ins for aws, sudo and python3 that record their arguments."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    stubs = {
        "aws": f'echo "aws $*" >> {log}; cp "{REQUIREMENTS}" "${{@: -1}}"',
        "sudo": '"$@"',
        "python3": f'echo "python3 $*" >> {log}; for a in "$@"; do [ -f "$a" ] && cp "$a" {tmp_path}/"$(basename "$a")"; done; true',
    }
    for name, body in stubs.items():
        (bin_dir / name).write_text(f"#!/bin/bash\n{body}\n")
        (bin_dir / name).chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:/usr/bin:/bin"}
    subprocess.run(
        ["bash", str(BOOTSTRAP), "s3://assets/emr-requirements.txt"], check=True, env=env, timeout=30
    )
    return [line.split() for line in log.read_text().splitlines()]


@pytest.mark.skipif(not shutil.which("bash"), reason="needs bash")
def test_bootstrap_upgrades_pip_first_then_installs_wheels_only_with_hashes(tmp_path):
    """aws s3 cp, then pip installs only pip, then the whole file; both installs binary-only and hash-checked."""
    calls = _run_bootstrap(tmp_path)
    assert calls[0][:3] == ["aws", "s3", "cp"]
    installs = [c for c in calls if c[:4] == ["python3", "-m", "pip", "install"]]
    assert len(installs) == 2 and len(calls) == 3
    for call in installs:
        assert "--only-binary=:all:" in call and "--require-hashes" in call
    first, second = (Path(tmp_path / Path(c[c.index("--requirement") + 1]).name) for c in installs)
    assert [line.split("==")[0] for line in first.read_text().splitlines()] == ["pip"]
    assert second.read_text() == REQUIREMENTS.read_text()


@pytest.mark.slow
def test_pinned_hashes_match_the_published_wheels(tmp_path):
    """pip download (the EMR platform, wheels only, --require-hashes) fetches exactly the named wheels."""
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-cache-dir", "--timeout", "10", "--retries", "1",
        "--only-binary=:all:",
        "--python-version", "3.7", "--implementation", "cp", "--abi", "cp37m",
        "--platform", "manylinux2014_x86_64", "--require-hashes", "-r", str(REQUIREMENTS), "-d", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if done.returncode and "HASHES" not in done.stderr.upper():
        pytest.skip(f"no package index reachable: {done.stderr.strip().splitlines()[-1:]}")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.glob("*.whl")) == sorted(p["wheel"] for p in _pins())
