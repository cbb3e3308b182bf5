"""The package's layers point one way: cli -> agents/evals -> tools -> state (errors, fileio below all).

Every module is parsed (not imported), so an import inside a function (or under ``TYPE_CHECKING``)
counts as much as one at the top. Besides the layers: no two modules import each other, however long the
way round, and inside tools/ the packages follow the method's stages: the LLM, the datasets, the world
and the embedding sit below scoring, scoring below feedback, feedback below the search and the two
other lines (the image side, the concept trees).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "visfeed"

#: Layer -> the visfeed layers it must not import. ``state`` may import only errors, fileio and itself.
FORBIDDEN = {
    "tools": {"agents", "evals", "cli"},
    "evals": {"agents", "cli"},
    "agents": {"cli"},
}
STATE_ALLOWED = {"errors", "fileio", "state"}

#: The method's stages inside tools/, in order: a package never imports one of a later stage.
TOOLS_STAGES: list[set[str]] = [
    {"llm", "datasets", "world", "embedding"},
    {"scoring"},
    {"feedback"},
    {"search", "image_side", "concepts"},
]


def later_stages(part: str) -> set[str]:
    """The tools/ packages that ``part`` must not import (those of every later stage)."""
    for i, stage in enumerate(TOOLS_STAGES):
        if part in stage:
            return set().union(*TOOLS_STAGES[i + 1 :])
    return set()


def layer_of(module: str) -> str:
    """``visfeed.tools.llm.client`` -> ``tools``; the cli modules (``cli.py``, ``cli_*.py``, ``cli/``) -> ``cli``."""
    top = module.split(".")[1] if "." in module else ""
    return "cli" if top == "cli" or top.startswith("cli_") else top


def tools_part(module: str) -> str | None:
    """``visfeed.tools.llm.client`` -> ``llm``; ``visfeed.tools`` and modules outside tools/ -> None."""
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "tools" else None


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = ["visfeed", *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def from_target(node: ast.ImportFrom, package: list[str]) -> str:
    """The module a ``from ... import`` reads, its dots resolved against the importing file's package."""
    if not node.level:
        return node.module or ""
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def visfeed_imports(path: Path, root: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, module) of every ``import visfeed.x`` / ``from visfeed.x import`` / relative import in a file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "visfeed"]
        elif isinstance(node, ast.ImportFrom):
            target = from_target(node, package)
            if target == "visfeed":  # from visfeed import tools, ...
                found += [(node.lineno, f"visfeed.{a.name}") for a in node.names]
            elif target.startswith("visfeed."):
                found.append((node.lineno, target))
    return found


def violations(root: Path = PACKAGE) -> list[str]:
    """One line per import that points up a layer."""
    out = []
    for path in sorted(root.rglob("*.py")):
        layer = layer_of(module_name(path, root))
        for line, target in visfeed_imports(path, root):
            to = layer_of(target)
            if (layer == "state" and to not in STATE_ALLOWED) or to in FORBIDDEN.get(layer, set()):
                out.append(f"{path.relative_to(root.parent)}:{line}: {layer} imports {target} ({to})")
    return out


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the modules of the package it imports.

    ``from pkg import name`` points at the submodule ``pkg.name`` when there is one (else at ``pkg``),
    because that is what the statement loads. Importing ``a.b.c`` also runs the ``__init__`` of ``a`` and
    ``a.b``: those are edges too, except a package the importing module sits in (its ``__init__`` has
    already begun, or every ``__init__`` that re-exports its submodules would be a circle).
    """
    modules = {module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                graph[module] |= {a.name for a in node.names if a.name in modules}
            elif isinstance(node, ast.ImportFrom):
                target = from_target(node, package)
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    graph[module].add(sub if sub in modules else target)
        graph[module] &= modules.keys()
        graph[module] |= {p for target in graph[module] for p in _packages_run_by(target, module, modules)}
        graph[module].discard(module)
    return graph


def _packages_run_by(target: str, module: str, modules: dict[str, Path]) -> set[str]:
    """The packages whose ``__init__`` importing ``target`` runs, but not those ``module`` sits in."""
    parts = target.split(".")
    parents = {".".join(parts[:i]) for i in range(1, len(parts))}
    return {p for p in parents if p in modules and not module.startswith(p + ".")}


def import_circles(root: Path = PACKAGE) -> list[list[str]]:
    """The package's import circles: each strongly connected group of two or more modules, sorted."""
    graph = import_graph(root)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(module: str) -> None:  # Tarjan's algorithm; the package is small enough for recursion
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                circles.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(circles)


def tools_order_violations(root: Path = PACKAGE) -> list[str]:
    """One line per import in tools/ from a package into one of a later stage (:data:`TOOLS_STAGES`)."""
    out = []
    for path in sorted(root.rglob("*.py")):
        later = later_stages(tools_part(module_name(path, root)) or "")
        for line, target in visfeed_imports(path, root):
            if tools_part(target) in later:
                out.append(f"{path.relative_to(root.parent)}:{line}: imports {target}")
    return out


def test_no_import_points_up_a_layer() -> None:
    assert violations() == []


def test_the_walk_sees_every_layer() -> None:
    layers = {layer_of(module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert {"state", "tools", "agents", "evals", "cli", "errors", "fileio"} <= layers


def test_a_violating_import_is_caught(tmp_path: Path) -> None:
    """Imports at the top, inside functions, relative and ``from visfeed import x`` are all seen."""
    pkg = tmp_path / "visfeed"
    (pkg / "state").mkdir(parents=True)
    (pkg / "tools" / "llm").mkdir(parents=True)
    (pkg / "state" / "a.py").write_text("import visfeed.tools.session\n")
    (pkg / "state" / "b.py").write_text("def f():\n    from visfeed.agents import run\n")
    (pkg / "tools" / "llm" / "c.py").write_text("from ...evals import inspect\nfrom visfeed import cli\n")
    (pkg / "tools" / "ok.py").write_text("from visfeed.state.config import RunConfig\nfrom . import llm\n")
    found = violations(pkg)
    assert [v.split(": ", 1)[1] for v in found] == [
        "state imports visfeed.tools.session (tools)",
        "state imports visfeed.agents (agents)",
        "tools imports visfeed.evals (evals)",
        "tools imports visfeed.cli (cli)",
    ]


def test_no_module_imports_itself_round_a_circle() -> None:
    assert import_circles() == []


def test_tools_packages_follow_the_stages() -> None:
    assert tools_order_violations() == []
    packages = {p.name for p in (PACKAGE / "tools").iterdir() if (p / "__init__.py").exists()}
    assert packages == set().union(*TOOLS_STAGES)  # every package has its stage, and the names still exist
    loose = {p.name for p in (PACKAGE / "tools").glob("*.py")}
    assert loose == {"__init__.py", "doctor.py"}  # the one check of the whole stack sits above the stages


def test_a_circle_and_an_order_violation_are_caught(tmp_path: Path) -> None:
    """A circle closed inside a function or under TYPE_CHECKING is found; ``from pkg import sub`` is no circle."""
    pkg = tmp_path / "visfeed"
    (pkg / "tools" / "llm").mkdir(parents=True)
    (pkg / "tools" / "datasets").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "tools" / "__init__.py").write_text("")
    (pkg / "tools" / "llm" / "__init__.py").write_text("from visfeed.tools.llm.client import Client\n")
    (pkg / "tools" / "llm" / "client.py").write_text("from visfeed.tools.llm import vision\n")
    (pkg / "tools" / "llm" / "vision.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .client import Client\n"
    )
    (pkg / "tools" / "datasets" / "__init__.py").write_text("from visfeed.tools.datasets.registry import load\n")
    (pkg / "tools" / "datasets" / "registry.py").write_text(
        "from visfeed.tools.datasets import folder\ndef load():\n    from visfeed.tools.scoring.session import S\n"
    )
    (pkg / "tools" / "datasets" / "folder.py").write_text("")
    (pkg / "tools" / "scoring").mkdir()
    (pkg / "tools" / "scoring" / "session.py").write_text("def f():\n    from visfeed.tools.scoring import measures\n")
    (pkg / "tools" / "scoring" / "measures.py").write_text(
        "from visfeed.tools.scoring.session import f\nfrom visfeed.tools.search import items\n"
    )
    assert import_circles(pkg) == [
        ["visfeed.tools.llm.client", "visfeed.tools.llm.vision"],
        ["visfeed.tools.scoring.measures", "visfeed.tools.scoring.session"],
    ]
    # a module importing a sibling package's module runs that package's __init__, which imports it back
    (pkg / "tools" / "world").mkdir()
    (pkg / "tools" / "world" / "__init__.py").write_text("")
    (pkg / "tools" / "world" / "splits.py").write_text("from visfeed.tools.datasets.folder import x\n")
    (pkg / "tools" / "datasets" / "__init__.py").write_text(
        "from visfeed.tools.datasets.registry import load\nfrom visfeed.tools.world.splits import W\n"
    )
    assert ["visfeed.tools.datasets", "visfeed.tools.world.splits"] in import_circles(pkg)
    assert [v.split(": ", 1)[1] for v in tools_order_violations(pkg)] == [
        "imports visfeed.tools.scoring.session",
        "imports visfeed.tools.search",
    ]
