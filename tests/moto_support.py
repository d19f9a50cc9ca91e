"""moto's AWS for the cloud tests: test credentials in one region, so no call can leave this machine."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from moto import mock_aws
from moto.s3.models import FakeKey


@contextmanager
def mocked_aws(monkeypatch: pytest.MonkeyPatch, region: str) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield


def documented_kms_etags(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's S3 as AWS documents S3: the ETag of an SSE-KMS object is not an MD5 digest of its data
    (Amazon S3 API Reference, Common Response Headers: ETag). moto's ETag is always the MD5."""
    md5_etag = FakeKey.etag

    def etag(self: FakeKey) -> str:
        plain = md5_etag.fget(self)
        if self.encryption != "aws:kms":
            return plain
        return '"' + hashlib.sha256(b"sse-kms" + plain.encode()).hexdigest()[:32] + '"'

    monkeypatch.setattr(FakeKey, "etag", property(etag))
