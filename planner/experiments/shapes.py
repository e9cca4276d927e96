r"""Transformer shapes for a planned parameter count: ``shape(N)``.

The block is the standard pre-norm GPT block without biases or gating:

* attention: four d_model x d_model projections (Q, K, V, output): 4 d^2 parameters;
* feed-forward: d_model -> d_ff -> d_model: 2 d d_ff parameters;

so the non-embedding parameter count of L layers is exactly

    N(L, d, d_ff) = L (4 d^2 + 2 d d_ff)      (= 12 L d^2 for the usual d_ff = 4 d),

which is the count Kaplan et al. (2020, Table 1) use for N. Norm gains (4 d per layer) and
embeddings are left out, as there.

The rule (stated once, tested):

* d_model is a multiple of 64 (of 128 from 2048 on; multiples of 128 preferred from 512); head dimension 64 below d_model = 2048, 128
  from there (GPT-3 uses 64 up to 2.7B and 128 above; LLaMA 128 throughout);
* d_ff is a multiple of 64 (of 32 below d_model = 512, of 128 from d_model = 2048) in [2.5 d, 6 d], as close to 4 d as the
  count allows (it is the fine knob that brings N within 2 %);
* the aspect ratio d_model / n_layers lies in [16, 256] and is as close as the grid allows to a
  target that grows from 64 at 1e8 parameters to 128 at 1e10 and beyond (log-linear between).
  Kaplan et al. (2020, Fig. 5) find the loss within a few percent of optimal for aspect ratios
  from about 20 to 200 at fixed N; published families sit inside it: GPT-3 (Brown et al. 2020,
  Table 2.1) 43-128 (125M: 768/12 = 64, 1.3B: 2048/24 = 85, 6.7B: 4096/32 = 128, 175B: 12288/96
  = 128), Pythia (Biderman et al. 2023) 43-142, LLaMA (Touvron et al. 2023) 102-128. Below about
  3e6 parameters only shallow, narrow blocks reach N, and the ratio may sit near the lower end.

Among the candidates whose count is within 2 % of N, the chosen one minimises
|log(r / r*)| + |log(d_ff / 4d)| + 5 |log(count / N)|.

FLOPs per training token follow the attention-aware model of
:class:`planner.allocate.model.AttentionFlops`: 6 N + 6 L n_ctx d.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..allocate.model import AttentionFlops
from ..errors import PlannerError

__all__ = ["Shape", "ShapeError", "shape", "SHAPE_TOLERANCE", "ASPECT_RANGE", "target_aspect_ratio", "block_params"]

#: largest relative difference allowed between the shape's parameter count and N
SHAPE_TOLERANCE = 0.02
#: d_model / n_layers allowed (Kaplan et al. 2020: flat from about 20 to 200)
ASPECT_RANGE = (16.0, 256.0)
_FF_RANGE = (2.5, 6.0)
_MIN_N, _MAX_N = 5e5, 1e13


class ShapeError(PlannerError):
    """No shape fits the requested parameter count (outside the supported range)."""


def block_params(n_layers: int, d_model: int, d_ff: int) -> int:
    """Exact non-embedding parameter count L (4 d^2 + 2 d d_ff) of the block described above."""
    return int(n_layers) * (4 * int(d_model) ** 2 + 2 * int(d_model) * int(d_ff))


def target_aspect_ratio(model_size: float) -> float:
    """r*(N): 64 up to 1e8 parameters, 128 from 1e10, log-linear in N between."""
    t = min(max((math.log10(model_size) - 8.0) / 2.0, 0.0), 1.0)
    return 64.0 * 2.0 ** t


@dataclass(frozen=True)
class Shape:
    """A transformer shape for ``target`` non-embedding parameters.

    params: exact non-embedding count L (4 d^2 + 2 d d_ff); rel_error: params / target - 1;
    aspect_ratio: d_model / n_layers; flops_per_token: training FLOPs per token
    6 params + 6 n_layers context d_model (attention-aware, Kaplan et al. 2020);
    embedding_params: vocab_size x d_model (0 without a vocabulary).
    """

    target: float
    n_layers: int
    d_model: int
    n_heads: int
    head_dim: int
    d_ff: int
    context: int
    vocab_size: int | None = None

    @property
    def params(self) -> int:
        return block_params(self.n_layers, self.d_model, self.d_ff)

    @property
    def rel_error(self) -> float:
        return self.params / self.target - 1.0

    @property
    def aspect_ratio(self) -> float:
        return self.d_model / self.n_layers

    @property
    def embedding_params(self) -> int:
        return 0 if self.vocab_size is None else int(self.vocab_size) * self.d_model

    @property
    def flop_model(self) -> AttentionFlops:
        return AttentionFlops(self.n_layers, self.d_model, self.context)

    @property
    def flops_per_token(self) -> float:
        return float(self.flop_model.per_token(self.params))

    def to_dict(self) -> dict[str, Any]:
        return {
            "target_params": float(self.target), "params": self.params, "rel_error": self.rel_error,
            "n_layers": self.n_layers, "d_model": self.d_model, "n_heads": self.n_heads, "head_dim": self.head_dim,
            "d_ff": self.d_ff, "context": self.context, "vocab_size": self.vocab_size,
            "embedding_params": self.embedding_params, "aspect_ratio": self.aspect_ratio,
            "flops_per_token": self.flops_per_token,
        }

    def describe(self) -> str:
        return (f"{self.n_layers} layers x d_model {self.d_model} ({self.n_heads} heads of {self.head_dim}), d_ff {self.d_ff}: "
                f"{self.params:.4g} params ({100 * self.rel_error:+.2f} %), aspect {self.aspect_ratio:.0f}")


def _width_step(d_model: int) -> int:
    return 128 if d_model >= 2048 else 64


def _ff_step(d_model: int) -> int:
    """d_ff granularity: 32 below d_model = 512 (with multiples of 64 only, some counts near 1.2e6 had no
    block within 2 %), else the width step."""
    return 32 if d_model < 512 else _width_step(d_model)


def shape(model_size: float, *, context: int = 2048, vocab_size: int | None = None) -> Shape:
    """A shape whose non-embedding count is within 2 % of ``model_size`` (see the module rule).

    ``context`` (tokens) enters only the FLOPs per token; ``vocab_size`` only the embedding count.
    Raises :class:`ShapeError` outside 5e5 .. 1e13 parameters.
    """
    try:
        n = float(model_size)
    except (TypeError, ValueError):
        raise ShapeError(f"model size must be a number of parameters, got {model_size!r}") from None
    if not math.isfinite(n) or not _MIN_N <= n <= _MAX_N:
        raise ShapeError(f"shape: model size {model_size!r} outside the supported {_MIN_N:.0e} .. {_MAX_N:.0e} parameters")
    if int(context) <= 0:
        raise ShapeError(f"shape: context must be a positive number of tokens, got {context!r}")
    r_target = target_aspect_ratio(n)
    # d from the aspect-ratio range: N ~ 12 d^3 / r  ->  d = (r N / 12)^(1/3)
    d_lo = (ASPECT_RANGE[0] * n / 12.0 / 2.0) ** (1 / 3)
    d_hi = (ASPECT_RANGE[1] * n / 12.0 * 2.0) ** (1 / 3)
    best: tuple[float, tuple[int, int, int]] | None = None
    d = 64
    while d <= d_hi + 128:
        step = _width_step(d)
        if d % step or d < d_lo - 128:
            d += 64
            continue
        # layer counts keeping the aspect ratio in range
        l_min = max(1, math.ceil(d / ASPECT_RANGE[1]))
        l_max = math.floor(d / ASPECT_RANGE[0])
        l_guess = n / (12.0 * d * d)
        cand_l = {l for l in (math.floor(l_guess), math.ceil(l_guess), math.floor(l_guess) - 1, math.ceil(l_guess) + 1) if l_min <= l <= l_max}
        for n_layers in cand_l:
            ff_exact = (n / n_layers - 4.0 * d * d) / (2.0 * d)
            ff_step = _ff_step(d)
            for d_ff in {int(math.floor(ff_exact / ff_step) * ff_step), int(math.ceil(ff_exact / ff_step) * ff_step)}:
                if d_ff <= 0 or not _FF_RANGE[0] * d <= d_ff <= _FF_RANGE[1] * d:
                    continue
                count = block_params(n_layers, d, d_ff)
                err = abs(math.log(count / n))
                if err > math.log1p(SHAPE_TOLERANCE) * 0.999:
                    continue
                score = abs(math.log((d / n_layers) / r_target)) + abs(math.log(d_ff / (4.0 * d))) + 5.0 * err
                score += 0.05 * (d >= 512 and d % 128 != 0)  # prefer widths in multiples of 128 (even head counts)
                if best is None or score < best[0]:
                    best = (score, (n_layers, d, d_ff))
        d += 64
    if best is None:  # pragma: no cover - the grid covers the supported range (tested)
        raise ShapeError(f"shape: no block within {100 * SHAPE_TOLERANCE:.0f} % of {n:.4g} parameters")
    n_layers, d, d_ff = best[1]
    head_dim = 128 if d >= 2048 else 64
    return Shape(target=n, n_layers=n_layers, d_model=d, n_heads=d // head_dim, head_dim=head_dim, d_ff=d_ff,
                 context=int(context), vocab_size=None if vocab_size is None else int(vocab_size))


def shapes_for(model_sizes: Any, **kw: Any) -> list[Shape]:
    """:func:`shape` for every size of an array-like."""
    return [shape(float(x), **kw) for x in np.atleast_1d(np.asarray(model_sizes, dtype=float))]
