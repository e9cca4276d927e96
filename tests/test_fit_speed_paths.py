"""The fast paths of the fitter give the numbers of the slow ones.

* the least-squares polish (scipy ``least_squares``, trust-region reflective) reaches the optimum of
  the L-BFGS-B polish, for every loss, with and without weights, on synthetic runs and Epoch's points;
* scipy's Huber cost with ``f_scale = delta`` is our Huber objective times the number of rows;
* a start that already meets the optimality tolerance is not polished, and the fit says so;
* bootstrap draws and calibration backtests are identical serially, on local processes and on a
  Dask cluster (each draw seeds from its index).
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from scipy.optimize import least_squares

import planner
from planner import _parallel
from planner._parallel import parallel_map
from planner._threads import single_blas_thread
from planner.fitting.core import LawFitter, _prepare
from planner.fitting.multistart import GTOL, multistart, polish, projected_gradient
from planner.fitting.objective import Objective, make_loss
from synthetic import grid_table

FORMS = ["chinchilla", "overtrain", "split-additive", "split-effective", "split-interaction"]


def _objective(runs, form: str, loss: str = "huber", weights=None) -> Objective:
    f = planner.get_form(form)
    prep = _prepare(runs, f, domain=None, weights=weights)
    layout = LawFitter(f)._layout(f, prep, [])
    return Objective(f, layout, prep.x, prep.observed, prep.domain_index, prep.weights, make_loss(loss))


def _both_polishes(obj: Objective, max_starts: int, n_polish: int) -> tuple[float, float]:
    lbfgsb, _ = multistart(obj, max_starts=max_starts, n_polish=n_polish, method="l-bfgs-b")
    lsq, _ = multistart(obj, max_starts=max_starts, n_polish=n_polish, method="least-squares")
    return obj.value(lbfgsb.x), obj.value(lsq.x)


# ------------------------------------------------------------------ least-squares polish
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("loss", ["huber", "huber-weighted", "ls", "over"])
def test_both_polishes_from_one_start_reach_one_optimum(form, loss):
    runs, truth = grid_table(form, noise=0.01, seed=4)
    weights = np.random.default_rng(1).uniform(0.5, 2.0, len(runs)) if loss.endswith("weighted") else None
    obj = _objective(runs, form, loss.split("-")[0], weights)
    rng = np.random.default_rng(2)
    start = obj.layout.from_theta(obj.layout.to_theta(truth.params) + rng.normal(0.0, 0.05, len(obj.layout.free)))
    by_lbfgsb = obj.value(polish(obj, start, method="l-bfgs-b").x)
    by_lsq = obj.value(polish(obj, start, method="least-squares").x)
    # measured: 1e-11 relative or closer; where they differ least squares is the lower one
    assert by_lsq == pytest.approx(by_lbfgsb, rel=1e-9)
    assert by_lsq <= by_lbfgsb * (1 + 1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("form", FORMS)
def test_recovery_fits_are_the_same_with_either_polish(form):
    """The recovery tests' fits (tests/test_fit.py), default multi-start, polished both ways."""
    runs, _ = grid_table(form, noise=0.01, seed=0)
    options = {"tie": ["gamma"]} if form == "split-additive" else {}
    a = planner.fit(runs, form, seed=0, polish="least-squares", **options)
    b = planner.fit(runs, form, seed=0, polish="l-bfgs-b", **options)
    assert a.objective == pytest.approx(b.objective, rel=1e-9)
    assert a.objective <= b.objective * (1 + 1e-12)
    for name in a.params:
        assert a.params[name] == pytest.approx(b.params[name], rel=1e-3), name


def test_least_squares_polish_reaches_the_lbfgsb_optimum_on_epoch_points(epoch_runs):
    runs = epoch_runs  # conftest.py: the 240 Epoch points from data/published
    by_lbfgsb, by_lsq = _both_polishes(_objective(runs, "chinchilla"), max_starts=256, n_polish=6)
    assert by_lsq == pytest.approx(by_lbfgsb, rel=1e-10)
    a = planner.fit(runs, "chinchilla", polish="least-squares")
    b = planner.fit(runs, "chinchilla", polish="l-bfgs-b")
    for name in a.params:
        assert a.params[name] == pytest.approx(b.params[name], rel=1e-4), name
    assert a.message.startswith("least_squares") and b.message.startswith("L-BFGS-B")


@pytest.mark.parametrize("weighted", [False, True])
def test_scipy_huber_cost_is_our_objective_times_the_row_count(weighted):
    """scipy: cost = 1/2 f_scale^2 sum rho(f^2/f_scale^2), rho(z) = z | 2 sqrt(z) - 1; ours: mean Huber(delta)."""
    runs, truth = grid_table("chinchilla", noise=0.002, seed=5)
    weights = np.random.default_rng(2).uniform(0.2, 3.0, len(runs)) if weighted else None
    obj = _objective(runs, "chinchilla", "huber", weights)
    theta = obj.layout.to_theta(truth.params)  # residuals (the noise) on both sides of delta
    r = obj.residuals(theta)
    assert np.any(np.abs(r) > 1e-3) and np.any(np.abs(r) <= 1e-3)
    m = len(r)
    if weighted:
        from planner.fitting.multistart import _weighted_huber

        loss = _weighted_huber(m * obj.weights)
    else:
        loss = "huber"
    # one evaluation: scipy reports the cost at its start when it may take no step
    res = least_squares(obj.residuals, theta, loss=loss, f_scale=1e-3, max_nfev=1)
    start_cost = 0.5 * 1e-6 * np.sum(np.where(np.abs(r) <= 1e-3, (r / 1e-3) ** 2, 2 * np.abs(r) / 1e-3 - 1) * m * obj.weights)
    assert start_cost == pytest.approx(m * obj.value(theta), rel=1e-12)
    assert res.cost == pytest.approx(m * obj.value(res.x), rel=1e-12)


def test_fit_with_an_unknown_polish_is_an_error():
    runs, _ = grid_table("chinchilla", seed=6)
    with pytest.raises(planner.FitError, match="polish"):
        planner.fit(runs, "chinchilla", polish="newton")


# ------------------------------------------------------------------ skipped polish
def test_polish_is_skipped_where_the_start_is_already_optimal():
    runs, truth = grid_table("chinchilla", noise=0.0, seed=7)
    obj = _objective(runs, "chinchilla", "ls")
    values = dict(truth.params)  # noise-free runs: the true law is the least-squares optimum
    theta = obj.layout.to_theta(values)
    assert np.max(np.abs(projected_gradient(obj, theta))) <= GTOL
    again = polish(obj, values)
    assert again.method == "none" and "polish skipped" in again.message
    np.testing.assert_array_equal(again.x, theta)
    # a start away from the optimum is polished
    moved = dict(values, alpha=values["alpha"] * 1.05)
    assert polish(obj, moved).method == "least-squares"


def test_fit_reports_a_skipped_polish_in_its_message():
    runs, truth = grid_table("chinchilla", noise=0.0, seed=8)
    # noise-free runs and every nonlinear parameter fixed: the variable-projection start is exact
    fitted = planner.fit(runs, "chinchilla", fix={"alpha": truth.params["alpha"], "beta": truth.params["beta"]}, loss="ls")
    assert "polish skipped" in fitted.message
    for name in ("E", "A", "B"):
        assert fitted.params[name] == pytest.approx(truth.params[name], rel=1e-6)


def test_projected_gradient_cuts_components_that_leave_the_box():
    runs, _ = grid_table("chinchilla", seed=9)
    obj = _objective(runs, "chinchilla")
    theta = obj.layout.to_theta(dict(E=1.8, A=480.0, B=2100.0, alpha=0.35, beta=0.37))
    lo = np.array([b[0] for b in obj.layout.theta_bounds()])
    theta[3] = lo[3]  # alpha at its lower bound
    _, g = obj.scaled(theta)
    pg = projected_gradient(obj, theta)
    if g[3] > 0:  # descent would leave the box: nothing left of that component
        assert pg[3] == 0.0
    else:
        assert pg[3] == g[3]
    np.testing.assert_array_equal(np.delete(pg, 3), np.delete(g, 3))


# ------------------------------------------------------------------ parallel map
def test_parallel_map_keeps_order_and_reports_progress(monkeypatch):
    monkeypatch.setattr(_parallel, "MIN_PARALLEL_SECONDS", 0.0)
    seen = []
    out = parallel_map(np.sqrt, [float(i) for i in range(7)], n_jobs=2, progress=lambda done, total: seen.append((done, total)))
    np.testing.assert_array_equal(out, np.sqrt(np.arange(7.0)))
    assert seen == [(i, 7) for i in range(1, 8)]


def test_parallel_map_runs_small_maps_in_process():
    pid_of = lambda _: __import__("os").getpid()  # noqa: E731
    assert set(parallel_map(pid_of, range(4), n_jobs=2)) == {__import__("os").getpid()}


def test_single_blas_thread_limits_once_for_overlapping_threads(monkeypatch):
    """Two tasks on threads at once (Dask with processes=False): one limit, restored after the last exit."""
    from planner import _threads

    events: list[str] = []

    class Limiter:
        def restore_original_limits(self) -> None:
            events.append("restore")

    class Controller:
        def limit(self, limits: int, user_api: str) -> Limiter:
            assert (limits, user_api) == (1, "blas")
            events.append("limit")
            return Limiter()

    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(_threads, "_controller", Controller())
    barrier = threading.Barrier(2)

    def task(name: str) -> None:
        with single_blas_thread():
            with single_blas_thread():  # nested: fit() inside a parallel task
                barrier.wait()
            events.append(f"exit {name}")
            barrier.wait()

    threads = [threading.Thread(target=task, args=(name,)) for name in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert events[0] == "limit" and events.count("limit") == 1
    assert events[-1] == "restore" and events.count("restore") == 1
    assert _threads._depth == 0


# ------------------------------------------------------------------ bootstrap and calibration
@pytest.fixture(scope="module")
def split_runs():
    runs, _ = grid_table("split-effective", noise=0.01, seed=3)
    return runs


@pytest.fixture(scope="module")
def serial_fit(split_runs):
    return planner.fit(split_runs, "split-effective", seed=7, bootstrap=6, calibrate=True, n_jobs=1)


@pytest.mark.slow
def test_bootstrap_and_backtests_do_not_depend_on_n_jobs(split_runs, serial_fit, monkeypatch):
    monkeypatch.setattr(_parallel, "MIN_PARALLEL_SECONDS", 0.0)  # every task to the process pool
    parallel = planner.fit(split_runs, "split-effective", seed=7, bootstrap=6, calibrate=True, n_jobs=2)
    np.testing.assert_array_equal(parallel.draws, serial_fit.draws)
    assert parallel.calibration == serial_fit.calibration
    assert parallel.params == serial_fit.params


def test_bootstrap_draw_depends_on_its_index_only(split_runs, serial_fit):
    """Fewer draws give the first rows of more draws: no draw reads state left by another."""
    fewer = planner.fit(split_runs, "split-effective", seed=7, bootstrap=3, n_jobs=1)
    np.testing.assert_array_equal(fewer.draws, serial_fit.draws[:3])
    assert not np.array_equal(serial_fit.draws[0], serial_fit.draws[1])


@pytest.mark.slow
def test_bootstrap_on_a_local_dask_cluster_matches_the_serial_run(split_runs, serial_fit):
    import joblib
    from dask.distributed import Client, LocalCluster, get_task_stream

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, Client(cluster) as client:
        with get_task_stream(client) as stream, joblib.parallel_config(backend="dask"):
            on_dask = planner.fit(split_runs, "split-effective", seed=7, bootstrap=6, calibrate=True, n_jobs=-1)
    assert len(stream.data) >= 6  # the draws ran as tasks on the cluster
    np.testing.assert_array_equal(on_dask.draws, serial_fit.draws)
    assert on_dask.calibration == serial_fit.calibration


@pytest.mark.parametrize("n_jobs", [0, 1.5, "all", True])
def test_bad_n_jobs_is_an_error(n_jobs):
    runs, _ = grid_table("chinchilla", seed=6)
    with pytest.raises(planner.FitError, match="n_jobs"):
        planner.fit(runs, "chinchilla", n_jobs=n_jobs)


# ------------------------------------------------------------------ when a process pool is started
def test_pool_threshold_scales_a_cold_pools_threshold_by_the_maps_share_of_its_batch(monkeypatch):
    monkeypatch.setattr(_parallel, "MIN_PARALLEL_SECONDS", 1.0)
    monkeypatch.setattr(_parallel, "MIN_COLD_POOL_SECONDS", 5.0)
    assert _parallel.pool_threshold(pool_running=True) == 1.0
    assert _parallel.pool_threshold(pool_running=True, work_share=0.25) == 1.0  # a running pool costs nothing to start
    assert _parallel.pool_threshold(pool_running=False) == 5.0
    assert _parallel.pool_threshold(pool_running=False, work_share=0.3) == pytest.approx(1.5)
    for bad in (0.0, -0.5, 1.5, float("nan")):
        with pytest.raises(ValueError, match="work_share"):
            _parallel.pool_threshold(pool_running=False, work_share=bad)


def test_auto_bootstraps_its_weighted_candidates_as_one_batch(split_runs, monkeypatch):
    """form="auto" bootstraps every candidate with weight in turn: each map carries its share of the
    batch's draws (so a pool started for the first serves the others), the shares sum to 1."""
    import planner.fitting.core as core

    seen: list[tuple[str, int, float]] = []
    real = core.parallel_map

    def recording(func, items, **kw):
        items = list(items)
        if isinstance(func, core._BootstrapDraw):
            seen.append((func.form.name, len(items), kw.get("work_share", 1.0)))
        return real(func, items, **kw)

    monkeypatch.setattr(core, "parallel_map", recording)
    law = planner.fit(split_runs, "auto", ensemble="equal", bootstrap=2, max_starts=4, n_jobs=1)
    weighted = [c.form.name for c, w in zip(law.candidates.candidates, law.candidates.weights) if w >= core.MIN_BOOTSTRAP_WEIGHT]
    assert len(weighted) >= 2 and sorted(name for name, _, _ in seen) == sorted(weighted)
    assert all(n == 2 for _, n, _ in seen)
    assert sum(share for _, _, share in seen) == pytest.approx(1.0)
    assert all(share == pytest.approx(1 / len(weighted)) for _, _, share in seen)
