"""Decode any chest X-ray file and bring it to the paper's shape: RGB, size x size, uint8."""

import hashlib

import cv2
import numpy as np


class ImageRejected(Exception):
    """The file cannot be used; the message is the reason written to the manifest."""


def _check_complete(data):
    """cv2 decodes some truncated files without complaint; their end markers tell."""
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-64:]:
        raise ImageRejected("truncated JPEG: no end-of-image marker")
    if data[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" not in data[-64:]:
        raise ImageRejected("truncated PNG: no IEND chunk")


def _to_uint8(image):
    if image.dtype == np.uint16:
        return (image.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    if image.dtype != np.uint8:
        raise ImageRejected("unsupported pixel type {}".format(image.dtype))
    return image


def _gray_plane(image):
    """The one gray plane of a gray (or gray + alpha) image; None for colour."""
    if image.ndim == 2:
        return image
    return image[:, :, 0] if image.shape[2] in (1, 2) else None


def to_rgb8(image):
    """Any depth and channel layout cv2 returns (gray, BGR, BGRA, 16-bit) -> RGB uint8."""
    image = _to_uint8(image)
    gray = _gray_plane(image)
    if gray is not None:
        return cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
    channels = image.shape[2]
    if channels == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if channels == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    raise ImageRejected("unsupported channel count {}".format(channels))


def use_one_thread():
    """Spark already runs one task per core; OpenCV's own thread pool would only contend with it."""
    cv2.setNumThreads(1)


def _decode(data):
    if not data:
        raise ImageRejected("empty file")
    _check_complete(data)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageRejected("corrupt image: cannot be decoded as PNG or JPEG")
    return _to_uint8(image)


def decode_rgb(data):
    """PNG or JPEG file bytes -> RGB uint8 at the file's own size. Raises ImageRejected with the reason."""
    return to_rgb8(_decode(data))


def decode_rgb_and_gray(data):
    """File bytes -> (RGB, gray plane or None), uint8 at the file's own size. The gray plane is the
    file's own (most radiographs are stored gray); None for a colour file."""
    image = _decode(data)
    return to_rgb8(image), _gray_plane(image)


def resize_rgb(rgb, size):
    """RGB uint8 -> (size, size, 3): area averaging when shrinking, linear when enlarging."""
    interpolation = cv2.INTER_AREA if min(rgb.shape[:2]) >= size else cv2.INTER_LINEAR
    return cv2.resize(rgb, (size, size), interpolation=interpolation)


def decode_and_resize(data, size):
    """File bytes -> (size, size, 3) RGB uint8. Raises ImageRejected with the reason."""
    return resize_rgb(decode_rgb(data), size)


def content_digest(data):
    return hashlib.sha256(data).hexdigest()
