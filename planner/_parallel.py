"""Parallel map through joblib, so the same code runs on local processes or a Dask cluster.

``parallel_map(func, items, n_jobs=...)`` follows scikit-learn's convention: ``n_jobs=None`` or ``1``
runs serially in this process, ``-1`` uses every core, ``k`` uses k workers. Inside each task BLAS is
limited to one thread (many tiny dense solves: a thread pool per worker only spins). The backend is
joblib's, so ``with joblib.parallel_config(backend="dask"): ...`` sends the same tasks to a
``dask.distributed`` cluster unchanged. Results come back in the order of ``items``; a task that needs
randomness takes its seed from its item, never from shared state, so serial, process and Dask runs
give identical results.

Starting joblib's default process pool (loky) is not free: each fresh worker imports numpy, scipy,
pandas and planner, 1.3 s of CPU and 1.4 s of wall time measured on the 2-core machine, before it
runs a task; a pool that is already running (loky keeps its workers for 300 s) costs only the
round trips. With the default backend the first item therefore runs in this process and is timed (CPU time):
the rest go to the pool only if they would take at least :data:`MIN_PARALLEL_SECONDS` serially when
the pool is running, :data:`MIN_COLD_POOL_SECONDS` when it must be started (two workers then save
half of that, more than their start-up). ``form="auto"``'s six candidate fits (about 3 s serially)
stay in this process; 200 bootstrap draws (about 12 s) go to the pool. A map that is one of a batch
run one after the other (the bootstrap draws of every weighted candidate of ``form="auto"``) says
what share of the batch's work it carries (``work_share``): a cold pool is started when the *batch*
would take :data:`MIN_COLD_POOL_SECONDS`, since loky keeps the pool for the maps that follow (on the
main scenario with bootstrap 200, calibrate and a robust plan: 200 draws of each of two candidates,
3 s and 7 s serially; ``planner run`` took 16.1 s before and 15.1 s with the batch rule, medians of 2
on the quiet 2-core machine, the same plan).
Any backend the user chose with ``joblib.parallel_config`` (Dask, threads) gets every task. Which
path ran never changes the results.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable, TypeVar

from ._threads import single_blas_thread

__all__ = ["parallel_map", "effective_n_jobs"]

T = TypeVar("T")
R = TypeVar("R")

#: the rest of a map goes to the default process pool, once it runs, only if it would take this long serially
MIN_PARALLEL_SECONDS = 1.0
#: ... and to a pool that must first be started only if it would take this long serially
MIN_COLD_POOL_SECONDS = 5.0


def _run_one_thread(func: Callable[[T], R], item: T) -> R:
    with single_blas_thread():
        return func(item)


def effective_n_jobs(n_jobs: int | None) -> int:
    """How many workers ``n_jobs`` means here (1 for None; joblib's reading of negatives)."""
    if n_jobs is None or n_jobs == 1:
        return 1
    import joblib

    return int(joblib.effective_n_jobs(n_jobs))


def _default_backend() -> bool:
    """True when no backend was chosen with ``joblib.parallel_config`` (joblib's loky process pool)."""
    from joblib.parallel import get_active_backend

    backend, _ = get_active_backend()
    return type(backend).__name__ == "LokyBackend"


def _pool_is_running() -> bool:
    """Best effort: does loky's reusable executor (joblib's default pool) exist with live workers?
    False whenever it cannot tell (joblib's internals are not an API)."""
    try:
        from joblib.externals.loky import reusable_executor

        executor = reusable_executor._executor
        if executor is None or getattr(executor, "_broken", False) or executor._flags.shutdown:
            return False
        return bool(executor._processes)
    except Exception:  # pragma: no cover - another joblib version
        return False


def pool_threshold(pool_running: bool, work_share: float = 1.0) -> float:
    """Serial seconds the rest of a map must take before it goes to the default process pool.

    :data:`MIN_PARALLEL_SECONDS` when the pool runs; otherwise :data:`MIN_COLD_POOL_SECONDS` scaled by
    ``work_share`` in (0, 1], the map's share of a batch of maps run one after the other (the pool,
    once started, serves the rest of the batch, so the batch's work is what pays for its start-up).
    """
    if not 0.0 < work_share <= 1.0:
        raise ValueError(f"work_share must be in (0, 1], not {work_share!r}")
    return MIN_PARALLEL_SECONDS if pool_running else MIN_COLD_POOL_SECONDS * work_share


def parallel_map(
    func: Callable[[T], R],
    items: Iterable[T],
    *,
    n_jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    min_parallel_seconds: float | None = None,
    work_share: float = 1.0,
) -> list[R]:
    """``[func(item) for item in items]``, in parallel through joblib when ``n_jobs`` asks for it.

    ``progress(done, total)`` is called in this process as results arrive (in order).
    ``min_parallel_seconds``: see the module docstring (0 sends every task to the pool; None:
    :func:`pool_threshold`, which ``work_share``, this map's share of a batch of maps, scales).
    """
    items = list(items)
    total = len(items)
    out: list[R] = []

    def serial(rest: list[T]) -> list[R]:
        for item in rest:
            out.append(_run_one_thread(func, item))
            if progress is not None:
                progress(len(out), total)
        return out

    if total <= 1 or effective_n_jobs(n_jobs) == 1:
        return serial(items)
    import joblib

    if min_parallel_seconds is None:
        min_parallel_seconds = pool_threshold(MIN_PARALLEL_SECONDS <= 0 or _pool_is_running(), work_share)
    if _default_backend() and min_parallel_seconds > 0:
        start = time.thread_time()  # CPU time: other load on the machine does not inflate the estimate
        serial(items[:1])
        if (time.thread_time() - start) * (total - 1) < min_parallel_seconds:
            return serial(items[1:])
        items = items[1:]
    results = joblib.Parallel(n_jobs=n_jobs, return_as="generator")(joblib.delayed(_run_one_thread)(func, item) for item in items)
    for result in results:
        out.append(result)
        if progress is not None:
            progress(len(out), total)
    return out
