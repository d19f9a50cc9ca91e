"""`cxr tensorboard`: the experiment's logs found where training leaves them, served on 127.0.0.1."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def write_scalars(folder: Path, tag: str, values: list[float]) -> None:
    """Event files as Keras' TensorBoard callback writes them (tf.summary scalars, step = epoch)."""
    import tensorflow as tf

    with tf.summary.create_file_writer(str(folder)).as_default():
        for step, value in enumerate(values):
            tf.summary.scalar(tag, value, step=step)


@pytest.mark.slow  # TensorFlow and TensorBoard start: about 30 s
def test_serves_the_experiments_learning_curves_on_loopback(tmp_path):
    """`cxr tensorboard demo` reads runs/experiments/demo/models (every model's tensorboard/ folder)."""
    logs = tmp_path / "runs" / "experiments" / "demo" / "models" / "small_cnn-abc" / "tensorboard"
    write_scalars(logs / "train", "epoch_loss", [0.9, 0.7, 0.6])
    command = [sys.executable, "-m", "jobs.cli", "tensorboard", "demo", "--runs-dir", str(tmp_path / "runs")]
    board = subprocess.Popen([*command, "--port", "0"], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        deadline, address = time.monotonic() + 60, None
        while address is None:
            assert time.monotonic() < deadline and board.poll() is None, "TensorBoard did not start"
            found = re.search(r"at (http://127\.0\.0\.1:\d+/)", board.stderr.readline())
            address = found and found.group(1)
        run = "small_cnn-abc/tensorboard/train"
        query = f"{address}data/plugin/scalars/scalars?run={urllib.parse.quote(run)}&tag=epoch_loss"
        with urllib.request.urlopen(query, timeout=30) as answer:
            points = json.load(answer)
    finally:
        board.terminate()
        board.wait(timeout=30)
    assert [step for _, step, _ in points] == [0, 1, 2]
    assert [value for _, _, value in points] == pytest.approx([0.9, 0.7, 0.6])


def test_without_logs_it_says_where_it_looked(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "tensorboard", "demo", "--runs-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert f"no TensorBoard logs under {tmp_path / 'experiments' / 'demo' / 'models'}" in done.stderr
