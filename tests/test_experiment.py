"""Experiment files: every shipped one validates, bad ones name the field, arguments round-trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs.etl.settings import parse_settings
from jobs.experiment import schema as experiment_module
from jobs.experiment.arguments import (
    etl_arguments,
    evaluation_arguments,
    external_etl_arguments,
    hyperparameters_to_argv,
    training_hyperparameters,
)
from jobs.experiment.schema import (
    BUILTIN_SCHEDULES,
    TASKS,
    Experiment,
    ExperimentError,
    load_experiment,
    parse_experiment,
)

EXPERIMENTS = sorted((Path(__file__).resolve().parents[1] / "experiments").glob("*.json"))


def test_the_paper_experiments_and_the_demo_are_shipped():
    assert {p.stem for p in EXPERIMENTS} >= {"demo", "paper-binary", "paper-multiclass", "densenet121-3stage"}


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_every_shipped_experiment_validates_and_its_etl_arguments_parse(path):
    exp = load_experiment(path)
    assert exp.name == path.stem
    uris = [f"/data/{s.uri}" for s in exp.etl.sources]
    settings = parse_settings(etl_arguments(exp, uris, "/out"))
    assert settings.image_size == exp.etl.image_size
    assert dict(settings.cap) == exp.etl.caps
    assert [uri for _, uri in settings.source] == uris


def test_paper_settings_are_the_papers():
    exp = load_experiment(next(p for p in EXPERIMENTS if p.stem == "paper-binary"))
    assert (exp.etl.image_size, exp.training.batch_size, exp.training.weights) == (224, 3, "imagenet")
    assert [(s.epochs, s.learning_rate, s.trainable) for s in exp.training.stages()] == [
        (30, 1e-3, "head"),
        (30, 1e-5, "all"),
    ]
    assert set(exp.training.models) == {"resnet50", "densenet121", "vgg19", "inceptionv3"}


def _raw(**training) -> dict:
    base = json.loads(next(p for p in EXPERIMENTS if p.stem == "demo").read_text())
    base["training"].update(training)
    return base


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"models": ["alexnet"]}, "field 'training.models.0'"),
        ({"task": "ternary"}, "field 'training.task'"),
        ({"schedule": []}, "at least one stage"),
        ({"schedule": [{"epochs": 1, "learning_rate": -1, "trainable": "all"}]}, "learning_rate"),
        ({"schedule": "five-phase"}, "unknown schedule 'five-phase'"),
        ({"batch_size": 0}, "field 'training.batch_size'"),
    ],
)
def test_bad_fields_are_named(change, message):
    with pytest.raises(ExperimentError, match=message):
        parse_experiment(_raw(**change), origin="demo.json")


def test_unknown_cap_class_is_named():
    raw = _raw()
    raw["etl"]["caps"] = {"Cats": 3}
    with pytest.raises(ExperimentError, match=r"field 'etl.caps'.*unknown class"):
        parse_experiment(raw)


def test_a_missing_or_malformed_file_is_named(tmp_path):
    with pytest.raises(ExperimentError, match="no such experiment file"):
        load_experiment(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ExperimentError, match=r"bad.json: not valid JSON at line 1"):
        load_experiment(tmp_path / "bad.json")


def test_hyperparameters_are_strings_and_become_flags():
    exp = load_experiment(next(p for p in EXPERIMENTS if p.stem == "demo"))
    hp = training_hyperparameters(exp, "small_cnn", 1)
    assert all(isinstance(v, str) for v in hp.values())
    assert "--model=small_cnn" in hyperparameters_to_argv(hp)
    assert exp.model_key("small_cnn", 1) != exp.model_key("densenet121", 1)


def test_label_rules_become_etl_flags_in_order_and_unknown_classes_are_named():
    exp = load_experiment(next(p for p in EXPERIMENTS if p.stem == "within-cohen"))
    settings = parse_settings(etl_arguments(exp, ["/data/cohen"], "/out"))
    assert settings.label[:2] == [("cohen", "COVID-19", "COVID-19"), ("cohen", "Pneumonia", "Pneumonia")]
    assert (
        exp.dataset_key() != load_experiment(next(p for p in EXPERIMENTS if p.stem == "demo")).dataset_key()
    )
    raw = _raw()
    raw["etl"]["label_rules"] = [{"source": "cohen", "finding": "ARDS", "label": "Fever"}]
    with pytest.raises(ExperimentError, match=r"field 'etl.label_rules.0.label'.*unknown class 'Fever'"):
        parse_experiment(raw)


def test_external_sets_need_distinct_names():
    raw = _raw()
    one = {"name": "h2", "sources": [{"kind": "folders", "uri": "h2"}]}
    raw["evaluation"]["external"] = [one, one]
    with pytest.raises(ExperimentError, match=r"field 'evaluation.external'.*its own name"):
        parse_experiment(raw)


@pytest.mark.parametrize(
    "rule",
    [
        "youden",
        "target_sensitivity:0.95",
        "target_sensitivity:1",
        "target_sensitivity:.9",
        "target_sensitivity:0",
        "x",
    ],
)
def test_operating_rule_is_accepted_by_the_schema_exactly_when_evaluate_accepts_it(rule):
    from jobs.evaluation.entry import parser
    from jobs.evaluation.thresholds import parse_rule

    raw = _raw()
    raw["evaluation"]["operating_rule"] = rule
    try:
        parse_rule(rule)
        valid = True
    except ValueError:
        valid = False
    if not valid:
        with pytest.raises(ExperimentError, match="field 'evaluation.operating_rule'"):
            parse_experiment(raw)
        return
    exp = parse_experiment(raw)
    args = parser().parse_args(evaluation_arguments(exp, model_dir="m", data="d", output="o"))
    assert args.operating_rule == rule


def test_paper_references_have_one_owner():
    """The schema and the report take the paper's experiments from one list; each recorded figure and
    the three-stage schedule name one of them."""
    from jobs.evaluation import report
    from jobs.evaluation.paper_figures import PAPER_EXPERIMENTS, PAPER_FIGURES

    assert set(PAPER_FIGURES) <= set(PAPER_EXPERIMENTS)
    assert set(PAPER_EXPERIMENTS) - set(TASKS) <= set(BUILTIN_SCHEDULES)
    with pytest.raises(SystemExit) as refused:
        report.main(["folder", "--paper-reference=not-the-paper"])
    assert refused.value.code == 2
    raw = _raw()
    raw["paper_reference"] = "not-the-paper"
    with pytest.raises(ExperimentError, match="paper_reference"):
        parse_experiment(raw)


def _demo() -> Experiment:
    return load_experiment(next(p for p in EXPERIMENTS if p.stem == "demo"))


def test_source_filters_become_etl_flags_after_their_source_and_change_the_dataset_key():
    exp = _demo()
    uris = [f"/data/{s.uri}" for s in exp.etl.sources]
    settings = parse_settings(etl_arguments(exp, uris, "/out"))
    assert settings.source == [("cohen", "/data/cohen"), ("nih", "/data/nih")]
    assert settings.source_filter == [(0, "exclude", "location", "Hannover")]
    raw = json.loads(next(p for p in EXPERIMENTS if p.stem == "demo").read_text())
    keys = set()
    for exclude in ({"location": "Hannover"}, {"location": ["Hannover"]}, {"location": "Milan"}, {}):
        raw["etl"]["sources"][0]["exclude"] = exclude
        keys.add(parse_experiment(raw).dataset_key())
    # a text and a one-item list are the same filter; another text, or none, is another dataset
    assert len(keys) == 3
    # an unfiltered source serialises as before filters existed: older experiments keep their dataset keys
    del raw["etl"]["sources"][0]["exclude"]
    assert parse_experiment(raw).etl.model_dump(mode="json")["sources"][0] == {
        "kind": "cohen",
        "uri": "cohen",
    }


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"kind": "folders", "uri": "f", "include": {"location": "X"}}, "no metadata columns to filter on"),
        ({"kind": "cohen", "uri": "c", "exclude": {"location": ""}}, "non-empty texts"),
        ({"kind": "cohen", "uri": "c", "exclude": {"a=b": "x"}}, "without '='"),
        ({"kind": "cohen", "uri": "c", "exclude": {"location": 3}}, "field 'etl.sources.0.exclude.location"),
    ],
)
def test_bad_source_filters_are_named(source, message):
    raw = _raw()
    raw["etl"]["sources"][0] = source
    with pytest.raises(ExperimentError, match=message):
        parse_experiment(raw)


def test_an_external_set_takes_its_own_label_rules_or_the_experiments():
    exp = _demo()
    within = exp.external_etl("cohen-pneumonia")
    assert (
        within.label_rules
        == load_experiment(next(p for p in EXPERIMENTS if p.stem == "within-cohen")).etl.label_rules
    )
    assert exp.external_etl("hannover").label_rules == exp.etl.label_rules == []
    args = external_etl_arguments(exp, "cohen-pneumonia", ["/d/cohen", "/d/cohen"], "/out")
    settings = parse_settings(args)
    assert settings.test_only and ("cohen", "Pneumocystis", "Pneumonia") in settings.label
    assert settings.source_filter == [
        (0, "include", "location", "Hannover"),
        (1, "exclude", "finding", "COVID-19"),
    ]
    assert exp.external_dataset_key("cohen-pneumonia") != exp.external_dataset_key("hannover")


def test_an_external_sets_kind_reaches_evaluate():
    from jobs.evaluation.entry import parser

    exp = _demo()
    externals = {e.name: f"/d/{e.name}" for e in exp.evaluation.external}
    args = parser().parse_args(
        evaluation_arguments(exp, model_dir="m", data="d", output="o", externals=externals)
    )
    assert dict(args.external_kind) == {"hannover": "external", "cohen-pneumonia": "within-source"}
    raw = _raw()
    raw["evaluation"]["external"] = [
        {"name": "h", "kind": "elsewhere", "sources": [{"kind": "nih", "uri": "n"}]}
    ]
    with pytest.raises(ExperimentError, match=r"field 'evaluation.external.0.kind'"):
        parse_experiment(raw)


def test_a_newer_etl_output_version_names_other_datasets(monkeypatch):
    """An ETL that writes other values (e.g. another near-duplicate hash) must not reuse older outputs."""
    exp = load_experiment(next(p for p in EXPERIMENTS if p.stem == "demo"))
    before = (exp.dataset_key(), exp.external_dataset_key("hannover"), exp.model_key("small_cnn", 1))
    monkeypatch.setattr(experiment_module, "OUTPUT_VERSION", experiment_module.OUTPUT_VERSION + 1)
    after = (exp.dataset_key(), exp.external_dataset_key("hannover"), exp.model_key("small_cnn", 1))
    assert all(a != b for a, b in zip(before, after, strict=True))


def test_seeds_are_a_count_from_the_first_seed_or_a_list_and_each_names_its_own_model():
    raw = json.loads(next(p for p in EXPERIMENTS if p.stem == "demo").read_text())
    raw["training"] |= {"seed": 7, "seeds": 3}
    exp = parse_experiment(raw)
    assert exp.training.seed_list() == (7, 8, 9)
    assert [(r.model, r.seed) for r in exp.runs()] == [
        (m, s) for m in ("densenet121", "small_cnn") for s in (7, 8, 9)
    ]
    assert len({exp.model_key("small_cnn", s) for s in (7, 8, 9)}) == 3
    assert training_hyperparameters(exp, "small_cnn", 8)["seed"] == "8"
    raw["training"]["seeds"] = [3, 1]
    assert parse_experiment(raw).training.seed_list() == (3, 1)
    # one seed is the experiment as before seeds existed: same trained model, same key
    raw["training"] |= {"seed": 1, "seeds": 1}
    single = parse_experiment(raw)
    del raw["training"]["seeds"], raw["training"]["seed"]
    assert single.model_key("small_cnn", 1) == parse_experiment(raw).model_key("small_cnn", 1)


@pytest.mark.parametrize("seeds", [0, 21, [], [1, 1], [-1], "3", True])
def test_unusable_seeds_are_refused_naming_the_field(seeds):
    raw = json.loads(next(p for p in EXPERIMENTS if p.stem == "demo").read_text())
    raw["training"]["seeds"] = seeds
    with pytest.raises(ExperimentError, match=r"field 'training.seeds"):
        parse_experiment(raw)
