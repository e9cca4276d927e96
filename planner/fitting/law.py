"""FittedLaw: a form with parameter values, their uncertainty and how they were obtained.

The JSON file written by :meth:`FittedLaw.save` is a contract read by other
tools and by scenario files: top-level ``form`` (registry name) and ``params``
(slot name -> value; per-domain slots are named ``B[code]``), plus
``intervals``, ``draws``, ``domains``, ``status``, ``warnings``, ``data``,
``options``, ``holdout``, ``selection``, ``points`` and ``version``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .._io import read_json
from ..constants import LAW_SCHEMA, package_version
from .._records import Note, json_number as _num, to_jsonable as _jsonable
from ..laws.base import Form, Inputs
from ..laws.registry import get_form
from .calibration import extrapolation_distance
from .ensemble import LawEnsemble
from .layout import FitError, FitWarning, ParamLayout, parse_slot_name

__all__ = ["FitWarning", "FittedLaw", "law", "load_law", "check_values", "LAW_SCHEMA"]



_version = package_version


@dataclass(frozen=True, eq=False)
class FittedLaw:
    """A law with parameter values: fitted (``planner.fit``) or given (``planner.law``).

    Attributes
    ----------
    form: the :class:`~planner.laws.Form`.
    params: slot name -> value (``E``, ``alpha``, ``B[code]``, ...).
    domains: evaluation domains the per-domain slots refer to (in order).
    tied: per-domain parameters shared across domains in this fit.
    fixed: slots that were held fixed (borrowed or given).
    status: "converged", "not-converged", "failed" or "given".
    message: solver message.
    warnings: tuple of :class:`FitWarning`.
    objective: final value of the fitting objective (mean rho of log residuals).
    residuals: log residuals on the fitted rows (log predicted - log observed).
    draws: bootstrap parameter draws, shape (B, len(params)), columns in ``params`` order, or None.
    interval_level: the central probability of ``intervals`` (0.9: 5th to 95th percentile).
    intervals: slot name -> (low, high) percentile interval over the draws.
    data: summary of the data the fit used.
    options: the fit options (JSON-able).
    holdout: held-out evaluation (rule, ARE, R^2, ...) or None.
    selection: for ``form="auto"``, the ranking of every candidate form.
    points: per-row table of the data (inputs, observed, predicted, held out) for fit-quality plots.
    calibration: size-backtest calibration of extrapolation intervals (``calibrate=True``) or None.
    candidates: for ``form="auto"``, the :class:`~planner.fitting.ensemble.LawEnsemble` of every
        candidate form with its weight (this law is its best candidate); None otherwise.
    """

    form: Form
    params: Mapping[str, float]
    domains: tuple[str, ...] = ("general",)
    tied: tuple[str, ...] = ()
    fixed: tuple[str, ...] = ()
    status: str = "given"
    message: str = ""
    warnings: tuple[FitWarning, ...] = ()
    objective: float = float("nan")
    residuals: np.ndarray | None = None
    draws: np.ndarray | None = None
    interval_level: float = 0.9
    intervals: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    holdout: Mapping[str, Any] | None = None
    selection: tuple[Mapping[str, Any], ...] = ()
    points: pd.DataFrame | None = None
    calibration: Mapping[str, Any] | None = None
    candidates: Any = None
    version: str = field(default_factory=_version)

    # ------------------------------------------------------------ structure
    @cached_property
    def layout(self) -> ParamLayout:
        """Slots of this law, all fixed at their values (built once: per-domain lookups use it)."""
        return ParamLayout(self.form, self.domains, fix=dict(self.params), tie=self.tied)

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(self.params)

    @property
    def converged(self) -> bool:
        return self.status in ("converged", "given")

    @property
    def standard_errors(self) -> dict[str, float]:
        """Bootstrap standard deviation of every slot (empty without draws)."""
        if self.draws is None or len(self.draws) < 2:
            return {}
        with warnings.catch_warnings():  # a slot with fewer than two finite draws has no SD: NaN, silently
            warnings.simplefilter("ignore", RuntimeWarning)
            sd = np.nanstd(self.draws, axis=0, ddof=1)  # a failed draw is kept as NaN
        return {name: float(v) for name, v in zip(self.params, sd)}

    def has_domain(self, domain: str) -> bool:
        return domain in self.domains or not self._has_per_domain_slots()

    def _has_per_domain_slots(self) -> bool:
        return any(parse_slot_name(n)[1] is not None for n in self.params)

    def _resolve_domain(self, domain: str) -> str:
        if domain in self.domains:
            return domain
        if not self._has_per_domain_slots():
            return self.domains[0]
        raise FitError(
            f"the {self.form.name} law has parameters for domains {', '.join(self.domains)}, not {domain!r}"
        )

    def domain_params(self, domain: str | None = None) -> dict[str, float]:
        """Scalar parameter values for one domain (form parameter name -> value)."""
        dom = self._resolve_domain(domain if domain is not None else self.domains[0])
        return self.layout.domain_values(self.params, dom)

    # ------------------------------------------------------------ prediction
    def _inputs(self, runs: pd.DataFrame | None, arrays: dict[str, Any]) -> tuple[Inputs, np.ndarray]:
        if runs is not None:
            cols = {k: runs[k].to_numpy(dtype=float) for k in ("model_size", "pretrain_tokens", "spec_tokens", "unique_tokens", "loss") if k in runs}
            domain = runs["domain"].astype(str).to_numpy() if "domain" in runs else None
        else:
            cols = {k: v for k, v in arrays.items() if k != "domain" and v is not None}
            domain = arrays.get("domain")
        unknown = set(cols) - {"model_size", "pretrain_tokens", "spec_tokens", "unique_tokens", "loss"}
        if unknown:
            raise TypeError(f"predict() got unexpected inputs {sorted(unknown)}")
        missing = [c for c in self.form.inputs if c not in cols and c not in ("spec_tokens", "unique_tokens")]
        if missing:
            raise FitError(f"the {self.form.name} law needs {', '.join(missing)} to predict")
        x = Inputs.build(**cols)
        n = len(x)
        if domain is None:
            dom_names = np.full(n, self.domains[0] if len(self.domains) == 1 or not self._has_per_domain_slots() else "")
            if self._has_per_domain_slots() and len(self.domains) > 1:
                raise FitError(f"the {self.form.name} law is per domain ({', '.join(self.domains)}): pass domain=")
        else:
            dom_names = np.broadcast_to(np.asarray(domain, dtype=object), (n,))
        resolved = {d: self._resolve_domain(str(d)) for d in set(dom_names.tolist())}
        idx = np.array([self.domains.index(resolved[str(d)]) for d in dom_names], dtype=int)
        return x, idx

    def _predict_values(self, values: Mapping[str, float], x: Inputs, idx: np.ndarray) -> np.ndarray:
        layout = self.layout
        return np.asarray(self.form.predict(layout.expand(values, idx), x), dtype=float)

    def predict(
        self,
        runs: pd.DataFrame | None = None,
        *,
        model_size: Any = None,
        pretrain_tokens: Any = None,
        spec_tokens: Any = None,
        unique_tokens: Any = None,
        loss: Any = None,
        domain: Any = None,
    ) -> np.ndarray:
        """Predicted target (loss in nats/token, or error for downstream laws) as a numpy array.

        Takes a run table with the canonical columns, or the same as keyword arrays.
        """
        x, idx = self._inputs(runs, dict(model_size=model_size, pretrain_tokens=pretrain_tokens, spec_tokens=spec_tokens, unique_tokens=unique_tokens, loss=loss, domain=domain))
        return self._predict_values(self.params, x, idx)

    def predict_draws(self, runs: pd.DataFrame | None = None, **arrays: Any) -> np.ndarray:
        """Predictions under every bootstrap draw, shape (B, n). Raises without draws."""
        if self.draws is None:
            raise FitError("this law has no bootstrap draws: fit with bootstrap=B")
        x, idx = self._inputs(runs, arrays)
        names = list(self.params)
        return np.vstack([self._predict_values(dict(zip(names, row)), x, idx) for row in self.draws])

    def predict_interval(
        self, runs: pd.DataFrame | None = None, *, level: float | None = None, kind: str = "parameter", seed: int = 0, **arrays: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """Percentile interval of the prediction.

        ``kind="parameter"``: over the bootstrap draws (uncertainty of the fitted curve).
        ``kind="prediction"``: each draw's prediction times exp(-r), r drawn from the fit's own log
        residuals, so the interval also covers run-to-run scatter (for a single new run).
        ``kind="extrapolation"``: pred * exp(+-q(d)), q(d) = q0 + slope d, d the decades beyond the
        fitted model sizes and compute, calibrated on size backtests (fit with ``calibrate=True``);
        the level is the calibration's. Measured on the Epoch points: 88 % of held-out larger
        models inside the 90 % interval, against 36 % (parameter) and 58-61 % (prediction).
        """
        if kind == "extrapolation":
            cal = self.calibration
            if not cal:
                raise FitError("kind='extrapolation' needs a calibrated law: fit with calibrate=True")
            if level is not None and abs(level - float(cal["level"])) > 1e-12:
                raise FitError(f"this law's extrapolation interval is calibrated at level {cal['level']}, not {level}")
            x, idx = self._inputs(runs, arrays)
            pred = self._predict_values(self.params, x, idx)
            q = float(cal["q0"]) + float(cal["slope_per_decade"]) * extrapolation_distance(
                x, float(cal["reference_model_size"]), float(cal["reference_compute"]))
            return pred * np.exp(-q), pred * np.exp(q)
        level = self.interval_level if level is None else level
        preds = self.predict_draws(runs, **arrays)
        if kind == "prediction":
            if self.residuals is None or len(self.residuals) == 0:
                raise FitError("kind='prediction' needs the fit's residuals (fit the law rather than building it)")
            rng = np.random.default_rng(seed)
            # residual r = log pred - log observed, so an observation is pred * exp(-r)
            preds = preds * np.exp(-rng.choice(np.asarray(self.residuals), size=preds.shape, replace=True))
        elif kind != "parameter":
            raise FitError(f"kind must be 'parameter', 'prediction' or 'extrapolation', not {kind!r}")
        lo, hi = np.nanpercentile(preds, [50 * (1 - level), 50 * (1 + level)], axis=0)
        return lo, hi

    def with_params(self, **changes: float) -> "FittedLaw":
        """A copy with some slots replaced (status becomes "given")."""
        new = dict(self.params)
        for k, v in changes.items():
            if k not in new:
                raise FitError(f"no parameter {k!r}; parameters: {', '.join(new)}")
            new[k] = float(v)
        return FittedLaw(self.form, new, self.domains, self.tied, tuple(new), status="given")

    # ------------------------------------------------------------ reporting
    def param_table(self) -> pd.DataFrame:
        """One row per slot: value, unit, bounds, standard error and interval (NaN where absent)."""
        se = self.standard_errors
        rows = []
        for name, value in self.params.items():
            base, _ = parse_slot_name(name)
            q = self.form.param(base)
            lo, hi = self.intervals.get(name, (math.nan, math.nan))
            rows.append({
                "param": name, "value": value, "unit": q.unit, "se": se.get(name, math.nan),
                "low": lo, "high": hi, "fixed": name in self.fixed, "lower_bound": q.lower, "upper_bound": q.upper,
            })
        return pd.DataFrame(rows)

    def summary(self) -> str:
        """Readable text: parameters with intervals, held-out errors, warnings."""
        lines = [f"form: {self.form.name}   {self.form.equation}", f"status: {self.status}" + (f" ({self.message})" if self.message else "")]
        if self.data:
            d = self.data
            lines.append(f"data: {d.get('n_rows', '?')} rows, {d.get('n_runs', '?')} runs, {d.get('n_model_sizes', '?')} model sizes, domains {', '.join(map(str, d.get('domains', [])))}")
            # the early-checkpoint cut (Choshen et al.) is a choice, stated either way (issue 11.8)
            cut = (self.options or {}).get("min_tokens")
            removed = next((n.get("message", "") for n in d.get("notes", ()) if isinstance(n, Mapping) and str(n.get("message", "")).startswith("min_tokens=")), "")
            lines.append(f"early-checkpoint cut: min_tokens={float(cut):.4g} ({removed.split('(', 1)[-1].split(')', 1)[-1].strip() or 'applied'})" if cut
                         else "early-checkpoint cut: none (every checkpoint fitted; set min_tokens= to drop early ones)")
        pct = int(round(100 * self.interval_level))
        header = f"{'parameter':<16}{'value':>14}{'std err':>12}{pct:>6}% interval"
        lines += ["", header, "-" * len(header) + "-" * 14]
        for row in self.param_table().itertuples():
            se = "" if math.isnan(row.se) else f"{row.se:.4g}"
            iv = "" if math.isnan(row.low) else f"[{row.low:.4g}, {row.high:.4g}]"
            tag = "  (fixed)" if row.fixed and self.status != "given" else ""
            lines.append(f"{row.param:<16}{row.value:>14.6g}{se:>12}   {iv}{tag}")
        if self.holdout:
            h = self.holdout
            are, worst = (math.nan if h.get(k) is None else float(h[k]) for k in ("are", "max_rel_error"))
            lines += ["", f"held out ({h.get('rule')}): {h.get('n_test')} rows; ARE {100 * are:.3f}%  R^2 {_fmt_r2(h.get('r2'))}  max rel. error {100 * worst:.3f}%"]
        if self.calibration:
            c = self.calibration
            lines += ["", f"extrapolation interval ({int(round(100 * c['level']))}%, {c['n_backtest_points']} backtest points): "
                      f"pred x exp(+-({c['q0']:.4f} + {c['slope_per_decade']:.4f} per decade beyond the data))"]
        if self.candidates is not None:
            lines += ["", "form selection:"] + self.candidates.summary_lines()
        elif self.selection:
            lines += ["", "form selection by held-out error (ARE):"]
            for s in self.selection:
                are = s.get("are")
                lines.append(f"  {s['form']:<20}{'' if are is None else f'{100 * are:.3f}%':>10}  {s.get('note', '')}")
        if self.warnings:
            lines += ["", "warnings:"] + [f"  [{w.code}] {w.message}" for w in self.warnings]
        return "\n".join(lines)

    # --------------------------------------------------------- serialization
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": LAW_SCHEMA,
            "form": self.form.name,
            "equation": self.form.equation,
            "params": {k: float(v) for k, v in self.params.items()},
            "domains": list(self.domains),
            "tied": list(self.tied),
            "fixed": list(self.fixed),
            "status": self.status,
            "message": self.message,
            "warnings": [w.to_dict() for w in self.warnings],
            "objective": _num(self.objective),
            "interval_level": self.interval_level,
            "intervals": {k: [float(a), float(b)] for k, (a, b) in self.intervals.items()},
            "standard_errors": self.standard_errors,
            "draws": None if self.draws is None else {"names": list(self.params), "values": self.draws.tolist()},
            "residuals": None if self.residuals is None else [float(v) for v in self.residuals],
            "data": _jsonable(dict(self.data)),
            "options": _jsonable(dict(self.options)),
            "holdout": _jsonable(dict(self.holdout)) if self.holdout else None,
            "selection": [_jsonable(dict(s)) for s in self.selection],
            "points": None if self.points is None else _jsonable(self.points.to_dict(orient="list")),
            "calibration": None if self.calibration is None else _jsonable(dict(self.calibration)),
            "candidates": None if self.candidates is None else self.candidates.to_dict(),
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = "<dict>") -> "FittedLaw":
        """Rebuild a law from :meth:`to_dict` output (or a hand-written ``{"form", "params"}``).

        Every key is type-checked and the parameters range-checked (finite, inside the form's
        declared bounds or the fit's ``options.bounds``): a malformed file raises
        :class:`FitError` naming ``source`` and the key, never an internal exception.
        """
        if not isinstance(d, Mapping):
            raise FitError(f"{source}: a law holds a JSON object with keys 'form' and 'params', not {type(d).__name__}")
        for key in ("form", "params"):
            if key not in d:
                raise FitError(f"{source}: not a law file: missing top-level key {key!r}")
        schema = d.get("schema")
        if schema is not None and (not isinstance(schema, str) or not schema.startswith("planner.law/")):
            raise FitError(f"{source}: key 'schema' is {schema!r}, not a law file ({LAW_SCHEMA})")
        if not isinstance(d["form"], str) or not d["form"]:
            raise FitError(f"{source}: key 'form' must be a form name (text), not {d['form']!r}"[:300])
        form = get_form(d["form"])
        raw_params = _mapping(d["params"], source, "params")
        params = {str(k): _number(v, source, f"params.{k}", finite=False) for k, v in raw_params.items()}
        if not params:
            raise FitError(f"{source}: key 'params' is empty")
        domains = tuple(_strings(d.get("domains"), source, "domains")) or _domains_from_names(params)
        if len(set(domains)) != len(domains):
            raise FitError(f"{source}: key 'domains' names a domain twice: {list(domains)}")
        tied = tuple(_strings(d.get("tied"), source, "tied"))
        fixed = tuple(_strings(d.get("fixed"), source, "fixed"))
        options = _mapping(d.get("options"), source, "options", optional=True)
        bounds = _bounds_option(options.get("bounds"), source)
        interval_level = _number(d.get("interval_level", 0.9), source, "interval_level")
        if not 0 < interval_level < 1:
            raise FitError(f"{source}: key 'interval_level' must be in (0, 1), not {interval_level!r}")
        law_obj = cls(
            form=form,
            params=params,
            domains=domains,
            tied=tied,
            fixed=fixed,
            status=_text(d.get("status", "given"), source, "status"),
            message=_text(d.get("message", ""), source, "message"),
            warnings=_warnings(d.get("warnings"), source),
            objective=math.nan if d.get("objective") is None else _number(d["objective"], source, "objective", finite=False),
            residuals=_vector(d.get("residuals"), source, "residuals"),
            draws=_draws(d.get("draws"), params, source),
            interval_level=interval_level,
            intervals=_intervals(d.get("intervals"), params, source),
            data=_data(d.get("data"), source),
            options=options,
            holdout=_holdout(d.get("holdout"), source),
            selection=_selection(d.get("selection"), source),
            points=_points(d.get("points"), source),
            calibration=_calibration(d.get("calibration"), source),
            candidates=_ensemble_from_dict(d.get("candidates"), source),
            version=_text(d.get("version", _version()), source, "version"),
        )
        _check_slots(law_obj, source)
        check_values(form, params, source, bounds=bounds)
        return law_obj

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=True)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the law as JSON atomically (a temp file renamed into place)."""
        path = Path(path)
        write_atomic(path, self.to_json())
        return path


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed into place.

    Only a regular file (or a new path) is accepted: renaming over a device such as ``/dev/null``
    would replace the device with a plain file.
    """
    if path.exists() and not path.is_file():
        raise FitError(f"{path}: not a regular file; save the law to a file path")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _ensemble_from_dict(d: Any, source: str) -> Any:
    if not d:
        return None
    return LawEnsemble.from_dict(d, source=source, load_candidate=FittedLaw.from_dict)


def _fmt_r2(v: Any) -> str:
    """R^2 needs two or more held-out rows with different values; say n/a otherwise."""
    return "n/a" if v is None or not math.isfinite(float(v)) else f"{float(v):.4f}"


def _domains_from_names(params: Mapping[str, float]) -> tuple[str, ...]:
    doms: list[str] = []
    for name in params:
        _, dom = parse_slot_name(name)
        if dom is not None and dom not in doms:
            doms.append(dom)
    return tuple(doms) or ("general",)


def _check_slots(law_obj: FittedLaw, source: str) -> None:
    expected = set(ParamLayout(law_obj.form, law_obj.domains, tie=law_obj.tied).names)
    given = set(law_obj.params)
    missing, extra = sorted(expected - given), sorted(given - expected)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if extra:
            parts.append(f"unknown {', '.join(extra)}")
        raise FitError(f"{source}: parameters of form {law_obj.form.name!r} do not match: {'; '.join(parts)} (expected {', '.join(sorted(expected))})")


def check_values(form: Form, params: Mapping[str, float], source: str,
                 bounds: Mapping[str, tuple[float, float]] | None = None) -> None:
    """Raise :class:`FitError` naming every slot whose value is not legal for ``form``
    (non-finite, or outside the declared bounds: exponents > 0, amplitudes >= 0, see
    :meth:`Param.check_value`). ``bounds`` are a fit's overrides, by parameter name."""
    problems = []
    for name, value in params.items():
        base, _ = parse_slot_name(name)
        try:
            q = form.param(base)
        except KeyError:
            continue  # unknown slots are reported by _check_slots
        why = q.check_value(value, (bounds or {}).get(base))
        if why is not None:
            problems.append(f"{name} {why}")
    if problems:
        raise FitError(f"{source}: parameters of form {form.name!r} out of range: " + "; ".join(problems))


def _where(source: str, key: str) -> str:
    return f"{source}: key {key!r}"


def _number(v: Any, source: str, key: str, *, finite: bool = True, allow_none: bool = False) -> float:
    """A JSON number as a float (no bools, no text); finite unless ``finite=False``."""
    if v is None and allow_none:
        return math.nan
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise FitError(f"{_where(source, key)} must be a number, not {type(v).__name__}")
    try:
        x = float(v)
    except OverflowError:
        raise FitError(f"{_where(source, key)}: number too large") from None
    if finite and not math.isfinite(x):
        raise FitError(f"{_where(source, key)} must be a finite number, not {x!r}")
    return x


def _text(v: Any, source: str, key: str) -> str:
    if not isinstance(v, str):
        raise FitError(f"{_where(source, key)} must be text, not {type(v).__name__}")
    return v


def _list(v: Any, source: str, key: str) -> list[Any]:
    if v is None:
        return []
    if not isinstance(v, list):
        raise FitError(f"{_where(source, key)} must be a list, not {type(v).__name__}")
    return v


def _strings(v: Any, source: str, key: str) -> list[str]:
    items = _list(v, source, key)
    for i, x in enumerate(items):
        if not isinstance(x, str):
            raise FitError(f"{_where(source, f'{key}[{i}]')} must be text, not {type(x).__name__}")
    return items


def _mapping(v: Any, source: str, key: str, *, optional: bool = False) -> dict[str, Any]:
    if v is None and optional:
        return {}
    if not isinstance(v, Mapping):
        raise FitError(f"{_where(source, key)} must be an object, not {type(v).__name__}")
    return dict(v)


def _vector(v: Any, source: str, key: str) -> np.ndarray | None:
    """A list of numbers (null entries become NaN) as a float array, or None."""
    if v is None:
        return None
    items = _list(v, source, key)
    return np.array([_number(x, source, f"{key}[{i}]", finite=False, allow_none=True) for i, x in enumerate(items)], dtype=float)


def _warnings(v: Any, source: str) -> tuple[FitWarning, ...]:
    out = []
    for i, w in enumerate(_list(v, source, "warnings")):
        w = _mapping(w, source, f"warnings[{i}]")
        out.append(FitWarning(_text(w.get("code"), source, f"warnings[{i}].code"), _text(w.get("message"), source, f"warnings[{i}].message")))
    return tuple(out)


def _draws(v: Any, params: Mapping[str, float], source: str) -> np.ndarray | None:
    """Bootstrap draws ``{"names": [...], "values": [[...], ...]}`` reordered to ``params``; a failed
    draw may hold null (NaN), never an infinite value."""
    if not v:
        return None
    d = _mapping(v, source, "draws")
    names = _strings(d.get("names"), source, "draws.names")
    if sorted(names) != sorted(params):
        raise FitError(f"{_where(source, 'draws.names')} must name the law's parameters {sorted(params)}, not {names}")
    rows = _list(d.get("values"), source, "draws.values")
    arr = np.empty((len(rows), len(names)))
    for i, row in enumerate(rows):
        row = _list(row, source, f"draws.values[{i}]")
        if len(row) != len(names):
            raise FitError(f"{_where(source, f'draws.values[{i}]')} has {len(row)} values for {len(names)} parameters")
        for j, x in enumerate(row):
            arr[i, j] = _number(x, source, f"draws.values[{i}][{j}]", finite=False, allow_none=True)
    if np.isinf(arr).any():
        raise FitError(f"{_where(source, 'draws.values')} holds an infinite value")
    return arr[:, [names.index(n) for n in params]]


def _intervals(v: Any, params: Mapping[str, float], source: str) -> dict[str, tuple[float, float]]:
    out = {}
    for k, pair in _mapping(v, source, "intervals", optional=True).items():
        if k not in params:
            raise FitError(f"{_where(source, f'intervals.{k}')}: not a parameter of the law ({', '.join(params)})")
        pair = _list(pair, source, f"intervals.{k}")
        if len(pair) != 2:
            raise FitError(f"{_where(source, f'intervals.{k}')} must be [low, high]")
        out[k] = (_number(pair[0], source, f"intervals.{k}[0]", finite=False), _number(pair[1], source, f"intervals.{k}[1]", finite=False))
    return out


def _points(v: Any, source: str) -> pd.DataFrame | None:
    if v is None:
        return None
    cols = _mapping(v, source, "points")
    lengths = {k: len(_list(c, source, f"points.{k}")) for k, c in cols.items()}
    if len(set(lengths.values())) > 1:
        raise FitError(f"{_where(source, 'points')}: columns have different lengths {lengths}")
    for k, c in cols.items():
        for i, x in enumerate(c):
            if not (x is None or isinstance(x, (str, bool, int, float))):
                raise FitError(f"{_where(source, f'points.{k}[{i}]')} must be a number, text or null, not {type(x).__name__}")
            if isinstance(x, int) and not isinstance(x, bool):
                _number(x, source, f"points.{k}[{i}]", finite=False)
    return pd.DataFrame(cols)


_CALIBRATION_NUMBERS = ("level", "q0", "slope_per_decade", "reference_model_size", "reference_compute", "n_backtest_points")
#: numbers of a held-out evaluation that reports print (null allowed: R^2 of one row)
_HOLDOUT_NUMBERS = ("are", "max_rel_error", "r2", "rmse_log", "n_test", "n_train")


def _data(v: Any, source: str) -> dict[str, Any]:
    """The summary of the fitted data; the lists that summaries, reports and plan warnings read are checked."""
    data = _mapping(v, source, "data", optional=True)
    if "domains" in data:
        _list(data["domains"], source, "data.domains")
    for key in ("model_sizes", "pretrain_token_range", "spec_token_range", "loss_range"):
        if data.get(key) is not None:
            for i, x in enumerate(_list(data[key], source, f"data.{key}")):
                _number(x, source, f"data.{key}[{i}]", finite=False, allow_none=True)
    return data


def _holdout(v: Any, source: str) -> dict[str, Any] | None:
    h = _mapping(v, source, "holdout", optional=True)
    for key in _HOLDOUT_NUMBERS:
        if h.get(key) is not None:
            _number(h[key], source, f"holdout.{key}", finite=False)
    if "rule" in h and not isinstance(h["rule"], str):
        raise FitError(f"{_where(source, 'holdout.rule')} must be text")
    return h or None


def _selection(v: Any, source: str) -> tuple[dict[str, Any], ...]:
    """The ``form="auto"`` ranking: one object per candidate with ``form`` (text) and ``are`` (number or null)."""
    out = []
    for i, item in enumerate(_list(v, source, "selection")):
        item = _mapping(item, source, f"selection[{i}]")
        _text(item.get("form"), source, f"selection[{i}].form")
        for key in ("are", "r2"):
            if item.get(key) is not None:
                _number(item[key], source, f"selection[{i}].{key}", finite=False)
        if item.get("note") is not None:
            _text(item["note"], source, f"selection[{i}].note")
        out.append(item)
    return tuple(out)


def _calibration(v: Any, source: str) -> dict[str, Any] | None:
    if v is None:
        return None
    cal = _mapping(v, source, "calibration")
    for key in _CALIBRATION_NUMBERS:
        if key not in cal:
            raise FitError(f"{source}: key 'calibration' lacks {key!r}")
        _number(cal[key], source, f"calibration.{key}")
    return cal


def _bounds_option(v: Any, source: str) -> dict[str, tuple[float, float]]:
    """The fit's ``options.bounds`` (param -> [lower, upper]) used to range-check its values."""
    out = {}
    for k, pair in _mapping(v, source, "options.bounds", optional=True).items():
        pair = _list(pair, source, f"options.bounds.{k}")
        if len(pair) != 2:
            raise FitError(f"{_where(source, f'options.bounds.{k}')} must be [lower, upper]")
        out[str(k)] = (_number(pair[0], source, f"options.bounds.{k}[0]"), _number(pair[1], source, f"options.bounds.{k}[1]"))
    return out


def law(form: Form | str, *, domains: Sequence[str] | None = None, tie: Sequence[str] = (), **params: float) -> FittedLaw:
    """A law from known parameters, without fitting (e.g. published constants).

    >>> hoffmann = law("chinchilla", E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)

    Per-domain parameters are named ``B[code]``; pass them with ``**{"B[code]": 300.0}``.
    A per-domain parameter given without a domain applies to every domain.
    """
    f = get_form(form)
    for k, v in params.items():
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise FitError(f"law({f.name!r}): parameter {k} must be a number, not {type(v).__name__} {v!r}"[:300])
    doms = tuple(domains) if domains is not None else _domains_from_names(params)
    layout = ParamLayout(f, doms, fix={k: float(v) for k, v in params.items()}, tie=tie)
    missing = [s.name for s in layout.slots if s.fixed is None]
    if missing:
        raise FitError(f"law({f.name!r}): missing parameters {', '.join(missing)}")
    values = {s.name: float(s.fixed) for s in layout.slots}  # type: ignore[arg-type]
    check_values(f, values, f"law({f.name!r})")
    return FittedLaw(f, values, doms, tuple(tie), tuple(values), status="given")


def load_law(path: str | os.PathLike[str]) -> FittedLaw:
    """Read a law JSON written by :meth:`FittedLaw.save` (or by hand: ``form`` and ``params`` suffice)."""
    path = Path(path)
    try:
        data = read_json(path, "law file", FitError)
    except RecursionError:
        raise FitError(f"{path}: invalid JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        if isinstance(exc, FitError):
            raise
        raise FitError(f"{path}: invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise FitError(f"{path}: a law file holds a JSON object with keys 'form' and 'params'")
    try:
        return FittedLaw.from_dict(data, source=str(path))
    except FitError:
        raise
    except KeyError as exc:  # unknown form
        raise FitError(f"{path}: {exc} (a custom form must be registered with planner.register_form, or installed "
                       "by a package under the 'planner.forms' entry-point group, before loading)") from None
    except RecursionError:
        raise FitError(f"{path}: invalid JSON: nested too deeply") from None
