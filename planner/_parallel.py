"""Parallel map through joblib, so the same code runs on local processes or a Dask cluster.

``parallel_map(func, items, n_jobs=...)`` follows scikit-learn's convention: ``n_jobs=None`` or ``1``
runs serially in this process, ``-1`` uses every core, ``k`` uses k workers. Inside each task BLAS is
limited to one thread (many tiny dense solves: a thread pool per worker only spins). The backend is
joblib's, so ``with joblib.parallel_config(backend="dask"): ...`` sends the same tasks to a
``dask.distributed`` cluster unchanged. Results come back in the order of ``items``; a task that needs
randomness takes its seed from its item, never from shared state, so serial, process and Dask runs
give identical results.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, TypeVar

from ._threads import single_blas_thread

__all__ = ["parallel_map", "effective_n_jobs"]

T = TypeVar("T")
R = TypeVar("R")


def _run_one_thread(func: Callable[[T], R], item: T) -> R:
    with single_blas_thread():
        return func(item)


def effective_n_jobs(n_jobs: int | None) -> int:
    """How many workers ``n_jobs`` means here (1 for None; joblib's reading of negatives)."""
    if n_jobs is None or n_jobs == 1:
        return 1
    import joblib

    return int(joblib.effective_n_jobs(n_jobs))


def parallel_map(func: Callable[[T], R], items: Iterable[T], *, n_jobs: int | None = None) -> list[R]:
    """``[func(item) for item in items]``, in parallel through joblib when ``n_jobs`` asks for it."""
    items = list(items)
    if len(items) <= 1 or effective_n_jobs(n_jobs) == 1:
        return [_run_one_thread(func, item) for item in items]
    import joblib

    return list(joblib.Parallel(n_jobs=n_jobs)(joblib.delayed(_run_one_thread)(func, item) for item in items))
