"""``cxr tensorboard RUN``: TensorBoard over the learning curves a run's trainings logged.

RUN is an experiment (file or name: its ``runs/experiments/<name>/models``, where each training keeps its
logs in ``tensorboard/`` beside the model, one TensorBoard run per model and seed) or any folder of event
files (a SageMaker job's TensorBoard S3OutputPath after ``aws s3 sync``, a local-mode output.tar.gz
unpacked). TensorBoard listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from jobs.experiment.paths import find_experiment

LOG = logging.getLogger(__name__)


def log_dir(run: str, runs_dir: Path) -> Path:
    """The folder TensorBoard should read for RUN (see the module's docstring)."""
    if Path(run).is_dir():
        return Path(run)
    from jobs.experiment.schema import load_experiment

    return runs_dir / "experiments" / load_experiment(find_experiment(run)).name / "models"


def event_files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("events.out.tfevents.*"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cxr tensorboard", description=__doc__.splitlines()[0])
    parser.add_argument("run", help="experiment file or name, or a folder of TensorBoard event files")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"), help="where `cxr run` wrote (runs/)")
    parser.add_argument("--port", type=int, default=6006, help="TensorBoard's port (0: any free one)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        folder = log_dir(args.run, args.runs_dir)
    except Exception as exc:  # the experiment file's own error names the file and the field
        LOG.error(f"cxr tensorboard: error: {exc}")
        return 2
    if not event_files(folder):
        LOG.error(
            f"cxr tensorboard: no TensorBoard logs under {folder}; train first (`cxr run ... --local`), "
            "or give the folder that holds them"
        )
        return 2
    from tensorboard import program

    board = program.TensorBoard()
    board.configure(argv=[None, "--logdir", str(folder), "--host", "127.0.0.1", "--port", str(args.port)])
    LOG.info(f"cxr tensorboard: {len(event_files(folder))} event files under {folder}")
    board.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
