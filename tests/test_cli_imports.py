"""A light start: ``import planner`` and ``planner --help`` import no scientific stack (numpy aside),
``planner validate`` neither cvxpy nor matplotlib (checked in a fresh interpreter; no timing is asserted)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("cvxpy", "matplotlib", "pandas", "scipy")

PROBE = """
import json, sys
{body}
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)), file=sys.__stderr__)
"""


def loaded_after(body: str) -> list[str]:
    code = PROBE.format(body=body, heavy=HEAVY)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stderr.strip().splitlines()[-1])


def test_import_planner_and_help_load_no_scientific_stack():
    # the public names are imported on first use (module __getattr__)
    assert loaded_after("import planner\nimport planner.cli\nassert 'fit' in dir(planner)") == []
    body = """
from planner.cli import main
try:
    main(["--help"])
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
"""
    assert loaded_after(body) == []


@pytest.mark.slow
def test_public_names_still_import_on_use():
    assert loaded_after("import planner\nplanner.law, planner.Scenario, planner.optimize") == ["pandas", "scipy"]
    assert loaded_after("from planner import fit, optimize, run_scenario") == ["pandas", "scipy"]


@pytest.mark.slow
@pytest.mark.parametrize("args", [["validate", "scenarios/inference-heavy.toml"], ["validate", "scenarios/three-domains.toml"]])
def test_validate_is_light(args):
    body = f"""
from planner.cli import main
try:
    main({args!r})
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
"""
    assert [m for m in loaded_after(body) if m in ("cvxpy", "matplotlib")] == []


@pytest.mark.slow
def test_run_with_html_does_import_the_plots(tmp_path):
    # the probe can see a heavy import: the check above is not vacuous
    body = f"""
from planner.cli import main
try:
    main(["run", "scenarios/inference-heavy.toml", "-o", {str(tmp_path / 'out')!r}, "--format", "html", "-q"])
except SystemExit as exc:
    assert exc.code in (0, None), exc.code
"""
    assert "matplotlib" in loaded_after(body)  # the HTML page's plots
