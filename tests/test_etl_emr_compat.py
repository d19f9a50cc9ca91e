"""The code EMR 5.32 runs (Python 3.7, Spark 2.4): syntax level and what it may import."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = [ROOT / "jobs" / "__init__.py", *sorted((ROOT / "jobs" / "etl").glob("*.py"))]
# What an EMR node has: the standard library, Spark's Python, and jobs/etl/emr-requirements.txt.
ALLOWED_TOP_LEVEL = {"pyspark", "numpy", "cv2", "boto3", "botocore", "jobs"}


def test_shipped_code_needs_no_python_newer_than_3_7():
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("vermin")),
            "-t=3.7-",
            "--violations",
            "--no-tips",
            *map(str, SHIPPED),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_shipped_code_imports_only_what_emr_nodes_have():
    for path in SHIPPED:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in ALLOWED_TOP_LEVEL or top in sys.stdlib_module_names, (path.name, name)
                if top == "jobs":
                    assert name == "jobs" or name.startswith("jobs.etl"), (path.name, name)
