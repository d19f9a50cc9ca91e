"""`cxr report`: one self-contained page for the experiment, opened in headless Chromium."""

from __future__ import annotations

import json
import re
import subprocess
from base64 import b64encode
from pathlib import Path

import numpy as np
import pytest

from jobs.cli import main as cxr
from jobs.evaluation.paper_figures import paper_accuracy, paper_headline
from tests.contract_models import evaluated_experiment

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")
MODELS = ("small_cnn", "constant")


@pytest.fixture(scope="module")
def report(small_dataset, tmp_path_factory):
    root = evaluated_experiment(small_dataset, tmp_path_factory.mktemp("evaluation"))
    out = root / "report"
    assert (
        cxr(
            [
                "report",
                str(root / "experiment"),
                f"--output={out}",
                f"--manifest={small_dataset}",
            ]
        )
        == 0
    )
    return out


def test_report_json_has_every_model_and_the_dataset(report, small_dataset):
    data = json.loads((report / "report.json").read_text(), parse_constant=lambda t: pytest.fail(t))
    assert sorted(m["model"] for m in data["models"]) == sorted(MODELS)
    manifest = json.loads((small_dataset / "manifest.json").read_text())
    assert data["dataset"]["fingerprint"] == manifest["fingerprint"]
    assert data["dataset"]["counts"] == manifest["counts"]
    for m in data["models"]:
        assert m["config"]["dataset_fingerprint"] == manifest["fingerprint"]
        assert m["audit"]["verdict"]["text"] and set(m["external"]) == {"other"}
    assert data["paper_headline"] is None


def test_html_is_self_contained(report):
    page = (report / "report.html").read_text()
    sources = re.findall(r"""(?:src|href)\s*=\s*['"]([^'"]*)""", page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "http://" not in page and "https://" not in page
    assert page.count("data:image/png;base64,") >= 2 * 4  # curves, confusion, ROC, Grad-CAM per model


def test_every_figure_an_evaluation_wrote_is_on_the_page(report):
    """Read from the evaluations' folders, not from the list the report keeps: a new figure that the
    evaluation writes but the page leaves out fails here."""
    page = (report / "report.html").read_text()
    embedded = set(re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page))
    written = sorted((report.parent / "experiment").rglob("*.png"))
    missing = [
        str(p.relative_to(report.parent))
        for p in written
        if b64encode(p.read_bytes()).decode() not in embedded
    ]
    assert written and missing == []


def test_paper_figures_only_for_the_papers_experiments():
    assert paper_accuracy("binary", "inceptionv3") == 0.99 and paper_accuracy("binary", "resnet50") is None
    assert paper_headline("multiclass")["accuracy"] == 0.77 and paper_headline(None) is None


@pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="headless Chromium is not installed at /usr/bin/chromium "
    "(apt-get install -y chromium); the report's browser check needs it",
)
def test_page_renders_in_headless_chromium_with_every_model(report, tmp_path):
    import cv2

    url = (report / "report.html").resolve().as_uri()
    flags = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    dom = subprocess.run(flags + ["--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    for bad in ("Uncaught", "Failed to load resource", "net::ERR"):
        assert bad not in dom.stderr
    text = re.sub(r"<[^>]+>", " ", dom.stdout)
    for model in MODELS:
        assert text.count(model) >= 3, model  # summary, per-class table, figures
    for heading in ("Shortcut audit", "External test sets", "Dataset (ETL manifest)", "exact configuration"):
        assert heading in text
    shot = tmp_path / "report.png"
    run = subprocess.run(
        flags + [f"--screenshot={shot}", "--window-size=1400,3000", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    pixels = cv2.imread(str(shot))
    assert pixels.shape[:2] == (3000, 1400) and float(np.std(pixels)) > 10  # something was drawn
