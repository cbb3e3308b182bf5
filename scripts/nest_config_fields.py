"""Rewrite ``cfg.<flat field>`` into ``cfg.<section>.<field>`` where mypy says RunConfig lacks the attribute.

Why mypy and not a regex: names like ``device``, ``seed`` or ``backbone`` also live on other models
(TrainConfig, a sweep cell, a dataset entry); mypy's error points at exactly the RunConfig accesses. Run it
after merging a branch that still reads the flat fields (it repeats until mypy reports none):

    python scripts/nest_config_fields.py                 # src/visfeed (the project's mypy settings)
    python scripts/nest_config_fields.py tests/x.py ...  # also these files, one mypy call each
    python scripts/nest_config_fields.py --calls tests/x.py ...  # RunConfig(k_shot=1) -> RunConfig(data={...})

``--calls`` rewrites the flat keyword arguments of calls named RunConfig, base_config or with_updates into
one mapping per section (the call is re-emitted on one line: run ``ruff format`` after it).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from visfeed.state.config import LEGACY_KEYS

ERROR = re.compile(r'^(?P<path>[^:]+):(?P<line>\d+):(?P<col>\d+): error: "RunConfig" has no attribute "(?P<name>\w+)"')
MYPY = [sys.executable, "-m", "mypy", "--show-column-numbers", "--no-error-summary"]


def errors(extra: list[str]) -> list[tuple[str, int, int, str]]:
    """(path, line, column, old field) of every flat-field access mypy finds."""
    outputs = [subprocess.run(MYPY, capture_output=True, text=True).stdout]
    env = {**os.environ, "MYPYPATH": "src"}
    for path in extra:
        cmd = [*MYPY, "--check-untyped-defs", "--ignore-missing-imports", "--follow-imports=silent", path]
        outputs.append(subprocess.run(cmd, capture_output=True, text=True, env=env).stdout)
    found = []
    for line in "\n".join(outputs).splitlines():
        m = ERROR.match(line)
        if m and m["name"] in LEGACY_KEYS:
            found.append((m["path"], int(m["line"]), int(m["col"]), m["name"]))
    return found


def rewrite(found: list[tuple[str, int, int, str]]) -> int:
    """Replace each access's first ``.<old>`` at or after its column; returns how many were rewritten."""
    done = 0
    for path in sorted({f[0] for f in found}):
        lines = Path(path).read_text(encoding="utf-8").split("\n")
        for _, lineno, col, name in sorted((f for f in found if f[0] == path), key=lambda f: (-f[1], -f[2])):
            text = lines[lineno - 1]
            m = re.compile(rf"\.{name}\b").search(text, col - 1)
            if m is None:
                print(f"{path}:{lineno}: .{name} not found after column {col}; edit by hand", file=sys.stderr)
                continue
            lines[lineno - 1] = text[: m.start()] + "." + LEGACY_KEYS[name] + text[m.end() :]
            done += 1
        Path(path).write_text("\n".join(lines), encoding="utf-8")
    return done


CALLS = {"RunConfig", "base_config", "with_updates"}


def rewrite_calls(path: Path) -> int:
    """Group a call's flat keyword arguments by section: ``f(k_shot=1, seed=0)`` -> ``f(seed=0, data={"k_shot": 1})``."""
    src = path.read_text(encoding="utf-8")
    starts = [0]
    for line in src.split("\n"):
        starts.append(starts[-1] + len(line) + 1)

    def span(node: ast.expr) -> tuple[int, int]:  # ast columns count UTF-8 bytes; these files are ASCII
        return starts[node.lineno - 1] + node.col_offset, starts[(node.end_lineno or node.lineno) - 1] + (
            node.end_col_offset or 0
        )

    def text(node: ast.expr) -> str:
        a, b = span(node)
        return src[a:b]

    edits = []
    for node in ast.walk(ast.parse(src)):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
        if name not in CALLS or not any(k.arg in LEGACY_KEYS for k in node.keywords):
            continue
        args: list[str | tuple[str]] = [text(a) for a in node.args]
        sections: dict[str, list[str]] = {}
        for k in node.keywords:
            if k.arg in LEGACY_KEYS and "." in LEGACY_KEYS[k.arg]:
                head, rest = LEGACY_KEYS[k.arg].split(".", 1)
                if head not in sections:
                    sections[head] = []
                    args.append((head,))
                sections[head].append(f'"{rest}": {text(k.value)}')
            else:
                args.append(f"**{text(k.value)}" if k.arg is None else f"{k.arg}={text(k.value)}")
        shown = [a if isinstance(a, str) else f"{a[0]}={{{', '.join(sections[a[0]])}}}" for a in args]
        edits.append((*span(node), f"{text(node.func)}({', '.join(shown)})"))
    for start, end, new in sorted(edits, reverse=True):
        src = src[:start] + new + src[end:]
    if edits:
        path.write_text(src, encoding="utf-8")
    return len(edits)


def main() -> None:
    """Rewrite until mypy finds no flat access (or, with ``--calls``, rewrite the calls of the given files)."""
    if sys.argv[1:2] == ["--calls"]:
        for name in sys.argv[2:]:
            print(f"{name}: {rewrite_calls(Path(name))} calls")
        return
    extra = sys.argv[1:]
    while found := errors(extra):
        if not rewrite(found):
            break
    left = errors(extra)
    print(f"flat RunConfig accesses left: {len(left)}")
    for path, line, _, name in left:
        print(f"  {path}:{line}: .{name}")
    # backbone and image_side were strings and are sections now: mypy flags cfg.backbone only where a
    # str is required (not in a comparison or an f-string), so every whole-section read is listed
    whole = re.compile(r"\b(cfg|config)\.(backbone|image_side)\b(?!\.)")
    for path in sorted({*Path("src").rglob("*.py"), *map(Path, extra)}):
        for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if whole.search(text):
                print(f"  check by hand (a section, formerly a string): {path}:{n}: {text.strip()}")


if __name__ == "__main__":
    main()
