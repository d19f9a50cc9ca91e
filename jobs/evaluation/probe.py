"""Source probe: do the model's own penultimate features tell which source an image came from?

Within one class the disease is fixed, so whatever lets a linear model separate the sources is the
source, not the disease. Logistic regression, cross-validated with GroupKFold on patients (no patient in
both the fitting and the scoring fold); scored by balanced accuracy (chance 0.5 for two sources) and,
for two sources, ROC AUC. High means the features carry the source.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MIN_PATIENTS_PER_SOURCE = 5
MAX_FOLDS = 5


def penultimate_features(model, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """The input of the final softmax layer (the head's dense output; dropout is off at inference)."""
    import keras

    from jobs.evaluation.inference import batched_outputs

    return batched_outputs(keras.Model(model.inputs, model.layers[-1].input), batch_size)(images)


def probe_class(features: np.ndarray, sources: np.ndarray, patients: np.ndarray, seed: int = 0) -> dict:
    """Cross-validated source prediction among one class's images; ``skipped`` says why when impossible."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score, roc_auc_score
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    sources = np.asarray(sources).astype(str)
    patients = np.asarray(patients).astype(str)
    names = sorted(set(sources))
    per_source = {s: len(np.unique(patients[sources == s])) for s in names}
    base = {"images": int(len(sources)), "patients_by_source": per_source}
    if len(names) < 2:
        return {**base, "skipped": f"one source only ({names[0] if names else 'no images'})"}
    if min(per_source.values()) < MIN_PATIENTS_PER_SOURCE:
        return {**base, "skipped": f"a source has fewer than {MIN_PATIENTS_PER_SOURCE} patients"}
    folds = min(MAX_FOLDS, len(np.unique(patients)))
    probability = np.zeros((len(sources), len(names)))
    target = np.searchsorted(names, sources)
    for fit, score in GroupKFold(n_splits=folds).split(features, target, patients):
        if len(np.unique(target[fit])) < len(names):
            return {**base, "skipped": "a fold lacks a source; too few patients to cross-validate"}
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
        model.fit(features[fit], target[fit])
        probability[score] = model.predict_proba(features[score])
    return {
        **base,
        "folds": folds,
        "balanced_accuracy": float(balanced_accuracy_score(target, probability.argmax(axis=1))),
        "chance": 1.0 / len(names),
        "roc_auc": float(roc_auc_score(target, probability[:, 1])) if len(names) == 2 else None,
    }


def source_probe(
    features: np.ndarray,
    y_true: np.ndarray,
    sources: np.ndarray,
    patients: np.ndarray,
    classes: Sequence[str],
    seed: int = 0,
) -> dict:
    """The probe for every class of the pooled evaluated images (test split and external sets)."""
    y_true = np.asarray(y_true)
    sources, patients = np.asarray(sources), np.asarray(patients)
    return {
        "method": "logistic regression on standardised penultimate features, GroupKFold by patient",
        "classes": {
            name: probe_class(features[y_true == k], sources[y_true == k], patients[y_true == k], seed)
            for k, name in enumerate(classes)
        },
    }
