"""Which experiment an output folder belongs to, so that two experiment files with the same name
cannot mix their models, evaluations and reports in one folder."""

from __future__ import annotations

import json
from pathlib import Path

from jobs.atomic import write_text_atomically
from jobs.experiment.schema import Experiment

RECORD_FILE = "experiment.json"


class ExperimentClash(ValueError):
    """The folder holds another experiment's outputs; the message names both files."""


def claim(folder: Path, exp: Experiment, origin: Path, force: bool) -> str | None:
    """Records ``exp`` as the owner of ``folder``; returns a note when it replaces an earlier record.

    An edited experiment file may keep its folder (changed steps rerun); another file with the same
    name is refused unless ``force``: its outputs would be counted as this one's.
    """
    path = folder / RECORD_FILE
    digest = exp.digest()
    note = None
    if path.exists():
        record = json.loads(path.read_text())
        if record.get("digest") != digest:
            if record.get("file") != str(origin.resolve()) and not force:
                raise ExperimentClash(
                    f"{folder} holds the outputs of another experiment named {exp.name!r} (from "
                    f"{record.get('file')}, digest {record.get('digest')}); {origin} differs "
                    f"(digest {digest}). Rename one of them, use another --runs-dir, or pass --force "
                    "to rerun every step for this file"
                )
            note = f"experiment {exp.name}: settings changed since the last run here; changed steps rerun"
    body = {"digest": digest, "file": str(origin.resolve()), "experiment": exp.model_dump(mode="json")}
    write_text_atomically(path, json.dumps(body, indent=2, sort_keys=True) + "\n")
    return note
