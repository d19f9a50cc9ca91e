"""Shared fixtures: the real sample, one real local SparkSession, one small ETL output per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobs.console import configure_logging

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT.parent / "shared" / "data" / "cxr-sample"
SMALL_IMAGE_SIZE = 64
pytest_plugins = ["tests.container_fixtures"]  # the container tests' image, requests and emulated job


def require_sample() -> Path:
    if not (SAMPLE / "cohen" / "metadata.csv").exists():
        pytest.skip(f"the real X-ray sample is absent at {SAMPLE}")
    return SAMPLE


@pytest.fixture(scope="session", autouse=True)
def console_logging() -> None:
    """What every entry point's ``main`` is called with in use: library lines on stdout, problems on stderr."""
    configure_logging()


@pytest.fixture(scope="session")
def sample() -> Path:
    return require_sample()


@pytest.fixture(scope="session")
def spark():
    from jobs.etl.spark_job import local_session

    session = local_session("cxr-tests")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def small_dataset(spark, sample, tmp_path_factory) -> Path:
    """The ETL run once on the real sample at 64x64: the input of training and evaluation tests."""
    from jobs.etl import spark_job

    out = tmp_path_factory.mktemp("etl") / "small"
    code = spark_job.main(
        [
            f"--source=cohen={sample / 'cohen'}",
            f"--source=nih={sample / 'nih'}",
            f"--output={out}",
            f"--image-size={SMALL_IMAGE_SIZE}",
        ],
        session_factory=lambda: spark,
    )
    assert code == 0
    return out


_CONTAINER_SKIP = pytest.StashKey[str]()


# A test is slow (left out by `make test-fast`) when it needs a Spark session or a CDK synth: found from
# its fixtures and from the helpers its module uses, so a new such test is marked without anyone's help.
SLOW_FIXTURES = {"spark"}
SLOW_HELPERS = {"tests.cdk_support", "tests.sfn_support", "tests.contract_models", "tests.sagemaker_local"}


def _uses_slow_helpers(module) -> bool:
    return any(
        getattr(value, "__module__", None) in SLOW_HELPERS or getattr(value, "__name__", None) in SLOW_HELPERS
        for value in vars(module).values()
    )


def pytest_collection_modifyitems(config, items) -> None:
    """Marks slow tests; container tests (marker ``container``) are left out, with one line, where no
    Docker engine can be had."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or _uses_slow_helpers(item.module):
            item.add_marker(pytest.mark.slow)
    selected = [item for item in items if item.get_closest_marker("container")]
    if not selected:
        return
    from tests.sagemaker_local import engine_problem

    problem = engine_problem()
    if problem:
        config.hook.pytest_deselected(items=selected)
        items[:] = [item for item in items if item not in selected]
        config.stash[_CONTAINER_SKIP] = f"{len(selected)} container tests skipped: {problem}"


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if _CONTAINER_SKIP in config.stash:
        terminalreporter.write_line(config.stash[_CONTAINER_SKIP])
