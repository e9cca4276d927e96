"""Adequacy: how well a fitted law describes the runs it was fitted to (issue 11.8).

A law that misses its own runs by several percent cannot be trusted to extrapolate.
:func:`residual_table` gives the in-sample relative error of every row, labelled base
(pretraining, D' = 0) or specialized (D' > 0); :func:`residual_summary` averages it by model
size, pretraining tokens or specialization tokens (the table the report plots).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd

from .law import FittedLaw

__all__ = ["residual_table", "residual_summary", "adequacy"]


def residual_table(law: FittedLaw, runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run row: inputs, observed and predicted loss, rel_error = (pred - obs) / obs, kind.

    Rows measuring forgetting (``cross_domain``) are left out unless the law's form uses them, as in
    the fit. ``kind`` is "base" (D' = 0) or "specialized" (D' > 0).
    """
    df = runs
    if "cross_domain" in df and not law.form.uses_cross_domain:
        df = df[~df["cross_domain"].astype(bool)]
    if "domain" in df:
        df = df[df["domain"].astype(str).isin(law.domains) | (not law._has_per_domain_slots())]
    cols = [c for c in ("model_size", "pretrain_tokens", "spec_tokens", "domain", "run") if c in df]
    out = df[cols].copy().reset_index(drop=True)
    if "spec_tokens" not in out:
        out["spec_tokens"] = 0.0
    out["observed"] = df[law.form.target].to_numpy(dtype=float)
    out["predicted"] = law.predict(df)
    out["rel_error"] = (out["predicted"] - out["observed"]) / out["observed"]
    out["kind"] = np.where(out["spec_tokens"].to_numpy(dtype=float) > 0, "specialized", "base")
    return out


def residual_summary(table: pd.DataFrame, by: str | Sequence[str] = "model_size") -> pd.DataFrame:
    """Mean |rel_error|, mean signed rel_error (bias), max |rel_error| and count, per kind and ``by`` group."""
    keys = ["kind"] + ([by] if isinstance(by, str) else list(by))
    g = table.assign(abs_error=table["rel_error"].abs()).groupby(keys, sort=True)
    return pd.DataFrame({
        "mean_abs_error": g["abs_error"].mean(),
        "bias": g["rel_error"].mean(),
        "max_abs_error": g["abs_error"].max(),
        "n": g["abs_error"].size(),
    }).reset_index()


def adequacy(law: FittedLaw, runs: pd.DataFrame) -> dict[str, Any]:
    """Mean and max |relative error| on base and specialized rows (the numbers docs/validation.md quotes)."""
    t = residual_table(law, runs)
    out: dict[str, Any] = {}
    for kind in ("base", "specialized"):
        sel = t[t["kind"] == kind]["rel_error"].abs()
        out[kind] = {"mean": float(sel.mean()) if len(sel) else None, "max": float(sel.max()) if len(sel) else None, "n": int(len(sel))}
    return out
