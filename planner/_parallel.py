"""Parallel map through joblib, so the same code runs on local processes or a Dask cluster.

``parallel_map(func, items, n_jobs=...)`` follows scikit-learn's convention: ``n_jobs=None`` or ``1``
runs serially in this process, ``-1`` uses every core, ``k`` uses k workers. Inside each task BLAS is
limited to one thread (many tiny dense solves: a thread pool per worker only spins). The backend is
joblib's, so ``with joblib.parallel_config(backend="dask"): ...`` sends the same tasks to a
``dask.distributed`` cluster unchanged. Results come back in the order of ``items``; a task that needs
randomness takes its seed from its item, never from shared state, so serial, process and Dask runs
give identical results.

Starting joblib's default process pool (loky) costs about a second the first time (each worker
imports numpy, scipy, pandas and planner), which is more than a few small fits take. With the
default backend the first item therefore runs in this process and is timed: the rest go to the pool
only if they would take at least ``min_parallel_seconds`` serially. Any backend the user chose with
``joblib.parallel_config`` (Dask, threads) gets every task. Which path ran never changes the results.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable, TypeVar

from ._threads import single_blas_thread

__all__ = ["parallel_map", "effective_n_jobs"]

T = TypeVar("T")
R = TypeVar("R")

#: the rest of a map goes to the default process pool only if it would take this long serially
MIN_PARALLEL_SECONDS = 1.0


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


def parallel_map(
    func: Callable[[T], R],
    items: Iterable[T],
    *,
    n_jobs: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    min_parallel_seconds: float | None = None,
) -> list[R]:
    """``[func(item) for item in items]``, in parallel through joblib when ``n_jobs`` asks for it.

    ``progress(done, total)`` is called in this process as results arrive (in order).
    ``min_parallel_seconds``: see the module docstring (0 sends every task to the pool; None:
    :data:`MIN_PARALLEL_SECONDS`).
    """
    if min_parallel_seconds is None:
        min_parallel_seconds = MIN_PARALLEL_SECONDS
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

    if _default_backend() and min_parallel_seconds > 0:
        start = time.perf_counter()
        serial(items[:1])
        if (time.perf_counter() - start) * (total - 1) < min_parallel_seconds:
            return serial(items[1:])
        items = items[1:]
    results = joblib.Parallel(n_jobs=n_jobs, return_as="generator")(joblib.delayed(_run_one_thread)(func, item) for item in items)
    for result in results:
        out.append(result)
        if progress is not None:
            progress(len(out), total)
    return out
