"""The three classes of the paper, in label-index order, and the names users give them."""

CLASSES = ("COVID-19", "Normal", "Pneumonia")

_ALIASES = {
    "covid-19": "COVID-19",
    "covid19": "COVID-19",
    "covid": "COVID-19",
    "normal": "Normal",
    "no finding": "Normal",
    "no_finding": "Normal",
    "no_findings": "Normal",
    "pneumonia": "Pneumonia",
}


def canonical_label(name):
    """The class a folder or cap name stands for, or None when it is not one of ``CLASSES``."""
    return _ALIASES.get(name.strip().lower())


def label_index(label):
    return CLASSES.index(label)
