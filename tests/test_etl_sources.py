"""Source readers and selection rules on real metadata (pure functions, no Spark)."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.etl import sources
from jobs.etl.errors import EtlError


def _listing(root: Path) -> dict[str, str]:
    return {str(p): str(p) for p in (root / "images").iterdir()}


def _read_nih(text: str, sample: Path) -> sources.SourceResult:
    root = sample / "nih"
    return sources.read_nih(text, "Data_Entry_2017.csv", _listing(root), sources.Rules())


def test_nih_reads_the_2020_header_with_unquoted_bracket_commas(sample):
    text = (sample / "nih" / "Data_Entry_2017.csv").read_text()
    result = _read_nih(text, sample)
    labels = [c["label"] for c in result.candidates]
    assert (labels.count("Normal"), labels.count("Pneumonia")) == (105, 150)
    assert not result.rejections


def test_nih_reads_the_2017_header_with_a_trailing_comma(sample):
    lines = (sample / "nih" / "Data_Entry_2017.csv").read_text().splitlines()
    text = "\r\n".join(line + "," for line in lines)
    assert len(_read_nih(text, sample).candidates) == 255


def test_nih_without_required_column_names_the_file_and_column(sample):
    with pytest.raises(EtlError, match=r"Data_Entry_2017.csv: missing column\(s\) 'View Position'"):
        _read_nih("Image Index,Finding Labels,Patient ID,Patient Age\n", sample)


def test_nih_excludes_other_findings_and_views_and_rejects_empty_labels(sample):
    header = (sample / "nih" / "Data_Entry_2017.csv").read_text().splitlines()[0]
    rows = [
        "00000261_007.png,Effusion,7,261,41,F,PA,1,1,0.1,0.1",
        "00000261_007.png,No Finding,7,261,41,F,AP,1,1,0.1,0.1",
        "00000261_007.png,,7,261,41,F,PA,1,1,0.1,0.1",
    ]
    result = _read_nih("\n".join([header, *rows]), sample)
    assert not result.candidates
    assert sum(result.exclusions.values()) == 2
    assert [r["reason"] for r in result.rejections] == ["unknown label: empty Finding Labels"]


def test_cohen_selects_covid_pa_xrays_and_honours_the_folder_column(sample):
    root = sample / "cohen"
    text = sources.decode_text((root / "metadata.csv").read_bytes(), "metadata.csv")
    result = sources.read_cohen(text, "metadata.csv", str(root), _listing(root), sources.Rules())
    assert len(result.candidates) == 120
    assert {c["label"] for c in result.candidates} == {"COVID-19"}
    assert all(c["path"].startswith(str(root / "images") + "/") for c in result.candidates)
    assert len({c["patient_id"] for c in result.candidates}) == 75


def test_cohen_reports_a_missing_file(sample):
    root = sample / "cohen"
    text = sources.decode_text((root / "metadata.csv").read_bytes(), "metadata.csv")
    listing = _listing(root)
    selected = sources.read_cohen(text, "metadata.csv", str(root), listing, sources.Rules()).candidates
    listing.pop(selected[0]["path"])
    result = sources.read_cohen(text, "metadata.csv", str(root), listing, sources.Rules())
    assert len(result.candidates) == 119
    assert [r["reason"].split(":")[0] for r in result.rejections] == ["missing file"]


def test_metadata_in_windows_1252_is_read():
    assert (
        sources.decode_text("a \u201cwet market\u201d".encode("cp1252"), "m.csv")
        == "a \u201cwet market\u201d"
    )


def test_folders_map_class_names_and_reject_unknown_ones():
    files = {f"/d/{name}": f"/d/{name}" for name in ("covid/a.png", "No Finding/b.jpg", "cats/c.png")}
    result = sources.read_folders("/d", files)
    assert sorted(c["label"] for c in result.candidates) == ["COVID-19", "Normal"]
    assert result.rejections[0]["path"] == "/d/cats/c.png"
    assert result.rejections[0]["reason"].startswith("unknown label")


@pytest.mark.parametrize(("text", "age"), [("65", 65.0), ("058Y", 58.0), ("", None), ("n/a", None)])
def test_parse_age(text, age):
    assert sources.parse_age(text) == age


def test_label_rules_per_source_map_cohen_findings_in_order(sample):
    """Within-source labels: other pneumonias -> Pneumonia, 'No Finding' -> Normal, the rest left out."""
    text = sources.decode_text((sample / "cohen" / "metadata.csv").read_bytes(), "metadata.csv")
    rules = sources.Rules(
        labels={"cohen": (("COVID-19", "COVID-19"), ("No Finding", "Normal"), ("Pneumo", "Pneumonia"))}
    )
    root = sample / "cohen"
    result = sources.read_cohen(text, "metadata.csv", str(root), _listing(root), rules)
    by_label = {}
    for c in result.candidates:
        by_label.setdefault(c["label"], set()).add(c["path"])
    # README: 120 COVID-19 and 5 "No Finding" files; Pneumocystis 9 + Pneumonia 5 + Mycoplasma ... Pneumonia 4
    assert {k: len(v) for k, v in by_label.items()} == {"COVID-19": 120, "Normal": 5, "Pneumonia": 18}
    # 52 non-COVID records: 5 No Finding and 21 "Pneumo" records (three files have two) mapped
    assert result.exclusions == {"cohen: finding without COVID-19 or No Finding or Pneumo": 26}
    assert sources.Rules().label_of("nih", ["Infiltration", "Pneumonia"]) == "Pneumonia"


def test_source_kinds_are_defined_once():
    """The command line and the experiment schema take exactly the kinds of ``sources.KINDS``."""
    from typing import get_args

    from jobs.etl.settings import parse_settings
    from jobs.experiment import LabelRule, Source

    assert get_args(Source.model_fields["kind"].annotation) == tuple(sources.KINDS)
    assert get_args(LabelRule.model_fields["source"].annotation) == ("cohen", "nih")
    for kind in sources.KINDS:
        assert parse_settings([f"--source={kind}=/d", "--output=/o"]).source == [(kind, "/d")]
