"""Generate the synthetic run tables (and one fitted law) shipped with the example scenarios.

Every file here is SYNTHETIC: losses come from a known split-additive law

    L_k(N, D, D') = E_k + A / N^alpha + B_k / D^beta + C_k / (D' + D0_k)^gamma_k

multiplied by 1 % log-normal noise (sigma = 0.01 on log loss), on a small grid of model
sizes (20M .. 1B parameters), several pretraining token counts D per size and several
specialization token counts D' per domain, including D' = 0 rows (the general model
evaluated on each domain). The generating parameters are in ``LAWS`` below and in
``scenarios/README.md``. Rerun with ``python scenarios/data/make_runs.py``; the seed is fixed,
so the files are reproducible.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
NOISE_SIGMA = 0.01
MODEL_SIZES = (20e6, 50e6, 125e6, 350e6, 1e9)
TOKENS_PER_PARAM = (5.0, 10.0, 20.0, 40.0, 80.0)
SPEC_FRACTIONS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8)  # D' as a fraction of D

#: generating parameters, shared (A, alpha, beta) and per domain (E, B, C, gamma, D0)
LAWS: dict[str, dict] = {
    "three_domain_runs.csv": {
        "A": 406.4, "alpha": 0.34, "beta": 0.28,
        "domains": {
            "code":       {"E": 1.20, "B": 380.0, "C": 220.0, "gamma": 0.36, "D0": 1e8},
            "math":       {"E": 1.45, "B": 420.0, "C": 160.0, "gamma": 0.33, "D0": 1e8},
            "biomedical": {"E": 1.85, "B": 450.0, "C": 110.0, "gamma": 0.30, "D0": 1e8},
        },
    },
    "legal_runs.csv": {
        "A": 406.4, "alpha": 0.34, "beta": 0.28,
        "domains": {
            "legal":   {"E": 1.60, "B": 430.0, "C": 240.0, "gamma": 0.36, "D0": 1e8},
            "finance": {"E": 1.70, "B": 400.0, "C": 140.0, "gamma": 0.32, "D0": 1e8},
        },
    },
    "support_runs.csv": {
        "A": 406.4, "alpha": 0.34, "beta": 0.28,
        "domains": {
            "support-chat": {"E": 1.40, "B": 410.0, "C": 180.0, "gamma": 0.34, "D0": 1e8},
        },
    },
}


def true_loss(params: dict, domain: str, n: np.ndarray, d: np.ndarray, d_spec: np.ndarray) -> np.ndarray:
    """The generating split-additive law."""
    p = params["domains"][domain]
    return (p["E"] + params["A"] * n ** -params["alpha"] + p["B"] * d ** -params["beta"]
            + p["C"] * (d_spec + p["D0"]) ** -p["gamma"])


def make_table(params: dict, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for n in MODEL_SIZES:
        for ratio in TOKENS_PER_PARAM:
            d = ratio * n
            for domain in params["domains"]:
                for frac in SPEC_FRACTIONS:
                    d_spec = frac * d
                    run = f"n{n:.3g}-d{d:.3g}" + (f"-{domain}-s{d_spec:.3g}" if d_spec else "")
                    loss = true_loss(params, domain, np.array(n), np.array(d), np.array(d_spec))
                    loss = float(loss * np.exp(rng.normal(0.0, NOISE_SIGMA)))
                    rows.append({"run": run, "model_size": n, "pretrain_tokens": d, "spec_tokens": d_spec,
                                 "domain": domain, "spec_domain": domain if d_spec else "", "loss": round(loss, 5)})
    return pd.DataFrame(rows)


def main(out_dir: Path = HERE) -> None:
    for i, (name, params) in enumerate(LAWS.items()):
        table = make_table(params, seed=1234 + i)
        table.to_csv(out_dir / name, index=False)
        print(f"wrote {out_dir / name} ({len(table)} rows)")
    # the inference-heavy scenario reads a saved law: fit it once here, as `planner fit` would
    import planner

    law = planner.fit(out_dir / "support_runs.csv", form="split-additive", train_on="auto", seed=0)
    law.save(out_dir / "support_law.json")
    print(f"wrote {out_dir / 'support_law.json'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
