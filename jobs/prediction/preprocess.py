"""The one preprocessing of a file for a model: the ETL's decode, RGB and resize; DICOM through pydicom.

PNG and JPEG go through ``jobs.etl.imaging`` unchanged, so an image predicted here gets the pixels the
ETL stored for it, and the model's reader does the rest (x / 255, ``jobs.data.reader.to_float``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from jobs.etl.imaging import ImageRejected, decode_rgb, resize_rgb
from jobs.prediction.dicom import decode_dicom, looks_like_dicom

DEFAULT_MIN_SIDE = 128


@dataclass(frozen=True)
class Prepared:
    """A file ready for the model: (size, size, 3) uint8 RGB and what was done to get there."""

    image: np.ndarray
    steps: str


def prepare(data: bytes, name: str, size: int, min_side: int = DEFAULT_MIN_SIDE) -> Prepared:
    """File bytes -> the model's input pixels (uint8; the model's reader scales by 1/255).

    Raises ImageRejected with the reason for a file the model must not score.
    """
    if looks_like_dicom(data, name):
        gray, steps = decode_dicom(data)
        rgb = cv2.cvtColor(gray, cv2.COLOR_GRAY2RGB)
        steps.append("gray to RGB")
    else:
        rgb = decode_rgb(data)
        steps = ["OpenCV decode (PNG/JPEG)", "RGB 8 bits"]
    height, width = rgb.shape[:2]
    if min(height, width) < min_side:
        raise ImageRejected(
            f"image too small: {width}x{height} px, a chest radiograph needs at least {min_side} px "
            "a side (--min-side)"
        )
    steps += [f"resize {width}x{height} to {size}x{size}", "x/255"]
    return Prepared(resize_rgb(rgb, size), "; ".join(steps))
