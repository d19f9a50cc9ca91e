"""Library code logs; only the commands whose product is text print it."""

from __future__ import annotations

import ast
import logging
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Modules whose printed text is the command's product (a table, a JSON document, a help text, a status).
PRINTS_ITS_PRODUCT = {
    "jobs/cloud/commands.py",
    "jobs/cloud/costs.py",
    "jobs/evaluation/readme_table.py",
    "jobs/training/entry.py",
}


def _printing_modules() -> set[str]:
    found = set()
    for path in (ROOT / "jobs").rglob("*.py"):
        tree = ast.parse(path.read_text())
        calls = (n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name))
        if any(call.func.id == "print" for call in calls):
            found.add(str(path.relative_to(ROOT)))
    return found


def test_only_commands_whose_product_is_text_print():
    assert _printing_modules() <= PRINTS_ITS_PRODUCT


def test_progress_goes_to_stdout_and_problems_to_stderr_even_when_redirected(capsys):
    logger = logging.getLogger("jobs.some.library")
    logger.info("epoch 1/5")
    logger.debug("not shown at the default level")
    logger.warning("no operating point")
    captured = capsys.readouterr()
    assert captured.out == "epoch 1/5\n"
    assert captured.err == "no operating point\n"


def test_a_command_configures_the_same_console_in_a_fresh_process(tmp_path):
    """``cxr`` itself (not the tests' fixture): its error line on stderr, nothing on stdout."""
    missing = tmp_path / "nope.json"
    done = subprocess.run(
        [sys.executable, "-m", "jobs.cli", "run", str(missing), "--local"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith(f"cxr run: error: {missing}: no such experiment file")
