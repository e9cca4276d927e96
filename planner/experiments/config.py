r"""Training configs a training script can read: ``config.json`` / ``config.yaml``.

Schema ``planner.training-config/1``: a list of ``runs``, each with

* ``name``, ``kind`` ("pretrain" or "branch"), ``parent`` (the run a branch starts from);
* ``shape``: :func:`planner.shape` of the run's N (layers, d_model, heads, head_dim, d_ff, context)
  and its exact parameter count;
* ``domain``: "general" for pretraining, the specialization domain of a branch;
* ``tokens``: the segment's own tokens (D for pretraining, D' for a branch), ``start_tokens``
  (0, or the parent checkpoint a branch starts from);
* ``checkpoints``: token counts (counted within the segment) at which to save and evaluate, on every
  target domain for pretraining and on its own domain for a branch;
* ``flops``: the segment's training FLOPs;

and ``schedule``: the learning-rate assumption under which the checkpoints are usable.

:func:`design_config` exports a :class:`~planner.experiments.Design`; :func:`plan_config` an
:class:`~planner.Allocation` (the target run: pretrain D, then one branch per specialized domain
from the end of pretraining; checkpoints at 1/8 .. 1 of each phase).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ..allocate.model import Allocation, SixN
from .shapes import shape

__all__ = ["CONFIG_SCHEMA", "design_config", "plan_config", "write_config", "to_yaml"]

CONFIG_SCHEMA = "planner.training-config/1"
_FRACTIONS = (0.125, 0.25, 0.5, 1.0)


def _shape_dict(n: float, context: int) -> dict[str, Any]:
    s = shape(n, context=context)
    return {"n_layers": s.n_layers, "d_model": s.d_model, "n_heads": s.n_heads, "head_dim": s.head_dim, "d_ff": s.d_ff,
            "context": s.context, "params": s.params, "target_params": float(n)}


def design_config(design: Any, context: int = 2048) -> dict[str, Any]:
    """The designed ladder as a training config (pretraining runs, then branches)."""
    lad = design.ladder
    runs = []
    fm = design.flop_model
    for r in lad.new_pretrain:
        runs.append({"name": r.name, "kind": "pretrain", "parent": None, "domain": "general", "shape": _shape_dict(r.model_size, context),
                     "start_tokens": 0.0, "tokens": r.tokens, "checkpoints": list(r.checkpoints), "eval_domains": list(design.domains) or ["general"],
                     "flops": float(fm.per_token(r.model_size)) * r.tokens})
    for b in lad.new_branches:
        runs.append({"name": b.name, "kind": "branch", "parent": b.parent, "domain": b.domain, "shape": _shape_dict(b.model_size, context),
                     "start_tokens": b.from_tokens, "tokens": b.spec_tokens, "checkpoints": list(b.checkpoints), "eval_domains": [b.domain],
                     "flops": float(fm.per_token(b.model_size)) * b.spec_tokens})
    return {"schema": CONFIG_SCHEMA, "source": "planner design", "schedule": lad.schedule,
            "schedule_note": "constant learning rate after warmup (or WSD with a short decay): every checkpoint is a usable measurement",
            "runs": runs}


def plan_config(plan: Allocation, context: int = 2048, branch_from: float | None = None) -> dict[str, Any]:
    """The target run of a plan: pretraining to D, then a branch per specialized domain."""
    fm = SixN()
    n = plan.model_size
    d = plan.pretrain_tokens
    runs = [{"name": "pretrain", "kind": "pretrain", "parent": None, "domain": "general", "shape": _shape_dict(n, context),
             "start_tokens": 0.0, "tokens": d, "checkpoints": [d * f for f in _FRACTIONS],
             "eval_domains": [p.name for p in plan.domains] or ["general"], "flops": float(fm.per_token(n)) * d}]
    for p in plan.domains:
        if p.spec_tokens > 0 and p.specialize:
            runs.append({"name": f"branch-{p.name}", "kind": "branch", "parent": "pretrain", "domain": p.name, "shape": _shape_dict(n, context),
                         "start_tokens": d if branch_from is None else branch_from, "tokens": p.spec_tokens,
                         "checkpoints": [p.spec_tokens * f for f in _FRACTIONS], "eval_domains": [p.name],
                         "flops": float(fm.per_token(n)) * p.spec_tokens})
    return {"schema": CONFIG_SCHEMA, "source": "planner plan", "budget": plan.budget, "schedule": "any", "runs": runs}


def _yaml_scalar(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(float(v)) if isinstance(v, float) else str(v)
    s = str(v)
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_yaml(obj: Any, indent: int = 0) -> str:
    """A small YAML writer (mappings, lists, scalars; every string quoted) so no YAML library is needed."""
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            if isinstance(v, (Mapping, list)) and v:
                lines.append(f"{pad}{k}:")
                lines.append(to_yaml(v, indent + 1))
            else:
                lines.append(f"{pad}{k}: {_yaml_scalar(v) if not isinstance(v, (Mapping, list)) else ('{}' if isinstance(v, Mapping) else '[]')}")
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, Mapping) and v:
                inner = to_yaml(v, indent + 1).split("\n")
                lines.append(f"{pad}- {inner[0].lstrip()}")
                lines.extend(inner[1:])
            elif isinstance(v, list):
                lines.append(f"{pad}- [{', '.join(_yaml_scalar(x) for x in v)}]")
            else:
                lines.append(f"{pad}- {_yaml_scalar(v)}")
    else:
        lines.append(pad + _yaml_scalar(obj))
    return "\n".join(lines)


def write_config(config: Mapping[str, Any], out_dir: str | Path) -> list[Path]:
    """``config.json`` and ``config.yaml`` in ``out_dir``."""
    import json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pj, py = out / "config.json", out / "config.yaml"
    pj.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    py.write_text(to_yaml(config) + "\n", encoding="utf-8")
    return [pj, py]
