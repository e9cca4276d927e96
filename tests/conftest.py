"""Shared test setup: the in-repository published data, the tables built from it, and one BLAS thread.

The published data files the tests read are shipped in ``data/published/<dataset>/`` (see
``data/README.md``), so the whole suite runs on a fresh clone: a missing file is a test *error*,
never a skip.

Markers (registered in ``pyproject.toml``): ``slow`` (over about 5 s; ``make test-fast`` leaves them
out), ``browser`` (needs headless chromium), ``fuzz`` (property tests with many examples).
"""

from __future__ import annotations

import os

# One BLAS thread for every test and every subprocess it starts, set before numpy is imported: on a
# loaded machine OpenBLAS's spinning thread pool makes the tiny dense operations of a fit several
# times slower (see planner/_threads.py). Export the variables to override.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

import planner  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: The published data shipped with the repository (the one place the tests look for it).
PUBLISHED_DATA = ROOT / "data" / "published"
#: Example scenarios and their synthetic run tables.
SCENARIOS = ROOT / "scenarios"
#: The ids of the five inline SVG plots every HTML report carries (reports with an [uncertainty]
#: decision carry more: tests/test_report_browser.py lists them).
PLOT_IDS = ["plot-compute", "plot-flops", "plot-fit-parity", "plot-fit-residuals", "plot-isoloss"]


# Property tests: no per-example deadline and no "too slow" health check, which fail on a loaded machine
# for reasons that have nothing to do with the code; a test's own @settings still wins for what it sets.
# Derandomized (the same examples on every run and every machine, no example database): a CI run on a
# fresh clone must not turn red because this run happened to draw a new example. `HYPOTHESIS_PROFILE=explore`
# draws fresh random examples, to look for new failures on purpose.
settings.register_profile("planner", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True,
                          derandomize=True, database=None)
settings.register_profile("explore", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "planner"))


def published_path(rel: str) -> Path:
    """Path of a shipped published data file; fails the calling test (never skips) if it is missing."""
    path = PUBLISHED_DATA / rel
    if not path.is_file():
        pytest.fail(f"published data file {path} is missing from the repository (see data/README.md)", pytrace=False)
    return path


@pytest.fixture(scope="session")
def published_data() -> Path:
    """The folder ``data/published`` of the repository."""
    assert PUBLISHED_DATA.is_dir(), f"{PUBLISHED_DATA} is missing (see data/README.md)"
    return PUBLISHED_DATA


@pytest.fixture(scope="session")
def published_file() -> Callable[[str], Path]:
    """``published_file("epoch_chinchilla_replication/svg_extracted_data.csv")`` -> checked path."""
    return published_path


@pytest.fixture(scope="module")
def epoch_runs() -> pd.DataFrame:
    """Epoch AI's digitised Chinchilla points (N, C=6ND, loss) minus the 5 highest losses: 240 runs, as Epoch fits them."""
    path = published_path("epoch_chinchilla_replication/svg_extracted_data.csv")
    runs = planner.load_runs(path, columns={"Model Size": "model_size", "Training FLOP": "flops"})
    return planner.load_runs(runs[runs["loss"] < sorted(runs["loss"])[-5]])
