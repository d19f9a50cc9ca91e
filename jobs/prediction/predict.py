"""Scores a stream of input files in batches and writes each result as soon as its batch is done.

Memory holds one batch of images, whatever the number of inputs: rows go to ``predictions.csv`` and
``predictions.jsonl`` as they come, and a refused file gets a row with its reason instead of
probabilities. The probabilities come from ``probability_fn``, the function evaluation uses.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from jobs.contracts.operating_point import OperatingPoint, decide
from jobs.etl.blobs import read_blob
from jobs.etl.imaging import ImageRejected
from jobs.evaluation.evaluate import probability_fn
from jobs.prediction.preprocess import DEFAULT_MIN_SIDE, Prepared, prepare

LOG = logging.getLogger(__name__)

NOTICE = "research use only, not for diagnosis"
FORMAT = "cxr-predictions/1"


@dataclass(frozen=True)
class PredictionSettings:
    output: Path
    model_id: str
    classes: tuple[str, ...]
    image_size: int
    point: OperatingPoint | None
    batch_size: int = 32
    min_side: int = DEFAULT_MIN_SIDE
    gradcam: bool = False
    progress_seconds: float = 10.0
    aliases: tuple[tuple[str, str], ...] = ()


def shown_path(uri: str, aliases: tuple[tuple[str, str], ...]) -> str:
    """The path a row names: a job's local mount point is shown as the S3 prefix it was copied from."""
    for local, remote in aliases:
        if uri.startswith(local.rstrip("/") + "/"):
            return remote.rstrip("/") + "/" + uri[len(local.rstrip("/")) + 1 :]
    return uri


@dataclass
class Summary:
    scored: int = 0
    refused: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        refused = sum(self.refused.values())
        text = f"{self.scored} scored, {refused} refused"
        if refused:
            text += " (" + "; ".join(f"{n}x {r}" for r, n in self.refused.most_common()) + ")"
        if self.skipped:
            names = ", ".join(f"{n}x {s}" for s, n in sorted(self.skipped.items()))
            text += f", {sum(self.skipped.values())} non-image file(s) in folders skipped ({names})"
        return text


def decision_rule(point: OperatingPoint | None) -> str:
    if point is None:
        return "argmax: no operating point was given or saved with the model, so no threshold applies"
    return (
        f"{point.positive_class} if p >= {point.threshold:.6g} ({point.rule}, chosen on "
        f"{point.chosen_on}); else the most probable other class"
    )


def refusal_kind(reason: str) -> str:
    """The reason without its details (the summary groups by it): text before the first ':'."""
    return reason.split(":", 1)[0]


def _prepared(uris: Iterable[str], settings: PredictionSettings) -> Iterator[tuple[str, str, object]]:
    """(uri, sha256, Prepared or the refusal reason) per input, reading one file at a time."""
    for uri in uris:
        try:
            data = read_blob(uri)
        except (OSError, ValueError) as exc:
            yield uri, "", f"unreadable file: {exc}"
            continue
        if data is None:
            yield uri, "", "unreadable file: no such file"
            continue
        digest = hashlib.sha256(data).hexdigest()
        try:
            yield uri, digest, prepare(data, uri, settings.image_size, settings.min_side)
        except ImageRejected as exc:
            yield uri, digest, str(exc)


def _batches(items: Iterator[tuple[str, str, object]], size: int) -> Iterator[list[tuple[str, str, object]]]:
    """Groups items so that each group has ``size`` prepared images (refusals ride along)."""
    batch: list[tuple[str, str, object]] = []
    ready = 0
    for item in items:
        batch.append(item)
        ready += isinstance(item[2], Prepared)
        if ready == size:
            yield batch
            batch, ready = [], 0
    if batch:
        yield batch


def csv_row(record: dict, classes: tuple[str, ...]) -> list[str]:
    """A JSONL record as a predictions.csv row (empty probabilities for a refusal)."""
    probabilities = record.get("probabilities", {})
    return (
        [
            record["path"],
            record["sha256"],
            record["status"],
            record.get("reason", ""),
            record.get("decision", ""),
        ]
        + [f"{probabilities[c]:.6f}" if c in probabilities else "" for c in classes]
        + [record["model_id"], record.get("decision_rule", ""), record.get("preprocessing", ""), NOTICE]
    )


def overlay_png(image: np.ndarray, heatmap: np.ndarray, path: Path) -> Path:
    """The image with the Grad-CAM heatmap blended over it (jet colours, 40%), as a PNG."""
    colours = cv2.applyColorMap(np.uint8(np.rint(heatmap * 255)), cv2.COLORMAP_JET)
    blended = cv2.addWeighted(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), 0.6, colours, 0.4, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), blended)
    return path


def run_predictions(model, uris: Iterable[str], settings: PredictionSettings) -> Summary:
    """Scores every input, writing predictions.csv and predictions.jsonl in ``output`` row by row."""
    out = settings.output
    out.mkdir(parents=True, exist_ok=True)
    predict = probability_fn(model, settings.batch_size)
    classes, rule = settings.classes, decision_rule(settings.point)
    summary = Summary()
    last_progress = time.monotonic()
    explain = None
    if settings.gradcam:
        from jobs.evaluation.gradcam import find_target_layer, gradcam

        layer = find_target_layer(model)

        def explain(image: np.ndarray, index: int) -> np.ndarray:
            return gradcam(model, image.astype(np.float32) / np.float32(255.0), index, layer)

    with (
        (out / "predictions.csv").open("w", newline="") as csv_handle,
        (out / "predictions.jsonl").open("w") as jsonl,
    ):
        table = csv.writer(csv_handle)
        table.writerow(
            ["path", "sha256", "status", "reason", "decision"]
            + [f"p_{c}" for c in classes]
            + ["model_id", "decision_rule", "preprocessing", "notice"]
        )
        for batch in _batches(_prepared(uris, settings), settings.batch_size):
            images = [item[2].image for item in batch if isinstance(item[2], Prepared)]
            probabilities = predict(np.stack(images)) if images else np.zeros((0, len(classes)))
            decisions = decide(probabilities, classes, settings.point) if images else []
            scored = iter(zip(probabilities, decisions, strict=True))
            for uri, digest, result in batch:
                record = {
                    "path": shown_path(uri, settings.aliases),
                    "sha256": digest,
                    "model_id": settings.model_id,
                    "notice": NOTICE,
                }
                if isinstance(result, Prepared):
                    probs, decision = next(scored)
                    record |= {
                        "status": "scored",
                        "decision": classes[int(decision)],
                        "probabilities": {c: round(float(p), 6) for c, p in zip(classes, probs, strict=True)},
                        "decision_rule": rule,
                        "preprocessing": result.steps,
                    }
                    if explain is not None:
                        name = f"{summary.scored:06d}-{Path(uri).stem}.png"
                        heatmap = explain(result.image, int(decision))
                        overlay_png(result.image, heatmap, out / "gradcam" / name)
                        record["gradcam"] = f"gradcam/{name}"
                    summary.scored += 1
                else:
                    record |= {"status": "refused", "reason": result}
                    summary.refused[refusal_kind(result)] += 1
                jsonl.write(json.dumps(record) + "\n")
                table.writerow(csv_row(record, classes))
            if time.monotonic() - last_progress >= settings.progress_seconds:
                last_progress = time.monotonic()
                rate = summary.scored / max(last_progress - summary.started, 1e-9)
                LOG.info(f"predict: {summary.line()} so far, {rate:.1f} images/s")
    return summary


def write_summary(settings: PredictionSettings, summary: Summary, model_uri: str, sources: list[str]) -> Path:
    """summary.json: what was scored with which model and rule; the notice travels with the numbers."""
    path = settings.output / "summary.json"
    point = settings.point
    path.write_text(
        json.dumps(
            {
                "format": FORMAT,
                "notice": NOTICE,
                "model": {"uri": model_uri, "id": settings.model_id, "classes": list(settings.classes)},
                "image_size": settings.image_size,
                "decision_rule": decision_rule(point),
                "operating_point": None
                if point is None
                else {**point.__dict__, "class_names": list(point.class_names)},
                "inputs": sources,
                "scored": summary.scored,
                "refused": dict(summary.refused),
                "skipped_non_images": dict(summary.skipped),
                "seconds": round(time.monotonic() - summary.started, 3),
            },
            indent=2,
        )
        + "\n"
    )
    return path
