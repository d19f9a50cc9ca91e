"""`cxr predict` on real files: the sample's PNG/JPEG, the real CR DICOM and its variants, refusals, outputs."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import tarfile

import boto3
import cv2
import numpy as np
import pydicom
import pytest
from moto import mock_aws
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian

from jobs.cli import main as cxr
from jobs.contracts.operating_point import OperatingPoint, save_operating_point
from jobs.data.reader import open_dataset
from jobs.etl.blobs import read_blob
from jobs.etl.imaging import ImageRejected
from jobs.prediction.dicom import decode_dicom
from jobs.prediction.predict import NOTICE
from jobs.prediction.preprocess import prepare
from tests.conftest import ROOT, SMALL_IMAGE_SIZE
from tests.contract_models import evaluated_experiment

pytestmark = pytest.mark.slow

DICOM_DIR = ROOT.parent / "shared" / "data" / "dicom"
CR_PA = DICOM_DIR / "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm"
MARKED_MONOCHROME1 = DICOM_DIR / "Fake_MONOHR1.dcm"
CLASSES = ("COVID-19", "Normal", "Pneumonia")


@pytest.fixture(scope="module")
def experiment(small_dataset, tmp_path_factory):
    return evaluated_experiment(small_dataset, tmp_path_factory.mktemp("evaluation"))


@pytest.fixture(scope="module")
def model_dir(experiment):
    return experiment / "models" / "small_cnn"


@pytest.fixture(scope="module")
def cr_dicom():
    if not CR_PA.exists():
        pytest.skip(f"the real DICOM files are absent at {DICOM_DIR}")
    return CR_PA


def _predict(model, inputs, out, *extra) -> tuple[int, list[dict]]:
    code = cxr(["predict", f"--model={model}", *map(str, inputs), f"--output={out}", *extra])
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    return code, records


def _variant(path, target, **changes) -> bytes:
    """The real DICOM with header fields changed (value None deletes the field), written to ``target``."""
    ds = pydicom.dcmread(path)
    for keyword, value in changes.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    ds.save_as(target)
    return target.read_bytes()


def _as_chest(name: str, target, **changes) -> bytes:
    """One of pydicom's test files (not chest X-rays) with a header that says chest radiograph."""
    return _variant(get_testdata_file(name), target, Modality="DX", BodyPartExamined="CHEST", **changes)


def _inverted_monochrome1(path, target):
    """The same radiograph stored the MONOCHROME1 way (0 = white), uncompressed: a real inverted file."""
    ds = pydicom.dcmread(path)
    ds.PixelData = (255 - ds.pixel_array).astype(np.uint8).tobytes()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.save_as(target, enforce_file_format=True)
    return target


def test_predict_gives_evaluates_probabilities(experiment, model_dir, tmp_path):
    """The sample's test images, predicted from their files, score as `cxr evaluate` scored the ETL's rows."""
    with (experiment / "experiment" / "small_cnn" / "predictions.csv").open() as handle:
        rows = [row for row in csv.DictReader(handle) if row["set"] == "test"]
    code, records = _predict(model_dir, [row["original_path"] for row in rows], tmp_path / "out")
    assert code == 0 and len(records) == len(rows) > 10
    for row, record in zip(rows, records, strict=True):
        assert record["path"] == row["original_path"] and record["status"] == "scored", record
        for c in CLASSES:
            assert record["probabilities"][c] == pytest.approx(float(row[f"p_{c}"]), abs=1e-5), row


def test_prepared_pixels_are_the_etls(small_dataset):
    """The shared preprocessing gives, from each test file, exactly the uint8 pixels the ETL stored for it."""
    test = open_dataset(small_dataset).load("test", columns=("image", "original_path"))
    for stored, path in zip(test["image"], test["original_path"], strict=True):
        prepared = prepare(read_blob(path), path, SMALL_IMAGE_SIZE)
        np.testing.assert_array_equal(prepared.image, stored, err_msg=path)


def test_monochrome1_is_inverted(cr_dicom, tmp_path):
    """The file marked MONOCHROME1 holds the same pixel values, so a correct reader shows their negative."""
    gray, steps = decode_dicom(cr_dicom.read_bytes())
    marked, marked_steps = decode_dicom(MARKED_MONOCHROME1.read_bytes())
    assert "MONOCHROME1 inverted" in marked_steps and "MONOCHROME1 inverted" not in steps
    np.testing.assert_array_equal(marked, 255 - gray)
    stored_inverted, _ = decode_dicom(_inverted_monochrome1(cr_dicom, tmp_path / "m1.dcm").read_bytes())
    np.testing.assert_array_equal(stored_inverted, gray)


def test_one_radiograph_stored_both_ways_scores_the_same(cr_dicom, model_dir, tmp_path):
    inverted = _inverted_monochrome1(cr_dicom, tmp_path / "m1.dcm")
    code, (first, second) = _predict(model_dir, [cr_dicom, inverted], tmp_path / "out")
    assert code == 0 and first["status"] == second["status"] == "scored"
    for c in CLASSES:
        assert first["probabilities"][c] == pytest.approx(second["probabilities"][c], abs=1e-6)
    assert "JPEG Baseline" in first["preprocessing"]


@pytest.mark.parametrize(
    "compressed",
    [
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_bigendian.dcm",
    ],
)
def test_lossless_transfer_syntaxes_decode_like_the_uncompressed_file(compressed, tmp_path):
    """pydicom's 16-bit test image: each lossless encoding gives the pixels of the uncompressed one."""
    plain, _ = decode_dicom(_as_chest("MR_small.dcm", tmp_path / "a.dcm"))
    other, steps = decode_dicom(_as_chest(compressed, tmp_path / "b.dcm"))
    np.testing.assert_array_equal(other, plain)
    assert "16 bits" in steps[0] and "window" in steps


def test_window_and_modality_lut_are_applied(tmp_path):
    """MR_small has a window narrower than its values: pixels outside it saturate, as a viewer shows them."""
    windowed, steps = decode_dicom(_as_chest("MR_small.dcm", tmp_path / "w.dcm"))
    raw, raw_steps = decode_dicom(
        _as_chest(
            "MR_small.dcm",
            tmp_path / "r.dcm",
            WindowCenter=None,
            WindowWidth=None,
        )
    )
    assert "window" in steps and "window" not in raw_steps
    saturated = np.mean((windowed == 0) | (windowed == 255))
    assert saturated > np.mean((raw == 0) | (raw == 255)) + 0.05
    ct, ct_steps = decode_dicom(_as_chest("CT_small.dcm", tmp_path / "ct.dcm"))
    assert "modality LUT" in ct_steps and ct.dtype == np.uint8 and ct.max() == 255 and ct.min() == 0


@pytest.mark.parametrize("name", ["JPGExtended.dcm", "JPEG2000.dcm"])
def test_lossy_jpeg_transfer_syntaxes_decode(name, tmp_path):
    """12-bit JPEG Extended and JPEG 2000 (pydicom's test files): decoded through pylibjpeg."""
    gray, steps = decode_dicom(_as_chest(name, tmp_path / "x.dcm"))
    assert gray.shape == (1024, 256) and gray.std() > 10
    assert ("JPEG Extended" if "JPG" in name else "JPEG 2000") in steps[0]


def _refusal_cases(cr_dicom, sample, folder) -> dict[str, str]:
    """File name -> the start of the reason it must be refused with; every file is real or made from one."""
    folder.mkdir()
    _variant(cr_dicom, folder / "lateral.dcm", ViewPosition="LL")
    _variant(cr_dicom, folder / "ct.dcm", Modality="CT")
    _variant(cr_dicom, folder / "knee.dcm", BodyPartExamined="KNEE")
    _variant(cr_dicom, folder / "rgb.dcm", PhotometricInterpretation="RGB")
    _variant(cr_dicom, folder / "report.dcm", PixelData=None)
    data = cr_dicom.read_bytes()
    (folder / "truncated.dcm").write_bytes(data[: len(data) // 2])
    shutil.copy(get_testdata_file("SC_rgb_jpeg.dcm"), folder / "colour.dcm")
    jpeg = next(p for p in sorted((sample / "cohen" / "images").iterdir()) if p.suffix == ".jpg")
    (folder / "truncated.jpg").write_bytes(jpeg.read_bytes()[:-4000])
    png = next(p for p in sorted((sample / "nih" / "images").iterdir()) if p.suffix == ".png")
    small = cv2.resize(cv2.imread(str(png), cv2.IMREAD_UNCHANGED), (40, 40), interpolation=cv2.INTER_AREA)
    cv2.imwrite(str(folder / "small.png"), small)
    (folder / "notes.png").write_bytes(b"not an image at all\n")
    (folder / "readme.txt").write_text("skipped: not an image name\n")
    return {
        "lateral.dcm": "not a frontal view: DICOM ViewPosition 'LL'",
        "ct.dcm": "not a radiograph: DICOM Modality 'CT'",
        "knee.dcm": "not a chest: DICOM BodyPartExamined 'KNEE'",
        "rgb.dcm": "colour DICOM: PhotometricInterpretation 'RGB'",
        "report.dcm": "no pixel data",
        "truncated.dcm": "truncated DICOM",
        "colour.dcm": "not a radiograph: DICOM Modality 'OT'",
        "truncated.jpg": "truncated JPEG",
        "small.png": "image too small: 40x40 px",
        "notes.png": "corrupt image",
    }


def test_refusals_carry_a_reason_and_the_rest_go_on(cr_dicom, sample, model_dir, tmp_path, capsys):
    expected = _refusal_cases(cr_dicom, sample, tmp_path / "inputs")
    good = sorted((sample / "nih" / "images").iterdir())[:2]
    code, records = _predict(model_dir, [tmp_path / "inputs", cr_dicom, *good], tmp_path / "out")
    assert code == 0
    by_name = {record["path"].rsplit("/", 1)[-1]: record for record in records}
    for name, reason in expected.items():
        assert by_name[name]["status"] == "refused" and by_name[name]["reason"].startswith(reason), by_name[
            name
        ]
        assert "probabilities" not in by_name[name]
    assert [by_name[p.name]["status"] for p in (cr_dicom, *good)] == ["scored"] * 3
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith(f"cxr predict: 3 scored, {len(expected)} refused (")
    assert "(2x not a radiograph; " in line and "; 1x not a frontal view;" in line  # grouped by kind
    assert "1 non-image file(s) in folders skipped (1x .txt)" in line
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["scored"] == 3 and sum(summary["refused"].values()) == len(expected)


def test_outputs_name_the_file_the_model_and_the_rule(sample, model_dir, experiment, tmp_path):
    images = sorted((sample / "cohen" / "images").iterdir())[:3]
    code, records = _predict(model_dir, images, tmp_path / "out")
    assert code == 0
    with (tmp_path / "out" / "predictions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    other_code, other = _predict(experiment / "models" / "constant", images[:1], tmp_path / "other")
    assert other_code == 0 and other[0]["model_id"] != records[0]["model_id"]
    for path, record, row in zip(images, records, rows, strict=True):
        assert record["sha256"] == row["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
        assert record["notice"] == row["notice"] == NOTICE
        assert record["decision_rule"].startswith("argmax: no operating point")
        probabilities = [record["probabilities"][c] for c in CLASSES]
        assert record["decision"] == row["decision"] == CLASSES[int(np.argmax(probabilities))]
        assert [float(row[f"p_{c}"]) for c in CLASSES] == probabilities
        assert row["model_id"] == record["model_id"] and len(record["model_id"]) == 16
        assert "resize" in record["preprocessing"] and record["preprocessing"] == row["preprocessing"]


def test_operating_point_decides(sample, model_dir, tmp_path):
    """A threshold of 0 on COVID-19 makes every decision COVID-19, whatever the argmax says."""
    evaluation = tmp_path / "evaluation"
    evaluation.mkdir()
    save_operating_point(OperatingPoint(rule="test", threshold=0.0, class_names=CLASSES), evaluation)
    images = sorted((sample / "nih" / "images").iterdir())[:4]
    code, records = _predict(model_dir, images, tmp_path / "out", f"--operating-point={evaluation}")
    assert code == 0 and [r["decision"] for r in records] == ["COVID-19"] * 4
    assert records[0]["decision_rule"].startswith("COVID-19 if p >= 0 (test")
    wrong = tmp_path / "binary"
    wrong.mkdir()
    save_operating_point(
        OperatingPoint(rule="t", threshold=0.5, class_names=("COVID-19", "Non-COVID")), wrong
    )
    assert (
        cxr(
            [
                "predict",
                f"--model={model_dir}",
                str(images[0]),
                f"--output={tmp_path / 'x'}",
                f"--operating-point={wrong}",
            ]
        )
        == 2
    )


def test_model_archive_and_s3_sources(sample, model_dir, tmp_path, monkeypatch):
    """SageMaker's model.tar.gz, locally and in S3, and an s3:// input prefix give the folder's predictions."""
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name in ("model.keras", "config.json", "history.json"):
            tar.add(model_dir / name, arcname=name)
    images = sorted((sample / "nih" / "images").iterdir())[:2]
    _, expected = _predict(model_dir, images, tmp_path / "folder")
    _, from_archive = _predict(archive, images, tmp_path / "archive")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="models")
        s3.create_bucket(Bucket="xrays")
        s3.upload_file(str(archive), "models", "job/output/model.tar.gz")
        for image in images:
            s3.upload_file(str(image), "xrays", f"in/{image.name}")
        s3.put_object(Bucket="xrays", Key="in/listing.csv", Body=b"a,b\n")
        code, from_s3 = _predict("s3://models/job/output/model.tar.gz", ["s3://xrays/in/"], tmp_path / "s3")
    assert code == 0
    assert [r["probabilities"] for r in from_archive] == [r["probabilities"] for r in expected]
    assert [r["probabilities"] for r in from_s3] == [r["probabilities"] for r in expected]
    assert [r["path"] for r in from_s3] == [f"s3://xrays/in/{image.name}" for image in images]
    assert from_s3[0]["model_id"] == expected[0]["model_id"]


def test_gradcam_overlays(sample, model_dir, tmp_path):
    images = sorted((sample / "nih" / "images").iterdir())[:2]
    code, records = _predict(model_dir, images, tmp_path / "out", "--gradcam")
    assert code == 0
    for record in records:
        overlay = cv2.imread(str(tmp_path / "out" / record["gradcam"]))
        assert overlay is not None and overlay.shape == (64, 64, 3)


def test_a_missing_model_is_an_error_naming_it(tmp_path, capsys):
    assert cxr(["predict", f"--model={tmp_path / 'nope'}", "x.png", f"--output={tmp_path / 'o'}"]) == 2
    assert "nope: no such file or folder" in capsys.readouterr().err


def test_unreadable_bytes_are_refused_not_raised():
    with pytest.raises(ImageRejected, match="unreadable DICOM"):
        decode_dicom(b"\0" * 64)
