"""Where backbone weights come from: ImageNet (downloaded by Keras), none, or a staged file (path / s3://).

Network-isolated SageMaker jobs cannot download ImageNet weights, so they take a staged file instead.
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


def staging_advice(model: str) -> str:
    name = NOTOP_FILES.get(model, f"<{model}>.weights.h5")
    return (
        f"stage the weights instead: download {KERAS_WEIGHTS_URL}/{name} where there is internet, upload "
        f"it to S3 (aws s3 cp {Path(name).name} s3://<bucket>/weights/) and pass "
        f"weights=s3://<bucket>/weights/{Path(name).name} (or a local path), or weights=none"
    )


def resolve_weights(weights: str, model: str, download_dir: str | None = None) -> str | None:
    """``none`` -> None, ``imagenet`` as is, s3:// -> a downloaded local file, a path -> checked path."""
    if weights == "none":
        return None
    if weights == "imagenet":
        return weights
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
