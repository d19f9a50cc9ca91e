"""The README's results are generated, not typed: its block is `cxr readme-table` of the run's report kept
in docs/, and every sentence in it is one the report itself printed."""

from __future__ import annotations

import json
from pathlib import Path

from jobs.contracts.results.report import read_report
from jobs.evaluation.readme_table import BEGIN, END, replace_block, results_block

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "docs" / "demo-report.json"
SOURCE = "docs/demo-report.json"


def test_the_readme_block_is_generated_from_the_kept_report():
    report = json.loads(REPORT.read_text())
    readme = (ROOT / "README.md").read_text()
    block = results_block(read_report(REPORT), SOURCE)
    assert block in readme
    assert readme.count(BEGIN.format(source=SOURCE)) == 1 and readme.count(END) == 1
    # the sentences are the report's own, and every model of the experiment has at least three seeds
    assert all(f"- {s}" in block for m in report["across_seeds"] for s in m["sentences"])
    assert all(len(m["seeds"]) >= 3 for m in report["across_seeds"])
    assert report["experiment"] == "demo" and report["machines"]


def test_replacing_the_block_keeps_the_rest_and_refuses_a_readme_without_one():
    text = f"before\n{results_block(read_report(REPORT), 'old')}\nafter\n"
    replaced = replace_block(text, "NEW")
    assert replaced == "before\nNEW\nafter\n"
    try:
        replace_block("no block here", "NEW")
    except ValueError as exc:
        assert "no results block" in str(exc)
    else:
        raise AssertionError("a README without a block was accepted")
