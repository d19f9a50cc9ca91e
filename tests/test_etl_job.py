"""The ETL end to end on the real sample, with a real local SparkSession."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from jobs.data.reader import open_dataset
from jobs.etl import spark_job
from jobs.etl.labels import CLASSES
from jobs.etl.sources import decode_text


def run_etl(spark, *args: str) -> int:
    return spark_job.main(list(args), session_factory=lambda: spark)


def read_rows(root: Path) -> list[dict]:
    table = pq.read_table(root / "data")
    return table.to_pylist()


@pytest.fixture(scope="module")
def full_size(spark, sample, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("etl224") / "ds"
    assert (
        run_etl(
            spark, f"--source=cohen={sample / 'cohen'}", f"--source=nih={sample / 'nih'}", f"--output={out}"
        )
        == 0
    )
    return out


def test_manifest_counts_match_the_parquet_rows(full_size):
    manifest = json.loads((full_size / "manifest.json").read_text())
    rows = read_rows(full_size)
    assert manifest["counts"]["inputs"] == 375
    assert manifest["counts"]["images"] == len(rows) == 375
    for split, n in manifest["counts"]["by_split"].items():
        assert n == sum(1 for r in rows if r["split"] == split)
    for label, n in manifest["counts"]["by_class"].items():
        assert n == sum(1 for r in rows if r["label"] == label)
    assert manifest["counts"]["by_source"] == {"cohen": 120, "nih": 255}


def test_every_image_is_224_rgb_uint8_and_labels_are_consistent(full_size):
    for row in read_rows(full_size):
        assert (row["height"], row["width"]) == (224, 224)
        assert len(row["image"]) == 224 * 224 * 3
        assert CLASSES[row["label_index"]] == row["label"]
    dataset = open_dataset(full_size)
    test = dataset.load("test")
    assert test["image"].shape[1:] == (224, 224, 3) and test["image"].dtype == np.uint8


def test_splits_are_patient_disjoint_and_stratified(full_size):
    rows = read_rows(full_size)
    split_of = {}
    for row in rows:
        assert split_of.setdefault(row["patient_id"], row["split"]) == row["split"], row["patient_id"]
    for label in CLASSES:
        of_class = [r for r in rows if r["label"] == label]
        test_share = sum(r["split"] == "test" for r in of_class) / len(of_class)
        assert 0.12 < test_share < 0.28, (label, test_share)


def test_two_runs_give_the_same_fingerprint_and_rows(spark, sample, small_dataset, tmp_path):
    again = tmp_path / "again"
    assert (
        run_etl(
            spark,
            f"--source=cohen={sample / 'cohen'}",
            f"--source=nih={sample / 'nih'}",
            f"--output={again}",
            "--image-size=64",
        )
        == 0
    )
    first = json.loads((small_dataset / "manifest.json").read_text())
    second = json.loads((again / "manifest.json").read_text())
    assert first["fingerprint"] == second["fingerprint"]
    key = lambda r: r["original_path"]  # noqa: E731
    assert sorted(read_rows(small_dataset), key=key) == sorted(read_rows(again), key=key)


def test_row_order_does_not_depend_on_how_many_tasks_decoded(spark, sample, tmp_path):
    """Cores set the decode tasks; the files and their row order (hence seeded training) must not move."""
    orders = []
    for tasks in (1, 7):
        out = tmp_path / f"tasks{tasks}"
        code = run_etl(
            spark,
            f"--source=cohen={sample / 'cohen'}",
            f"--source=nih={sample / 'nih'}",
            f"--output={out}",
            "--image-size=64",
            "--file-mb=1",
            f"--partitions={tasks}",
        )
        assert code == 0
        assert len(list((out / "data" / "split=train").glob("*.parquet"))) > 1
        orders.append([(r["original_path"], r["sha256"]) for r in pq.read_table(out / "data").to_pylist()])
    assert orders[0] == orders[1]


@pytest.fixture(scope="module")
def broken_sources(sample, tmp_path_factory) -> tuple[Path, Path, Path]:
    """Real files made bad on purpose: truncated, corrupt, missing, duplicated, unknown label."""
    base = tmp_path_factory.mktemp("broken")
    cohen, nih, folders = base / "cohen", base / "nih", base / "folders"
    (cohen / "images").mkdir(parents=True)
    text = decode_text((sample / "cohen" / "metadata.csv").read_bytes(), "metadata.csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    keep = [r for r in rows if r["finding"] == "COVID-19"][:14]  # the sample also has other findings
    for row in keep:
        shutil.copy(sample / "cohen" / "images" / row["filename"], cohen / "images" / row["filename"])
    names = [r["filename"] for r in keep]
    data = (cohen / "images" / names[0]).read_bytes()
    (cohen / "images" / names[0]).write_bytes(data[: len(data) // 2])  # truncated
    corrupt = bytearray((cohen / "images" / names[1]).read_bytes())
    corrupt[2:600] = b"\x00" * 598
    (cohen / "images" / names[1]).write_bytes(bytes(corrupt))  # corrupt
    (cohen / "images" / names[2]).unlink()  # missing
    duplicate = dict(keep[3], filename="copy-of-" + names[3], patientid="9999")
    shutil.copy(cohen / "images" / names[3], cohen / "images" / duplicate["filename"])
    with open(cohen / "metadata.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        writer.writeheader()
        writer.writerows([*keep, duplicate])
    (nih / "images").mkdir(parents=True)
    lines = (sample / "nih" / "Data_Entry_2017.csv").read_text().splitlines()
    normal = [line for line in lines[1:] if ",No Finding," in line][:12]
    pneumonia = [line for line in lines[1:] if "Pneumonia" in line][:12]
    for line in normal + pneumonia:
        name = line.split(",")[0]
        shutil.copy(sample / "nih" / "images" / name, nih / "images" / name)
    unknown = pneumonia[0].split(",")
    unknown[0], unknown[1] = "00099999_000.png", ""
    (nih / "Data_Entry_2017.csv").write_text("\r\n".join([lines[0], *normal, *pneumonia, ",".join(unknown)]))
    shutil.copy(sample / "nih" / "images" / normal[0].split(",")[0], nih / "images" / "00099999_000.png")
    (folders / "cats").mkdir(parents=True)
    shutil.copy(sample / "nih" / "images" / normal[0].split(",")[0], folders / "cats" / "tabby.png")
    return cohen, nih, folders


def test_each_bad_input_is_rejected_with_its_reason_and_nothing_else_is_lost(spark, broken_sources, tmp_path):
    cohen, nih, folders = broken_sources
    out = tmp_path / "out"
    code = run_etl(
        spark,
        f"--source=cohen={cohen}",
        f"--source=nih={nih}",
        f"--source=folders={folders}",
        f"--output={out}",
        "--image-size=32",
        "--min-images-per-class=5",
    )
    assert code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    reasons = {Path(r["path"]).name: r["reason"] for r in manifest["rejected"]}
    names = sorted(p.name for p in (cohen / "images").iterdir())
    assert manifest["rejected_by_reason"] == {
        "corrupt image": 1,
        "duplicate": 1,
        "missing file": 1,
        "truncated JPEG": 1,
        "unknown label": 2,
    } or manifest["rejected_by_reason"] == {
        "corrupt image": 1,
        "duplicate": 1,
        "missing file": 1,
        "truncated PNG": 1,
        "unknown label": 2,
    }
    assert reasons["tabby.png"].startswith("unknown label")
    assert reasons["00099999_000.png"].startswith("unknown label")
    assert any(r.startswith("duplicate: same bytes as") for r in reasons.values())
    written = {Path(r["original_path"]).name for r in read_rows(out)}
    assert len(written) == manifest["counts"]["images"] == 14 - 3 + 24  # 3 cohen files bad, dup dropped
    assert not written & set(reasons)
    assert len(names) == 14  # 13 originals left + the duplicate copy


def test_a_class_below_the_minimum_stops_with_a_clear_message(spark, broken_sources, tmp_path, capsys):
    cohen, nih, _ = broken_sources
    code = run_etl(
        spark,
        f"--source=cohen={cohen}",
        f"--source=nih={nih}",
        f"--output={tmp_path / 'o'}",
        "--image-size=32",
        "--min-images-per-class=20",
    )
    assert code == spark_job.EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "COVID-19 has 11" in err and "--min-images-per-class=20" in err
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_a_missing_metadata_file_names_the_file(spark, tmp_path, capsys):
    (tmp_path / "nih" / "images").mkdir(parents=True)
    code = run_etl(spark, f"--source=nih={tmp_path / 'nih'}", f"--output={tmp_path / 'o'}")
    assert code == spark_job.EXIT_BAD_INPUT
    assert "Data_Entry_2017.csv: metadata file not found" in capsys.readouterr().err


def test_bad_arguments_exit_non_zero(capsys):
    assert spark_job.main(["--source=dicom=/x", "--output=/tmp/x"]) == spark_job.EXIT_BAD_INPUT
    assert "KIND=DIR" in capsys.readouterr().err
