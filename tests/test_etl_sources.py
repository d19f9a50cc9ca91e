"""Source readers and selection rules on real metadata (pure functions, no Spark)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from jobs.etl import sources
from jobs.etl.errors import EtlError
from jobs.etl.filters import SourceFilter
from tests.refusals import accepted_values


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


def test_the_experiment_and_the_command_line_take_exactly_the_kinds_the_etl_reads():
    """Behaviour, not the annotations: what each side accepts and what it names when it refuses."""
    from jobs.etl.errors import EtlError
    from jobs.etl.settings import parse_settings
    from jobs.experiment.schema import ExperimentError, parse_experiment

    def experiment(kind: str, label_source: str = "cohen") -> dict:
        rules = [{"source": label_source, "finding": "COVID-19", "label": "COVID-19"}]
        return {
            "name": "k",
            "etl": {"sources": [{"kind": kind, "uri": "d"}], "label_rules": rules},
            "training": {"task": "multiclass", "models": ["small_cnn"]},
        }

    for kind in sources.KINDS:
        assert parse_settings([f"--source={kind}=/d", "--output=/o"]).source == [(kind, "/d")]
        assert parse_experiment(experiment(kind)).etl.sources[0].kind == kind
    with pytest.raises(ExperimentError, match="'etl.sources.0.kind'") as refused:
        parse_experiment(experiment("no_such_kind"))
    assert accepted_values(refused.value) == set(sources.KINDS)
    with pytest.raises(ExperimentError, match="'etl.label_rules.0.source'") as refused:
        parse_experiment(experiment("cohen", label_source="folders"))
    # label rules need a findings column: Cohen's metadata.csv and NIH's Data_Entry_2017.csv have one
    # (a new source with findings joins this set)
    assert accepted_values(refused.value) == {"cohen", "nih"}
    with pytest.raises((SystemExit, EtlError)):
        parse_settings(["--source=no_such_kind=/d", "--output=/o"])


def _cohen_rows(sample: Path) -> list[dict]:
    """The metadata read independently of the ETL (Python's csv module), for the expected counts."""
    text = sources.decode_text((sample / "cohen" / "metadata.csv").read_bytes(), "metadata.csv")
    return [r for r in csv.DictReader(io.StringIO(text)) if r["view"] == "PA" and r["modality"] == "X-ray"]


def _read_cohen_filtered(sample: Path, *rules: tuple[str, str, str]) -> sources.SourceResult:
    root = sample / "cohen"
    text = sources.decode_text((root / "metadata.csv").read_bytes(), "metadata.csv")
    return sources.read_cohen(
        text, "metadata.csv", str(root), _listing(root), sources.Rules(), SourceFilter("cohen", rules)
    )


def test_a_location_filter_holds_one_hospital_out_and_counts_every_image_it_drops(sample):
    """Cohen's Hannover Medical School COVID-19 images: include keeps exactly them, exclude the rest."""
    covid = [r for r in _cohen_rows(sample) if "COVID-19" in r["finding"]]
    hannover = {r["filename"] for r in covid if "hannover" in r["location"].lower()}
    held = _read_cohen_filtered(sample, ("include", "location", "HANNOVER"))
    kept = _read_cohen_filtered(sample, ("exclude", "location", "Hannover"))
    assert {Path(c["path"]).name for c in held.candidates} == hannover
    assert (len(held.candidates), len({c["patient_id"] for c in held.candidates})) == (26, 14)
    assert {Path(c["path"]).name for c in kept.candidates} == {r["filename"] for r in covid} - hannover
    # every image the filter drops is counted under its reason, beside the label rules' own exclusions
    assert held.exclusions["cohen: location contains none of 'HANNOVER' (--include)"] == len(kept.candidates)
    assert kept.exclusions["cohen: location contains 'Hannover' (--exclude)"] == len(held.candidates)
    assert held.exclusions[sources.Rules().unmapped("cohen")] == len(_cohen_rows(sample)) - len(covid)
    assert not held.rejections and not kept.rejections


def test_filters_are_any_of_within_a_column_and_all_of_across_columns(sample):
    rows = [r for r in _cohen_rows(sample) if "COVID-19" in r["finding"]]
    places = ("Italy", "Australia")
    both = _read_cohen_filtered(
        sample, ("include", "location", places[0]), ("include", "location", places[1])
    )
    assert len(both.candidates) == sum(any(p in r["location"] for p in places) for r in rows) > 0
    men = _read_cohen_filtered(
        sample,
        ("include", "location", places[0]),
        ("include", "location", places[1]),
        ("include", "sex", "M"),
    )
    expected = sum(any(p in r["location"] for p in places) and r["sex"] == "M" for r in rows)
    assert 0 < len(men.candidates) == expected < len(both.candidates)


def test_a_filter_on_an_unknown_column_names_the_file_the_column_and_the_columns(sample):
    with pytest.raises(
        EtlError, match=r"metadata.csv: no column 'locaton' to filter on.*columns are: patientid, "
    ):
        _read_cohen_filtered(sample, ("exclude", "locaton", "Hannover"))
    header = (sample / "nih" / "Data_Entry_2017.csv").read_text().splitlines()[0]
    with pytest.raises(EtlError, match=r"Data_Entry_2017.csv: no column 'Gender'.*Patient Gender"):
        sources.read_nih(
            header,
            "Data_Entry_2017.csv",
            {},
            sources.Rules(),
            SourceFilter("nih", [("include", "Gender", "F")]),
        )


def test_filters_on_the_command_line_belong_to_the_source_before_them(capsys):
    from jobs.etl.settings import parse_settings, settings_record

    settings = parse_settings(
        [
            "--source=nih=/n",
            "--source=cohen=/c",
            "--exclude=location=Hannover",
            "--include=sex=F",
            "--output=/o",
        ]
    )
    assert settings.source_filter == [(1, "exclude", "location", "Hannover"), (1, "include", "sex", "F")]
    assert settings_record(settings)["source_filter"] == [
        [1, "exclude", "location", "Hannover"],
        [1, "include", "sex", "F"],
    ]
    for argv, message in [
        (["--include=sex=F", "--source=cohen=/c"], "give it after the --source"),
        (["--source=folders=/f", "--exclude=location=X"], "a folders source has no metadata columns"),
        (["--source=cohen=/c", "--exclude=location"], "expected COLUMN=TEXT"),
    ]:
        with pytest.raises(SystemExit):
            parse_settings([*argv, "--output=/o"])
        assert message in capsys.readouterr().err


def test_every_kind_with_findings_has_default_labels_and_a_missing_one_is_named():
    """A reader registered without its paper labels would otherwise fail deep inside the ETL."""
    rules = sources.Rules()
    for kind, reader in sources.KINDS.items():
        if reader.metadata:
            assert rules.labels[kind], f"{kind}: add its default findings to sources.Rules"
    del rules.labels["nih"]
    with pytest.raises(EtlError, match="source kind 'nih' has no label rules: give them with --label nih:"):
        rules.label_of("nih", ["Pneumonia"])
