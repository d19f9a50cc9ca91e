"""``cxr stage-weights MODEL...``: Keras's ImageNet files, checked against their published MD5, into the
artifacts bucket's ``weights/`` prefix, which every training job receives as its ``weights`` channel.

Run once where there is internet (the training jobs are network-isolated). An object already staged with
the same MD5 is not sent again. An ``index.json`` lists what is staged, so the channel's prefix is never
empty (SageMaker rejects a channel without objects), even for experiments with no pretrained backbone.
"""

from __future__ import annotations

import json
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

from jobs.cloud.aws import MD5_METADATA, CloudError, StackOutputs, _call, _client, md5_of, recorded_md5
from jobs.contracts.stack_outputs import WEIGHTS_PREFIX
from jobs.training.weights import KERAS_WEIGHTS_URL, NOTOP_FILES, NOTOP_MD5

INDEX = "index.json"


def weights_key(model: str) -> str:
    """The object key of a model's staged file: ``weights/keras/<Keras's file name>``."""
    return f"{WEIGHTS_PREFIX}keras/{Path(NOTOP_FILES[model]).name}"


def download(url: str, target: Path) -> None:
    with urllib.request.urlopen(url, timeout=60) as response, target.open("wb") as out:  # noqa: S310 (https URL)
        while chunk := response.read(1 << 20):
            out.write(chunk)


def stage_weights(
    models: list[str],
    outputs: StackOutputs,
    fetch: Callable[[str, Path], None] = download,
    echo: Callable[[str], None] = print,
) -> dict[str, str]:
    """Stages each model's file; returns model -> s3:// URI. A hash mismatch stages nothing for that model."""
    unknown = [m for m in models if m not in NOTOP_FILES]
    if unknown:
        raise CloudError(
            f"stage-weights: no ImageNet weights for {', '.join(unknown)}; models with them: "
            f"{', '.join(NOTOP_FILES)}"
        )
    s3 = _client("s3", outputs.region)
    bucket = outputs.artifacts_bucket
    staged = {}
    with tempfile.TemporaryDirectory(prefix="cxr-weights-") as scratch:
        for model in models:
            key, expected = weights_key(model), NOTOP_MD5[model]
            if _call(lambda key=key: recorded_md5(s3, bucket, key), f"s3://{bucket}/{key}") == expected:
                echo(f"{model}: already staged at s3://{bucket}/{key}")
            else:
                url = f"{KERAS_WEIGHTS_URL}/{NOTOP_FILES[model]}"
                local = Path(scratch) / Path(key).name
                try:
                    fetch(url, local)
                except OSError as exc:
                    raise CloudError(
                        f"stage-weights {model}: cannot download {url} ({exc}); run it where "
                        "there is internet"
                    ) from None
                actual = md5_of(local)
                if actual != expected:
                    raise CloudError(
                        f"stage-weights {model}: {url} has MD5 {actual}, but Keras publishes {expected} "
                        "(keras.applications); the download is corrupt or was replaced: nothing uploaded"
                    )
                _call(
                    lambda local=local, key=key, expected=expected: s3.upload_file(
                        str(local), bucket, key, ExtraArgs={"Metadata": {MD5_METADATA: expected}}
                    ),
                    f"upload s3://{bucket}/{key}",
                )
                echo(f"{model}: staged s3://{bucket}/{key} (MD5 {expected} checked)")
            staged[model] = f"s3://{bucket}/{key}"
    _write_index(s3, bucket)
    return staged


def _write_index(s3, bucket: str) -> None:
    """Lists every model whose file is staged (all of them, not only this call's)."""
    present = {
        model: weights_key(model)
        for model in NOTOP_FILES
        if _call(lambda model=model: recorded_md5(s3, bucket, weights_key(model)), "index")
        == NOTOP_MD5[model]
    }
    body = json.dumps({"keras_notop": present}, indent=1, sort_keys=True).encode()
    _call(lambda: s3.put_object(Bucket=bucket, Key=f"{WEIGHTS_PREFIX}{INDEX}", Body=body), "write index")
