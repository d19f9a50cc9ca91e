"""One trained model against its test split (and any external test sets): metrics, predictions, figures.

Reads a model directory written by training (``model.keras``, ``config.json``, ``history.json``) and
ETL outputs; writes ``metrics.json``, ``predictions.csv``, the PNG figures and ``gradcam/*.png``.
"""

from __future__ import annotations

import csv
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jobs.atomic import check_writable, write_text_atomically
from jobs.contracts.operating_point import POSITIVE_CLASS, OperatingPoint, save_operating_point
from jobs.contracts.results import Evaluation, json_text
from jobs.contracts.results.card import MODEL_CARD_FILE
from jobs.contracts.results.metrics import FORMAT, Verdict
from jobs.contracts.tasks import task_classes, task_targets
from jobs.data.reader import META_COLUMNS, Dataset, open_dataset, to_float
from jobs.evaluation import plots
from jobs.evaluation.audit import chance_accuracy, shortcut_audit
from jobs.evaluation.calibration import calibration_report
from jobs.evaluation.conclusions import shortcut_verdict
from jobs.evaluation.inference import batched_outputs
from jobs.evaluation.metrics import evaluate_predictions, json_safe
from jobs.evaluation.model_card import model_card
from jobs.evaluation.probe import penultimate_features, source_probe
from jobs.evaluation.sagemaker_card import SAGEMAKER_MODEL_CARD_FILE, content_text
from jobs.evaluation.source_report import summary_rows
from jobs.evaluation.subgroups import subgroup_report
from jobs.evaluation.thresholds import DEFAULT_RULE, choose_threshold, rates_at_threshold
from jobs.experiment import provenance

MODEL_FILES = ("model.keras", "config.json", "history.json")
# Row attributes the subgroups use when the ETL wrote them (older datasets lack some).
OPTIONAL_COLUMNS = ("age", "sex", "view")


class EvaluationError(ValueError):
    """The model directory or a dataset cannot be evaluated; the message names the file and the fix."""


@dataclass(frozen=True)
class EvaluationRequest:
    model_dir: Path
    data: str
    output: Path
    split: str = "test"
    externals: dict[str, str] = field(default_factory=dict)
    external_kinds: dict[str, str] = field(default_factory=dict)  # name -> external / within-source
    bootstrap_samples: int = 1000
    gradcam_examples: int = 2
    seed: int = 0
    operating_rule: str = DEFAULT_RULE


@dataclass(frozen=True)
class TestSet:
    """One evaluated set: its images and metadata, the model's probabilities, and its metrics."""

    name: str
    data: dict[str, np.ndarray]
    y_true: np.ndarray
    probabilities: np.ndarray
    metrics: dict


def read_model_dir(model_dir: Path) -> tuple[object, dict, dict]:
    """(Keras model, config.json, history.json) of a training output, checked against the contract."""
    missing = [name for name in MODEL_FILES if not (model_dir / name).is_file()]
    if missing:
        raise EvaluationError(
            f"{model_dir}: missing {', '.join(missing)}; point --model-dir at a training "
            "output folder (model.keras, config.json, history.json)"
        )
    config = json.loads((model_dir / "config.json").read_text())
    history = json.loads((model_dir / "history.json").read_text())
    for key in ("model", "task", "classes", "image_shape"):
        if key not in config:
            raise EvaluationError(f"{model_dir / 'config.json'}: field {key!r} is missing")
    if tuple(config["classes"]) != task_classes(config["task"]):
        raise EvaluationError(
            f"{model_dir / 'config.json'}: field 'classes' is {config['classes']}, but task "
            f"{config['task']!r} has {list(task_classes(config['task']))}"
        )
    return load_model(model_dir / "model.keras"), config, history


def load_model(path: Path) -> object:
    """The Keras model, or an error that says the file is damaged (Keras says "File not found")."""
    if not zipfile.is_zipfile(path):
        raise EvaluationError(
            f"{path}: corrupt or truncated model file ({path.stat().st_size} bytes, not a .keras zip "
            "archive); train the model again (`cxr run ... --force`)"
        )
    import keras

    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - Keras raises many types for a damaged archive
        raise EvaluationError(
            f"{path}: cannot load the model ({exc}); train the model again (`cxr run ... --force`)"
        ) from None


def probability_fn(model, batch_size: int = 32) -> Callable[[np.ndarray], np.ndarray]:
    """uint8 images -> class probabilities, scaled as the contract says (x / 255, no other preprocessing).

    Probabilities are rounded to 6 decimals, as ``predictions.csv`` holds them, so every metric can be
    recomputed from the CSV, and float32 noise between batches cannot order tied scores (ROC AUC).
    """

    outputs = batched_outputs(model, batch_size)

    def predict(images: np.ndarray) -> np.ndarray:
        return np.round(outputs(images), 6)

    return predict


def _check_shape(dataset: Dataset, config: dict, name: str) -> None:
    if list(dataset.image_shape) != list(config["image_shape"]):
        raise EvaluationError(
            f"{dataset.root}/manifest.json ({name}): image_shape {list(dataset.image_shape)} "
            f"but the model takes {config['image_shape']}; run the ETL with "
            f"--image-size={config['image_shape'][0]}"
        )


def evaluate_set(
    name: str,
    data: dict[str, np.ndarray],
    predict: Callable[[np.ndarray], np.ndarray],
    config: dict,
    bootstrap_samples: int,
    seed: int,
) -> TestSet:
    classes = tuple(config["classes"])
    y_true = task_targets(config["task"], data["label_index"])
    probabilities = predict(data["image"])
    metrics = evaluate_predictions(
        y_true, probabilities, data["patient_id"], classes, bootstrap_samples, seed
    )
    return TestSet(name, data, y_true, probabilities, metrics)


def columns_of(dataset: Dataset, split: str) -> tuple[str, ...]:
    """The columns a set is loaded with: images, labels, metadata, and the optional subgroup attributes."""
    names = set(dataset.parquet(split).schema.names)
    return ("image", "label_index", *META_COLUMNS, *(c for c in OPTIONAL_COLUMNS if c in names))


def load_external(dataset: Dataset) -> dict[str, np.ndarray]:
    """Every image of an external ETL output, whatever split the ETL gave it: none of it was trained on."""
    splits = [split for split, n in dataset.manifest["counts"]["by_split"].items() if n]
    columns = columns_of(dataset, splits[0]) if splits else ()
    parts = [dataset.load(split, columns) for split in splits]
    if not parts:
        raise EvaluationError(f"{dataset.root}/manifest.json: the dataset has no images")
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def gradcam_examples(y_true: np.ndarray, probabilities: np.ndarray, per_kind: int) -> list[int]:
    """Per true class, the ``per_kind`` most confident correct and most confident wrong predictions."""
    y_pred = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    picked: list[int] = []
    for k in np.unique(y_true):
        for correct in (True, False):
            rows = np.flatnonzero((y_true == k) & ((y_pred == k) == correct))
            picked += rows[np.argsort(-confidence[rows], kind="stable")][:per_kind].tolist()
    return picked


def write_predictions(path: Path, sets: list[TestSet], classes: tuple[str, ...]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["set", "patient_id", "source", "original_path", "true_label", "predicted_label"]
            + [f"p_{c}" for c in classes]
        )
        for s in sets:
            for i, (truth, probs) in enumerate(zip(s.y_true, s.probabilities, strict=True)):
                writer.writerow(
                    [
                        s.name,
                        s.data["patient_id"][i],
                        s.data["source"][i],
                        s.data["original_path"][i],
                        classes[truth],
                        classes[int(probs.argmax())],
                    ]
                    + [f"{p:.6f}" for p in probs]
                )


def _figures(s: TestSet, classes: tuple[str, ...], title: str, out: Path, suffix: str) -> dict[str, str]:
    files = {
        "confusion_matrix": plots.confusion_matrix_png(
            s.metrics["confusion_matrix"], classes, title, out / f"confusion_matrix{suffix}.png"
        ),
        "roc_curves": plots.roc_curves_png(
            s.y_true, s.probabilities, classes, s.metrics["roc_auc"], title, out / f"roc_curves{suffix}.png"
        ),
    }
    return {key: path.name for key, path in files.items()}


def _gradcam_grid(model, s: TestSet, classes: tuple[str, ...], per_kind: int, title: str, out: Path) -> dict:
    from jobs.evaluation.gradcam import find_target_layer, gradcam

    layer = find_target_layer(model)
    cells = []
    for i in gradcam_examples(s.y_true, s.probabilities, per_kind):
        image = to_float(s.data["image"][i])
        pred = int(s.probabilities[i].argmax())
        cells.append(
            {
                "image": image,
                "heatmap": gradcam(model, image, pred, layer),
                "true": int(s.y_true[i]),
                "pred": pred,
                "prob": float(s.probabilities[i, pred]),
                "correct": pred == s.y_true[i],
            }
        )
    path = plots.gradcam_grid_png(cells, classes, title, out / "gradcam" / f"{s.name}.png")
    return {
        "layer": "/".join(layer),
        "file": f"gradcam/{path.name}",
        "examples": len(cells),
        "explained_class": "predicted",
    }


def _dataset_warnings(dataset: Dataset, config: dict, split: str) -> list[str]:
    if config.get("dataset_fingerprint") and config["dataset_fingerprint"] != dataset.fingerprint:
        return [
            f"the model was trained on dataset {config['dataset_fingerprint'][:16]} but "
            f"{split} comes from {dataset.fingerprint[:16]}: its test split may overlap the training data"
        ]
    return []


def _internal_set(
    request: EvaluationRequest, dataset: Dataset, predict: Callable, config: dict, point: OperatingPoint
) -> TestSet:
    """The split the model is evaluated on, with the shortcut audit (lungs hidden, lungs only), whose
    variants are also scored at the stored threshold."""
    data = dataset.load(request.split, columns_of(dataset, request.split))
    s = evaluate_set(request.split, data, predict, config, request.bootstrap_samples, request.seed)
    s.metrics["dataset"] = {"uri": dataset.root, "split": request.split, "fingerprint": dataset.fingerprint}
    s.metrics["audit"] = shortcut_audit(
        predict,
        s.data["image"],
        s.y_true,
        s.data["patient_id"],
        tuple(config["classes"]),
        request.bootstrap_samples,
        request.seed,
        lambda probabilities: at_operating_point(
            s.y_true, probabilities, s.data["patient_id"], point, request.bootstrap_samples, request.seed
        ),
    )
    return s


def _operating_point(
    request: EvaluationRequest, dataset: Dataset, predict: Callable, config: dict
) -> tuple[OperatingPoint, dict]:
    """The threshold the experiment's rule picks on the validation split; the same one serves every set."""
    classes = tuple(config["classes"])
    k = classes.index(POSITIVE_CLASS)
    if dataset.count("validation"):
        data = dataset.load("validation", ("image", "label_index"))
        positive = task_targets(config["task"], data["label_index"]) == k
        threshold, note = choose_threshold(positive, predict(data["image"])[:, k], request.operating_rule)
        counts = {"images": int(len(positive)), "positives": int(positive.sum())}
    else:
        threshold, note = 0.5, "the dataset has no validation split, so the threshold is 0.5"
        counts = {"images": 0, "positives": 0}
    point = OperatingPoint(rule=request.operating_rule, threshold=threshold, class_names=classes)
    return point, {
        "rule": point.rule,
        "threshold": threshold,
        "positive_class": POSITIVE_CLASS,
        "chosen_on": point.chosen_on,
        "validation": counts,
        "note": note,
    }


def _external_sets(request: EvaluationRequest, predict: Callable, config: dict) -> list[TestSet]:
    """Each ``--external`` ETL output, all of its images (external sets and within-source sets alike)."""
    sets = []
    for name, uri in request.externals.items():
        external = open_dataset(uri)
        external.verify()
        _check_shape(external, config, name)
        if external.fingerprint == config.get("dataset_fingerprint"):
            raise EvaluationError(
                f"--external {name}={uri}: this is the dataset the model was trained on; "
                "an external test set must be another ETL output"
            )
        s = evaluate_set(
            name, load_external(external), predict, config, request.bootstrap_samples, request.seed
        )
        s.metrics["dataset"] = {
            "uri": external.root,
            "split": "all",
            "fingerprint": external.fingerprint,
            "counts": external.manifest["counts"],
        }
        if name in request.external_kinds:
            s.metrics["kind"] = request.external_kinds[name]
        sets.append(s)
    return sets


def at_operating_point(
    y_true: np.ndarray,
    probabilities: np.ndarray,
    patients: np.ndarray,
    point: OperatingPoint,
    bootstrap_samples: int,
    seed: int,
) -> dict:
    """Sensitivity and specificity at the stored threshold, and calibration: the same for every set."""
    classes = tuple(point.class_names)
    k = classes.index(point.positive_class)
    return {
        "at_threshold": rates_at_threshold(
            y_true == k, probabilities[:, k], point.threshold, patients, bootstrap_samples, seed
        ),
        "calibration": calibration_report(y_true, probabilities, patients, classes, bootstrap_samples, seed),
    }


def _describe_set(s: TestSet, point: OperatingPoint, config: dict, request: EvaluationRequest) -> None:
    """Adds to a set's metrics: rates at the threshold, calibration, subgroups, the majority-class bar."""
    classes = tuple(config["classes"])
    patients = s.data["patient_id"]
    samples, seed = request.bootstrap_samples, request.seed
    s.metrics.update(at_operating_point(s.y_true, s.probabilities, patients, point, samples, seed))
    s.metrics["subgroups"] = subgroup_report(
        s.data, s.y_true, s.probabilities, classes, point.positive_class, point.threshold, samples, seed
    )
    s.metrics["majority_class_macro_f1"] = majority_class_macro_f1(s.y_true, len(classes))
    s.metrics["chance_accuracy"] = chance_accuracy(s.y_true, len(classes))
    sources = np.asarray(s.data["source"]).astype(str)
    s.metrics["sources_by_class"] = {
        classes[c]: sorted(set(sources[s.y_true == c])) for c in np.unique(s.y_true)
    }


def majority_class_macro_f1(y_true: np.ndarray, n_classes: int) -> float:
    """Macro F1 of always answering the set's most common class: the bar a model must clear."""
    counts = np.bincount(np.asarray(y_true, dtype=np.int64), minlength=n_classes)
    share = counts.max() / counts.sum()
    return float(2 * share / (1 + share) / n_classes)


def _probe(model, sets: list[TestSet], classes: tuple[str, ...], seed: int) -> dict:
    """The source probe over every evaluated image (split and external sets pooled: more sources per class)."""
    features = penultimate_features(model, np.concatenate([s.data["image"] for s in sets]))
    pooled = {
        key: np.concatenate([np.asarray(s.data[key]).astype(str) for s in sets])
        for key in ("source", "patient_id")
    }
    y_true = np.concatenate([s.y_true for s in sets])
    return source_probe(features, y_true, pooled["source"], pooled["patient_id"], classes, seed)


def _write_figures(
    model, history: dict, sets: list[TestSet], config: dict, request: EvaluationRequest
) -> tuple[dict, dict | None]:
    classes, title, out = tuple(config["classes"]), config["model"], request.output
    main, externals = sets[0], sets[1:]
    files = {
        "learning_curves": plots.learning_curves_png(history, title, out / "learning_curves.png").name,
        **_figures(main, classes, title, out, ""),
    }
    gradcam = (
        _gradcam_grid(model, main, classes, request.gradcam_examples, title, out)
        if request.gradcam_examples > 0
        else None
    )
    for s in externals:
        s.metrics["files"] = _figures(s, classes, f"{title} on {s.name}", out, f"_{s.name}")
    for s, suffix in ((main, ""), *((s, f"_{s.name}") for s in externals)):
        path = plots.reliability_png(
            s.metrics["calibration"], f"{title} on {s.name}", out / f"reliability{suffix}.png"
        )
        (files if s is main else s.metrics["files"])["reliability"] = path.name
    return files, gradcam


def training_seed(config: dict) -> int | None:
    """The seed the model was trained with (older models name it only among their hyperparameters)."""
    seed = config.get("seed", (config.get("hyperparameters") or {}).get("seed"))
    return None if seed is None else int(seed)


def run_evaluation(request: EvaluationRequest) -> dict:
    """Evaluates and writes every output file; returns what was written to ``metrics.json``."""
    check_writable(request.output, "--output")
    open_dataset(request.data).verify((request.split,))
    model, config, history = read_model_dir(request.model_dir)
    classes = tuple(config["classes"])
    predict = probability_fn(model)
    out = request.output
    out.mkdir(parents=True, exist_ok=True)

    dataset = open_dataset(request.data)
    _check_shape(dataset, config, request.split)
    point, point_summary = _operating_point(request, dataset, predict, config)
    main = _internal_set(request, dataset, predict, config, point)
    sets = [main, *_external_sets(request, predict, config)]
    for s in sets:
        _describe_set(s, point, config, request)
    probe = _probe(model, sets, classes, request.seed)
    files, gradcam = _write_figures(model, history, sets, config, request)
    write_predictions(out / "predictions.csv", sets, classes)
    save_operating_point(point, out)

    content = json_safe(
        {
            "format": FORMAT,
            "model": config["model"],
            "seed": training_seed(config),
            "task": config["task"],
            "classes": list(classes),
            "config": config,
            "history": history,
            "split": request.split,
            "test": main.metrics,
            "external": {s.name: s.metrics for s in sets[1:]},
            "operating_point": point_summary,
            "source_probe": probe,
            "gradcam": gradcam,
            "files": files,
            "settings": {
                "bootstrap_samples": request.bootstrap_samples,
                "gradcam_examples": request.gradcam_examples,
                "seed": request.seed,
                "operating_rule": request.operating_rule,
            },
            "warnings": _dataset_warnings(dataset, config, request.split),
            # Another CPU can train other weights from the same seed: say which machines made these.
            "provenance": {"training": config.get("provenance"), "evaluation": provenance.machine()},
        }
    )
    result = Evaluation.model_validate(content)
    result.test.audit.verdict = Verdict.model_validate(shortcut_verdict(summary_rows(result)))
    result.model_card = model_card(result, dataset.manifest)
    write_text_atomically(out / MODEL_CARD_FILE, json_text(result.model_card))
    write_text_atomically(out / SAGEMAKER_MODEL_CARD_FILE, content_text(result.model_card))
    write_text_atomically(out / "metrics.json", json_text(result))
    return result.dump()
