"""The image's CUDA forward compatibility: the entrypoint (containers/cuda-compat.sh) against stand-in
drivers and compat folders, and the build step (containers/install-cuda-compat.sh) against stand-ins for
TensorFlow and apt-get. Nothing here needs a GPU or Docker."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINT = ROOT / "containers" / "cuda-compat.sh"
INSTALL = ROOT / "containers" / "install-cuda-compat.sh"
# What SageMaker AI documents for ml.p3 hosts (NVIDIA 470, CUDA 11.4), a newer host, and the driver a
# cuda-compat-12-5 package's libcuda comes from (NVIDIA's CUDA 12.5 release driver: 555.42.06).
P3_DRIVER, NEWER_DRIVER, COMPAT_DRIVER = "470.256.02", "560.35.03", "555.42.06"


def _stand_in(folder: Path, name: str, body: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(f"#!/bin/sh\n{body}\n")
    (folder / name).chmod(0o755)


def _environ(bin_dir: Path, **extra: str) -> dict[str, str]:
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", **extra}


def _library_path(tmp_path: Path, host: str | None, compat: str | None) -> str:
    """LD_LIBRARY_PATH as the entrypoint hands it to its command."""
    bin_dir = tmp_path / "bin"
    # A host without a driver: nvidia-smi fails, as it does there.
    _stand_in(bin_dir, "nvidia-smi", f"echo {host}" if host else "echo 'NVIDIA-SMI has failed' >&2; exit 9")
    folder = tmp_path / "compat"
    folder.mkdir()
    if compat:
        (folder / f"libcuda.so.{compat}").write_bytes(b"")
        (folder / "libcuda.so.1").symlink_to(f"libcuda.so.{compat}")
    done = subprocess.run(
        ["sh", str(ENTRYPOINT), "sh", "-c", 'printf %s "$LD_LIBRARY_PATH"'],
        env=_environ(bin_dir, CXR_CUDA_COMPAT_DIR=str(folder), LD_LIBRARY_PATH="/usr/lib/image"),
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.replace(str(folder), "COMPAT")


@pytest.mark.parametrize(
    ("host", "compat", "expected"),
    [
        (P3_DRIVER, COMPAT_DRIVER, "COMPAT:/usr/lib/image"),  # an older driver: compat libraries first
        (NEWER_DRIVER, COMPAT_DRIVER, "/usr/lib/image"),  # a newer driver must not get them
        (COMPAT_DRIVER, COMPAT_DRIVER, "/usr/lib/image"),
        (None, COMPAT_DRIVER, "/usr/lib/image"),  # a CPU host
        (P3_DRIVER, None, "/usr/lib/image"),  # the CPU base: no compat libraries
    ],
)
def test_compat_libraries_come_first_only_on_an_older_driver(host, compat, expected, tmp_path):
    """The forward-compatibility libcuda is used only when the host's driver is older than its own."""
    assert _library_path(tmp_path, host, compat) == expected


def test_the_entrypoint_runs_the_command_and_keeps_its_exit_code(tmp_path):
    """`docker run IMAGE train`: the command runs as the entrypoint's process, its failure is the job's."""
    done = subprocess.run(
        ["sh", str(ENTRYPOINT), "sh", "-c", "echo trained; exit 3"],
        env=_environ(tmp_path, CXR_CUDA_COMPAT_DIR=str(tmp_path / "none")),
        capture_output=True,
        text=True,
    )
    assert (done.returncode, done.stdout) == (3, "trained\n")


def test_the_image_installs_the_compat_package_and_starts_through_the_entrypoint():
    """The Dockerfile runs the build step and makes the compat script the entrypoint of `train`."""
    lines = (ROOT / "containers" / "Dockerfile").read_text().splitlines()
    assert any(line.startswith("RUN /opt/program/containers/install-cuda-compat.sh") for line in lines)
    assert 'ENTRYPOINT ["/opt/program/containers/cuda-compat.sh"]' in lines
    assert lines[-1] == 'CMD ["train"]'


def _install(tmp_path: Path, tensorflow_cuda: str, apt_fails: bool = False) -> subprocess.CompletedProcess:
    """The build step with stand-ins: python3 answers TensorFlow's CUDA version, apt-get records its
    arguments and installs what a cuda-compat-12-5 package installs (or fails)."""
    bin_dir, prefix = tmp_path / "bin", tmp_path / "usr-local"
    _stand_in(bin_dir, "python3", f"echo '{tensorflow_cuda}'")
    library = prefix / "cuda-12.5" / "compat" / f"libcuda.so.{COMPAT_DRIVER}"
    _stand_in(
        bin_dir,
        "apt-get",
        f'echo "$@" >> {tmp_path}/apt.log\n'
        + (
            "exit 100"
            if apt_fails
            else f'if [ "$1" = install ]; then mkdir -p {library.parent} && touch {library}; fi'
        ),
    )
    return subprocess.run(
        ["sh", str(INSTALL)],
        env=_environ(bin_dir, CXR_CUDA_PREFIX=str(prefix)),
        capture_output=True,
        text=True,
    )


def test_a_cuda_build_gets_the_compat_package_of_its_cuda(tmp_path):
    """TensorFlow built with CUDA 12.5.1: cuda-compat-12-5, linked where the entrypoint looks."""
    done = _install(tmp_path, "12.5.1")
    assert done.returncode == 0, done.stderr
    assert "install -y -q --no-install-recommends cuda-compat-12-5" in (tmp_path / "apt.log").read_text()
    link = tmp_path / "usr-local" / "cuda-compat"
    assert os.readlink(link) == str(tmp_path / "usr-local" / "cuda-12.5" / "compat")


def test_a_cpu_build_needs_no_compat_package(tmp_path):
    """The CPU base (tensorflow-cpu reports no CUDA): nothing installed, the build goes on."""
    done = _install(tmp_path, "")
    assert done.returncode == 0 and not (tmp_path / "apt.log").exists()


def test_a_compat_package_that_cannot_be_installed_fails_the_build(tmp_path):
    """Better a failed build than a GPU job without usable GPUs: the message names the package."""
    done = _install(tmp_path, "12.5.1", apt_fails=True)
    assert done.returncode == 1 and "cannot install cuda-compat-12-5" in done.stderr
