"""RunConfig: the sections together, the values resolved across them, and loading with overrides.

Values that depend on more than one section (the template the backbone gets, the token cap the
answer format implies) are properties here, so callers read one resolved value instead of repeating
the rule. Validation errors are re-raised as :class:`ConfigError` naming the field, the value and the file.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from visfeed.errors import ConfigError
from visfeed.state.config.keys import LEGACY_KEYS, flatten, merge, nest
from visfeed.state.config.sections import (
    DEFAULT_MODEL,
    BackboneConfig,
    BudgetConfig,
    DataConfig,
    ImageSideConfig,
    LLMConfig,
    MethodConfig,
    SearchConfig,
    SignalsConfig,
)
from visfeed.state.image_side import ImageSide
from visfeed.state.llm import LLMSettings
from visfeed.state.templates import DEFAULT_TEMPLATE, NAMELESS_TEMPLATE

PROSE_SENTENCES_PER_CALL = 2  # what one plain-prose description request asks for


class RunConfig(BaseModel):
    """Everything that defines an optimization run, in sections; the run's seed, mode and folder at the top.

    Why seed, ``reproducible`` and ``run_dir`` stay at the top: they name the run itself and every
    section reads them (the data split, the LLM's sampling seed and concurrency, the output folder).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(default=0, description="Seed of every random choice (data split, RNG, LLM sampling seed).")
    reproducible: bool = Field(
        default=False,
        description="One LLM request in flight at a time, sent in a fixed order, so the same seed gives the same "
        "answers from a local server (which reuses the previous prompt's cache: with 2 requests in flight their "
        "order, and so the sampled text, varies). Slower on servers that answer requests in parallel.",
    )
    run_dir: Path | None = Field(default=None, description="Run directory; None: runs/<dataset>-s<seed>-<time>.")
    data: DataConfig = Field(default_factory=DataConfig, description="Which images (see DataConfig).")
    backbone: BackboneConfig = Field(default_factory=BackboneConfig, description="The scoring model.")
    llm: LLMConfig = Field(default_factory=LLMConfig, description="The LLM and how it is called.")
    method: MethodConfig = Field(default_factory=MethodConfig, description="The paper's loop.")
    search: SearchConfig = Field(default_factory=SearchConfig, description="How a class's set is assembled.")
    signals: SignalsConfig = Field(default_factory=SignalsConfig, description="Feedback signals beside the lambda one.")
    image_side: ImageSideConfig = Field(default_factory=ImageSideConfig, description="The image side (WDYS).")
    budget: BudgetConfig = Field(default_factory=BudgetConfig, description="LLM spending caps.")

    @model_validator(mode="before")
    @classmethod
    def _sections(cls, data: Any) -> Any:
        """Dotted keys and the flat keys of older files (and ``--set k_shot=4``) go to their sections."""
        return nest(data) if isinstance(data, Mapping) else data

    # ----------------------------------------------------------------- resolved across sections
    @property
    def resolved_image_side(self) -> ImageSide | None:
        """The image side to score at the end of a run, or None when off."""
        return self.image_side.resolved

    @property
    def is_local(self) -> bool:
        """True for the embedded local model."""
        return self.llm.provider.split(":", 1)[0] == "local"

    @property
    def resolved_template(self) -> str:
        """The prompt template actually used (see ``backbone.template``)."""
        if self.backbone.template is not None:
            return self.backbone.template
        return NAMELESS_TEMPLATE if self.backbone.model == DEFAULT_MODEL else DEFAULT_TEMPLATE

    @property
    def resolved_mutate_scope(self) -> Literal["all", "confused"]:
        """The mutation scope actually used (see ``method.mutate_scope``)."""
        if self.method.mutate_scope != "auto":
            return self.method.mutate_scope
        return "all" if self.search.crossover == "library" else "confused"

    @property
    def session_template(self) -> str:
        """The template sessions score the state with: library items carry their own prompts."""
        return NAMELESS_TEMPLATE if self.search.crossover == "library" else self.resolved_template

    @property
    def llm_settings(self) -> LLMSettings:
        """What the LLM client gets: the transport knobs plus the resolved temperature, token cap and the seed."""
        knobs = self.llm.transport.model_dump() | ({"max_concurrency": 1} if self.reproducible else {})
        return LLMSettings(
            **knobs,
            temperature=self.resolved_temperature,
            max_tokens=self.resolved_max_tokens,
            seed=self.seed,
        )

    @property
    def resolved_temperature(self) -> float:
        """The temperature actually sent: the paper's 1.0 for remote models, 0.8 for the weak local one."""
        if self.llm.temperature is not None:
            return self.llm.temperature
        return 0.8 if self.is_local else 1.0

    @property
    def resolved_max_tokens(self) -> int:
        """Completion-token cap actually sent (see ``llm.max_tokens``).

        Local prose answers are two short sentences; a tighter cap stops a small model's rambling early.
        """
        if self.llm.max_tokens is not None:
            return self.llm.max_tokens
        if self.is_local:
            return 96 if self.resolved_answer_format == "prose" else 256
        return 900

    @property
    def proposals_per_class(self) -> int:
        """K actually used (see ``method.n_mutations``)."""
        if self.method.n_mutations is not None:
            return self.method.n_mutations
        return 2 if self.is_local else 4

    @property
    def resolved_answer_format(self) -> Literal["json", "prose"]:
        """The answer format actually used (see ``llm.answer_format``)."""
        if self.llm.answer_format != "auto":
            return self.llm.answer_format
        return "prose" if self.is_local else "json"

    @property
    def prose_init_calls(self) -> int:
        """Prose-mode initialization calls per class (each asks for a couple of sentences on one aspect)."""
        return -(-self.method.n_init // PROSE_SENTENCES_PER_CALL)

    @property
    def group_size(self) -> int:
        """Classes per LLM call actually used."""
        if self.method.classes_per_call is not None:
            return self.method.classes_per_call
        return 1 if self.is_local else 10

    def projected_llm_calls(self, n_classes: int) -> int:
        """Upper bound on LLM calls of a run (initialization plus K proposals per group per iteration).

        Regeneration after the similarity filter and agent-mode tool turns come on top; cache hits are free.
        Prose answers take one call per class (several per class at initialization), whatever the group size.
        """
        if self.resolved_answer_format == "prose":
            init = n_classes * self.prose_init_calls
            per_iteration = n_classes
        else:
            init = per_iteration = -(-n_classes // self.group_size)
        if self.method.init_file is not None:
            init = 0
        words = self.signals.visual_words
        if words.enabled and words.extend:
            init += 1
        return init + self.method.max_iterations * self.proposals_per_class * per_iteration

    # ----------------------------------------------------------------- files and overrides
    def to_file_dict(self) -> dict[str, Any]:
        """JSON-safe dict (paths as strings) for config.yaml and result.json."""
        return self.model_dump(mode="json")

    def flat(self) -> dict[str, Any]:
        """Dotted path -> value of every field (what ``--set`` takes): to list or diff two configs."""
        return flatten(self.to_file_dict(), keep=("image_side.weights",))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "config") -> RunConfig:
        """Validate a mapping (sections, dotted or old flat keys); errors become one :class:`ConfigError`."""
        try:
            return cls.model_validate(nest(data, source=source))
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, source, legacy=set(data) & set(LEGACY_KEYS))) from None

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> RunConfig:
        """Read YAML/TOML/JSON (optional), apply ``overrides`` (key -> value, None values ignored), validate.

        Keys may be dotted (``data.k_shot``) in both; a file's sections and the overrides merge key by key.
        """
        data: dict[str, Any] = {}
        source = "overrides"
        if path is not None:
            data = nest(read_config_file(Path(path)), source=str(path))
            source = str(path)
        given = {key: value for key, value in (overrides or {}).items() if value is not None}
        legacy = set(given) & set(LEGACY_KEYS)
        try:
            return cls.model_validate(merge(data, nest(given, source="overrides")))
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, source, legacy=legacy)) from None

    def with_updates(self, changes: Mapping[str, Any] | None = None, **fields: Any) -> RunConfig:
        """A validated copy with some fields changed (``changes`` by dotted key, ``fields`` at the top)."""
        update = nest({**(changes or {}), **fields}, source="updates")
        return RunConfig.from_mapping(merge(self.model_dump(), update), source="updates")


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a YAML, TOML or JSON config file into a dict (errors name the file)."""
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".toml":
            data: Any = tomllib.loads(text)
        elif path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid {path.suffix.lstrip('.') or 'yaml'}: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of field: value, got {type(data).__name__}")
    # A run directory's config.yaml may carry the config under "config" (written by the runner).
    if set(data) == {"config"} and isinstance(data["config"], dict):
        data = data["config"]
    return data


def _run_config_fields(loc: tuple[int | str, ...]) -> list[str]:
    """Valid keys of the RunConfig section at ``loc`` (for 'unknown field' messages)."""
    model: type[BaseModel] = RunConfig
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break
        model = annotation
    return list(model.model_fields)


def format_validation_error(
    exc: ValidationError,
    source: str,
    *,
    kind: str = "run config",
    fields: Callable[[tuple[int | str, ...]], Iterable[str]] | None = None,
    legacy: Iterable[str] = (),
) -> str:
    """One line per bad field: ``field: problem (got value)``, with the list of valid fields for typos.

    ``kind``: what was validated (the message's noun); ``fields``: the valid fields at an error's location
    (default: RunConfig's); ``legacy``: old flat keys the input used, named beside their new path.
    """
    old_name = {LEGACY_KEYS[key]: key for key in legacy if key in LEGACY_KEYS}
    lines = []
    for err in exc.errors():
        parts = [str(p) for p in err["loc"]]
        msg = err["msg"].removeprefix("Value error, ")
        model_level = err["type"] == "value_error" and isinstance(err.get("input"), Mapping)
        if (model_level or not parts) and ":" in msg and msg.split(":", 1)[0].isidentifier():
            head, msg = (part.strip() for part in msg.split(":", 1))
            parts.append(head)
            model_level = True
        loc = ".".join(parts) or "config"
        if err["type"] == "extra_forbidden":
            valid = (fields or _run_config_fields)(tuple(err["loc"][:-1]))
            msg = f"unknown field; valid fields are: {', '.join(valid)}"
        if loc in old_name:
            loc = f"{loc} ({old_name[loc]})"
        got = "" if model_level or not parts or err["type"] == "extra_forbidden" else f" (got {err.get('input')!r})"
        lines.append(f"{loc}: {msg}{got}")
    return f"invalid {kind} in {source}: " + "; ".join(lines)
