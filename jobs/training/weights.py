"""Where backbone weights come from: ImageNet (a staged copy, or downloaded by Keras), none, or a file.

Network-isolated SageMaker jobs cannot download ImageNet weights: ``cxr stage-weights`` puts Keras's own
files in the artifacts bucket once, and every training job gets them as its ``weights`` channel.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from jobs.training.errors import TrainingError

KERAS_WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications"
NOTOP_FILES = {
    "resnet50": "resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "densenet121": "densenet/densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "vgg19": "vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "inceptionv3": "inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
}
# The MD5 Keras itself checks each file against (keras/src/applications/*.py, ``file_hash``).
NOTOP_MD5 = {
    "resnet50": "4d473c1dd8becc155b73f8504c6f6626",
    "densenet121": "30ee3e1110167f948a6b9946edeeb738",
    "vgg19": "253f8cb515780f3b799900260a226db6",
    "inceptionv3": "bcbd6486424b2319ff4ef7d526e38f63",
}


def staged_file(model: str, directory: Path | None) -> Path | None:
    """The model's staged ImageNet file in ``directory`` (the weights channel), or None."""
    if directory is None or model not in NOTOP_FILES:
        return None
    name = Path(NOTOP_FILES[model]).name
    return next(iter(sorted(directory.rglob(name))), None)


def staging_advice(model: str) -> str:
    name = NOTOP_FILES.get(model, f"<{model}>.weights.h5")
    return (
        f"stage the weights once with `cxr stage-weights {model}` (downloads {KERAS_WEIGHTS_URL}/{name}, "
        "checks Keras's published hash, uploads it to the artifacts bucket, whose weights/ prefix every "
        "training job receives as its 'weights' channel), or pass weights=PATH, or weights=none"
    )


def resolve_weights(
    weights: str, model: str, download_dir: str | None = None, staged_dir: Path | None = None
) -> str | None:
    """``none`` -> None, ``imagenet`` -> the staged file when ``staged_dir`` (the weights channel) has it,
    else as is (Keras downloads it); s3:// -> a downloaded local file, a path -> checked path."""
    if weights == "none":
        return None
    if weights == "imagenet":
        staged = staged_file(model, staged_dir)
        return str(staged) if staged else weights
    if weights.startswith("s3://"):
        return _download(weights, model, download_dir or tempfile.mkdtemp(prefix="cxr-weights-"))
    if not Path(weights).is_file():
        raise TrainingError(
            f"hyperparameter 'weights': no file at {weights!r}; use 'imagenet', 'none', a local "
            f"weights file or an s3:// URI. To {staging_advice(model)}"
        )
    return weights


def _download(uri: str, model: str, directory: str) -> str:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, _, key = uri[len("s3://") :].partition("/")
    target = Path(directory) / Path(key).name
    try:
        boto3.client("s3").download_file(bucket, key, str(target))
    except (BotoCoreError, ClientError) as exc:
        raise TrainingError(
            f"hyperparameter 'weights': cannot download {uri} ({exc}); check the URI and that the "
            f"job's role may read it. To {staging_advice(model)}"
        ) from None
    return str(target)


def imagenet_unavailable(model: str, exc: Exception) -> TrainingError:
    return TrainingError(
        f"hyperparameter 'weights'=imagenet: the ImageNet weights of {model} could not be "
        f"downloaded ({str(exc).splitlines()[0][:200]}). Network-isolated jobs cannot download; "
        + staging_advice(model)
    )
