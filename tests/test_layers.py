"""The package's layers, checked from its source: no import cycle between modules (imports inside
functions count too; imports under ``if TYPE_CHECKING`` do not, they never run), no import of the
package root from inside the package, and the one-way order cli -> scenario -> allocate/fitting ->
laws -> runs of docs/architecture.md."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "planner"

#: a subpackage or module may import only from its own layer or the layers below it
LAYERS = [
    {"errors", "constants", "quantities", "_io", "_records", "_threads", "_parallel", "_warnings"},
    {"selection", "runs"},
    {"laws"},
    {"fitting", "downstream"},
    {"allocate"},
    {"decision"},
    {"report"},
    {"scenario"},
    {"experiments"},
    {"cli", "__main__"},
]
LEVEL = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def _module_name(path: Path) -> tuple[str, str]:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), ".".join(parts[:-1])
    return ".".join(parts), ".".join(parts[:-1])


def _runtime_imports(tree: ast.AST) -> list[ast.stmt]:
    """Import statements that run: every import except those under ``if TYPE_CHECKING:``."""
    out: list[ast.stmt] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", "")) == "TYPE_CHECKING":
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def _graph() -> tuple[dict[str, set[str]], dict[tuple[str, str], str], list[str]]:
    modules = {_module_name(p)[0]: p for p in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    where: dict[tuple[str, str], str] = {}
    root_imports: list[str] = []
    for mod, path in modules.items():
        pkg = _module_name(path)[1]
        for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                names = [f"{target}.{a.name}" for a in node.names]
            else:
                target, names = "", [a.name for a in node.names]
            if target == "planner" and mod != "planner":
                root_imports.append(f"{path.name}:{node.lineno}")
            for name in names or [target]:
                while name and name not in modules:
                    name = name.rpartition(".")[0]
                if name and name != mod and name.startswith("planner.") and not mod.startswith(name + "."):
                    edges[mod].add(name)
                    where[(mod, name)] = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
    return edges, where, root_imports


def test_no_import_of_the_package_root_inside_the_package():
    _, _, root_imports = _graph()
    assert root_imports == [], f"imports of the package root from inside it: {root_imports}"


def test_no_import_cycle_between_modules():
    edges, where, _ = _graph()
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                loop = stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt]
                cycles.append(" -> ".join(f"{a} ({where.get((a, b), '?')})" for a, b in zip(loop, loop[1:])))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    assert cycles == [], "import cycles:\n" + "\n".join(cycles)


def test_layers_point_one_way():
    edges, where, _ = _graph()
    wrong = []
    for mod, targets in edges.items():
        top = mod.split(".")[1] if mod.count(".") else None
        for target in targets:
            other = target.split(".")[1]
            if top in LEVEL and other in LEVEL and LEVEL[other] > LEVEL[top]:
                wrong.append(f"{mod} imports {target} ({where[(mod, target)]}): {top} sits below {other}")
    assert wrong == [], "\n".join(wrong)


def test_every_module_has_a_layer():
    tops = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in PACKAGE.glob("*") if p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists())}
    assert tops - {"__init__"} <= set(LEVEL), f"modules missing from LAYERS: {sorted(tops - {'__init__'} - set(LEVEL))}"
