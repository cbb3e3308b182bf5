"""Class specs of a procedural world: per class, a distribution over each attribute of the vocabulary.

A spec file (YAML or JSON) looks like::

    name: market
    classes:
      - name: lemon
        color: yellow                  # one value
        shape: {oval: 3, round: 1}     # weights
        pattern: [dimples, smooth]     # uniform over a list

Errors name the file, the class and the attribute or value at fault, and list what is allowed.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from visfeed.errors import ConfigError
from visfeed.tools.world.vocab import ATTRIBUTES, DEFAULTS, REQUIRED, SIZE_OK_FOR_COUNT, VOCABULARY


class ClassSpec(BaseModel):
    """One class: its name and a normalised distribution (value -> probability) per attribute."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="Readable class name (the label).")
    attributes: dict[str, dict[str, float]] = Field(description="attribute -> {value: probability}.")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("class name is empty")
        return v.strip()

    @model_validator(mode="before")
    @classmethod
    def _from_flat(cls, data: Any) -> Any:
        """Accept the file form ``{name: ..., color: ..., shape: ...}`` as well as the model form."""
        if not isinstance(data, dict):
            raise ValueError(f"a class must be a mapping of attributes, got {type(data).__name__}")
        if "attributes" in data:
            return data
        rest = dict(data)
        name = rest.pop("name", None)
        if name is None:
            raise ValueError(f"a class has no 'name' (attributes given: {sorted(rest)})")
        return {"name": str(name), "attributes": {k: _dist(str(name), k, v) for k, v in rest.items()}}

    @model_validator(mode="after")
    def _check(self) -> ClassSpec:
        if not self.attributes:
            raise ValueError(f"class {self.name!r} is empty: give at least {', '.join(REQUIRED)}")
        for attr, dist in self.attributes.items():
            if attr not in VOCABULARY:
                raise ValueError(
                    f"class {self.name!r} has unknown attribute {attr!r}; known attributes: {', '.join(ATTRIBUTES)}"
                )
            if not dist:
                raise ValueError(f"class {self.name!r} gives no values for {attr!r}")
            for value, weight in dist.items():
                if value not in VOCABULARY[attr]:
                    raise ValueError(
                        f"class {self.name!r}: {attr} value {value!r} is not in the vocabulary; "
                        f"allowed: {', '.join(VOCABULARY[attr])}"
                    )
                if not (weight > 0 and np.isfinite(weight)):
                    raise ValueError(f"class {self.name!r}: {attr} weight of {value!r} must be > 0, got {weight}")
        missing = [a for a in REQUIRED if a not in self.attributes]
        if missing:
            raise ValueError(f"class {self.name!r} lacks the required attribute(s) {', '.join(missing)}")
        sizes = set(self.dist("size"))
        for count in self.dist("count"):
            if not sizes & set(SIZE_OK_FOR_COUNT[count]):
                raise ValueError(f"class {self.name!r}: count {count!r} needs a size among {SIZE_OK_FOR_COUNT[count]}")
        return self

    def dist(self, attribute: str) -> dict[str, float]:
        """Normalised distribution of an attribute (the documented default where the spec is silent)."""
        raw = self.attributes.get(attribute) or {DEFAULTS[attribute]: 1.0}
        total = sum(raw.values())
        return {k: v / total for k, v in raw.items()}

    def support(self, attribute: str) -> set[str]:
        """Values this class can take for an attribute."""
        return set(self.dist(attribute))

    def sample(self, rng: np.random.Generator) -> dict[str, str]:
        """Draw one full attribute assignment (re-drawing size until it fits the drawn count)."""
        out: dict[str, str] = {}
        for attr in sorted(ATTRIBUTES, key=lambda a: a == "size"):  # count before size
            d = self.dist(attr)
            if attr == "size":
                d = {k: p for k, p in d.items() if k in SIZE_OK_FOR_COUNT[out["count"]]}
            keys = list(d)
            probs = np.asarray([d[k] for k in keys])
            out[attr] = keys[int(rng.choice(len(keys), p=probs / probs.sum()))]
        return out


def _dist(cls_name: str, attr: str, value: Any) -> dict[str, float]:
    if isinstance(value, str):
        return {value: 1.0}
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise ValueError(f"class {cls_name!r}: {attr} list must hold value names, got {value!r}")
        return {v: 1.0 for v in value}
    if isinstance(value, dict):
        try:
            return {str(k): float(w) for k, w in value.items()}
        except (TypeError, ValueError) as exc:
            raise ValueError(f"class {cls_name!r}: {attr} weights must be numbers, got {value!r}") from exc
    raise ValueError(f"class {cls_name!r}: {attr} must be a value, a list or a {{value: weight}} map, got {value!r}")


class WorldSpec(BaseModel):
    """A world: a name and its classes (order = label index)."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(default="world", description="World name, used in reports and cache folders.")
    classes: list[ClassSpec] = Field(description="The classes, in label order.")

    @model_validator(mode="after")
    def _check(self) -> WorldSpec:
        if not self.classes:
            raise ValueError("the spec has no classes")
        seen: set[str] = set()
        for c in self.classes:
            key = c.name.casefold()
            if key in seen:
                raise ValueError(f"duplicate class {c.name!r}: every class name must be unique")
            seen.add(key)
        return self

    @property
    def classnames(self) -> list[str]:
        """Class names in label order."""
        return [c.name for c in self.classes]

    def digest(self) -> str:
        """Short content hash (used to key caches of rendered images)."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode("utf-8")
        return hashlib.sha256(blob).hexdigest()[:12]

    def distinct_attributes(self, a: int, b: int) -> list[str]:
        """Attributes on which classes ``a`` and ``b`` can never agree (disjoint supports)."""
        ca, cb = self.classes[a], self.classes[b]
        out = []
        for attr in ATTRIBUTES:
            if attr == "inside" and "halved" not in (ca.support("cut") & cb.support("cut")):
                continue  # flesh colour is only seen when both can be cut
            if not ca.support(attr) & cb.support(attr):
                out.append(attr)
        return out


def shipped_spec_path() -> Path:
    """Path of the shipped market spec inside the installed package."""
    return Path(str(resources.files("visfeed").joinpath("assets", "world", "market.yaml")))


def load_spec(path: Path | None = None) -> WorldSpec:
    """Read and validate a spec file (None = the shipped market world); errors name the file."""
    path = Path(path) if path is not None else shipped_spec_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read world spec {path}: {exc}") from exc
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError(f"world spec {path} is not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}") from exc
    if not isinstance(data, dict) or "classes" not in data:
        raise ConfigError(f"world spec {path} must be a mapping with a 'classes' list (see docs/world.md)")
    if not isinstance(data["classes"], list):
        raise ConfigError(f"world spec {path}: 'classes' must be a list of class mappings")
    try:
        return WorldSpec.model_validate(data)
    except ValidationError as exc:
        msgs = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"world spec {path} is invalid: {msgs}") from exc
