"""The paper's published figures, for the report's "paper" column. One place, each with its origin.

Only the two headline results are recorded: the best binary (COVID-19 vs rest) accuracy, 0.99 with
InceptionV3, and the best three-class (COVID-19 / Normal / Pneumonia) accuracy, 0.77, as stated in the
paper's abstract and restated in this project's evaluation issue (issue 4). The per-model rows of the
paper's Tables 1 and 2 are not copied here: without the table text at hand they could not be checked,
and an unchecked number beside ours would mislead more than an empty cell.
"""

from __future__ import annotations

# The paper's experiments an experiment file may name as its ``paper_reference`` (schema and report).
PAPER_EXPERIMENTS = ("binary", "multiclass", "densenet121-three-stage")

PAPER_FIGURES: dict[str, dict] = {
    # Binary task, best model: InceptionV3, accuracy 0.99 (paper's abstract; Table 1's best row).
    "binary": {"best": {"model": "inceptionv3", "accuracy": 0.99}},
    # Three classes, best model: accuracy 0.77 (paper's abstract); the model is not recorded here.
    "multiclass": {"best": {"model": None, "accuracy": 0.77}},
}


def paper_accuracy(reference: str | None, model: str) -> float | None:
    """The paper's accuracy for ``model`` in the experiment the paper ran, when it is recorded."""
    best = PAPER_FIGURES.get(reference or "", {}).get("best")
    return best["accuracy"] if best and best["model"] == model else None


def paper_headline(reference: str | None) -> dict | None:
    """The paper's best result for the experiment's task, or None when the experiment is not the paper's."""
    return PAPER_FIGURES.get(reference or "", {}).get("best")
