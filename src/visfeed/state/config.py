"""The one validated run configuration: every knob of an optimization run, with the paper's defaults.

Why one model: the CLI, config files, the graph's run context and ``result.json`` share it, so a run is
fully described by its ``config.yaml``. Defaults follow the paper and its reference code (lambda 0.9,
m 5, K 4, about 10 classes per LLM call, temperature 1.0 for remote models) except where the embedded
local model needs smaller work per call to stay under ten minutes on two cores (fewer iterations, short
proposals, only confused classes mutated). Validation errors are re-raised as :class:`ConfigError` naming
the field, the value and the file.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from visfeed.errors import ConfigError
from visfeed.state.image_side import ImageSide
from visfeed.state.llm import LLMSettings, LLMTransport
from visfeed.state.templates import DEFAULT_TEMPLATE, NAMELESS_TEMPLATE, check_template

DEFAULT_MODEL = (
    "visfeed-market"  # open_clip model name of the embedded default backbone (visfeed.tools.embedding.builtin_models)
)
CrossoverMode = Literal["library", "auto", "exhaustive", "greedy", "beam", "llm"]
MutationMode = Literal["structured", "agent", "auto"]
AnswerFormat = Literal["auto", "json", "prose"]
PROSE_SENTENCES_PER_CALL = 2  # what one plain-prose description request asks for
#: Flat keys of configs written before the LLM knobs were nested under ``llm`` -> their ``llm`` field.
LEGACY_LLM_KEYS = {
    "llm_timeout_s": "timeout_s",
    "llm_max_retries": "max_retries",
    "llm_backoff_s": "backoff_base_s",
    "max_concurrency": "max_concurrency",
}


class RunConfig(BaseModel):
    """Everything that defines an optimization run (data, backbone, LLM, method, budget, output)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # ----------------------------------------------------------------- data and backbone
    dataset: str = Field(
        default="world",
        description="'world' for the shipped synthetic market world, or a dataset name known to "
        "visfeed.tools.datasets (flowers102, imagefolder, coop:..., ...).",
    )
    dataset_root: Path | None = Field(default=None, description="Folder (or file) holding a real dataset.")
    world_spec: Path | None = Field(default=None, description="World spec YAML for dataset='world' (default: shipped).")
    k_shot: int = Field(default=8, ge=1, le=1000, description="Labelled feedback images per class (the few shots).")
    n_val: int = Field(default=20, ge=0, description="Validation images per class (world only; 0: no validation).")
    n_test: int = Field(default=50, ge=1, description="Test images per class (world only).")
    dogs_breeds: list[str] | None = Field(
        default=None, description="stanford_dogs only: breeds to keep (readable names, folder names or WordNet ids)."
    )
    dogs_crop: bool = Field(default=False, description="stanford_dogs only: crop images to the annotated dog boxes.")
    dogs_crop_dir: Path | None = Field(
        default=None, description="stanford_dogs only: where crops are written (default: ROOT/Images-cropped)."
    )
    backbone: str = Field(default=DEFAULT_MODEL, description="open_clip model name, 'hf-hub:...' or 'local-dir:...'.")
    pretrained: str | None = Field(
        default=None, description="open_clip pretrained tag or checkpoint path; None: the embedded default weights."
    )
    allow_download: bool = Field(default=False, description="Allow fetching backbone weights (off: offline).")
    device: str = Field(default="auto", description="Torch device for embedding and scoring ('auto', 'cpu', 'cuda').")
    embedding_cache: Path | None = Field(
        default=None, description="Embedding cache file; None: $VISFEED_CACHE_DIR/embeddings.sqlite."
    )
    template: str | None = Field(
        default=None,
        description="How a class name and a description form a prompt; needs {description}, may use {classname}. "
        f"None: {NAMELESS_TEMPLATE!r} for the embedded visfeed-market backbone (its text tower never saw class "
        f"names, which only add noise there), {DEFAULT_TEMPLATE!r} for every other backbone.",
    )

    # ----------------------------------------------------------------- LLM
    provider: str = Field(
        default="local", description="LLM provider: local, openai:MODEL, openai-compatible:MODEL, ..."
    )
    base_url: str | None = Field(default=None, description="Base URL of an OpenAI-compatible server.")
    temperature: float | None = Field(
        default=None, ge=0, le=2, description="Sampling temperature; None: 1.0 (paper) for remote models, 0.8 local."
    )
    max_tokens: int | None = Field(
        default=None,
        ge=16,
        description="Cap on completion tokens per LLM call; None: 900 for remote models; for the local model 96 in "
        "prose (two short sentences) and 256 in JSON (a dozen short phrases); past that it rambles, and every token "
        "costs it about 20 ms.",
    )
    llm: LLMTransport = Field(
        default_factory=LLMTransport,
        description="Concurrency, per-attempt timeout, retries and backoff of LLM calls (see LLMTransport); the old "
        f"flat keys {', '.join(LEGACY_LLM_KEYS)} still load.",
    )
    llm_cache: Path | None = Field(
        default=None, description="Response cache file; None: llm_cache.sqlite in the run directory."
    )
    mutation_mode: MutationMode = Field(
        default="structured",
        description="'structured': one schema-constrained call per class group; 'agent': a bounded tool-calling "
        "loop (needs a provider with tools); 'auto': agent when the provider supports tools.",
    )
    answer_format: AnswerFormat = Field(
        default="auto",
        description="How description requests are answered: 'json' (schema-constrained structured output), "
        "'prose' (one class per call, a couple of plain sentences split into descriptions; a weak model writes "
        "real descriptions this way and schema junk in JSON), 'auto': prose for the local model, else json.",
    )
    local_chat_format: str | None = Field(
        default=None,
        description="llama.cpp chat format of the local server; 'chatml-function-calling' enables tools (agent mode; "
        "chosen when mutation_mode is 'agent' and this is None).",
    )
    agent_max_steps: int = Field(default=6, ge=1, le=50, description="Most LLM turns of one mutation agent loop.")

    # ----------------------------------------------------------------- method
    seed: int = Field(default=0, description="Seed of every random choice (data split, RNG, LLM sampling seed).")
    reproducible: bool = Field(
        default=False,
        description="One LLM request in flight at a time, sent in a fixed order, so the same seed gives the same "
        "answers from a local server (which reuses the previous prompt's cache: with 2 requests in flight their "
        "order, and so the sampled text, varies). Slower on servers that answer requests in parallel.",
    )
    lam: float = Field(default=0.9, gt=0, le=1, description="Lambda of the lambda-confusion feedback (paper: 0.9).")
    top_m: int = Field(default=5, ge=1, le=50, description="Most confused classes shown per class (paper: 5).")
    logit_scale: float | None = Field(
        default=None,
        gt=0,
        description="Logit scale of the softmax in the lambda test; None: the backbone's own learned scale "
        "(visfeed-market: about 25.7, OpenAI CLIP: 100), or 100 for a backbone that has none.",
    )
    n_init: int = Field(default=10, ge=1, le=100, description="Descriptions per class asked for at initialization.")
    n_new: int = Field(default=4, ge=1, le=50, description="New descriptions per class in each mutation proposal.")
    n_mutations: int | None = Field(
        default=None,
        ge=1,
        le=16,
        description="K: proposals per class per iteration; None: 4 (paper) for remote models, 2 for the local "
        "model, which makes one call per class and proposal and must finish a default run in minutes.",
    )
    classes_per_call: int | None = Field(
        default=None,
        ge=1,
        le=100,
        description="Classes per LLM call, grouped by lambda-confusion; None: 10 (paper) for remote models, 1 for "
        "the local model, which returns empty multi-class answers far too often.",
    )
    mutate_scope: Literal["auto", "all", "confused"] = Field(
        default="auto",
        description="'confused': mutate only classes with errors or near misses; 'all': every class; 'auto': all "
        "with the library crossover (its search fits the few shots perfectly, so errors name no class), else "
        "confused.",
    )
    bank_size: int = Field(default=10, ge=1, le=100, description="Entries kept per memory bank per class (paper: 10).")
    bank_shown: int = Field(default=4, ge=0, le=100, description="Bank entries per class shown in a mutation prompt.")
    similarity_threshold: float = Field(
        default=0.9,
        ge=-1,
        le=1.0001,
        description="Filter: drop a new description whose cosine similarity to a description of one of the "
        "class's top-m confused classes is at least this.",
    )
    filter_regenerate: bool = Field(
        default=True, description="Ask the LLM once for replacements of descriptions the filter dropped."
    )
    drop_other_class_names: bool = Field(default=True, description="Filter: drop descriptions that name another class.")
    crossover: CrossoverMode = Field(
        default="library",
        description="'library': every class keeps an item library (name templates, one-shot descriptions, "
        "visual-word sentences, every proposal) and a search assembles its set each iteration (docs/method.md); "
        "'exhaustive': every union of proposal sets and the current set; 'greedy'/'beam': "
        "description-level search; 'llm': LLM recombination then selection; 'auto': exhaustive when small, "
        "else beam.",
    )
    library_rounds: int = Field(
        default=8, ge=1, le=100, description="Library crossover: most rounds of the item search per iteration."
    )
    library_llm_items: bool = Field(
        default=True,
        description="Library crossover: the LLM's descriptions join the libraries (false: the same run with the "
        "LLM's items withheld, which measures the LLM's share; no mutation call is made).",
    )
    exhaustive_limit: int = Field(default=256, ge=1, description="Most candidate unions evaluated exhaustively.")
    beam_width: int = Field(default=4, ge=1, le=64, description="Beam width of the beam crossover.")
    search_steps: int = Field(default=6, ge=1, le=200, description="Most add/remove rounds of greedy or beam search.")
    max_descriptions: int = Field(default=40, ge=1, description="Most descriptions a class may hold.")
    patience: int = Field(default=2, ge=1, description="Stop after this many iterations without improvement.")
    max_iterations: int = Field(default=10, ge=0, le=1000, description="Most mutation iterations (the paper's 10).")
    use_validation: bool = Field(
        default=True,
        description="Pick the best iteration and stop early on the validation split when there is one (the "
        "crossover still selects on the few-shot split; 8 shots alone reward descriptions that fit those images "
        "by chance). Without a validation split, the feedback split decides.",
    )
    init_file: Path | None = Field(
        default=None,
        description="Start from these descriptions instead of the LLM: any file visfeed eval -D reads (CuPL or DCLIP "
        "JSON, class: text lines, an IVF list; FORMAT:PATH names the format).",
    )
    visual_words: bool = Field(
        default=True,
        description="Visual feedback in words: rank a visual vocabulary against each class's feedback images and "
        "tell the LLM which words fit a class's images and not its confusers' (in the feedback text, the prose "
        "prompts and as one extra no-LLM proposal per class); the 'visual_words' control is scored either way.",
    )
    visual_words_count: int = Field(
        default=6, ge=1, le=30, description="Visual words offered per class (at most 2 per vocabulary category)."
    )
    vocabulary: Path | None = Field(
        default=None,
        description="Visual vocabulary file, one word or phrase a line ('#' comments, '[category]' headers); "
        "None: the shipped generic list (colours, shapes, the 47 DTD textures, parts, sizes, counts, materials).",
    )
    vocabulary_extend: bool = Field(
        default=False,
        description="Ask the LLM once for visual words that tell this label set's classes apart and add them to "
        "the vocabulary (through the junk filter; cached, so a resumed run repeats no call).",
    )

    # ----------------------------------------------------------------- image side
    image_side: str | None = Field(
        default=None,
        description="Also score every method with the image side of 'What do you see?': the test image fused with a "
        "multimodal LLM's description and label guess; any of 'image,description,label'. None: off.",
    )
    image_weights: dict[str, float] | Literal["auto", "equal"] = Field(
        default="auto",
        description="Weights of the image-side parts: 'auto' (chosen per class side on the validation split, or "
        "the feedback split when there is none), 'equal' (the paper), or a weight per part (missing: 1.0).",
    )
    mllm: str = Field(
        default="eyes",
        description="Multimodal provider of the image side: eyes (embedded stand-in), openai:MODEL, "
        "openai-compatible:MODEL (with mllm_base_url), or a plug-in.",
    )
    mllm_base_url: str | None = Field(default=None, description="Base URL of an OpenAI-compatible multimodal server.")

    # ----------------------------------------------------------------- budget and output
    max_calls: int | None = Field(default=None, ge=0, description="LLM budget: most calls sent (None: unlimited).")
    max_total_tokens: int | None = Field(default=None, ge=0, description="LLM budget: most tokens (None: unlimited).")
    max_cost_usd: float | None = Field(default=None, ge=0, description="LLM budget: most USD (None: unlimited).")
    run_dir: Path | None = Field(default=None, description="Run directory; None: runs/<dataset>-s<seed>-<time>.")

    @model_validator(mode="before")
    @classmethod
    def _nest_legacy_llm_keys(cls, data: Any) -> Any:
        """Old config.yaml files (and ``--set llm_timeout_s=...``) use flat keys: move them under ``llm``."""
        if not isinstance(data, Mapping) or not any(k in data for k in LEGACY_LLM_KEYS):
            return data
        data = dict(data)
        nested = data.get("llm")
        llm = dict(nested.model_dump() if isinstance(nested, BaseModel) else nested or {})
        for old, new in LEGACY_LLM_KEYS.items():
            if old in data:
                llm[new] = data.pop(old)
        data["llm"] = llm
        return data

    @field_validator("template")
    @classmethod
    def _template(cls, v: str | None) -> str | None:
        return None if v is None else check_template(v)

    @field_validator("image_side")
    @classmethod
    def _image_side(cls, v: str | None) -> str | None:
        return None if v is None else ImageSide(parts=v).label.replace("+", ",")  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _image_weights(self) -> RunConfig:
        self.resolved_image_side  # noqa: B018 - builds the side once, so bad weights fail at load time
        return self

    @property
    def resolved_image_side(self) -> ImageSide | None:
        """The image side to score at the end of a run, or None when off."""
        if self.image_side is None:
            return None
        weights = {} if self.image_weights == "equal" else self.image_weights
        return ImageSide(parts=self.image_side, weights=weights)  # type: ignore[arg-type]

    @field_validator("provider")
    @classmethod
    def _provider(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must name a provider, e.g. 'local' or 'openai:gpt-4o-mini'")
        return v.strip()

    @model_validator(mode="after")
    def _consistent(self) -> RunConfig:
        if self.dataset != "world" and self.dataset_root is None:
            raise ValueError(f"dataset_root: dataset {self.dataset!r} needs dataset_root (the folder that holds it)")
        return self

    # ----------------------------------------------------------------- helpers
    @property
    def is_local(self) -> bool:
        """True for the embedded local model."""
        return self.provider.split(":", 1)[0] == "local"

    @property
    def resolved_template(self) -> str:
        """The prompt template actually used (see the ``template`` field)."""
        if self.template is not None:
            return self.template
        return NAMELESS_TEMPLATE if self.backbone == DEFAULT_MODEL else DEFAULT_TEMPLATE

    @property
    def resolved_mutate_scope(self) -> Literal["all", "confused"]:
        """The mutation scope actually used (see ``mutate_scope``)."""
        if self.mutate_scope != "auto":
            return self.mutate_scope
        return "all" if self.crossover == "library" else "confused"

    @property
    def session_template(self) -> str:
        """The template sessions score the state with: library items carry their own prompts."""
        return NAMELESS_TEMPLATE if self.crossover == "library" else self.resolved_template

    @property
    def llm_settings(self) -> LLMSettings:
        """What the LLM client gets: the ``llm`` knobs plus the resolved temperature, token cap and the seed."""
        knobs = self.llm.model_dump() | ({"max_concurrency": 1} if self.reproducible else {})
        return LLMSettings(
            **knobs,
            temperature=self.resolved_temperature,
            max_tokens=self.resolved_max_tokens,
            seed=self.seed,
        )

    @property
    def resolved_temperature(self) -> float:
        """The temperature actually sent: the paper's 1.0 for remote models, 0.8 for the weak local one."""
        if self.temperature is not None:
            return self.temperature
        return 0.8 if self.is_local else 1.0

    @property
    def resolved_max_tokens(self) -> int:
        """Completion-token cap actually sent (see the ``max_tokens`` field).

        Local prose answers are two short sentences; a tighter cap stops a small model's rambling early.
        """
        if self.max_tokens is not None:
            return self.max_tokens
        if self.is_local:
            return 96 if self.resolved_answer_format == "prose" else 256
        return 900

    @property
    def proposals_per_class(self) -> int:
        """K actually used (see the ``n_mutations`` field)."""
        if self.n_mutations is not None:
            return self.n_mutations
        return 2 if self.is_local else 4

    @property
    def resolved_answer_format(self) -> Literal["json", "prose"]:
        """The answer format actually used (see the ``answer_format`` field)."""
        if self.answer_format != "auto":
            return self.answer_format
        return "prose" if self.is_local else "json"

    @property
    def prose_init_calls(self) -> int:
        """Prose-mode initialization calls per class (each asks for a couple of sentences on one aspect)."""
        return -(-self.n_init // PROSE_SENTENCES_PER_CALL)

    @property
    def group_size(self) -> int:
        """Classes per LLM call actually used."""
        if self.classes_per_call is not None:
            return self.classes_per_call
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
        if self.init_file is not None:
            init = 0
        if self.visual_words and self.vocabulary_extend:
            init += 1
        return init + self.max_iterations * self.proposals_per_class * per_iteration

    def to_file_dict(self) -> dict[str, Any]:
        """JSON-safe dict (paths as strings) for config.yaml and result.json."""
        return self.model_dump(mode="json")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "config") -> RunConfig:
        """Validate a mapping; errors become one :class:`ConfigError` naming each bad field."""
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise ConfigError(format_validation_error(exc, source)) from None

    @classmethod
    def load(cls, path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> RunConfig:
        """Read YAML/TOML/JSON (optional), apply ``overrides`` (field -> value, None values ignored), validate."""
        data: dict[str, Any] = {}
        source = "overrides"
        if path is not None:
            data = read_config_file(Path(path))
            source = str(path)
        for key, value in (overrides or {}).items():
            if value is not None:
                data[key] = value
        return cls.from_mapping(data, source=source)

    def with_updates(self, **changes: Any) -> RunConfig:
        """A validated copy with some fields changed."""
        return RunConfig.from_mapping({**self.model_dump(), **changes}, source="updates")


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


def format_validation_error(
    exc: ValidationError,
    source: str,
    *,
    kind: str = "run config",
    fields: Callable[[tuple[int | str, ...]], Iterable[str]] | None = None,
) -> str:
    """One line per bad field: ``field: problem (got value)``, with the list of valid fields for typos.

    ``kind``: what was validated (the message's noun); ``fields``: the valid fields at an error's location
    (default: RunConfig's).
    """
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "config"
        legacy = {f"llm.{new}": old for old, new in LEGACY_LLM_KEYS.items()}
        if loc in legacy:
            loc = f"{loc} ({legacy[loc]})"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            valid = RunConfig.model_fields if fields is None else fields(tuple(err["loc"][:-1]))
            msg = f"unknown field; valid fields are: {', '.join(valid)}"
        model_level = not err["loc"]
        got = "" if model_level or err["type"] == "extra_forbidden" else f" (got {err.get('input')!r})"
        if model_level and ":" in msg:
            loc, msg = (part.strip() for part in msg.split(":", 1))
        lines.append(f"{loc}: {msg}{got}")
    return f"invalid {kind} in {source}: " + "; ".join(lines)
