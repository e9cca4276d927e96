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
from .layout import FitError, ParamLayout, parse_slot_name

__all__ = ["FitWarning", "FittedLaw", "law", "load_law", "LAW_SCHEMA"]



@dataclass(frozen=True)
class FitWarning(Note):
    """A problem with a fit worth a reader's attention (``code`` is stable, ``message`` is prose)."""


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
            lines += ["", f"held out ({h.get('rule')}): {h.get('n_test')} rows; ARE {100 * h.get('are', math.nan):.3f}%  R^2 {_fmt_r2(h.get('r2'))}  max rel. error {100 * h.get('max_rel_error', math.nan):.3f}%"]
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
        for key in ("form", "params"):
            if key not in d:
                raise FitError(f"{source}: not a law file: missing top-level key {key!r}")
        form = get_form(d["form"])
        params = {str(k): float(v) for k, v in dict(d["params"]).items()}
        domains = tuple(d.get("domains") or _domains_from_names(params))
        draws = d.get("draws")
        draw_arr = None
        if draws:
            names = list(draws["names"])
            arr = np.asarray(draws["values"], dtype=float)
            order = [names.index(n) for n in params]
            draw_arr = arr[:, order]
        points = d.get("points")
        law_obj = cls(
            form=form,
            params=params,
            domains=domains,
            tied=tuple(d.get("tied", ())),
            fixed=tuple(d.get("fixed", ())),
            status=d.get("status", "given"),
            message=d.get("message", ""),
            warnings=tuple(FitWarning(w["code"], w["message"]) for w in d.get("warnings", [])),
            objective=float(d["objective"]) if d.get("objective") is not None else float("nan"),
            residuals=None if d.get("residuals") is None else np.asarray(d["residuals"], dtype=float),
            draws=draw_arr,
            interval_level=float(d.get("interval_level", 0.9)),
            intervals={k: (float(v[0]), float(v[1])) for k, v in (d.get("intervals") or {}).items()},
            data=d.get("data") or {},
            options=d.get("options") or {},
            holdout=d.get("holdout"),
            selection=tuple(d.get("selection") or ()),
            points=None if points is None else pd.DataFrame(points),
            calibration=d.get("calibration"),
            candidates=_ensemble_from_dict(d.get("candidates"), source),
            version=d.get("version", _version()),
        )
        _check_slots(law_obj, source)
        return law_obj

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=True)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the law as JSON atomically (a temp file renamed into place)."""
        path = Path(path)
        write_atomic(path, self.to_json())
        return path


def write_atomic(path: Path, text: str) -> None:
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
    from .ensemble import LawEnsemble  # ensemble builds on FittedLaw: imported here, not at the top

    return LawEnsemble.from_dict(d, source=source)


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


def law(form: Form | str, *, domains: Sequence[str] | None = None, tie: Sequence[str] = (), **params: float) -> FittedLaw:
    """A law from known parameters, without fitting (e.g. published constants).

    >>> hoffmann = law("chinchilla", E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)

    Per-domain parameters are named ``B[code]``; pass them with ``**{"B[code]": 300.0}``.
    A per-domain parameter given without a domain applies to every domain.
    """
    f = get_form(form)
    doms = tuple(domains) if domains is not None else _domains_from_names(params)
    layout = ParamLayout(f, doms, fix={k: float(v) for k, v in params.items()}, tie=tie)
    missing = [s.name for s in layout.slots if s.fixed is None]
    if missing:
        raise FitError(f"law({f.name!r}): missing parameters {', '.join(missing)}")
    values = {s.name: float(s.fixed) for s in layout.slots}  # type: ignore[arg-type]
    return FittedLaw(f, values, doms, tuple(tie), tuple(values), status="given")


def load_law(path: str | os.PathLike[str]) -> FittedLaw:
    """Read a law JSON written by :meth:`FittedLaw.save` (or by hand: ``form`` and ``params`` suffice)."""
    path = Path(path)
    data = read_json(path, "law file", FitError)
    if not isinstance(data, dict):
        raise FitError(f"{path}: a law file holds a JSON object with keys 'form' and 'params'")
    try:
        return FittedLaw.from_dict(data, source=str(path))
    except KeyError as exc:  # unknown form
        raise FitError(f"{path}: {exc} (a custom form must be registered with planner.register_form before loading)") from None
