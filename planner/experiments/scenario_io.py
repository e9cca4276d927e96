r"""Read the ``[design]`` and ``[progress]`` sections of a scenario file, and run ``planner design``.

The sections are in the scenario schema (``DesignSpec``, ``ProgressSpec``); here they are read from
the parsed file and removed before the rest is validated by :func:`planner.load_scenario` (when the
file has a ``[law]``; a design from zero runs needs none, which the schema would refuse).

``[design]`` keys: ``experiment_budget`` (FLOPs; the CLI's ``--experiment-budget`` overrides it),
``sizes`` (a list of model sizes: a menu; or ``{min = "10M", max = "1B"}``: a range), ``noise``
(sd of a run's log loss), ``truths`` (criterion), ``simulations`` (verification),
``select_simulations`` (truths on which the short list is simulated to pick the ladder), ``seed``,
``spend`` (shares of the budget the search may use), ``context`` (tokens, for shapes).

``[progress]`` keys: ``model_size``, ``tokens`` (general tokens spent), ``checkpoints`` (a run
table path, relative to the scenario, or a list of ``{pretrain_tokens, domain, loss}``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ..allocate.model import Domain
from ..quantities import parse_quantity
from ._model import DesignError

__all__ = ["read_sections", "design_from_scenario", "DESIGN_KEYS", "PROGRESS_KEYS"]

DESIGN_KEYS = {"experiment_budget", "sizes", "noise", "truths", "simulations", "select_simulations", "seed", "spend", "context"}
PROGRESS_KEYS = {"model_size", "tokens", "checkpoints"}


def _q(value: Any, unit: str, where: str) -> float:
    try:
        return parse_quantity(value, unit)
    except ValueError as exc:
        raise DesignError(f"{where}: {exc}") from None


def read_sections(path: str | Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """(the scenario without [design]/[progress], the [design] table, the [progress] table or None)."""
    from .._io import read_text
    from ..scenario.loading import _parse_text  # the scenario reader: size caps, safe YAML, line numbers
    from ..scenario.schema import ScenarioError

    p = Path(path)
    data, _ = _parse_text(read_text(p, "scenario file", ScenarioError), p)
    data = dict(data)
    if not isinstance(data, dict):
        raise DesignError(f"{p}: a scenario is a table of sections")
    design = data.pop("design", {}) or {}
    progress = data.pop("progress", None)
    for name, table, keys in (("design", design, DESIGN_KEYS), ("progress", progress or {}, PROGRESS_KEYS)):
        if not isinstance(table, dict):
            raise DesignError(f"{p}: [{name}] must be a table")
        unknown = set(table) - keys
        if unknown:
            raise DesignError(f"{p}: [{name}]: unknown keys {sorted(unknown)}; known: {sorted(keys)}")
    return data, design, progress


def _domains(data: Mapping[str, Any], where: str) -> list[Domain]:
    out = []
    for i, d in enumerate(data.get("domains") or []):
        if not isinstance(d, dict) or "name" not in d:
            raise DesignError(f"{where}: domains[{i}] needs a name")
        out.append(Domain(d["name"], float(d.get("weight", 1.0)),
                          None if d.get("unique_tokens") is None else _q(d["unique_tokens"], "tokens", f"domains[{i}].unique_tokens"),
                          None if d.get("max_epochs") is None else float(d["max_epochs"])))
    return out


def _budget(data: Mapping[str, Any], where: str) -> float:
    b = data.get("budget") or {}
    value = b.get("plan", b.get("flops"))
    if isinstance(value, list):
        if len(value) != 1:
            raise DesignError(f"{where}: budget.flops is a sweep; set budget.plan to the target budget")
        value = value[0]
    if value is None:
        raise DesignError(f"{where}: the scenario needs [budget] flops (the target budget)")
    return _q(value, "flops", "budget")


def design_from_scenario(path: str | Path, experiment_budget: Any = None, *, simulations: int | None = None, truths: int | None = None,
                         seed: int | None = None, n_jobs: int | None = None) -> tuple[Any, Any]:
    """(Design or None, Replan or None) for a scenario file; the design needs an experiment budget."""
    from ..fitting.law import law as make_law, load_law
    from ..scenario import load_scenario
    from .core import design
    from .replan import replan

    p = Path(path)
    data, dsec, psec = read_sections(p)
    where = str(p)
    if "law" in data:
        load_scenario(data, base_dir=p.parent)  # the rest must be a valid scenario (bad input -> exit 2)
    domains = _domains(data, where)
    budget = _budget(data, where)
    cons_raw = data.get("constraints") or {}
    constraints = {k: _q(cons_raw[k], "params", f"constraints.{k}") for k in ("min_model_size", "max_model_size") if cons_raw.get(k) is not None}
    lawsec = data.get("law") or {}
    runs = str(p.parent / lawsec["runs"]) if lawsec.get("runs") else None
    law_obj = None
    if lawsec.get("file"):
        law_obj = load_law(p.parent / lawsec["file"])
    elif lawsec.get("params"):
        law_obj = make_law(lawsec.get("form") or "split-additive", **lawsec["params"])
    eb = experiment_budget if experiment_budget is not None else dsec.get("experiment_budget")
    result = None
    if eb is not None:
        sizes = dsec.get("sizes")
        if isinstance(sizes, dict):
            sizes = (_q(sizes["min"], "params", "design.sizes.min"), _q(sizes["max"], "params", "design.sizes.max"))
        elif isinstance(sizes, list):
            sizes = [_q(s, "params", "design.sizes") for s in sizes]
        result = design(
            domains, budget, _q(eb, "flops", "experiment budget"), constraints=constraints, runs=runs, law=law_obj if runs is None else None,
            sizes=sizes, noise=dsec.get("noise"), n_truths=int(truths if truths is not None else dsec.get("truths", 16)),
            n_simulations=int(simulations if simulations is not None else dsec.get("simulations", 10)),
            select_simulations=int(dsec.get("select_simulations", 24)),
            spend_options=tuple(dsec.get("spend", (0.25, 0.5, 1.0))), context=int(dsec.get("context", 2048)),
            seed=int(seed if seed is not None else dsec.get("seed", 0)), n_jobs=n_jobs,
        )
    rp = None
    if psec is not None:
        for k in ("model_size", "tokens"):
            if k not in psec:
                raise DesignError(f"{where}: [progress] needs {k}")
        ck = psec.get("checkpoints")
        if isinstance(ck, str):
            from ..runs import load_runs

            ck = load_runs(p.parent / ck)
        prog = {"model_size": _q(psec["model_size"], "params", "progress.model_size"), "tokens": _q(psec["tokens"], "tokens", "progress.tokens"),
                "checkpoints": ck}
        rp = replan(budget, domains, prog, runs=runs, law=law_obj, form=lawsec.get("form") if lawsec.get("form") not in (None, "auto") else None,
                    constraints=constraints, fit_options={"max_starts": int(lawsec.get("max_starts", 32))})
    if result is None and rp is None:
        raise DesignError(f"{where}: give an experiment budget (--experiment-budget or [design] experiment_budget) or a [progress] section")
    return result, rp


def replan_texts(rp: Any) -> dict[str, str]:
    """``replan.json``, ``replan.md`` and the target run's ``config.json``/``config.yaml``, in memory."""
    import json

    from .config import config_texts, plan_config

    texts = {"replan.json": json.dumps(rp.to_dict(), indent=2, default=float) + "\n",
             "replan.md": "# Re-plan of the target run under way\n\n```\n" + rp.summary() + "\n```\n"}
    if rp.after.feasible:
        texts.update(config_texts(plan_config(rp.after, branch_from=rp.after.pretrain_tokens)))
    return texts


def write_replan(rp: Any, out_dir: str | Path) -> list[Path]:
    """Write :func:`replan_texts` into ``out_dir`` as one all-or-nothing set; returns the paths."""
    from ..report.writing import write_file_set

    return write_file_set(out_dir, replan_texts(rp))
