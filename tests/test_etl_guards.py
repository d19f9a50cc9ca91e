"""The ETL never deletes its sources or a folder it did not write, refuses bad metadata and unwritable
outputs up front, and readers check its Parquet files against the manifest (issue 17, cases 2, 3, 6)."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

from jobs.etl import spark_job

pytestmark = pytest.mark.slow


def run_etl(spark, *args: str) -> int:
    return spark_job.main(list(args), session_factory=lambda: spark)


def _images(sample: Path, source: str, n: int) -> list[Path]:
    return sorted((sample / source / "images").iterdir())[:n]


def _class_folders(sample: Path, root: Path) -> Path:
    """A real ``folders`` source: a few sample images under COVID-19/ and Normal/."""
    for label, source in (("COVID-19", "cohen"), ("Normal", "nih")):
        (root / label).mkdir(parents=True)
        for image in _images(sample, source, 3):
            shutil.copy(image, root / label / image.name)
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "output", ["OUT", "OUT/data", "OUT/data/COVID-19"], ids=["contains", "same", "inside"]
)
def test_an_output_overlapping_a_source_is_refused_and_the_images_stay(
    spark, sample, tmp_path, output, capsys
):
    """Case 3: `--source folders=OUT/data --output OUT` deleted the 30 source images."""
    source = _class_folders(sample, tmp_path / "OUT" / "data")
    before = _files(tmp_path)
    out = tmp_path / output
    code = run_etl(spark, f"--source=folders={source}", f"--output={out}", "--min-images-per-class=1")
    assert code == spark_job.EXIT_BAD_INPUT
    assert "choose an output folder outside every source" in capsys.readouterr().err
    assert _files(tmp_path) == before


def test_a_folder_the_etl_did_not_write_is_not_overwritten(spark, sample, tmp_path, capsys):
    """Case 3: the ETL overwrites only a folder that carries its marker."""
    source = _class_folders(sample, tmp_path / "images")
    mine = tmp_path / "my-folder"
    (mine / "data").mkdir(parents=True)
    (mine / "data" / "notes.txt").write_text("not a dataset")
    code = run_etl(spark, f"--source=folders={source}", f"--output={mine}", "--min-images-per-class=1")
    assert code == spark_job.EXIT_BAD_INPUT
    assert "that the ETL did not write" in capsys.readouterr().err
    assert (mine / "data" / "notes.txt").read_text() == "not a dataset"


def test_a_rerun_replaces_its_own_output_whole(spark, sample, tmp_path):
    """Case 2: data/ and manifest.json are renamed into place; the manifest lists the Parquet files."""
    source = _class_folders(sample, tmp_path / "images")
    out = tmp_path / "out"
    args = [f"--source=folders={source}", f"--output={out}", "--min-images-per-class=1", "--image-size=32"]
    assert run_etl(spark, *args) == 0
    (out / "data" / "split=train" / "left-by-another-run.parquet").write_bytes(b"PAR1")
    assert run_etl(spark, *args, "--seed=2") == 0
    manifest = json.loads((out / "manifest.json").read_text())
    written = {str(p.relative_to(out / "data")) for p in (out / "data").rglob("*.parquet")}
    assert written == set(manifest["files"]) and manifest["settings"]["seed"] == 2
    assert not [p.name for p in out.iterdir() if "partial" in p.name]


def _cohen_subset(sample: Path, root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    shutil.copy(sample / "cohen" / "metadata.csv", root / "metadata.csv")
    return root


def test_metadata_with_nul_bytes_names_the_file_and_line(spark, sample, tmp_path, capsys):
    """Case 6: a NUL-corrupted metadata.csv silently dropped 11 rows."""
    cohen = _cohen_subset(sample, tmp_path / "cohen")
    lines = (cohen / "metadata.csv").read_bytes().split(b"\n")
    lines[4] = lines[4][:10] + b"\x00" * 40 + lines[4][50:]
    (cohen / "metadata.csv").write_bytes(b"\n".join(lines))
    assert run_etl(spark, f"--source=cohen={cohen}", f"--output={tmp_path / 'o'}") == 2
    err = capsys.readouterr().err
    assert f"{cohen}/metadata.csv: line 5 holds a NUL byte" in err


def test_random_bytes_as_metadata_are_exit_2_not_a_traceback(spark, sample, tmp_path, capsys):
    """Case 6: random bytes as metadata.csv gave a traceback."""
    cohen = _cohen_subset(sample, tmp_path / "cohen")
    (cohen / "metadata.csv").write_bytes(random.Random(17).randbytes(8192))
    assert run_etl(spark, f"--source=cohen={cohen}", f"--output={tmp_path / 'o'}") == 2
    err = capsys.readouterr().err
    assert f"{cohen}/metadata.csv: line " in err and "Traceback" not in err


def test_an_unwritable_output_fails_before_any_image_is_decoded(spark, sample, tmp_path, capsys):
    """Case 6: an unwritable output was found after all decoding, in 400 lines of stack trace."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code = run_etl(
        spark,
        f"--source=cohen={sample / 'cohen'}",
        f"--source=nih={sample / 'nih'}",
        f"--output={blocker / 'out'}",
    )
    captured = capsys.readouterr()
    assert code == 2 and "cannot write there" in captured.err and len(captured.err.splitlines()) == 1
    assert "decoding" not in captured.out


def _copy(dataset: Path, target: Path) -> Path:
    shutil.copytree(dataset, target)
    return target


TRAIN = [
    "--model=small_cnn",
    "--task=binary",
    "--weights=none",
    '--schedule=[{"epochs": 1, "learning_rate": 0.001, "trainable": "head"}]',
    "--batch-size=4",
    "--max-steps-per-epoch=2",
]


def test_a_second_writers_parquet_file_stops_training_before_the_first_epoch(small_dataset, tmp_path, capsys):
    """Cases 2 and 6: a split with two files (rows duplicated) failed after an epoch ("expected to contain
    39 elements but contained at least 40")."""
    from jobs.training import entry

    data = _copy(small_dataset, tmp_path / "ds")
    first = next((data / "data" / "split=validation").glob("*.parquet"))
    shutil.copy(first, first.with_name("part-99999-from-another-run.parquet"))
    assert entry.main([f"--data={data}", f"--model-dir={tmp_path / 'model'}", *TRAIN]) == 1
    err = capsys.readouterr().err
    assert "does not match manifest.json" in err and "part-99999-from-another-run.parquet" in err
    assert "epoch" not in capsys.readouterr().out and not (tmp_path / "model" / "model.keras").exists()


def test_a_missing_split_is_found_before_evaluation(small_dataset, tmp_path, capsys):
    """Case 6: a missing split's Parquet was found only after a full epoch, with an Arrow traceback."""
    from jobs.evaluation.entry import main as evaluate

    data = _copy(small_dataset, tmp_path / "ds")
    for file in (data / "data" / "split=test").glob("*.parquet"):
        file.unlink()
    code = evaluate([f"--model-dir={tmp_path / 'no-model'}", f"--data={data}", f"--output={tmp_path / 'o'}"])
    assert code == 2 and "split=test/" in capsys.readouterr().err
