"""Decoding every colour mode and depth in the real sample; truncated and corrupt files are refused."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from jobs.etl import decoding
from jobs.etl.imaging import ImageRejected, decode_and_resize, decode_rgb, decode_rgb_and_gray
from jobs.etl.near_duplicates import BASIS_SIDE, hash_basis

FULL_SIZE_AND_ODD_MODES = [
    "cohen/images/covid-19-pneumonia-15-PA.jpg",  # 2800x3368 JPEG RGB
    "cohen/images/23E99E2E-447C-46E5-8EB2-D35D12473C39.png",  # RGBA, 16 bits per channel
    "cohen/images/tpmd200203f2-a.png",  # palette
    "cohen/images/all14238-fig-0001-m-b.jpg",  # JPEG grayscale
    "nih/images/00001054_002.png",  # NIH RGBA quirk
    "nih/images/00000261_007.png",  # PNG grayscale 1024x1024
]


@pytest.mark.parametrize("relative", FULL_SIZE_AND_ODD_MODES)
def test_real_files_of_every_mode_decode_to_rgb_uint8(sample, relative):
    image = decode_and_resize((sample / relative).read_bytes(), 224)
    assert image.shape == (224, 224, 3)
    assert image.dtype == np.uint8
    assert image.std() > 10  # a radiograph, not a blank


@pytest.mark.parametrize("relative", FULL_SIZE_AND_ODD_MODES)
def test_every_array_the_etl_may_hash_gives_one_basis(sample, relative):
    """The ETL hashes its own 224 px output, or at other sizes a gray file's plane, or the RGB: the
    hashes must not depend on which of them it had at hand (nor on the dataset's image size)."""
    data = (sample / relative).read_bytes()
    rgb, gray = decode_rgb_and_gray(data)
    assert np.array_equal(rgb, decode_rgb(data))
    basis = hash_basis(rgb)
    assert basis.shape == (BASIS_SIDE, BASIS_SIDE) and basis.dtype == np.uint8
    assert np.array_equal(hash_basis(decode_and_resize(data, BASIS_SIDE)), basis)
    if gray is not None:
        assert np.array_equal(hash_basis(gray), basis)


def test_colour_files_have_no_gray_plane(sample):
    assert decode_rgb_and_gray((sample / FULL_SIZE_AND_ODD_MODES[0]).read_bytes())[1] is None
    assert decode_rgb_and_gray((sample / FULL_SIZE_AND_ODD_MODES[3]).read_bytes())[1] is not None


def test_grayscale_becomes_three_equal_channels(sample):
    image = decode_and_resize((sample / "nih/images/00000261_007.png").read_bytes(), 64)
    assert np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2])


def test_sixteen_bit_grayscale_matches_its_eight_bit_source(sample):
    eight = cv2.imread(str(sample / "nih/images/00000261_007.png"), cv2.IMREAD_UNCHANGED)
    ok, sixteen = cv2.imencode(".png", eight.astype(np.uint16) * 257)
    assert ok
    a = decode_and_resize(sixteen.tobytes(), 64).astype(int)
    b = decode_and_resize((sample / "nih/images/00000261_007.png").read_bytes(), 64).astype(int)
    assert np.abs(a - b).max() <= 1


def test_channel_order_is_rgb(sample):
    red = np.zeros((40, 40, 3), np.uint8)
    red[..., 2] = 255  # BGR for cv2
    ok, png = cv2.imencode(".png", red)
    assert decode_and_resize(png.tobytes(), 32)[0, 0].tolist() == [255, 0, 0]


@pytest.mark.parametrize("relative", ["cohen/images/02b76460.jpg", "nih/images/00000261_007.png"])
def test_truncated_files_are_rejected(sample, relative):
    data = (sample / relative).read_bytes()
    with pytest.raises(ImageRejected, match="truncated"):
        decode_and_resize(data[: len(data) // 2], 64)


def test_corrupt_bytes_are_rejected(sample):
    data = bytearray((sample / "cohen/images/02b76460.jpg").read_bytes())
    data[2:400] = b"\x00" * 398
    with pytest.raises(ImageRejected, match="corrupt"):
        decode_and_resize(bytes(data), 64)


@pytest.mark.parametrize("relative", FULL_SIZE_AND_ODD_MODES)
def test_an_etl_at_any_image_size_stores_the_same_hashes_and_thumbnail(sample, relative):
    """Datasets of two image sizes are audited against each other: their near-duplicate columns agree."""
    uri = str(sample / relative)
    at_paper_size = decoding.decode_one(uri, BASIS_SIDE, hashing=True)
    assert at_paper_size.reason is None and len(at_paper_size.thumbnail) == 64 * 64
    for size in (128, 299):
        other = decoding.decode_one(uri, size, hashing=True)
        assert (other.phash, other.thumbnail) == (at_paper_size.phash, at_paper_size.thumbnail), size
    assert decoding.decode_one(uri, 128, hashing=False)[4:] == (None, None)
