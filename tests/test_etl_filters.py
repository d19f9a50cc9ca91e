"""The demo's held-out sets end to end on real images: per-source filters and an external set's own label
rules through the ETL, every filtered row counted in the manifest, nothing shared with the training data."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from jobs.etl import sources, spark_job
from jobs.etl.filters import filter_of
from jobs.etl.manifest import summary_lines
from jobs.etl.settings import parse_settings
from jobs.experiment.arguments import etl_arguments, external_etl_arguments, source_uris
from jobs.experiment.schema import load_experiment

ROOT = Path(__file__).resolve().parents[1]
DEMO = load_experiment(ROOT / "experiments" / "demo.json")


def _pa_rows(sample: Path) -> list[dict]:
    text = sources.decode_text((sample / "cohen" / "metadata.csv").read_bytes(), "metadata.csv")
    return [r for r in csv.DictReader(io.StringIO(text)) if r["view"] == "PA" and r["modality"] == "X-ray"]


@pytest.fixture(scope="module")
def within(spark, sample, tmp_path_factory) -> Path:
    """The demo's within-source set: Hannover's COVID-19 images and Cohen's other pneumonias, test-only."""
    out = tmp_path_factory.mktemp("filters") / "cohen-pneumonia"
    uris = source_uris(DEMO, str(sample), DEMO.external_etl("cohen-pneumonia"))
    args = external_etl_arguments(DEMO, "cohen-pneumonia", uris, str(out))
    assert spark_job.main([*args, "--image-size=32"], session_factory=lambda: spark) == 0
    return out


def test_the_within_source_set_holds_hannovers_covid_images_and_cohens_other_pneumonias(within, sample):
    manifest = json.loads((within / "manifest.json").read_text())
    rows = pq.read_table(
        within / "data", columns=["original_path", "label", "patient_id", "split"]
    ).to_pylist()
    pa = _pa_rows(sample)
    hannover = {r["filename"] for r in pa if "COVID-19" in r["finding"] and "Hannover" in r["location"]}
    covid = [r for r in rows if r["label"] == "COVID-19"]
    assert {Path(r["original_path"]).name for r in covid} == hannover
    assert len({r["patient_id"] for r in covid}) == 14
    pneumonia = {Path(r["original_path"]).name for r in rows if r["label"] == "Pneumonia"}
    assert pneumonia and all("COVID-19" not in r["finding"] for r in pa if r["filename"] in pneumonia)
    assert manifest["counts"]["by_split"] == {"train": 0, "validation": 0, "test": len(rows)}
    assert manifest["settings"]["source_filter"] == [
        [0, "include", "location", "Hannover"],
        [1, "exclude", "finding", "COVID-19"],
    ]
    # every row a filter dropped is counted, with its reason, and printed
    dropped = manifest["excluded_by_rule"]
    assert dropped["cohen: finding contains 'COVID-19' (--exclude)"] == sum(
        "COVID-19" in r["finding"] for r in pa
    )
    assert dropped["cohen: location contains none of 'Hannover' (--include)"] > len(pneumonia)
    assert any("(--exclude)" in line for line in summary_lines(manifest))


def test_the_held_out_sets_share_no_patient_with_the_demos_training_sources(within, sample):
    """The demo's own ETL selection of Cohen (its filter, its rules) against the held-out rows."""
    settings = parse_settings(etl_arguments(DEMO, source_uris(DEMO, str(sample)), "/out"))
    root = sample / "cohen"
    assert settings.source[0] == ("cohen", str(root))
    text = sources.decode_text((root / "metadata.csv").read_bytes(), "metadata.csv")
    listing = {str(p): str(p) for p in (root / "images").iterdir()}
    rules, source_filter = spark_job.selection_rules(settings), filter_of("cohen", 0, settings.source_filter)
    trained = sources.read_cohen(text, "metadata.csv", str(root), listing, rules, source_filter).candidates
    held = pq.read_table(within / "data", columns=["original_path", "patient_id"]).to_pylist()
    assert trained and not {c["patient_id"] for c in trained} & {r["patient_id"] for r in held}
    assert not {c["path"] for c in trained} & {r["original_path"] for r in held}
