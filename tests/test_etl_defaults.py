"""An experiment that leaves an ETL setting out gets what a bare ``cxr etl`` (on EMR too) does: the paper's."""

from __future__ import annotations

from jobs.etl import sources
from jobs.etl.settings import parse_settings
from jobs.etl.spark_job import selection_rules
from jobs.experiment.arguments import etl_config_arguments
from jobs.experiment.schema import EtlConfig

BARE = ["--source=cohen=/raw/cohen", "--output=/out"]


def test_a_bare_etl_uses_the_papers_selection_and_split():
    """Values from the paper's text and the sources' own vocabularies, not from the code."""
    settings = parse_settings(BARE)
    assert settings.image_size == 224  # "224x224 RGB images"
    assert settings.view == "PA"  # posteroanterior X-rays only
    assert settings.modality == "X-ray"  # Cohen's metadata.csv 'modality' column also has "CT"
    assert settings.covid_finding == "COVID-19"  # Cohen's 'finding' values, e.g. "Pneumonia/Viral/COVID-19"
    assert settings.normal_finding == "No Finding"  # NIH's 'Finding Labels' word for normal
    assert settings.pneumonia_finding == "Pneumonia"
    assert settings.test_fraction == 0.2  # the paper's 80/20 split


def test_an_experiment_without_etl_settings_gives_the_bare_etls_settings():
    experiment = EtlConfig.model_validate({"sources": [{"kind": "cohen", "uri": "cohen"}]})
    from_experiment = parse_settings(
        [str(a) for a in etl_config_arguments(experiment, ["/raw/cohen"], "/out")]
    )
    assert vars(from_experiment) == vars(parse_settings(BARE))


def test_the_selection_rules_a_bare_etl_builds_are_the_rules_defaults():
    built, default = selection_rules(parse_settings(BARE)), sources.Rules()
    assert vars(built) == vars(default)
