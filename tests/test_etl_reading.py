"""How executors get the image files: balanced batches of URIs, each read by the executor itself."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from jobs.etl import blobs
from jobs.etl.batching import balanced_batches


def test_batches_hold_every_uri_once_with_about_equal_bytes():
    sizes = {f"file:/x/{i}.png": (i * 7919) % 1000 + 1 for i in range(101)}
    batches = balanced_batches(sizes, 4)
    assert len(batches) == 4
    assert sorted(u for batch in batches for u in batch) == sorted(sizes)
    totals = [sum(sizes[u] for u in batch) for batch in batches]
    assert max(totals) - min(totals) <= max(sizes.values())


def test_two_sources_of_different_file_sizes_are_spread_over_all_batches():
    """Path order would give one batch all the large PNGs; by bytes, each gets its share."""
    sizes = {f"file:/cohen/{i}.jpg": 50 for i in range(40)} | {f"file:/nih/{i}.png": 500 for i in range(40)}
    for batch in balanced_batches(sizes, 4):
        assert sum("/nih/" in u for u in batch) == 10


def test_batches_are_deterministic_and_never_empty():
    sizes = {"file:/a": 5, "file:/b": 5, "file:/c": 5}
    assert balanced_batches(sizes, 8) == balanced_batches(dict(reversed(sizes.items())), 8)
    assert all(balanced_batches(sizes, 8))
    assert balanced_batches({}, 4) == []


@pytest.mark.parametrize("name", ["plain.png", "with space.png", "odd#name?%20.png"])
def test_local_files_are_read_by_path_and_file_uri(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"pixels")
    for uri in (str(path), f"file:{path}", f"file://{path}"):
        assert blobs.read_blob(uri) == b"pixels", uri


def test_a_missing_file_reads_as_none(tmp_path):
    assert blobs.read_blob(f"file:{tmp_path / 'gone.png'}") is None


def test_s3_objects_are_read_and_a_missing_key_is_none(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        monkeypatch.setattr(blobs, "_clients", {})
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="raw")
        s3.put_object(Bucket="raw", Key="nih/images/00000261 007.png", Body=b"png bytes")
        assert blobs.read_blob("s3://raw/nih/images/00000261 007.png") == b"png bytes"
        assert blobs.read_blob("s3a://raw/nih/images/00000261 007.png") == b"png bytes"
        assert blobs.read_blob("s3://raw/nih/images/absent.png") is None


def test_schemes_executors_cannot_read_fail_before_any_task():
    with pytest.raises(ValueError, match=r"local files or s3:// objects, not hdfs:"):
        blobs.check_readable("hdfs://namenode/data/cxr")
    blobs.check_readable("s3://bucket/prefix")
    blobs.check_readable("file:/data/cxr")
