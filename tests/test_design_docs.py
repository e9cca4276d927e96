"""The worked example of docs/design.md runs as written, and prints what the page says it prints.

Blocks of the page marked ``<!-- example:file NAME -->`` are written to NAME, ``<!-- example:run -->``
blocks run (bash: one ``planner ...`` command a line, run as ``python -m planner``, never through a
shell; python: ``python -c``), in order, in an empty folder; an ``<!-- example:output -->`` block
must match the standard output of the run block before it: the text exactly, each number to 2 %
(the last printed digit may differ between BLAS builds).

    python tests/test_design_docs.py --update    # rerun the example and rewrite the output blocks
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "design.md"
BLOCK = re.compile(r"<!-- example:(?P<kind>file (?P<name>\S+)|run|output) -->\n```(?P<lang>\w*)\n(?P<body>.*?)```\n", re.S)
NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _commands(lang: str, body: str) -> list[list[str]]:
    if lang == "python":
        return [[sys.executable, "-c", body]]
    if lang != "bash":
        raise ValueError(f"a run block is bash or python, not {lang!r}")
    out = []
    for line in body.splitlines():
        if not line.strip():
            continue
        argv = shlex.split(line)
        if argv[0] != "planner":
            raise ValueError(f"a bash run block holds planner commands only: {line!r}")
        out.append([sys.executable, "-m", "planner", *argv[1:]])
    return out


def run_example(folder: Path, page: str) -> list[tuple[re.Match, str | None]]:
    """Run every block of ``page`` in ``folder``; (each output block's match, the output it should show)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    last: str | None = None
    outputs = []
    for m in BLOCK.finditer(page):
        kind = m["kind"]
        if kind.startswith("file "):
            (folder / m["name"]).write_text(m["body"])
        elif kind == "run":
            last = ""
            for argv in _commands(m["lang"], m["body"]):
                res = subprocess.run(argv, cwd=folder, env=env, capture_output=True, text=True, timeout=1800)
                assert res.returncode == 0, f"{shlex.join(argv[:3])}... exited {res.returncode}:\n{res.stderr[-3000:]}"
                last += res.stdout
        else:
            outputs.append((m, last))
            last = None
    return outputs


def same_output(expected: str, actual: str, rel: float = 0.02) -> bool:
    """Text equal, numbers within ``rel`` (trailing spaces ignored)."""
    norm = lambda s: "\n".join(line.rstrip() for line in s.strip().splitlines())  # noqa: E731
    e, a = norm(expected), norm(actual)
    if NUMBER.split(e) != NUMBER.split(a):
        return False
    ne, na = [float(x) for x in NUMBER.findall(e)], [float(x) for x in NUMBER.findall(a)]
    return len(ne) == len(na) and all(abs(x - y) <= rel * max(abs(x), abs(y)) + 1e-12 for x, y in zip(ne, na))


def test_same_output_compares_text_exactly_and_numbers_loosely() -> None:
    assert same_output("waste 12.8 % of 1e+22\n", "waste 12.9 % of 1e+22  ")
    assert not same_output("waste 12.8 % of 1e+22", "waste 15 % of 1e+22")
    assert not same_output("28 new runs", "28 new ladders")
    assert not same_output("a 1 b", "a 1 b 2")


@pytest.mark.slow
def test_the_worked_example_runs_and_prints_what_the_page_says(tmp_path: Path) -> None:
    page = PAGE.read_text()
    outputs = run_example(tmp_path, page)
    assert len(outputs) >= 4
    for m, actual in outputs:
        assert actual is not None, "an output block without a run block before it"
        assert same_output(m["body"], actual), f"docs/design.md is stale; expected\n{m['body']}\ngot\n{actual}\n(--update rewrites it)"


def _update() -> None:
    import tempfile

    page = PAGE.read_text()
    t0, c0 = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as d:
        outputs = run_example(Path(d), page)
    for m, actual in reversed(outputs):
        page = page[: m.start("body")] + (actual or "").rstrip("\n") + "\n" + page[m.end("body"):]
    PAGE.write_text(page)
    print(f"rewrote {len(outputs)} output blocks of {PAGE} ({time.perf_counter() - t0:.0f} s wall; children's CPU "
          f"{sum(os.times()[2:4]):.0f} s, this process {time.process_time() - c0:.0f} s)")


if __name__ == "__main__":
    if sys.argv[1:] == ["--update"]:
        _update()
    else:
        sys.exit(pytest.main([__file__, "-q"]))
