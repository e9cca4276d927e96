"""Pins the real-D'-data numbers of benchmarks/validate_split.py (docs/validation.md, "Real D' data").

Recomputed from data/published/split_lab (real split training of tiny GPTs): fit the 3 smallest sizes,
predict the 2 largest. The numbers are this code's own output (seed 0, max_starts 32); a change to a
form, the fitter or the ensemble that moves them must update docs/validation.md too.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import validate_split as VS  # noqa: E402

# held-out ARE (base rows, specialized rows, all rows), measured 2026-11-25 by validate_split.py (the
# ensemble: shrunk stacking, validate_split.AUTO_OPTIONS; fit()'s default is plain stacking), equal weights with 3 training sizes' one backtest fold)
SPLIT_LAB = {
    "split-additive": (0.07369, 0.06378, 0.06944),
    "split-multiplicative": (0.06964, 0.06954, 0.06960),
    "split-interaction": (0.07724, 0.08323, 0.07981),
    "split-prelearned": (0.06651, 0.09770, 0.07988),
    "split-transfer": (0.07373, 0.11206, 0.09016),
    "split-effective": (0.09048, 0.10999, 0.09884),
    "ensemble": (0.07216, 0.08661, 0.07835),  # equal weights: one backtest fold (shrunk stacking)
    "copy largest fitted size": (0.11605, 0.14580, 0.12880),
    "no D' term": (0.08829, 0.27254, 0.16725),
}


@pytest.fixture(scope="module")
def split_lab():
    return VS.split_lab_extrapolation(n_jobs=1, keep=True)


@pytest.mark.slow
def test_split_lab_held_out_errors_are_pinned(split_lab):
    assert (split_lab["n_base"], split_lab["n_specialized"]) == (40, 30)
    for name, (base, spec, every) in SPLIT_LAB.items():
        got = split_lab["errors"][name]
        assert got["base"] == pytest.approx(base, abs=2e-3), name
        assert got["specialized"] == pytest.approx(spec, abs=2e-3), name
        assert got["all"] == pytest.approx(every, abs=2e-3), name


@pytest.mark.slow
def test_split_lab_ensemble_never_fails_and_beats_both_baselines(split_lab):
    assert set(split_lab["weights"]) == set(VS.SPLIT_FORMS)  # every candidate fitted
    e = split_lab["errors"]
    assert e["ensemble"]["all"] < e["copy largest fitted size"]["all"]
    assert e["ensemble"]["all"] < e["no D' term"]["all"]
    assert e["ensemble"]["specialized"] < e["no D' term"]["specialized"]


@pytest.mark.slow
def test_split_lab_one_fold_gives_equal_weights_and_the_ratio_is_pinned(split_lab):
    w = list(split_lab["weights"].values())
    assert w == pytest.approx([1 / len(w)] * len(w), abs=1e-12)  # one fold proposes, nothing confirms: equal
    assert split_lab["ensemble_over_best"] == pytest.approx(0.07835 / 0.06944, abs=0.01)  # 1.13 (plain stacking: 1.20)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="measured 1.13 (equal weights; plain stacking 1.20): the one backtest fold (2 sizes -> "
                                       "the third) ranks split-effective first and it is the worst held out, so no weighting "
                                       "from the training rows reaches 1.1 here (docs/validation.md, 'Weighting rules')")
def test_split_lab_ensemble_within_1_1_of_the_best_candidate(split_lab):
    assert split_lab["ensemble_over_best"] <= 1.1


# finetune_lin2024: fit the 3 smaller sizes of a family, predict the largest size's curve (ARE, measured
# 2026-11-25 by validate_split.py, re-measured after the fitter's warm starts (warm_start=True) landed on main):
# (family, dataset) -> {law: ARE}
FINETUNE = {
    ("Cerebras", "flan"): {"chinchilla": 0.12803, "split-effective": 0.13526, "split-interaction": 0.12610, "split-additive": 0.14211,
                           "overtrain": 0.17468, "split-transfer": 0.11140, "split-multiplicative": 0.11416, "split-prelearned": 0.11367,
                           "ensemble": 0.12628, "copy next size down": 0.20944},
    ("Cerebras", "wmt19"): {"chinchilla": 0.18410, "split-effective": 0.15857, "split-interaction": 0.23562, "split-additive": 0.27417,
                            "overtrain": 0.20257, "split-transfer": 0.15899, "split-multiplicative": 0.24260, "split-prelearned": 0.24355,
                            "ensemble": 0.16965, "copy next size down": 0.23901},
    ("OPT", "flan"): {"chinchilla": 0.04682, "split-effective": 0.09051, "split-interaction": 0.08562, "split-additive": 0.09326,
                      "overtrain": 0.04682, "split-transfer": 0.08828, "split-multiplicative": 0.07086, "split-prelearned": 0.07988,
                      "ensemble": 0.05118, "copy next size down": 0.07359},
    ("OPT", "wmt19"): {"chinchilla": 0.04080, "split-effective": 0.25878, "split-interaction": 0.14374, "split-additive": 0.25766,
                       "overtrain": 0.04055, "split-transfer": 0.24919, "split-multiplicative": 0.21885, "split-prelearned": 0.20007,
                       "ensemble": 0.14912, "copy next size down": 0.19174},
}


#: values that depend on the machine's floating point (the BLAS kernel numpy's OpenBLAS picks for the CPU):
#: (case, name) -> the value measured on a second machine, accepted beside the pinned one. The chinchilla fit
#: on Cerebras wmt19 has two optima 1.7e-5 apart in objective (docs/methods.md, "Stopping once starts
#: agree"); which one the six polishes end in depends on rounding: 18.41 % held out where the numbers were
#: first pinned, 16.13 % on an AMD EPYC (2026-12-07, with numpy 2.3 and 2.4, scipy 1.16 and 1.17 alike), and
#: with it the equal-weight ensemble (16.965 % / 16.708 %) and its ratio to the best form (1.070 / 1.054).
#: The weighting study's point stacking on Cerebras flan moves with a fold fit the same way (1.06 / 1.017).
MACHINE_ALTERNATIVES = {
    (("Cerebras", "wmt19"), "chinchilla"): 0.16130,
    (("Cerebras", "wmt19"), "ensemble"): 0.16708,
    (("Cerebras", "wmt19"), "ratio"): 0.16708 / 0.15857,
    (("Cerebras", "flan"), "point stacking"): 1.017,
}


def pinned(got: float, expected: float, key: tuple, name: str, abs_tol: float) -> bool:
    """``got`` is the pinned value, or the value the same computation gives on the other machine measured."""
    alternatives = [expected] + ([MACHINE_ALTERNATIVES[(key, name)]] if (key, name) in MACHINE_ALTERNATIVES else [])
    return any(got == pytest.approx(v, abs=abs_tol) for v in alternatives)


@pytest.fixture(scope="module")
def finetune():
    return {key: VS.finetune_extrapolation(*key, n_jobs=1, keep=True) for key in FINETUNE}


@pytest.mark.slow
def test_finetune_errors_are_pinned_and_auto_never_fails(finetune):
    for key, expected in FINETUNE.items():
        got = finetune[key]
        assert got["failed"] == {}, key  # every candidate fitted: OPT's constant D and 3 sizes included
        for name, are in expected.items():
            assert pinned(got["errors"][name], are, key, name, 2e-3), (key, name, got["errors"][name], are)


#: (family, dataset) -> the ensemble's ARE over the best candidate's, measured with the default weighting
#: (equal weights: one fold); plain stacking gave 1.02, 1.72, 1.92, 4.91 (docs/validation.md)
FINETUNE_RATIO = {("Cerebras", "flan"): 0.12628 / 0.11140, ("Cerebras", "wmt19"): 0.16965 / 0.15857,
                  ("OPT", "flan"): 0.05118 / 0.04682, ("OPT", "wmt19"): 0.14912 / 0.04055}


@pytest.mark.slow
@pytest.mark.parametrize("key", list(FINETUNE))
def test_finetune_ensemble_within_1_1_of_the_best_candidate(finetune, key, request):
    assert pinned(finetune[key]["ensemble_over_best"], FINETUNE_RATIO[key], key, "ratio", 0.01), finetune[key]["ensemble_over_best"]
    if key in (("Cerebras", "flan"), ("OPT", "wmt19")):
        # measured 1.13 (Cerebras flan: the one fold ranked the forms well, plain stacking gave 1.02, equal weights
        # give that up) and 3.68 (OPT wmt19: the forms without a D' term win on the largest size but are the worst
        # on every training-only fold; any weights on the six D' forms reach at best 3.41x, so 1.1x needs most of the
        # weight on the two forms the folds rank last) (docs/validation.md, "Weighting rules")
        request.applymarker(pytest.mark.xfail(strict=True, reason="issue's 1.1x target not met on this dataset"))
    assert finetune[key]["ensemble_over_best"] <= 1.1

#: weighting rules on auto's own backtest fold (validate_split.rule_study): the ensemble's held-out ARE over the best
#: candidate's on (split_lab, Cerebras flan, Cerebras wmt19, OPT flan, OPT wmt19), measured 2026-11-25
RULE_RATIOS = {
    "stacking (fit's default)": (1.20, 1.02, 1.73, 1.93, 4.93),
    "equal (= shrunk stacking with one fold)": (1.13, 1.13, 1.07, 1.09, 3.68),
    "pseudo-BMA+ (bootstrap over rows)": (1.18, 1.02, 1.64, 1.96, 5.33),
    "stacking on the final checkpoints": (1.15, 1.13, 1.49, 1.93, 4.93),
    "point stacking": (1.26, 1.06, 1.39, 1.27, 4.03),
}


@pytest.fixture(scope="module")
def rules(split_lab, finetune):
    kept = {"split_lab": split_lab["kept"], **{f"{fam} {dom}": finetune[(fam, dom)]["kept"] for fam, dom in FINETUNE}}
    return VS.rule_study(kept)


@pytest.mark.slow
def test_no_weighting_rule_from_the_training_fold_reaches_1_1_everywhere(rules):
    cases = list(rules)
    assert cases == list(VS.STUDY_CASES)
    for rule, expected in RULE_RATIOS.items():
        for case, want in zip(cases, expected):
            key = tuple(case.split(" ", 1)) if case != "split_lab" else case
            assert pinned(rules[case]["ratios"][rule], want, key, rule, 0.02), (rule, case, rules[case]["ratios"][rule], want)
    for rule in VS.RULES:
        assert max(rules[c]["ratios"][rule] for c in cases) > 1.1, rule  # the finding: none reaches the target
    # why OPT wmt19 cannot be reached: the two forms without a D' term are the best held out and the worst on
    # auto's fold, and no weights on the six D' forms come within 3.3x of the best
    opt = rules["OPT wmt19"]
    no_d = {"chinchilla", "overtrain"}
    assert set(sorted(opt["heldout_are"], key=opt["heldout_are"].get)[:2]) == no_d
    assert set(sorted(opt["fold_are"], key=opt["fold_are"].get)[-2:]) == no_d
    assert opt["oracle_d_term_forms_only"] == pytest.approx(3.41, abs=0.05)
    assert opt["least_no_d_weight_for_1_1"] == pytest.approx(0.54, abs=0.03)
    assert opt["rank_agreement"] < -0.5


def test_the_oracle_bound_is_the_brute_force_minimum_over_the_simplex():
    rng = np.random.default_rng(3)
    obs = rng.uniform(1.0, 3.0, 9)
    preds = obs * np.exp(rng.normal(0.0, 0.2, (3, 9)))
    grid = [np.array([a, b, 1 - a - b]) for a in np.linspace(0, 1, 201) for b in np.linspace(0, 1, 201) if a + b <= 1 + 1e-12]
    brute = min(np.mean(np.abs(np.clip(g, 0, None) @ preds - obs) / obs) for g in grid)
    assert VS._oracle_ratio(preds, obs, [True, True, True]) == pytest.approx(brute, abs=2e-3)
    assert VS._oracle_ratio(preds, obs, [True, False, False]) == pytest.approx(np.mean(np.abs(preds[0] - obs) / obs), rel=1e-9)


def test_the_early_checkpoint_cut_is_stated_in_the_fit_summary_either_way():
    """Issue 11.8: the early-checkpoint cut is a reported choice, not a silent default."""
    import warnings

    import planner

    runs = VS.load_split_lab()
    small = runs[runs["model_size"] < 1e5]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unidentified per-domain parameters of the tiny subset
        none = planner.fit(small, "split-interaction", max_starts=2)
        cut = planner.fit(small, "split-interaction", max_starts=2, min_tokens=1e6)
    assert "early-checkpoint cut: none" in none.summary()
    removed = int(((small["pretrain_tokens"] + small["spec_tokens"]) < 1e6).sum())
    assert f"early-checkpoint cut: min_tokens=1e+06 (removed {removed} of {len(small)} rows)" in cut.summary()
