"""Synthetic run tables drawn from known laws, for recovery tests."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

import planner

MODEL_SIZES = (1e7, 3e7, 1e8, 3e8, 1e9, 3e9)
TOKENS_PER_PARAM = (5.0, 10.0, 20.0, 40.0, 80.0)
SPEC_TOKENS = (0.0, 3e7, 1e8, 3e8, 1e9, 3e9, 1e10, 3e10)

TRUTHS = {
    "chinchilla": dict(E=1.8, A=480.0, B=2100.0, alpha=0.35, beta=0.37),
    "overtrain": dict(E=1.9, a=60.0, b=900.0, eta=0.16),
    "split-additive": {"E[code]": 1.2, "E[math]": 1.5, "A": 480.0, "alpha": 0.35, "B[code]": 2100.0, "B[math]": 1500.0,
                       "beta": 0.37, "C[code]": 300.0, "C[math]": 200.0, "gamma[code]": 0.25, "gamma[math]": 0.25,
                       "D0[code]": 2e8, "D0[math]": 5e8},
    "split-effective": {"E[code]": 1.4, "E[math]": 1.6, "A": 480.0, "alpha": 0.35, "B[code]": 2100.0, "B[math]": 1500.0,
                        "beta": 0.37, "s[code]": 30.0, "s[math]": 5.0, "eta[code]": 0.85, "eta[math]": 0.9},
    "split-interaction": {"E[code]": 1.4, "E[math]": 1.6, "A": 480.0, "alpha": 0.35, "B[code]": 2100.0, "B[math]": 1500.0,
                          "beta": 0.37, "c[code]": 0.05, "c[math]": 0.1, "gamma[code]": 0.3, "gamma[math]": 0.4},
    "repetition": dict(E=1.87, A=521.0, B=1488.0, alpha=0.35, beta=0.35, R_D=15.4, R_N=5.3),
}


def grid_table(form: str, noise: float = 0.01, seed: int = 0) -> tuple[pd.DataFrame, planner.FittedLaw]:
    """Runs on a grid of sizes, tokens per parameter and (for split forms) spec tokens, with log-normal noise."""
    truth = planner.law(form, **TRUTHS[form])
    rng = np.random.default_rng(seed)
    rows = []
    spec_forms = form.startswith("split")
    for n, m in itertools.product(MODEL_SIZES, TOKENS_PER_PARAM):
        d = n * m
        if spec_forms:
            for dom, dp in itertools.product(("code", "math"), SPEC_TOKENS):
                rows.append(dict(model_size=n, pretrain_tokens=d, spec_tokens=dp, domain=dom))
        elif form == "repetition":
            for epochs in (1.0, 4.0, 16.0, 40.0):
                rows.append(dict(model_size=n, pretrain_tokens=d, unique_tokens=d / epochs))
        else:
            rows.append(dict(model_size=n, pretrain_tokens=d))
    df = pd.DataFrame(rows)
    df["loss"] = truth.predict(df) * np.exp(rng.normal(0.0, noise, len(df)))
    return planner.load_runs(df), truth


# The [law] table of the scenario tests: the split-additive law that generated scenarios/data
# (code and math), given inline.
INLINE_LAW_TABLE = """\
[law]
form = "split-additive"
params = {A = 406.4, alpha = 0.34, beta = 0.28, "E[code]" = 1.2, "E[math]" = 1.45, "B[code]" = 380, "B[math]" = 420, "C[code]" = 220, "C[math]" = 160, "gamma[code]" = 0.36, "gamma[math]" = 0.33, "D0[code]" = 1e8, "D0[math]" = 1e8}
"""
