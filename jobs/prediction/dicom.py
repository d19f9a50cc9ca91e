"""DICOM -> 8-bit grayscale, and the header checks that keep a chest-X-ray classifier to chest X-rays.

The pixel path follows the DICOM display pipeline: modality LUT (rescale slope/intercept), then VOI LUT
or window (when the file has one), then MONOCHROME1 inverted so that 0 is black as in MONOCHROME2.
The result is stretched linearly from its own minimum and maximum to 0..255. The stretch makes the
output independent of the stored bit depth (8 to 16 bits) and of the window's output range.
"""

from __future__ import annotations

import io
import warnings

import numpy as np

from jobs.etl.imaging import ImageRejected

RADIOGRAPH_MODALITIES = ("CR", "DX")
CHEST_BODY_PARTS = ("CHEST", "THORAX")
FRONTAL_VIEWS = ("PA", "AP")
GRAYSCALE = ("MONOCHROME1", "MONOCHROME2")


def looks_like_dicom(data: bytes, name: str) -> bool:
    """The DICOM preamble's magic, or a .dcm/.dicom name (files written without the preamble)."""
    return data[128:132] == b"DICM" or name.lower().endswith((".dcm", ".dicom"))


def _text(ds, keyword: str) -> str:
    return str(ds.get(keyword, "") or "").strip().upper()


def check_header(ds) -> None:
    """Refuses a file whose header says it is not a single-frame grayscale frontal chest radiograph.

    Absent fields are accepted (many exports drop them); present ones must agree.
    """
    modality = _text(ds, "Modality")
    if modality and modality not in RADIOGRAPH_MODALITIES:
        raise ImageRejected(
            f"not a radiograph: DICOM Modality {modality!r}, expected one of {list(RADIOGRAPH_MODALITIES)}"
        )
    body_part = _text(ds, "BodyPartExamined")
    if body_part and body_part not in CHEST_BODY_PARTS:
        raise ImageRejected(f"not a chest: DICOM BodyPartExamined {body_part!r}")
    view = _text(ds, "ViewPosition")
    if view and view not in FRONTAL_VIEWS:
        raise ImageRejected(
            f"not a frontal view: DICOM ViewPosition {view!r}, expected PA or AP "
            "(lateral and other views give false positives)"
        )
    if "PixelData" not in ds:
        raise ImageRejected("no pixel data: the DICOM is not an image (a report, structured report or other)")
    photometric = _text(ds, "PhotometricInterpretation")
    if photometric not in GRAYSCALE or int(ds.get("SamplesPerPixel", 1)) != 1:
        raise ImageRejected(
            f"colour DICOM: PhotometricInterpretation {photometric or 'missing'!r}, but a radiograph is "
            f"grayscale ({' or '.join(GRAYSCALE)}); colour images are photos or screenshots"
        )
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames != 1:
        raise ImageRejected(f"multi-frame DICOM: {frames} frames, a radiograph has one")
    bits = int(ds.get("BitsStored", 0) or 0)
    if not 8 <= bits <= 16:
        raise ImageRejected(f"unsupported bit depth: DICOM BitsStored {bits}, supported are 8 to 16 bits")


def decode_dicom(data: bytes) -> tuple[np.ndarray, list[str]]:
    """DICOM bytes -> (H, W) uint8 gray and the steps applied. Raises ImageRejected with the reason."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    forced = data[128:132] != b"DICM"
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = pydicom.dcmread(io.BytesIO(data), force=forced)
    except (InvalidDicomError, EOFError, ValueError, OSError, KeyError, TypeError) as exc:
        raise ImageRejected(f"unreadable DICOM: {exc}") from None
    if "PixelData" not in ds:
        if forced:
            raise ImageRejected("unreadable DICOM: no 'DICM' marker at byte 128 and no pixel data found")
        if caught:  # pydicom stops at a cut element with only a warning
            raise ImageRejected(f"truncated DICOM: {caught[0].message}")
        if not len(ds):
            raise ImageRejected("truncated DICOM: no data elements after the file meta header")
    check_header(ds)
    syntax = ds.file_meta.get("TransferSyntaxUID")
    syntax_name = syntax.name if syntax is not None else "unknown transfer syntax"
    try:
        pixels = ds.pixel_array
    except Exception as exc:  # pydicom's handlers raise many types; each is a refusal with its message
        raise ImageRejected(f"cannot decode DICOM pixel data ({syntax_name}): {exc}") from None
    steps = [f"pydicom ({syntax_name}, {int(ds.BitsStored)} bits)"]
    values = np.asarray(apply_modality_lut(pixels, ds), dtype=np.float64)
    if "RescaleSlope" in ds or "ModalityLUTSequence" in ds:
        steps.append("modality LUT")
    if "VOILUTSequence" in ds or "WindowCenter" in ds:
        values = np.asarray(apply_voi_lut(values, ds), dtype=np.float64)
        steps.append("VOI LUT" if "VOILUTSequence" in ds else "window")
    low, high = float(values.min()), float(values.max())
    if high <= low:
        raise ImageRejected(f"blank image: every DICOM pixel is {low:g}")
    if _text(ds, "PhotometricInterpretation") == "MONOCHROME1":
        values = high + low - values
        steps.append("MONOCHROME1 inverted")
    steps.append("stretched to 0..255")
    gray = np.rint((values - low) * (255.0 / (high - low))).astype(np.uint8)
    return gray, steps
