"""Data you can trust, end to end on real images: near-duplicates across sources kept in one split,
one file under two patient ids, within-source labels, a test-only external set, and the leak audit."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import pyarrow.parquet as pq
import pytest

from jobs.data import audit
from jobs.etl import spark_job
from jobs.etl.manifest import summary_lines
from jobs.experiment.arguments import etl_arguments, source_uris
from jobs.experiment.schema import load_experiment

ROOT = Path(__file__).resolve().parents[1]
SIZE = "--image-size=32"


def _covid_files(sample: Path) -> list[str]:
    with open(sample / "cohen" / "metadata.csv", newline="", encoding="utf-8") as f:
        return sorted(
            {r["filename"] for r in csv.DictReader(f) if r["finding"] == "COVID-19" and r["view"] == "PA"}
        )


def _write_changed(source: Path, target: str, change: str) -> None:
    """``target`` + ``.jpg`` or ``.png``: the source re-encoded, resized by a few pixels, or cropped 2%."""
    image = cv2.imread(str(source), cv2.IMREAD_COLOR)
    if change == "jpeg70":
        cv2.imwrite(target + ".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 70])
    elif change == "resized":
        cv2.imwrite(target + ".png", cv2.resize(image, (image.shape[1] - 5, image.shape[0] - 3)))
    else:
        dy, dx = image.shape[0] // 50, image.shape[1] // 50
        cv2.imwrite(target + ".png", image[dy:-dy, dx:-dx])


@pytest.fixture(scope="module")
def trust(spark, sample, tmp_path_factory) -> dict[str, Path]:
    """Two ETL runs: Cohen with the within-source labels plus changed copies of 6 of its COVID-19
    images as another source; and a test-only external set of 3 re-encoded Cohen images."""
    base = tmp_path_factory.mktemp("trust")
    covid = _covid_files(sample)
    copies = base / "copies" / "COVID-19"
    copies.mkdir(parents=True)
    for name, change in zip(covid[:6], ["jpeg70", "resized", "cropped"] * 2, strict=True):
        _write_changed(sample / "cohen" / "images" / name, f"{copies}/copy-{change}-{name}", change)
    external = base / "external" / "COVID-19"
    external.mkdir(parents=True)
    for name in covid[10:13]:
        _write_changed(sample / "cohen" / "images" / name, f"{external}/ext-{name}", "jpeg70")
    exp = load_experiment(ROOT / "experiments" / "within-cohen.json")
    main, outside = base / "main", base / "outside"
    args = etl_arguments(exp, source_uris(exp, str(sample)), str(main))
    assert (
        spark_job.main([*args, f"--source=folders={base / 'copies'}", SIZE], session_factory=lambda: spark)
        == 0
    )
    code = spark_job.main(
        [
            f"--source=folders={base / 'external'}",
            f"--output={outside}",
            SIZE,
            "--test-only",
            "--min-images-per-class=1",
        ],
        session_factory=lambda: spark,
    )
    assert code == 0
    return {"main": main, "outside": outside, "base": base}


def _manifest(root: Path) -> dict:
    return json.loads((root / "manifest.json").read_text())


def test_changed_copies_in_another_source_are_grouped_with_their_original_in_one_split(trust):
    report = _manifest(trust["main"])["near_duplicates"]
    copies = {
        m["path"]: group for group in report["groups"] for m in group["members"] if m["source"] == "folders"
    }
    assert len(copies) == 6
    across = {frozenset((p["a"], p["b"])) for p in report["cross_source"]}
    for path, group in copies.items():
        original = Path(path).name.split("-", 2)[2].rsplit(".", 1)[0]
        members = {m["path"] for m in group["members"]}
        originals = [m for m in members if m.endswith("/cohen/images/" + original)]
        assert len(originals) == 1, path
        assert len({m["split"] for m in group["members"]}) == 1, group
        assert group["sources"] == ["cohen", "folders"]
        assert frozenset((originals[0], path)) in across  # the warning lists each copy with its original
    # Any other pair across sources joins a copy to an image judged one with its original: here Cohen
    # patient 253's radiographs of days 7 and 21 (similarity 0.92, a measured same-patient false match).
    for pair in across:
        (copy,) = [p for p in pair if p in copies]
        assert pair <= {m["path"] for m in copies[copy]["members"]}, pair
    warnings = [line for line in summary_lines(_manifest(trust["main"])) if "WARNING near-duplicates" in line]
    assert len(warnings) == len(across)
    assert all("cohen / folders" in w or "folders / cohen" in w for w in warnings)
    rows = pq.read_table(trust["main"] / "data", columns=["original_path", "phash", "split"]).to_pylist()
    split_of = {r["original_path"]: r["split"] for r in rows}
    assert all(len(r["phash"].split()) == 3 for r in rows)
    for path, group in copies.items():
        assert {split_of[m["path"]] for m in group["members"]} == {split_of[path]}


def test_one_file_under_two_patient_ids_is_one_image_and_one_split_group(trust):
    manifest = _manifest(trust["main"])
    merged = {tuple(m["patients"]): m for m in manifest["merged_patients"]}
    assert len(merged[("cohen:285", "cohen:339")]["because"]) == 3
    assert merged[("cohen:287", "cohen:340")]["because"] == [
        f"one file, several metadata records: {ROOT.parent / 'shared/data/cxr-sample/cohen/images/000001-27.jpg'}"
    ]
    rows = pq.read_table(trust["main"] / "data", columns=["original_path", "patient_id", "split"]).to_pylist()
    paths = [r["original_path"] for r in rows]
    assert len(paths) == len(set(paths))
    assert len({r["split"] for r in rows if r["patient_id"] in ("cohen:285", "cohen:339")}) == 1


def test_within_source_labels_map_cohen_pneumonias_and_leave_the_rest_out(trust):
    counts = _manifest(trust["main"])["counts"]
    # README: 48 non-COVID images, of which 5 "No Finding" and 3 ARDS are not pneumonias
    assert counts["by_split_class"]["train"]["Pneumonia"] > 0
    assert counts["by_class"] == {"COVID-19": 126, "Pneumonia": 40}


def test_a_test_only_dataset_has_one_class_all_in_test(trust):
    counts = _manifest(trust["outside"])["counts"]
    assert counts["by_split"] == {"train": 0, "validation": 0, "test": 3}
    assert counts["by_class"] == {"COVID-19": 3}


def test_audit_data_passes_clean_splits_and_fails_on_an_overlapping_external_set(trust, capsys):
    assert audit.main([str(trust["main"])]) == audit.EXIT_CLEAN
    out = trust["base"] / "audit.json"
    code = audit.main([str(trust["outside"]), f"--against={trust['main']}", f"--json={out}"])
    assert code == audit.EXIT_LEAK
    found = json.loads(out.read_text())["against"][0]["near_duplicates"]
    assert sorted(Path(p["a"]["path"]).name for p in found) == sorted(
        f"ext-{n}.jpg" for n in _covid_files(ROOT.parent / "shared/data/cxr-sample")[10:13]
    )
    assert "LEAK" in capsys.readouterr().out


def test_audit_data_refuses_a_dataset_hashed_by_another_version(trust, tmp_path, capsys):
    """Hashes of two definitions are not comparable: an old dataset must be rebuilt, not silently passed."""
    old = tmp_path / "old"
    shutil.copytree(trust["outside"], old)
    manifest = _manifest(old)
    manifest["near_duplicates"]["method"]["hash"] = "dct-phash-64"
    (old / "manifest.json").write_text(json.dumps(manifest))
    assert audit.main([str(trust["main"]), f"--against={old}"]) == audit.EXIT_BAD_INPUT
    assert "its perceptual hashes are dct-phash-64" in capsys.readouterr().err
