"""Where the model comes from: a training output folder, a SageMaker ``model.tar.gz``, or s3:// of either.

Everything lands in a local folder that ``jobs.evaluation.evaluate.read_model_dir`` reads, so predict and
evaluate load a model the same way. The model's id is a fingerprint of ``model.keras`` and
``config.json``: two files with the same id give the same predictions.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from jobs.contracts.operating_point import OPERATING_POINT_FILE, OperatingPoint, load_operating_point
from jobs.evaluation.entry import model_location
from jobs.prediction.inputs import split_s3

MODEL_ARCHIVE = "model.tar.gz"
_FILES = ("model.keras", "config.json", "history.json", OPERATING_POINT_FILE)


class ModelSourceError(ValueError):
    """The model URI names nothing usable; the message says what was found and what is expected."""


def _download(uri: str, target: Path, s3) -> Path:
    """s3:// of a model.tar.gz or of a folder -> a local folder with the same files."""
    bucket, key = split_s3(uri)
    target.mkdir(parents=True, exist_ok=True)
    if key.endswith(".tar.gz"):
        s3.download_file(bucket, key, str(target / MODEL_ARCHIVE))
        return target
    prefix = key.rstrip("/") + "/" if key else ""
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, Delimiter="/").get("Contents", [])
    names = {item["Key"][len(prefix) :] for item in listed}
    wanted = [MODEL_ARCHIVE] if MODEL_ARCHIVE in names else [n for n in _FILES if n in names]
    if not wanted:
        raise ModelSourceError(
            f"{uri}: neither {MODEL_ARCHIVE} nor model.keras there; pass the training job's output "
            "(s3://.../output/model.tar.gz) or a folder holding model.keras, config.json, history.json"
        )
    for name in wanted:
        s3.download_file(bucket, prefix + name, str(target / name))
    return target


def local_model_dir(uri: str, scratch: Path, s3=None) -> Path:
    """The local folder holding model.keras for any accepted model URI (archives unpacked in ``scratch``)."""
    if uri.startswith("s3://"):
        if s3 is None:
            import boto3

            s3 = boto3.client("s3")
        uri = str(_download(uri, scratch / "download", s3))
    path = Path(uri)
    if path.is_file() and path.name.endswith(".tar.gz"):
        unpacked = scratch / "archive"
        unpacked.mkdir(parents=True, exist_ok=True)
        (unpacked / MODEL_ARCHIVE).symlink_to(path.resolve())
        path = unpacked
    if not path.exists():
        raise ModelSourceError(f"--model {uri}: no such file or folder")
    return model_location(str(path), scratch / "model")


def model_id(model_dir: Path) -> str:
    """sha256 over model.keras and config.json (16 hex digits): names the exact model that scored."""
    digest = hashlib.sha256()
    for name in ("model.keras", "config.json"):
        digest.update((model_dir / name).read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def operating_point(model_dir: Path, given: str | None) -> OperatingPoint | None:
    """``--operating-point`` (a file or an evaluation folder) when given, else the one saved with the model."""
    if given is None:
        return load_operating_point(model_dir)
    point = load_operating_point(Path(given))
    if point is None:
        raise ModelSourceError(
            f"--operating-point {given}: no {OPERATING_POINT_FILE} there; pass the file or the "
            "evaluation output folder that holds it"
        )
    return point
