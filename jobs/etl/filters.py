"""Per-source metadata filters: hold part of a source out of a dataset (one hospital, some findings).

``--include COLUMN=TEXT`` keeps only rows whose metadata column contains TEXT, ``--exclude COLUMN=TEXT``
drops them (case-insensitive substrings; several TEXTs of one column are any-of, several columns must
all hold). A row a filter drops is counted with its reason, like a row the label rules leave out, so
a held-out image is never silently missing.
"""

from jobs.etl.errors import EtlError

MODES = ("include", "exclude")


class SourceFilter(object):
    """The filters of one source: ``[(mode, column, text)]`` with mode ``include`` or ``exclude``."""

    def __init__(self, kind, rules=()):
        self.kind = kind
        self.by_mode = {mode: {} for mode in MODES}
        for mode, column, text in rules:
            self.by_mode[mode].setdefault(column, []).append(text)

    def columns(self):
        return sorted(set(self.by_mode["include"]) | set(self.by_mode["exclude"]))

    def check_columns(self, uri, header):
        """Refuses a filter on a column the metadata file lacks, naming the file and the columns it has."""
        unknown = [c for c in self.columns() if c not in header]
        if unknown:
            raise EtlError(
                "{}: no column {} to filter on (--include/--exclude of --source {}); the file's columns "
                "are: {}".format(
                    uri, ", ".join(repr(c) for c in unknown), self.kind, ", ".join(h for h in header if h)
                )
            )

    def dropped(self, row):
        """The exclusion reason of a row the filters drop, or None when it is kept."""
        for column, texts in sorted(self.by_mode["include"].items()):
            if not _contains_any(row.get(column, ""), texts):
                return "{}: {} contains none of {} (--include)".format(self.kind, column, _quoted(texts))
        for column, texts in sorted(self.by_mode["exclude"].items()):
            if _contains_any(row.get(column, ""), texts):
                return "{}: {} contains {} (--exclude)".format(self.kind, column, _quoted(texts))
        return None


def _contains_any(value, texts):
    value = value.lower()
    return any(text.lower() in value for text in texts)


def _quoted(texts):
    return " or ".join(repr(t) for t in texts)


def filter_of(kind, index, rules):
    """The ``SourceFilter`` of the ``index``-th ``--source`` from ``[(source index, mode, column, text)]``."""
    return SourceFilter(kind, [(mode, column, text) for i, mode, column, text in rules if i == index])
