"""Description files as published by this tool and its peers, read into one shape: class -> texts.

Formats (the ``format`` names users pass):

- ``cupl``: CuPL's JSON, class -> list of full prompt sentences (also what ``visfeed export`` writes).
- ``lines``: text lines ``class: prompt sentence`` (``#`` comments and blank lines ignored).
- ``dclip``: DCLIP's descriptor JSON (Menon & Vondrick; ``descriptors_<dataset>.json``), class -> list of
  short descriptors, scored as ``"{class}, which (is/has) {descriptor}"`` by :func:`dclip_clause`.
- ``ivf``: the IVF reference's ``result/Ours/<dataset>_sota.txt``, a Python list literal of
  ``"class: d1, d2, ..."`` strings, read with :func:`ast.literal_eval` (a literal parser: nothing in the file
  is ever run) and scored like DCLIP's descriptors, as that reference's ``eval.py`` does.

Detection (``auto``) is by explicit rules, never by guessing from the wording: a file whose first
non-blank character is ``[`` is ``ivf`` (the only list format); one starting with ``{`` is JSON, ``dclip``
when its name is ``descriptors_*.json`` (how DCLIP and WaffleCLIP publish theirs), else ``cupl``; anything
else is ``lines``. A DCLIP file under another name needs the format named: ``dclip:FILE`` or ``--format``.
"""

from __future__ import annotations

import ast
import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from visfeed.errors import ConfigError
from visfeed.state.templates import DescriptionFormat, FileFormat, PromptSet, check_format

logger = logging.getLogger(__name__)

#: Formats whose texts are short descriptors joined to the class name, not whole prompt sentences.
DESCRIPTOR_FORMATS = ("dclip", "ivf")
_DCLIP_NAME = re.compile(r"^descriptors_.*\.json$", re.IGNORECASE)


class DescriptionFile(BaseModel):
    """One file's classes (as the file spells them, in file order) and their texts."""

    model_config = ConfigDict(frozen=True)

    path: str = Field(description="The file, for error messages and table rows.")
    format: FileFormat
    entries: dict[str, list[str]] = Field(
        description="Class -> prompt sentences (cupl, lines) or descriptors (dclip, ivf)."
    )

    def prompts(self) -> PromptSet:
        """Full prompt sentences per class, as the format's authors scored them."""
        if self.format not in DESCRIPTOR_FORMATS:
            return {c: list(texts) for c, texts in self.entries.items()}
        out: PromptSet = {}
        for c, descriptors in self.entries.items():
            name = c.replace("_", " ")
            out[c] = [f"{name}, {dclip_clause(d)}" for d in descriptors] or [name]
        return out

    def for_classes(self, classnames: Sequence[str], *, descriptors: bool = False) -> dict[str, list[str]]:
        """Texts keyed by the dataset's class names (matched ignoring case, '_' and extra spaces).

        ``descriptors``: the raw texts (a run's initial descriptions) instead of prompt sentences. Classes of
        the file the dataset lacks are left out with a warning (a published 1000-class file scores a subset);
        a dataset class the file lacks is a usage error naming the file.
        """
        texts = self.entries if descriptors else self.prompts()
        by_key: dict[str, str] = {}
        for c in texts:
            other = by_key.setdefault(class_key(c), c)
            if other != c:
                raise ConfigError(f"description file {self.path} has the class {c!r} twice (also as {other!r})")
        wanted = {class_key(c) for c in classnames}
        extra = [c for k, c in by_key.items() if k not in wanted]
        if extra:
            logger.warning(
                "description file %s (%s): %d class(es) the dataset lacks are left out: %s",
                self.path,
                self.format,
                len(extra),
                extra[:5],
            )
        out = {c: texts[by_key[class_key(c)]] if class_key(c) in by_key else [] for c in classnames}
        missing = [c for c, t in out.items() if not t]
        if missing:
            raise ConfigError(
                f"description file {self.path} ({self.format}) has no texts for classes {missing[:5]} "
                f"({len(missing)} missing)"
            )
        return out


def class_key(name: str) -> str:
    """How class names are matched across files and datasets: case, '_' and runs of spaces ignored."""
    return " ".join(name.replace("_", " ").split()).casefold()


def dclip_clause(descriptor: str) -> str:
    """DCLIP's rule for joining a descriptor to the class name, kept exactly as published.

    Its first test is ``startswith("a")`` (so "antlers" also becomes "which is antlers") and it is
    case-sensitive; reproducing it, quirks included, is what makes published numbers comparable.
    """
    d = descriptor.strip()
    if d.startswith("a") or d.startswith("used"):
        return f"which is {d}"
    if d.startswith(("has", "often", "typically", "may", "can")):
        return f"which {d}"
    return f"which has {d}"


def detect_format(path: Path, text: str) -> FileFormat:
    """The ``auto`` rules of the module docstring."""
    first = text.lstrip()[:1]
    if first == "[":
        return "ivf"
    if first == "{":
        return "dclip" if _DCLIP_NAME.match(path.name) else "cupl"
    return "lines"


def read_description_file(path: Path, fmt: DescriptionFormat = "auto") -> DescriptionFile:
    """Read one description file in the given (or detected) format; malformed files name the file."""
    path = Path(path)
    fmt = check_format(fmt)
    if not path.is_file():
        raise ConfigError(f"description file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"description file {path} cannot be read as UTF-8 text: {exc}") from exc
    chosen: FileFormat = detect_format(path, text) if fmt == "auto" else fmt
    readers = {"cupl": _json_lists, "dclip": _json_lists, "lines": _lines, "ivf": _ivf}
    entries = readers[chosen](path, text)
    if not entries:
        raise ConfigError(f"description file {path} ({chosen}) holds no classes")
    if fmt == "auto" and chosen == "cupl" and _looks_like_descriptors(entries):
        logger.warning(
            "%s is read as CuPL prompts, but its texts look like DCLIP descriptors (no class name, no final "
            "period); pass it as dclip:%s to score them as '{class}, which has {descriptor}'",
            path,
            path,
        )
    return DescriptionFile(path=str(path), format=chosen, entries=entries)


def _malformed(path: Path, fmt: str, expected: str, detail: object = "") -> ConfigError:
    return ConfigError(
        f"description file {path} is not valid {fmt}: expected {expected}" + (f" ({detail})" if detail else "")
    )


def _json_lists(path: Path, text: str) -> dict[str, list[str]]:
    """CuPL and DCLIP: a JSON object of class -> list of strings (blank strings dropped)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _malformed(path, "JSON", "an object of class name -> list of strings", exc) from exc
    if not isinstance(data, dict) or not all(
        isinstance(v, list) and all(isinstance(s, str) for s in v) for v in data.values()
    ):
        raise _malformed(path, "CuPL/DCLIP JSON", "an object mapping each class name to a list of strings")
    return {str(k): [s.strip() for s in v if s.strip()] for k, v in data.items()}


def _lines(path: Path, text: str) -> dict[str, list[str]]:
    entries: dict[str, list[str]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, prompt = line.partition(":")
        if not sep or not name.strip() or not prompt.strip():
            raise ConfigError(f"{path}:{n}: expected 'class name: prompt sentence', got {line!r}")
        entries.setdefault(name.strip(), []).append(prompt.strip())
    return entries


def _ivf(path: Path, text: str) -> dict[str, list[str]]:
    """A Python list literal of ``"class: d1, d2, ..."``; ``ast.literal_eval`` builds literals, never runs code."""
    try:
        data = ast.literal_eval(text.strip())
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
        raise _malformed(path, "IVF", "a Python list literal of 'class: d1, d2, ...' strings", exc) from exc
    if not isinstance(data, list) or not all(isinstance(item, str) for item in data):
        raise _malformed(path, "IVF", "a list of strings, one 'class: d1, d2, ...' per class")
    entries: dict[str, list[str]] = {}
    for item in data:
        name, _, rest = item.partition(":")  # no ':' -> the class name alone, as the reference scores it
        if not name.strip():
            raise _malformed(path, "IVF", "'class: d1, d2, ...' entries", f"entry without a class: {item[:60]!r}")
        if name.strip() in entries:
            raise _malformed(path, "IVF", "one entry per class", f"{name.strip()!r} appears twice")
        entries[name.strip()] = [d.strip() for d in rest.split(", ") if d.strip()]
    return entries


def _looks_like_descriptors(entries: dict[str, list[str]]) -> bool:
    texts = [(c, t) for c, ts in entries.items() for t in ts]
    return bool(texts) and not any(class_key(c) in class_key(t) or t.endswith(".") for c, t in texts)
