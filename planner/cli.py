"""The ``planner`` command line: a thin layer that parses, calls the Python API and writes.

Commands: ``run``, ``sweep``, ``design``, ``validate``, ``fit``, ``forms``, ``schema``, ``report``.
Exit codes: 0 ok; 1 a plan that is not optimal (infeasible, failed, inaccurate) or a failed fit;
2 bad input (bad scenario, runs, law or result file, bad options, missing files), reported as one
line on stderr without a traceback (``--verbose`` adds the traceback).

Options shared by commands are module-level decorators (:func:`run_options`, the verbosity flags);
quantities, ``NAME=VALUE`` lists, name lists and report formats are parsed by click parameter types,
so a bad value fails before the command body runs. Commands import what they need when they run.
"""

from __future__ import annotations

import functools
import json
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import click

from .constants import MAX_BOOTSTRAP, MAX_STARTS
from .errors import PlannerWarning

__all__ = ["cli", "main", "EXIT_OK", "EXIT_FAILED", "EXIT_BAD_INPUT"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


# --------------------------------------------------------------------------- plumbing
class _Settings:
    """Verbosity shared by the group and its commands."""

    def __init__(self) -> None:
        self.quiet = False
        self.verbose = False


def _settings() -> _Settings:
    ctx = click.get_current_context()
    root = ctx.find_root()
    if not isinstance(root.obj, _Settings):
        root.obj = _Settings()
    return root.obj


def _verbosity_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--quiet`` / ``--verbose`` on every command (also accepted before the command)."""

    def set_quiet(ctx: click.Context, _param: Any, value: bool) -> None:
        if value:
            _settings().quiet = True

    def set_verbose(ctx: click.Context, _param: Any, value: bool) -> None:
        if value:
            _settings().verbose = True

    f = click.option("-q", "--quiet", is_flag=True, expose_value=False, callback=set_quiet, help="Print nothing but errors.")(f)
    f = click.option("-v", "--verbose", is_flag=True, expose_value=False, callback=set_verbose, help="More detail (timings, law summary; tracebacks on errors).")(f)
    return f


def _bad_input_types() -> tuple[type[BaseException], ...]:
    from .errors import PlannerError

    return (PlannerError, FileNotFoundError, IsADirectoryError, PermissionError)


class _Fail(Exception):
    """Leave with an exit code after printing a message (raised inside commands)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _one_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, OSError) and getattr(exc, "filename", None):
        text = f"{exc.filename}: {exc.strerror or text}"
    return " ".join(text.split())


def _guard(f: Callable[..., Any]) -> Callable[..., Any]:
    """Map exceptions to exit codes: bad input 2, failed plan 1, with a one-line message.

    The command runs with one BLAS thread (``planner._threads``): the fitter and the optimizer
    do many tiny dense operations, which a spinning BLAS thread pool slows down.
    """

    @functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from ._threads import single_blas_thread

        settings = _settings()
        try:
            with single_blas_thread(), warnings.catch_warnings():
                # the CLI prints fit and plan warnings from the results (law.warnings): not twice
                warnings.simplefilter("ignore", PlannerWarning)
                return f(*args, **kwargs)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except _Fail as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.code)
        except _bad_input_types() as exc:
            if settings.verbose:
                traceback.print_exc()
            click.echo(f"error: {_one_line(exc)}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except Exception as exc:  # a failed plan or solver: not the user's input
            if settings.verbose:
                traceback.print_exc()
            click.echo(f"error: {type(exc).__name__}: {_one_line(exc)} (rerun with --verbose for the traceback)", err=True)
            sys.exit(EXIT_FAILED)

    return wrapper


def _say(message: str = "", *, err: bool = False) -> None:
    if not _settings().quiet:
        click.echo(message, err=err)


def _detail(message: str) -> None:
    if _settings().verbose and not _settings().quiet:
        click.echo(message, err=True)


class _Progress:
    """A progress bar on a terminal (stderr), silent when piped or ``--quiet``.

    Call it as ``progress(stage, done, total)``; each stage gets its own bar.
    """

    def __init__(self, enabled: bool | None = None) -> None:
        settings = _settings()
        if enabled is None:
            enabled = sys.stderr.isatty() and not settings.quiet
        self.enabled = enabled
        self._bars: dict[str, Any] = {}
        self._done: dict[str, int] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        bar = self._bars.get(stage)
        if bar is None:
            label = {"fit": "bootstrap", "solve": "solving budgets"}.get(stage, stage)
            bar = click.progressbar(length=total, label=label, file=sys.stderr)
            bar.__enter__()
            self._bars[stage] = bar
            self._done[stage] = 0
        bar.update(done - self._done[stage])
        self._done[stage] = done
        if done >= total:
            bar.__exit__(None, None, None)

    def for_fit(self) -> Callable[[int, int], None]:
        return lambda done, total: self("fit", done, total)

    def close(self) -> None:
        for stage, bar in self._bars.items():
            try:
                bar.__exit__(None, None, None)
            except Exception:  # pragma: no cover - closing a finished bar twice
                pass


def _split_list(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


# --------------------------------------------------------------------------- parameter types
class QuantityType(click.ParamType):
    """A quantity as people write it (``1e10``, ``"10B"``, ``"1.2T tokens"``), parsed by click."""

    name = "quantity"

    def __init__(self, unit: str = "") -> None:
        self.unit = unit

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        from .quantities import parse_quantity

        try:
            return parse_quantity(value, self.unit)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class AssignmentsType(click.ParamType):
    """``NAME=VALUE,...`` -> ``{name: value}``, values as quantities (``alpha=0.34,B[code]=300M``)."""

    name = "name=value,..."

    def convert(self, value: Any, param: Any, ctx: Any) -> dict[str, float]:
        from .quantities import parse_quantity

        if isinstance(value, dict):
            return value
        out: dict[str, float] = {}
        for piece in _split_list(value):
            name, sep, text = piece.partition("=")
            if not sep or not name.strip():
                self.fail(f"expected name=value, got {piece!r}", param, ctx)
            try:
                out[name.strip()] = parse_quantity(text.strip())
            except ValueError as exc:
                self.fail(f"{piece!r}: {exc}", param, ctx)
        return out


class NameListType(click.ParamType):
    """``a,b,c`` -> ``["a", "b", "c"]``."""

    name = "name,..."

    def convert(self, value: Any, param: Any, ctx: Any) -> list[str]:
        return value if isinstance(value, list) else _split_list(value)


class FormatListType(click.ParamType):
    """``md,html`` -> ``["md", "html"]``, each a report format."""

    name = "list"

    def convert(self, value: Any, param: Any, ctx: Any) -> list[str]:
        from .report.writing import FORMATS

        if isinstance(value, list):
            return value
        out: list[str] = []
        for f in _split_list(value):
            f = {"markdown": "md"}.get(f.lower(), f.lower())
            if f not in FORMATS:
                self.fail(f"unknown format {f!r}; choose from {', '.join(FORMATS)}", param, ctx)
            if f not in out:
                out.append(f)
        if not out:
            self.fail("give at least one format", param, ctx)
        return out


class BorrowType(click.ParamType):
    """``LAW.json:NAME,...`` -> ``(path, [names])`` (no names: every parameter)."""

    name = "law.json:name,..."

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[str, list[str]]:
        if isinstance(value, tuple):
            return value
        path, sep, names = str(value).rpartition(":")
        if not sep or not path:
            path, names = str(value), ""
        return path, _split_list(names)


def _renamed(new: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is not None:
            raise click.BadParameter(f"renamed: write {new} RULE (the rule selects the rows that are fitted; the rest are held out)")

    return callback


# --------------------------------------------------------------------------- shared option blocks
def jobs_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """``-j/--jobs N``: parallel workers (scikit-learn's n_jobs: -1 every core, the default; 1 in this process)."""
    def check(_ctx: click.Context, _param: click.Parameter, value: int) -> int:
        if value == 0:
            raise click.BadParameter("must be a nonzero integer (-1: every core, 1: in this process, k: k workers)")
        return value

    return click.option("-j", "--jobs", "n_jobs", type=int, default=-1, show_default=True, callback=check, metavar="N",
                        help="Parallel workers: -1 every core, 1 in this process, k workers (results do not depend on it).")(f)


def run_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The arguments and options shared by ``run`` and ``sweep``."""
    f = jobs_option(f)
    f = click.option("--format", "formats", type=FormatListType(), default=None, metavar="LIST",
                     help="Comma-separated report formats: md,json,csv,html (default: the scenario's).")(f)
    f = click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False),
                     help="Output folder (default: out/<scenario name>), replaced as a set.")(f)
    f = click.argument("scenario", type=click.Path(dir_okay=False))(f)
    return f


# --------------------------------------------------------------------------- group
@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="planner", prog_name="planner")
@_verbosity_options
def cli() -> None:
    """Fit scaling laws L(N, D, D') to your runs and plan a FLOP budget between model size,
    general pretraining and per-domain specialization.

    \b
    Exit codes: 0 ok, 1 infeasible or failed plan, 2 bad input.
    Docs: docs/user-guide.md, docs/cli.md, docs/scenario-reference.md.
    Shell completion: eval "$(_PLANNER_COMPLETE=bash_source planner)".
    """


# --------------------------------------------------------------------------- run / sweep
def _default_out_dir(scenario_path: str) -> Path:
    return Path("out") / Path(scenario_path).stem


def _refuse_inputs_as_outputs(outputs: Sequence[Path], inputs: Sequence[Path], option: str = "-o") -> None:
    """An output path that is an input file would overwrite it: refuse (exit 2)."""
    resolved = {p.resolve() for p in inputs if p is not None}
    for out in outputs:
        if out.resolve() in resolved:
            raise _Fail(f"{option} {out}: this is an input of the command; write the output elsewhere", EXIT_BAD_INPUT)


def _refuse_special_file(path: Path, option: str = "-o") -> None:
    """The law file is written atomically (a new file renamed over the old): refuse anything but a regular file.

    Renaming over ``/dev/null`` would replace the device with a plain file.
    """
    if path.exists() and not path.is_file():
        raise _Fail(f"{option} {path}: not a regular file; write the output to a file path", EXIT_BAD_INPUT)


def _scenario_inputs(scenario: Any) -> list[Path]:
    found = [scenario.path]
    for rel in (scenario.law.file, scenario.law.runs):
        if rel:
            found.append(scenario.resolve(rel))
    for d in scenario.domains:
        for rel in (d.law, d.downstream):
            if rel:
                found.append(scenario.resolve(rel))
    return [p for p in found if p is not None]


def _run(scenario_path: str, out_dir: str | None, formats: list[str] | None, sweep: bool, n_jobs: int = -1) -> None:
    from .experiments.config import config_texts, plan_config
    from .report import REPORT_FILES, render, write_file_set
    from .scenario import load_scenario, run_scenario

    scenario = load_scenario(scenario_path)
    chosen = formats or list(scenario.report.formats)
    out = Path(out_dir) if out_dir else _default_out_dir(scenario_path)
    _refuse_inputs_as_outputs([out] + [out / REPORT_FILES[f] for f in chosen], _scenario_inputs(scenario))
    _detail(f"scenario {scenario.path}: {len(scenario.domains)} domain(s), budget(s) {', '.join(f'{b:.3g}' for b in scenario.budget.budgets)}")
    progress = _Progress()
    try:
        result = run_scenario(scenario, sweep=sweep, progress=progress, n_jobs=n_jobs)
    finally:
        progress.close()
    _detail(result.law.summary())
    t0 = time.perf_counter()
    texts = render(result.to_dict(), chosen)
    if result.allocation.feasible:
        # the plan as a training config (shape, tokens per phase, checkpoints, branches), in the same set
        from .experiments.shapes import ShapeError

        try:
            texts.update(config_texts(plan_config(result.allocation)))
        except ShapeError as exc:  # a model outside the shape table (e.g. below 5e5 parameters): the reports still go out
            _say(f"note: no training config (config.json/.yaml) for this plan: {exc}", err=True)
    written = write_file_set(out, texts)
    timings = {**result.timings, "report_seconds": time.perf_counter() - t0}
    _detail("timings: " + ", ".join(f"{k} {v:.2f}s" for k, v in timings.items()))
    _say(result.summary())
    _say("wrote " + ", ".join(str(p) for p in written))
    if not result.ok:
        raise _Fail(f"the plan is {result.status}, not optimal: {result.message or 'no feasible allocation'}", EXIT_FAILED)


@cli.command()
@run_options
@_verbosity_options
@_guard
def run(scenario: str, out_dir: str | None, formats: list[str] | None, n_jobs: int) -> None:
    """Plan the budget of SCENARIO and write the reports (and config.json/.yaml: the plan as a training config).

    \b
    Example: planner run scenarios/three-domains.toml -o out/three --format md,html
    """
    _run(scenario, out_dir, formats, sweep=False, n_jobs=n_jobs)


@cli.command()
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option("--experiment-budget", metavar="FLOPS", help='FLOPs for the ladder of small runs, e.g. 1e20 (default: [design] experiment_budget).')
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), help="Output folder (default: out/<scenario name>-design).")
@click.option("--simulations", type=click.IntRange(0, 10000), default=None, help="Truths simulated to verify the ladders (default: [design] simulations, 10).")
@click.option("--truths", type=click.IntRange(2, 10000), default=None, help="Truths of the linearized criterion (default: [design] truths, 16).")
@click.option("--seed", type=int, default=None, help="Random seed (default: [design] seed, 0).")
@jobs_option
@_verbosity_options
@_guard
def design(scenario: str, experiment_budget: str | None, out_dir: str | None, simulations: int | None, truths: int | None, seed: int | None,
           n_jobs: int) -> None:
    """Which small runs to train for SCENARIO's decision (and re-plan a run under way with [progress]).

    \b
    Writes runs.csv (one row per training segment), design.json, design.md, design.html,
    config.json/.yaml; with a [progress] section also replan.json/.md.
    Example: planner design scenarios/three-domains.toml --experiment-budget 1e20 -o out/design
    """
    from .experiments.report import design_texts
    from .experiments.scenario_io import design_from_scenario, replan_texts
    from .report.writing import write_file_set

    result, rp = design_from_scenario(scenario, experiment_budget, simulations=simulations, truths=truths, seed=seed, n_jobs=n_jobs)
    out = Path(out_dir) if out_dir else Path("out") / f"{Path(scenario).stem}-design"
    texts: dict[str, str] = {}
    if result is not None:
        texts.update(design_texts(result))
        _say(result.summary())
    if rp is not None:
        texts.update(replan_texts(rp))  # both go to one folder, swapped in as one set
        _say(rp.summary())
    written = write_file_set(out, texts)
    _say("wrote " + ", ".join(str(p) for p in written))
    if (result is not None and result.status != "ok") or (rp is not None and rp.status != "ok"):
        raise _Fail((result.message if result is not None and result.status != "ok" else rp.message), EXIT_FAILED)


@cli.command()
@run_options
@_verbosity_options
@_guard
def sweep(scenario: str, out_dir: str | None, formats: list[str] | None, n_jobs: int) -> None:
    """Plan SCENARIO at every budget of a sweep and write the reports.

    A list budget (flops = [1e21, 1e22, 1e23]) is swept as given; a single budget is swept
    over budget / report.compute_span .. budget * report.compute_span.
    """
    _run(scenario, out_dir, formats, sweep=True, n_jobs=n_jobs)


# --------------------------------------------------------------------------- validate
@cli.command()
@click.argument("scenario", type=click.Path(dir_okay=False))
@_verbosity_options
@_guard
def validate(scenario: str) -> None:
    """Check SCENARIO without solving: every check `planner run` makes before it solves.

    Schema, files, forms, options that do not apply, the law (loaded or built; runs are read
    and checked, the fit itself waits for `planner run`), domains against the law or the runs,
    per-domain and downstream laws, and the optimizer's own argument checks.
    """
    from .runs import load_runs
    from .scenario import ScenarioError, check_domains, check_plan_arguments, domain_laws, law_argument, load_scenario, resolve_law

    sc = load_scenario(scenario)
    own = domain_laws(sc)
    names = [d.name for d in sc.domains]
    fitted = None
    if sc.law.source in ("file", "params"):
        fitted = resolve_law(sc)
        check_domains(sc, fitted, own)
        law_note = f"law from {sc.law.source}"
    else:
        table = load_runs(sc.resolve(sc.law.runs), columns=sc.law.columns)  # type: ignore[arg-type]
        have = sorted(set(table["domain"].astype(str))) if "domain" in table else ["general"]
        missing = [n for n in names if n not in have and n not in own]
        if missing and len(have) > 1:
            raise ScenarioError(f"{sc.path}: domains: the runs have domains {', '.join(have)}, not {', '.join(missing)}")
        law_note = f"runs {sc.law.runs}: {len(table)} rows, domains {', '.join(have)}; form {sc.law.form} is fitted at run time"
    check_plan_arguments(sc, law_argument(sc, fitted, own) if fitted is not None else None)
    budgets = ", ".join(f"{b:.3g}" for b in sc.budget.budgets)
    _say(f"ok: {sc.path}: budget(s) {budgets} FLOPs; domains {', '.join(names) or '(none: one general model)'}; {law_note}")


# --------------------------------------------------------------------------- fit
@cli.command()
@click.argument("runs", type=click.Path(dir_okay=False))
@click.option("--form", required=True, help='Form name (see `planner forms`), or "auto" to pick by held-out error.')
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the fitted law JSON here.")
@click.option("--train-on", "train_on", metavar="RULE",
              help='Rows to fit; the rest are held out and scored, e.g. "model_size <= 1e9", "token_fraction <= 0.7" or "auto".')
@click.option("--holdout", hidden=True, expose_value=False, callback=_renamed("--train-on"), help="Renamed: --train-on.")
@click.option("--bootstrap", type=click.IntRange(0, MAX_BOOTSTRAP), default=0, show_default=True, help="Bootstrap draws for intervals.")
@click.option("--calibrate", is_flag=True, help="Calibrate extrapolation intervals on size backtests (fit small, predict large).")
@click.option("--columns", metavar="OLD=NEW,...", help="Rename run-table columns onto canonical names.")
@click.option("--seed", type=click.IntRange(0, None), default=0, show_default=True, help="Random seed (>= 0).")
@click.option("--min-tokens", type=QuantityType("tokens"), default=None, metavar="X", help='Drop checkpoints with fewer tokens (D + D\'), e.g. 1e10 or "10B".')
@click.option("--max-token-fraction", type=click.FloatRange(0.0, 1.0, min_open=True), default=None,
              help="Keep each run's checkpoints up to this fraction of its tokens (fit on a partially trained target).")
@click.option("--where", metavar="RULE", help='Fit only the rows a row-selection rule selects, e.g. "model_size <= 1e9" (see docs/methods.md).')
@click.option("--domain", "domains", multiple=True, help="Fit only this evaluation domain (repeatable).")
@click.option("--loss", type=click.Choice(["huber", "ls", "over"]), default="huber", show_default=True, help="Fitting loss on log residuals.")
@click.option("--fix", type=AssignmentsType(), default=None, metavar="NAME=VALUE,...", help="Hold parameters fixed, e.g. alpha=0.34,B[code]=300.")
@click.option("--borrow", type=BorrowType(), default=None, metavar="LAW.json:NAME,...",
              help="Take (and fix) parameters from a fitted law, e.g. big.json:alpha,beta (all of them without names).")
@click.option("--tie", type=NameListType(), default=None, metavar="NAME,...", help="Per-domain parameters shared across domains, e.g. eta,gamma.")
@click.option("--max-starts", type=click.IntRange(1, MAX_STARTS), default=None, help="Multi-start budget (default: the fitter's).")
@click.option("--plot", "plot", type=click.Path(dir_okay=False), default=None, metavar="FILE.svg",
              help="Also write the in-sample residuals of every candidate form by N, D and D' as an SVG plot.")
@jobs_option
@_verbosity_options
@_guard
def fit(runs: str, form: str, output: str | None, train_on: str | None, bootstrap: int, calibrate: bool, columns: str | None, seed: int,
        min_tokens: float | None, max_token_fraction: float | None, where: str | None, domains: tuple[str, ...], loss: str,
        fix: dict[str, float] | None, borrow: tuple[str, list[str]] | None, tie: list[str] | None, max_starts: int | None,
        plot: str | None, n_jobs: int) -> None:
    """Fit a law to RUNS; print parameters with intervals, held-out errors, each form's in-sample errors and warnings.

    \b
    Example: planner fit runs.csv --form auto -o law.json --plot residuals.svg
    """
    from .fitting import fit as fit_law, load_law

    inputs = [Path(runs)] + ([Path(borrow[0])] if borrow else [])
    if plot and Path(plot).suffix.lower() != ".svg":
        raise _Fail(f"--plot {plot}: the residual plot is an SVG file; give a name ending in .svg", EXIT_BAD_INPUT)
    if output and plot and Path(output).resolve() == Path(plot).resolve():
        raise _Fail("-o and --plot name the same file", EXIT_BAD_INPUT)
    for target, option in ((output, "-o"), (plot, "--plot")):
        if target:
            _refuse_inputs_as_outputs([Path(target)], inputs, option)
            _refuse_special_file(Path(target), option)
    options: dict[str, Any] = {"loss": loss, "seed": seed, "bootstrap": bootstrap, "calibrate": calibrate, "n_jobs": n_jobs}
    for key, value in (("train_on", train_on), ("columns", columns), ("min_tokens", min_tokens),
                       ("max_token_fraction", max_token_fraction), ("where", where), ("max_starts", max_starts)):
        if value is not None:
            options[key] = value
    if domains:
        options["domain"] = domains[0] if len(domains) == 1 else list(domains)
    if borrow and fix:
        raise _Fail("--fix and --borrow: give one of them (write the borrowed values in --fix)", EXIT_BAD_INPUT)
    if borrow:
        options["fix"] = load_law(borrow[0])
        if borrow[1]:
            options["borrow"] = borrow[1]
    elif fix:
        options["fix"] = fix
    if tie:
        options["tie"] = tie
    progress = _Progress()
    if bootstrap:
        options["progress"] = progress.for_fit()
    try:
        fitted = fit_law(runs, form=form, **options)
    finally:
        progress.close()
    _say(fitted.summary())
    svg = None
    if fitted.status != "failed":
        from .report.curves import form_residuals

        doc = {"laws": {"law": fitted.to_dict()}}
        residuals = form_residuals(doc, {"law": fitted})
        if residuals:
            _say("\nin-sample |relative error| per form (fitted rows; base: D' = 0, specialized: D' > 0):")
            for x in residuals:
                a = x["adequacy"]
                cell = lambda v: "    –  " if v is None else f"{100 * v:6.2f}%"  # noqa: E731
                _say(f"  {x['form']:<22} weight {100 * x['weight']:5.1f}%  base mean {cell(a['base']['mean'])} worst {cell(a['base']['max'])}"
                     f"  specialized mean {cell(a['specialized']['mean'])} worst {cell(a['specialized']['max'])}")
        if plot:
            from .report.plots import residuals_by_form

            svg = residuals_by_form(doc, {"law": fitted})
    if output:
        path = fitted.save(output)
        _say(f"\nwrote {path}")
    if plot and fitted.status != "failed":  # a failed fit exits below with its own message
        if svg is None:
            raise _Fail(f"--plot {plot}: nothing to plot (the law has no fitted rows to score)", EXIT_FAILED)
        from .fitting.law import write_atomic

        write_atomic(Path(plot), svg + "\n")
        _say(f"wrote {plot}")
    if fitted.status == "failed":
        raise _Fail(f"the fit failed: {fitted.message}", EXIT_FAILED)


# --------------------------------------------------------------------------- forms / schema
@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_verbosity_options
@_guard
def forms(as_json: bool) -> None:
    """List the registered law forms with their equations."""
    from .laws import list_forms

    items = list_forms()
    if as_json:
        click.echo(json.dumps([f.describe() for f in items], indent=2))
        return
    for f in items:
        _say(f"{f.name:<20} {f.equation}")
        if f.description:
            _say(f"{'':<20} {f.description}")
        if _settings().verbose:
            for q in f.params:
                _say(f"{'':<22}{q.name:<8} [{q.lower:g}, {q.upper:g}] {q.unit}  {'per domain' if q.per_domain else ''}")


@cli.command()
@click.option("--markdown", is_flag=True, help="The reference as Markdown (docs/scenario-reference.md) instead of JSON Schema.")
@_verbosity_options
@_guard
def schema(markdown: bool) -> None:
    """Print the JSON Schema of scenario files (for editors)."""
    from .scenario import schema_json, schema_markdown

    if markdown:
        click.echo(schema_markdown(), nl=False)
    else:
        click.echo(json.dumps(schema_json(), indent=2))


# --------------------------------------------------------------------------- report
@cli.command()
@click.argument("result", type=click.Path(dir_okay=False))
@click.option("--format", "formats", type=FormatListType(), default="html", show_default=True, metavar="LIST",
              help="Comma-separated: md,json,csv,html.")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False), help="Output folder (default: the result file's folder).")
@_verbosity_options
@_guard
def report(result: str, formats: list[str], out_dir: str | None) -> None:
    """Re-render the reports of RESULT (an allocation.json) without re-solving."""
    from .report import load_result, write_reports

    doc = load_result(result)
    chosen = list(formats)
    out = Path(out_dir) if out_dir else Path(result).resolve().parent
    if "json" in chosen and (out / "allocation.json").resolve() == Path(result).resolve():
        chosen.remove("json")  # rewriting the source with itself is a no-op
        if not chosen:
            raise _Fail("nothing to write: --format json into the result's own folder would rewrite the source", EXIT_BAD_INPUT)
    written = write_reports(doc, out, chosen)
    _say("wrote " + ", ".join(str(p) for p in written))


# --------------------------------------------------------------------------- entry point
def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point (``planner = "planner.cli:main"``)."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="planner")


if __name__ == "__main__":  # pragma: no cover
    main()
