"""One BLAS thread while fitting and solving.

The fitter and the optimizer run many tiny dense operations (240 x 3 least squares,
small Hessian updates). On a loaded 2-core machine OpenBLAS's thread pool spins on
them: a fit measured 8x slower with the default thread count than with one thread.
``single_blas_thread`` limits BLAS to one thread for the duration of a call, through
threadpoolctl, unless the user chose a count with ``OPENBLAS_NUM_THREADS``.

The limit is process-wide (BLAS has one thread pool per process), so the context is
re-entrant and shared by threads: the first entry sets the limit, the last exit restores
the original one. Nested calls (``fit`` inside a parallel task) and tasks running on
threads at once (a Dask cluster with ``processes=False``) therefore never restore a
limit in the wrong order.
"""

from __future__ import annotations

import functools
import os
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_controller: Any = None
_limiter: Any = None
_depth = 0
_lock = threading.Lock()


@contextmanager
def single_blas_thread() -> Iterator[None]:
    global _controller, _limiter, _depth
    if "OPENBLAS_NUM_THREADS" in os.environ or "OMP_NUM_THREADS" in os.environ:
        yield
        return
    with _lock:
        if _controller is None:
            import scipy.optimize  # noqa: F401  (load scipy's BLAS before taking the snapshot)
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController()
        if _depth == 0:
            _limiter = _controller.limit(limits=1, user_api="blas")
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _limiter is not None:
                _limiter.restore_original_limits()
                _limiter = None


def blas_single_threaded(func: F) -> F:
    """Decorator form of :func:`single_blas_thread`."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with single_blas_thread():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
