"""The package's layers point one way: cli -> agents/evals -> tools -> state (errors, fileio below all).

Every module is parsed (not imported), so an import inside a function counts as much as one at the top.
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


def layer_of(module: str) -> str:
    """``visfeed.tools.llm.client`` -> ``tools``; the cli modules (``cli.py``, ``cli_*.py``, ``cli/``) -> ``cli``."""
    top = module.split(".")[1] if "." in module else ""
    return "cli" if top == "cli" or top.startswith("cli_") else top


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = ["visfeed", *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


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
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
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
