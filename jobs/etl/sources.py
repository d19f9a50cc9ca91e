"""Readers for the raw sources in their own layouts. Pure functions of (metadata text, file listing).

Each returns candidates (images selected by the paper's rules), rejections (bad input, each with its
reason) and exclusions (rows the rules or the source's filters leave out, counted by reason, not
listed: the full NIH file has 112,120 rows).
"""

import csv
import io
import posixpath
import re
from collections import Counter, namedtuple

from jobs.etl.defaults import PAPER
from jobs.etl.errors import EtlError
from jobs.etl.filters import SourceFilter
from jobs.etl.labels import canonical_label

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
NIH_COLUMNS = ("Image Index", "Finding Labels", "Patient ID", "Patient Age", "View Position")
COHEN_COLUMNS = ("patientid", "finding", "view", "modality", "filename")


class Rules(object):
    """The paper's selection rules, every one configurable.

    ``labels``: ``{kind: ((finding, class), ...)}``, tried in order, first match wins; a kind not
    given keeps the paper's mapping (Cohen: the COVID-19 finding only; NIH: normal and pneumonia).
    """

    def __init__(
        self,
        view=PAPER["view"],
        modality=PAPER["modality"],
        covid_finding=PAPER["covid_finding"],
        pneumonia_finding=PAPER["pneumonia_finding"],
        normal_finding=PAPER["normal_finding"],
        labels=None,
    ):
        self.view = view
        self.modality = modality
        self.covid_finding = covid_finding
        self.pneumonia_finding = pneumonia_finding
        self.normal_finding = normal_finding
        self.labels = {
            "cohen": ((covid_finding, "COVID-19"),),
            "nih": ((normal_finding, "Normal"), (pneumonia_finding, "Pneumonia")),
        }
        self.labels.update(labels or {})

    def label_of(self, kind, findings):
        """The class of the first rule whose finding is in ``findings`` (Cohen: a substring of the
        finding text; NIH: one of its ``|``-separated labels), case-insensitive; None if none."""
        if kind not in self.labels:
            raise EtlError(
                "source kind {!r} has no label rules: give them with --label {}:FINDING=CLASS, or add its "
                "default findings to Rules in jobs/etl/sources.py".format(kind, kind)
            )
        for finding, label in self.labels[kind]:
            wanted = finding.lower()
            if any(wanted == f.lower() or (kind == "cohen" and wanted in f.lower()) for f in findings):
                return label
        return None

    def unmapped(self, kind):
        """The exclusion reason of a row that no label rule of ``kind`` maps."""
        findings = [finding for finding, _ in self.labels[kind]]
        if kind == "nih":
            return "nih: neither {}".format(" nor ".join(findings))
        return "{}: finding without {}".format(kind, " or ".join(findings))


class SourceResult(object):
    def __init__(self):
        self.candidates = []
        self.rejections = []
        self.exclusions = Counter()

    def reject(self, path, source, reason):
        self.rejections.append({"path": path, "source": source, "reason": reason})


def decode_text(data, uri):
    """Metadata files come as UTF-8 or, in older Cohen snapshots, Windows-1252. A NUL byte never
    occurs in text: it means a binary or damaged file, whose rows would otherwise vanish unseen."""
    nul = data.find(b"\x00")
    if nul >= 0:
        raise EtlError(
            "{}: line {} holds a NUL byte: the metadata file is binary or damaged, not CSV text; "
            "restore it from the dataset's download".format(uri, data.count(b"\n", 0, nul) + 1)
        )
    for encoding in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise EtlError("{}: cannot decode the metadata file as text".format(uri))


def is_image(path):
    return path.lower().endswith(IMAGE_EXTENSIONS)


def parse_age(text):
    """'65', '65.0', '058Y' (some NIH releases) -> 65.0; blank or unparsable -> None."""
    match = re.match(r"\s*(\d+(?:\.\d+)?)", text or "")
    return float(match.group(1)) if match else None


def _rows(text, uri, required, filters):
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise EtlError(
            "{}: the metadata file is empty; point --source at the dataset's folder".format(uri)
        ) from None
    missing = [c for c in required if c not in header]
    if missing:
        raise EtlError(
            "{}: missing column(s) {} in the header {}; is this the right file for this source kind?".format(
                uri, ", ".join(repr(c) for c in missing), header[:8]
            )
        )
    filters.check_columns(uri, header)
    index = {name: header.index(name) for name in header if name}
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            yield {name: (row[i].strip() if i < len(row) else "") for name, i in index.items()}
    except csv.Error as exc:
        raise EtlError(
            "{}: line {} is not valid CSV ({}); restore the file from the dataset's download".format(
                uri, reader.line_num, exc
            )
        ) from None


def _same(a, b):
    return a.strip().lower() == b.strip().lower()


def _held_out(row, filters, result):
    """True (and counted with its reason) when the source's filters drop a row the rules selected."""
    reason = filters.dropped(row)
    if reason:
        result.exclusions[reason] += 1
    return bool(reason)


def read_cohen(text, uri, root, files, rules, filters=None):
    """Cohen covid-chestxray-dataset: ``metadata.csv`` + ``<folder>/<filename>`` (folder defaults to images).
    ``filters``: the source's ``SourceFilter`` (None: every row the rules select)."""
    result = SourceResult()
    filters = filters or SourceFilter("cohen")
    for row in _rows(text, uri, COHEN_COLUMNS, filters):
        if not _same(row["modality"], rules.modality):
            result.exclusions["cohen: modality not {}".format(rules.modality)] += 1
            continue
        if not _same(row["view"], rules.view):
            result.exclusions["cohen: view not {}".format(rules.view)] += 1
            continue
        path = posixpath.join(root, row.get("folder") or "images", row["filename"])
        if not row["filename"]:
            result.reject(uri, "cohen", "metadata row of patient {} names no file".format(row["patientid"]))
            continue
        if not row["finding"]:
            result.reject(path, "cohen", "unknown label: empty finding")
            continue
        label = rules.label_of("cohen", [row["finding"]])
        if label is None:
            result.exclusions[rules.unmapped("cohen")] += 1
            continue
        if _held_out(row, filters, result):
            continue
        if path not in files:
            result.reject(path, "cohen", "missing file: named in metadata.csv but not found")
            continue
        result.candidates.append(
            {
                "path": path,
                "label": label,
                "patient_id": "cohen:" + row["patientid"],
                "source": "cohen",
                "age": parse_age(row.get("age")),
            }
        )
    return result


def read_nih(text, uri, files, rules, filters=None):
    """NIH ChestX-ray14: ``Data_Entry_2017.csv`` (2017 or 2020 header) + images anywhere below the root."""
    filters = filters or SourceFilter("nih")
    by_name = {}
    for path in files:
        by_name.setdefault(posixpath.basename(path), path)
    result = SourceResult()
    for row in _rows(text, uri, NIH_COLUMNS, filters):
        if not _same(row["View Position"], rules.view):
            result.exclusions["nih: view not {}".format(rules.view)] += 1
            continue
        labels = [part.strip() for part in row["Finding Labels"].split("|") if part.strip()]
        name = row["Image Index"]
        if not labels:
            result.reject(name, "nih", "unknown label: empty Finding Labels")
            continue
        label = rules.label_of("nih", labels)
        if label is None:
            result.exclusions[rules.unmapped("nih")] += 1
            continue
        if _held_out(row, filters, result):
            continue
        path = by_name.get(name)
        if path is None:
            result.reject(name, "nih", "missing file: named in Data_Entry_2017.csv but not found")
            continue
        result.candidates.append(
            {
                "path": path,
                "label": label,
                "patient_id": "nih:" + row["Patient ID"].lstrip("0"),
                "source": "nih",
                "age": parse_age(row["Patient Age"]),
            }
        )
    return result


def read_folders(root, files):
    """A plain ``<root>/<class>/<image>`` tree. With no patient ids, each image counts as its own patient."""
    result = SourceResult()
    root = root.rstrip("/")
    for path in sorted(files):
        relative = path[len(root) + 1 :]
        parts = relative.split("/")
        if len(parts) < 2:
            result.exclusions["folders: file outside a class folder"] += 1
            continue
        label = canonical_label(parts[0])
        if label is None:
            result.reject(
                path,
                "folders",
                "unknown label: folder {!r} is not one of COVID-19, Normal, Pneumonia".format(parts[0]),
            )
            continue
        stem = posixpath.splitext(posixpath.basename(path))[0]
        result.candidates.append(
            {
                "path": path,
                "label": label,
                "patient_id": "folders:" + stem,
                "source": "folders",
                "age": None,
            }
        )
    return result


# A source kind: the metadata file in its root (None: none), its reader, called as
# ``read(text, uri, root, images, rules, filters)``, and its layout in a few words (``--source``'s help).
# A new source is one reader registered here (plus, with findings, its default labels in ``Rules``); the
# command line, the experiment schema and the ETL's dispatch all derive from this table.
SourceKind = namedtuple("SourceKind", ["metadata", "read", "layout"])
KINDS = {
    "cohen": SourceKind("metadata.csv", read_cohen, "metadata.csv + images/"),
    "nih": SourceKind(
        "Data_Entry_2017.csv",
        lambda text, uri, root, images, rules, filters: read_nih(text, uri, images, rules, filters),
        "Data_Entry_2017.csv + images anywhere below",
    ),
    "folders": SourceKind(
        None,
        lambda text, uri, root, images, rules, filters: read_folders(root, images),
        "one folder per class",
    ),
}
KIND_NAMES = tuple(KINDS)
# Kinds whose metadata names findings, which label rules map to classes and filters select rows by.
LABELLED_KIND_NAMES = tuple(name for name, kind in KINDS.items() if kind.metadata)
