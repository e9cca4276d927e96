"""The law library: analytic gradients, posynomial and cvxpy expansions, the registry, custom forms."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest

import planner
from planner.laws import CallableForm, FormError, Inputs, Param, get_form, list_forms, register_form, unregister_form

BUILTINS = ["chinchilla", "split-effective", "split-interaction", "split-additive", "overtrain", "repetition", "downstream-exp", "downstream-sigmoid"]


def _inputs(n: int = 40, seed: int = 0) -> Inputs:
    rng = np.random.default_rng(seed)
    size = 10 ** rng.uniform(7, 10, n)
    tokens = size * 10 ** rng.uniform(0.5, 2.5, n)
    spec = np.where(rng.uniform(size=n) < 0.3, 0.0, 10 ** rng.uniform(7, 10.5, n))
    unique = tokens / 10 ** rng.uniform(0, 1.5, n)
    loss = rng.uniform(2.0, 4.5, n)
    return Inputs.build(model_size=size, pretrain_tokens=tokens, spec_tokens=spec, unique_tokens=unique, loss=loss)


def _params(form, seed: int = 1) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    out = {}
    for q in form.params:
        # stay well inside the bounds, near the declared start
        lo, hi = max(q.lower, q.start / 3), min(q.upper, q.start * 3)
        out[q.name] = float(np.exp(rng.uniform(np.log(lo), np.log(hi)))) if q.positive else float(rng.uniform(lo, hi))
    return out


def test_registry_has_every_builtin_form():
    assert [f.name for f in list_forms()][: len(BUILTINS)] == BUILTINS
    for name in BUILTINS:
        form = get_form(name)
        assert form.equation and form.description
        assert form.describe()["params"]


def test_unknown_form_lists_the_known_ones():
    with pytest.raises(FormError, match="unknown form 'chinchila'.*chinchilla"):
        get_form("chinchila")


@pytest.mark.parametrize("name", [n for n in BUILTINS if get_form(n).gradient(_params(get_form(n)), _inputs()) is not None])
def test_analytic_gradient_matches_finite_differences(name):
    form = get_form(name)
    x = _inputs()
    p = _params(form)
    analytic = form.gradient(p, x)
    assert set(analytic) == set(form.param_names)
    for q in form.params:
        h = 1e-6 * abs(p[q.name])
        up, down = dict(p), dict(p)
        up[q.name] += h
        down[q.name] -= h
        numeric = (form.predict(up, x) - form.predict(down, x)) / (2 * h)
        np.testing.assert_allclose(analytic[q.name], numeric, rtol=2e-5, atol=1e-9 * np.max(np.abs(form.predict(p, x))), err_msg=f"{name}: d/d{q.name}")


@pytest.mark.parametrize("name", ["chinchilla", "overtrain"])
def test_posynomial_expansion_equals_predict(name):
    form = get_form(name)
    x = _inputs()
    p = _params(form)
    monos = form.monomials(p)
    assert form.posynomial
    total = sum(m(x.model_size, x.pretrain_tokens, x.spec_tokens) for m in monos)
    np.testing.assert_allclose(total, form.predict(p, x), rtol=1e-12)


def test_split_additive_is_posynomial_only_without_offset():
    form = get_form("split-additive")
    p = _params(form)
    assert form.monomials(p) is None
    p["D0"] = 0.0
    monos = form.monomials(p)
    x = _inputs()
    keep = x.spec_tokens > 0
    with np.errstate(divide="ignore"):  # D' = 0 rows: the monomial C D'^-gamma is infinite there
        total = sum(m(x.model_size, x.pretrain_tokens, x.spec_tokens) for m in monos)
    np.testing.assert_allclose(total[keep], form.predict(p, x)[keep], rtol=1e-12)


@pytest.mark.parametrize("name", ["chinchilla", "overtrain", "split-additive", "split-effective"])
def test_cvxpy_expression_is_convex_and_matches_predict(name):
    form = get_form(name)
    p = _params(form)
    scale = 1e9
    d = cp.Variable(pos=True)
    dp = cp.Variable(pos=True)
    expr = form.cvxpy_loss(p, 3e8, d, dp, token_scale=scale)
    assert expr.is_dcp() and expr.is_convex() and form.convex_in_tokens(p)
    for tokens, spec in [(6e9, 1e9), (2e11, 3e10)]:
        d.value, dp.value = tokens / scale, spec / scale
        want = form.predict(p, Inputs.build(model_size=3e8, pretrain_tokens=tokens, spec_tokens=spec))[0]
        assert float(expr.value) == pytest.approx(want, rel=1e-10)


def test_interaction_form_declares_no_convex_expression():
    form = get_form("split-interaction")
    assert form.cvxpy_loss(_params(form), 1e9, cp.Variable(pos=True), cp.Variable(pos=True)) is None
    assert not form.convex_in_tokens(_params(form))


def test_repetition_reduces_to_chinchilla_without_repeats():
    rep = get_form("repetition")
    chin = get_form("chinchilla")
    p = dict(E=1.87, A=521.0, B=1488.0, alpha=0.35, beta=0.35, R_D=15.4, R_N=5.3)
    x = Inputs.build(model_size=[1e8, 1e9], pretrain_tokens=[2e9, 2e10])  # unique tokens unknown -> inf
    np.testing.assert_allclose(rep.predict(p, x), chin.predict(p, x), rtol=1e-12)
    # one epoch of unique data and a model below the compute-optimal size for U: no decay
    x1 = Inputs.build(model_size=[1e7], pretrain_tokens=[2e9], unique_tokens=[2e9])  # N below N_opt(U): no excess parameters
    np.testing.assert_allclose(rep.predict(p, x1), chin.predict(p, x1), rtol=1e-12)
    # many epochs: effective tokens saturate at U (1 + R*), so the loss is higher
    x40 = Inputs.build(model_size=[1e8], pretrain_tokens=[8e10], unique_tokens=[2e9])
    assert rep.predict(p, x40)[0] > chin.predict(p, x40)[0]
    from planner.laws import effective_tokens

    assert effective_tokens(1e15, 1e9, 15.4) == pytest.approx(1e9 * 16.4, rel=1e-9)


def test_split_forms_reduce_to_chinchilla_without_specialization():
    chin = get_form("chinchilla")
    x = Inputs.build(model_size=[1e8, 1e9], pretrain_tokens=[2e9, 3e10], spec_tokens=[0.0, 0.0])
    base = dict(E=1.8, A=480.0, B=2100.0, alpha=0.35, beta=0.37)
    for name, extra in [("split-effective", dict(s=3.0, eta=0.8)), ("split-interaction", dict(c=0.1, gamma=0.3))]:
        np.testing.assert_allclose(get_form(name).predict({**base, **extra}, x), chin.predict(base, x), rtol=1e-12)
    add = get_form("split-additive").predict({**base, "C": 0.0, "gamma": 0.3, "D0": 1e9}, x)
    np.testing.assert_allclose(add, chin.predict(base, x), rtol=1e-12)


def test_param_declaration_is_checked():
    with pytest.raises(ValueError, match="lower bound"):
        Param("x", 2.0, 1.0)
    with pytest.raises(ValueError, match="log space"):
        Param("x", 0.0, 1.0, positive=True, start=0.5)
    with pytest.raises(ValueError, match="start"):
        Param("x", 1.0, 2.0, start=5.0)


def test_custom_form_is_registered_fitted_and_saved(tmp_path):
    def power_law(x, E, A, alpha):
        return E + A * (6 * x.model_size * x.pretrain_tokens) ** -alpha

    try:
        form = register_form("compute-power", power_law, {"E": (0.5, 5.0, 1.5), "A": (1.0, 1e9, 1e3), "alpha": (0.01, 1.0, 0.1)},
                             equation="L = E + A*C^-alpha")
        assert isinstance(form, CallableForm)
        with pytest.raises(FormError, match="already registered"):
            register_form("compute-power", power_law, {"E": (0.5, 5.0)})
        truth = planner.law("compute-power", E=1.7, A=2000.0, alpha=0.15)
        sizes = np.repeat([1e7, 3e7, 1e8, 3e8, 1e9], 4)
        tokens = sizes * np.tile([5.0, 20.0, 50.0, 100.0], 5)
        loss = truth.predict(model_size=sizes, pretrain_tokens=tokens)
        fitted = planner.fit(planner.runs_from_arrays(sizes, tokens, loss), "compute-power")
        assert fitted.params["alpha"] == pytest.approx(0.15, abs=1e-3)
        assert "finite-difference" in fitted.message  # no analytic gradient was given
        path = fitted.save(tmp_path / "law.json")
        again = planner.load_law(path)
        assert again.form is form and again.params == pytest.approx(fitted.params)
    finally:
        unregister_form("compute-power")
    with pytest.raises(planner.FitError, match="unknown form 'compute-power'.*register"):
        planner.load_law(path)


# --------------------------------------------------------------------------- register_form refusals
def _power(x, E, A, alpha):
    return E + A * (6 * x.model_size * x.pretrain_tokens) ** -alpha


@pytest.mark.parametrize(("args", "kwargs", "message"), [
    (("bad-1", "not a function", {"E": (0.5, 5.0)}), {}, "must be a callable"),
    (("bad-2", 42, {"E": (0.5, 5.0)}), {}, "must be a callable"),
    (("bad-3", _power, {"E": (5.0, 0.5)}), {}, "parameter 'E': .*lower bound"),
    (("bad-4", _power, {"E": "wide"}), {}, "parameter 'E': give a Param"),
    (("bad-5", _power, {"E": {"lower": 1.0}}), {}, "parameter 'E'"),
    (("bad-6", _power, {}), {}, "declares no parameters"),
    (("bad-7", _power, {"a[b]": (0.5, 5.0)}), {}, "must be an identifier"),
    (("bad-8", _power, {"E": (0.5, 5.0)}), {"inputs": ("model_size", "flops")}, "unknown inputs"),
    (("bad-9", _power, {"E": (0.5, 5.0)}), {"grad": "yes"}, "grad= must be callable"),
    (("bad-10", _power, {"E": (0.5, 5.0)}), {"colour": "red"}, "unexpected keyword"),
    (("bad-11", _power, 3), {}, "params must be a mapping"),
    ((3.5,), {}, "give a Form or a form name"),
    (("", _power, {"E": (0.5, 5.0)}), {}, "needs a name"),
])
def test_register_form_refuses_malformed_forms(args, kwargs, message):
    with pytest.raises(FormError, match=message):
        register_form(*args, **kwargs)
    assert all(f.name != args[0] for f in list_forms())


# --------------------------------------------------------------------------- entry-point forms
PLUGIN = '''
import numpy as np
from planner.laws import Form, Param


class KaplanLike(Form):
    name = "kaplan-like"
    equation = "L = E + (A/N)^alpha"
    description = "a form shipped by another package"
    params = (Param("E", 0.1, 10.0, start=1.5, linear=True), Param("A", 1e3, 1e12, start=1e7),
              Param("alpha", 0.01, 2.0, start=0.3))

    def predict(self, p, x):
        return p["E"] + (p["A"] / x.model_size) ** p["alpha"]


def broken():
    raise RuntimeError("plugin failed to build")


not_a_form = 42
'''


@pytest.fixture
def plugin_dist(tmp_path, monkeypatch):
    """A temporary installed distribution declaring forms under the 'planner.forms' group."""
    (tmp_path / "planner_plugin_example.py").write_text(PLUGIN)
    info = tmp_path / "planner_plugin_example-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: planner-plugin-example\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[planner.forms]\n"
        "kaplan-like = planner_plugin_example:KaplanLike\n"
        "broken-law = planner_plugin_example:broken\n"
        "wrong-type = planner_plugin_example:not_a_form\n"
        "misnamed = planner_plugin_example:KaplanLike\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("kaplan-like",):
        try:
            unregister_form(name)
        except FormError:
            pass


def test_entry_point_forms_are_found_lazily(plugin_dist, tmp_path):
    from planner.laws.registry import _REGISTRY

    assert "kaplan-like" not in _REGISTRY  # nothing is imported before the name is asked for
    form = get_form("kaplan-like")
    assert form.name == "kaplan-like" and get_form("kaplan-like") is form
    truth = planner.law("kaplan-like", E=1.7, A=1e7, alpha=0.3)
    sizes = np.repeat([1e7, 3e7, 1e8, 3e8, 1e9], 3)
    tokens = sizes * np.tile([10.0, 20.0, 40.0], 5)
    fitted = planner.fit(planner.runs_from_arrays(sizes, tokens, truth.predict(model_size=sizes, pretrain_tokens=tokens)),
                         "kaplan-like", max_starts=32)
    assert fitted.params["alpha"] == pytest.approx(0.3, rel=1e-3)
    # a saved law file names the form; a fresh process (registry without it) finds it again
    path = fitted.save(tmp_path / "plugin_law.json")
    unregister_form("kaplan-like")
    assert planner.load_law(path).form.name == "kaplan-like"


def test_entry_point_forms_in_the_cli(plugin_dist, tmp_path):
    from click.testing import CliRunner
    from planner.cli import cli

    truth = planner.law("kaplan-like", E=1.7, A=1e7, alpha=0.3)
    sizes = np.repeat([1e7, 3e7, 1e8, 3e8, 1e9], 3)
    tokens = sizes * np.tile([10.0, 20.0, 40.0], 5)
    import pandas as pd
    pd.DataFrame({"model_size": sizes, "pretrain_tokens": tokens,
                  "loss": truth.predict(model_size=sizes, pretrain_tokens=tokens)}).to_csv(tmp_path / "runs.csv", index=False)
    result = CliRunner().invoke(cli, ["fit", str(tmp_path / "runs.csv"), "--form", "kaplan-like", "--max-starts", "16",
                                      "-o", str(tmp_path / "out.json")])
    assert result.exit_code == 0, result.output
    assert "kaplan-like" in result.output
    assert json_form(tmp_path / "out.json") == "kaplan-like"


def json_form(path) -> str:
    import json
    return json.loads(path.read_text())["form"]


@pytest.mark.parametrize(("name", "message"), [
    ("broken-law", "could not load entry point.*RuntimeError: plugin failed to build"),
    ("wrong-type", "gives int, not a planner Form"),
    ("misnamed", "gives a form named 'kaplan-like'; the names must match"),
])
def test_bad_entry_points_are_form_errors(plugin_dist, name, message):
    with pytest.raises(FormError, match=message):
        get_form(name)


def test_unknown_form_lists_entry_point_names(plugin_dist):
    with pytest.raises(FormError, match="unknown form 'nope'.*kaplan-like"):
        get_form("nope")


def test_entry_point_forms_in_a_scenario(plugin_dist, tmp_path):
    """A scenario names a form that only an installed package declares; validate and run resolve it."""
    from click.testing import CliRunner
    from planner.cli import cli

    scenario = tmp_path / "plan.toml"
    scenario.write_text(
        "[budget]\nflops = 1e21\n\n[law]\nform = \"kaplan-like\"\nparams = { E = 1.7, A = 1e7, alpha = 0.3 }\n\n"
        "[[domains]]\nname = \"general\"\n"
    )
    result = CliRunner().invoke(cli, ["validate", str(scenario)])
    assert result.exit_code == 0, result.output
    # an out-of-range inline parameter of the plugin form is refused before planning
    scenario.write_text(scenario.read_text().replace("alpha = 0.3", "alpha = 0.0"))
    resolved = CliRunner().invoke(cli, ["run", str(scenario), "-o", str(tmp_path / "out")])
    assert resolved.exit_code == 2 and "alpha = 0 is outside" in resolved.output + resolved.stderr
    assert not (tmp_path / "out" / "allocation.json").exists()
