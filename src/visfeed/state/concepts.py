"""The concept tree (parts -> attributes -> values per class) and the settings of the graph that builds it.

Why a tree file of its own: the LLM writes it, but a person must be able to read it, fix a wrong value by
hand and fit the classifiers again, so the tree is a plain JSON document validated on load, with errors that
name the part, attribute, value or class at fault. Values are stored once per (part, attribute, value) with
the list of classes that have it: a clue shared by several classes is one feature, not one per class (the
Hi-CoDe code keeps one copy per class, which duplicates features and splits their importance).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from visfeed.errors import ConfigError
from visfeed.fileio import write_json_atomic

PART_SEPARATOR = "/"
DEFAULT_CLUE_TEMPLATE = "the {attribute} of the {part} is {value}"
_ARTICLES = re.compile(r"^(?:a|an|the)\s+", re.IGNORECASE)
_SPACES = re.compile(r"\s+")


def normalize_value(text: str) -> str:
    """The canonical form of a value, part or attribute: lower case, one space, no article, no end period.

    "A Bright Yellow." and "bright yellow" are one value, so they become one clue.
    """
    t = _SPACES.sub(" ", str(text)).strip().strip("\"'").strip().rstrip(".").strip().casefold()
    return _ARTICLES.sub("", t).strip()


class ConceptPart(BaseModel):
    """A visual part ("skin"), its attributes ("color", "texture") and its sub-parts."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Part name as it reads in a clue sentence ('skin', 'stem').")
    attributes: list[str] = Field(default_factory=list, description="Attributes asked per class (leaf parts).")
    parts: list[ConceptPart] = Field(default_factory=list, description="Sub-parts (empty for a leaf part).")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        n = normalize_value(v)
        if not n:
            raise ValueError("a part has an empty name")
        if PART_SEPARATOR in n:
            raise ValueError(f"part name {v!r} contains {PART_SEPARATOR!r}, which separates parts in paths")
        return n

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, v: list[str]) -> list[str]:
        out = [normalize_value(a) for a in v]
        if any(not a for a in out):
            raise ValueError("an attribute name is empty")
        dup = next((a for i, a in enumerate(out) if a in out[:i]), None)
        if dup is not None:
            raise ValueError(f"attribute {dup!r} is listed twice")
        return out

    def leaves(self, prefix: str = "") -> list[tuple[str, ConceptPart]]:
        """(path, part) of every leaf part under this one ('top/leaf'), depth first."""
        path = f"{prefix}{PART_SEPARATOR}{self.name}" if prefix else self.name
        if not self.parts:
            return [(path, self)]
        return [leaf for p in self.parts for leaf in p.leaves(path)]


class ConceptValue(BaseModel):
    """One value of one attribute of one leaf part, and the classes that have it: one clue."""

    model_config = ConfigDict(extra="forbid")

    part: str = Field(description="Path of a leaf part, e.g. 'skin' or 'top/leaf'.")
    attribute: str
    value: str
    classes: list[str] = Field(description="Classes whose (part, attribute) has this value.")

    @field_validator("attribute", "value")
    @classmethod
    def _text(cls, v: str) -> str:
        n = normalize_value(v)
        if not n:
            raise ValueError("is empty")
        return n


class Clue(BaseModel):
    """A leaf of the tree as a feature: the sentence the VLM scores, and where it sits in the tree."""

    model_config = ConfigDict(frozen=True)

    text: str
    part: str
    attribute: str
    value: str
    classes: tuple[str, ...]


Origin = Literal["llm", "images", "both", "llm_overruled"]


class ValueSource(BaseModel):
    """Where one (class, part, attribute) value came from and how well the class's images support it.

    ``origin``: ``llm`` (taken unchecked), ``images`` (the LLM gave no usable value), ``both`` (the images
    chose the LLM's value) or ``llm_overruled`` (the images chose another value than the LLM's).
    """

    model_config = ConfigDict(extra="forbid")

    part: str
    attribute: str
    class_name: str
    value: str
    origin: Origin
    support: float | None = Field(default=None, description="Image support of the kept value (z units).")
    llm_value: str | None = Field(default=None, description="The LLM's usable answer, if any.")
    llm_support: float | None = Field(default=None, description="Image support of the LLM's answer.")

    def note(self) -> str:
        """A disagreement as a person reads it ("LLM: brown; images: yellow"); empty when there is none."""
        return f"LLM: {self.llm_value}; images: {self.value}" if self.origin == "llm_overruled" else ""


class ConceptTree(BaseModel):
    """The whole tree: structure shared by all classes, values per class (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    domain: str = Field(description="What the classes are ('fruit and vegetables'); used in the prompts.")
    classnames: list[str] = Field(min_length=1, description="The dataset's classes, in label order.")
    template: str = Field(default=DEFAULT_CLUE_TEMPLATE, description="Clue sentence with {part} {attribute} {value}.")
    parts: list[ConceptPart] = Field(min_length=1)
    values: list[ConceptValue] = Field(default_factory=list)
    sources: list[ValueSource] = Field(
        default_factory=list, description="Per (class, part, attribute): where its value came from (grounded builds)."
    )

    @field_validator("template")
    @classmethod
    def _template(cls, v: str) -> str:
        try:
            v.format(part="p", attribute="a", value="v")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"template {v!r} may only use {{part}}, {{attribute}} and {{value}} ({exc})") from None
        if "{value}" not in v:
            raise ValueError(f"template {v!r} lacks {{value}}: every clue would read the same")
        return v

    @model_validator(mode="after")
    def _check(self) -> ConceptTree:
        leaves = dict(self.leaf_parts())
        known = {c.casefold(): c for c in self.classnames}
        seen: dict[tuple[str, str, str], int] = {}
        for i, v in enumerate(self.values):
            if v.part not in leaves:
                raise ValueError(
                    f"values[{i}] names part {v.part!r}, which is not a leaf part; leaf parts: {sorted(leaves)}"
                )
            if v.attribute not in leaves[v.part].attributes:
                raise ValueError(
                    f"values[{i}] names attribute {v.attribute!r} of part {v.part!r}, which lists only "
                    f"{leaves[v.part].attributes}"
                )
            unknown = [c for c in v.classes if c.casefold() not in known]
            if unknown:
                raise ValueError(
                    f"values[{i}] ({v.part} {v.attribute} = {v.value!r}) names unknown class {unknown[0]!r}"
                )
            if not v.classes:
                raise ValueError(f"values[{i}] ({v.part} {v.attribute} = {v.value!r}) has no classes")
            key = (v.part, v.attribute, v.value)
            if key in seen:
                raise ValueError(
                    f"duplicate value {v.value!r} for {v.part} {v.attribute} (values[{seen[key]}] and values[{i}]); "
                    "merge their classes into one entry"
                )
            seen[key] = i
        paths = [p for p, _ in self.leaf_parts()]
        dup = next((p for i, p in enumerate(paths) if p in paths[:i]), None)
        if dup is not None:
            raise ValueError(f"part {dup!r} appears twice at the same place in the tree")
        return self

    def leaf_parts(self) -> list[tuple[str, ConceptPart]]:
        """(path, part) of every leaf part."""
        return [leaf for p in self.parts for leaf in p.leaves()]

    def clues(self) -> list[Clue]:
        """One clue per stored value, in file order (the feature order of every classifier)."""
        return [
            Clue(
                text=self.template.format(part=v.part.split(PART_SEPARATOR)[-1], attribute=v.attribute, value=v.value),
                part=v.part,
                attribute=v.attribute,
                value=v.value,
                classes=tuple(v.classes),
            )
            for v in self.values
        ]

    def save(self, path: Path) -> Path:
        """Write the tree as indented JSON (atomically), for a person to read and edit."""
        write_json_atomic(path, self.model_dump(mode="json"))
        return path

    @classmethod
    def load(cls, path: Path) -> ConceptTree:
        """Read and validate a tree file; errors name the file and the part, value or class at fault."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"concept tree {path}: cannot read a JSON object: {exc}") from exc
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(f"concept tree {path} is invalid: {tree_errors(exc)}") from exc


def tree_errors(exc: ValidationError) -> str:
    """One line per validation error, each with its location in the file (``parts.0.name: ...``)."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'tree'}: {e['msg']}" for e in exc.errors())


def merge_values(answers: Iterable[tuple[str, str, str, str]], classnames: Sequence[str]) -> list[ConceptValue]:
    """(part, attribute, class, value) answers -> one :class:`ConceptValue` per normalised value, classes merged.

    Order: part, attribute, then first appearance; classes in label order. Empty values are dropped.
    """
    order = {c: i for i, c in enumerate(classnames)}
    merged: dict[tuple[str, str, str], set[str]] = {}
    for part, attribute, cls, value in answers:
        v = normalize_value(value)
        if v:
            merged.setdefault((part, normalize_value(attribute), v), set()).add(cls)
    return [
        ConceptValue(part=p, attribute=a, value=v, classes=sorted(cs, key=lambda c: order.get(c, len(order))))
        for (p, a, v), cs in merged.items()
    ]


class ConceptSettings(BaseModel):
    """How the tree is built: sizes of each level and the clue template (every field has a default)."""

    model_config = ConfigDict(extra="forbid")

    domain: str | None = Field(default=None, description="What the classes are; None: from the dataset name.")
    depth: int = Field(default=2, ge=1, le=4, description="Levels of parts (1: parts only; 2: parts and sub-parts).")
    max_parts: int = Field(default=4, ge=1, le=12, description="Most parts kept at the first level.")
    max_subparts: int = Field(default=2, ge=1, le=8, description="Most sub-parts kept per part below the first level.")
    max_attributes: int = Field(default=3, ge=1, le=8, description="Most attributes kept per leaf part.")
    max_value_words: int = Field(default=5, ge=1, le=12, description="Longest value kept, in words (Hi-CoDe: < 5).")
    parts: list[str] | None = Field(
        default=None, description="First-level parts given by the user (skips the LLM's part proposal)."
    )
    attributes: list[str] | None = Field(
        default=None, description="Attributes given by the user for every leaf part (skips the attribute proposal)."
    )
    template: str = Field(default=DEFAULT_CLUE_TEMPLATE, description="Clue sentence with {part} {attribute} {value}.")
    ground: bool = Field(
        default=True, description="Choose each value by the class's images (False: keep the LLM's values unchecked)."
    )
    confusers: int = Field(
        default=0, ge=0, le=20,
        description="Nearest classes a value's support is taken against (0: all classes; see tools/concepts/grounding).",
    )  # fmt: skip


class ConceptState(BaseModel):
    """The tree-building graph's state: texts only, so every checkpoint is small and readable."""

    level: int = Field(default=0, description="Part levels proposed so far.")
    parts: dict[str, list[str]] = Field(default_factory=dict, description="Path -> its sub-part names ('' = root).")
    attributes: dict[str, list[str]] = Field(default_factory=dict, description="Leaf part path -> attributes.")
    answers: list[tuple[str, str, str, str]] = Field(
        default_factory=list, description="(part path, attribute, class, value) accepted from the LLM."
    )
    rejected: list[dict[str, str]] = Field(default_factory=list, description="LLM answers dropped, with the reason.")
    calls: int = Field(default=0, description="LLM requests made (cache hits included).")
    structure: str = Field(default="llm", description="Where parts and attributes came from: llm, user, facets, mixed.")
    sources: list[dict[str, Any]] = Field(default_factory=list, description="ValueSource records of a grounded build.")
    tree: dict[str, Any] | None = Field(default=None, description="The assembled tree (ConceptTree as JSON).")

    def frontier(self) -> list[str]:
        """Paths of the parts of the deepest level proposed so far."""
        paths = [""]
        for _ in range(self.level):
            paths = [f"{p}{PART_SEPARATOR}{c}" if p else c for p in paths for c in self.parts.get(p, [])]
        return paths

    def leaf_paths(self) -> list[str]:
        """Paths of the parts that have no sub-parts."""
        out: list[str] = []

        def walk(path: str) -> None:
            kids = self.parts.get(path, [])
            if path and not kids:
                out.append(path)
            for k in kids:
                walk(f"{path}{PART_SEPARATOR}{k}" if path else k)

        walk("")
        return out

    def part_models(self, path: str = "") -> list[ConceptPart]:
        """The nested :class:`ConceptPart` list below ``path``."""
        out = []
        for name in self.parts.get(path, []):
            sub = f"{path}{PART_SEPARATOR}{name}" if path else name
            out.append(ConceptPart(name=name, attributes=self.attributes.get(sub, []), parts=self.part_models(sub)))
        return out
