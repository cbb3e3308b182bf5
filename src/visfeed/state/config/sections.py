"""The sections of a run config: data, backbone, LLM, method, search, signals, image side, budget.

Why sections: a reader of ``config.yaml`` (or ``--set`` help) finds a knob under the part of the pipeline
it turns, and an adapter's or a signal's options get their own block instead of a prefix among the
method's. Each section validates what it can alone; rules that span sections stay on
:class:`~visfeed.state.config.run.RunConfig`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from visfeed.state.image_side import ImageSide
from visfeed.state.llm import LLMTransport
from visfeed.state.templates import DEFAULT_TEMPLATE, NAMELESS_TEMPLATE, check_template

DEFAULT_MODEL = (
    "visfeed-market"  # open_clip model name of the embedded default backbone (visfeed.tools.embedding.builtin_models)
)
CrossoverMode = Literal["library", "auto", "exhaustive", "greedy", "beam", "llm"]
MutationMode = Literal["structured", "agent", "auto"]
AnswerFormat = Literal["auto", "json", "prose"]


class Section(BaseModel):
    """A block of the run config: frozen, and unknown keys are errors (a typo never passes silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StanfordDogsConfig(Section):
    """Options of the stanford_dogs adapter (the tools side reads them into its StanfordDogsOptions)."""

    breeds: list[str] | None = Field(
        default=None, description="Breeds to keep (readable names, folder names or WordNet ids); None: all 120."
    )
    crop: bool = Field(default=False, description="Crop images to the annotated dog boxes.")
    crop_dir: Path | None = Field(default=None, description="Where crops are written (default: ROOT/Images-cropped).")


class DataConfig(Section):
    """Which images: the dataset, its root, and how many shots, validation and test images per class."""

    name: str = Field(
        default="world",
        description="'world' for the shipped synthetic market world, or a dataset name known to "
        "visfeed.tools.datasets (flowers102, imagefolder, coop:..., ...).",
    )
    root: Path | None = Field(default=None, description="Folder (or file) holding a real dataset.")
    world_spec: Path | None = Field(default=None, description="World spec YAML for dataset 'world' (default: shipped).")
    k_shot: int = Field(default=8, ge=1, le=1000, description="Labelled feedback images per class (the few shots).")
    n_val: int = Field(default=20, ge=0, description="Validation images per class (world only; 0: no validation).")
    n_test: int = Field(default=50, ge=1, description="Test images per class (world only).")
    stanford_dogs: StanfordDogsConfig = Field(
        default_factory=StanfordDogsConfig, description="Options of the stanford_dogs dataset only."
    )

    @model_validator(mode="after")
    def _root(self) -> DataConfig:
        if self.name != "world" and self.root is None:
            raise ValueError(f"root: dataset {self.name!r} needs data.root (the folder that holds it)")
        return self


class BackboneConfig(Section):
    """The vision-language model that scores: which one, its weights, device, embedding cache and prompt."""

    model: str = Field(default=DEFAULT_MODEL, description="open_clip model name, 'hf-hub:...' or 'local-dir:...'.")
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

    @field_validator("template")
    @classmethod
    def _template(cls, v: str | None) -> str | None:
        return None if v is None else check_template(v)


class LLMConfig(LLMTransport):
    """The LLM: provider, sampling, response cache, how answers are asked for, plus the transport knobs."""

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
    cache_file: Path | None = Field(
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

    @field_validator("provider")
    @classmethod
    def _provider(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must name a provider, e.g. 'local' or 'openai:gpt-4o-mini'")
        return v.strip()

    @property
    def transport(self) -> LLMTransport:
        """Only the transport knobs (what :class:`~visfeed.state.llm.LLMSettings` shares with this section)."""
        return LLMTransport(**{name: getattr(self, name) for name in LLMTransport.model_fields})


class MethodConfig(Section):
    """The paper's loop: feedback, initialization, mutation, filter, memory banks and stopping."""

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


class SearchConfig(Section):
    """How a class's next set is assembled from the proposals: the item library's search or the paper's crossover."""

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
    steps: int = Field(default=6, ge=1, le=200, description="Most add/remove rounds of greedy or beam search.")


class VisualWordsConfig(Section):
    """Visual feedback in words: a vocabulary ranked against each class's images and its confusers'."""

    enabled: bool = Field(
        default=True,
        description="Rank a visual vocabulary against each class's feedback images and tell the LLM which words "
        "fit a class's images and not its confusers' (in the feedback text, the prose prompts and as one extra "
        "no-LLM proposal per class); the 'visual_words' control is scored either way.",
    )
    count: int = Field(
        default=6, ge=1, le=30, description="Visual words offered per class (at most 2 per vocabulary category)."
    )
    vocabulary: Path | None = Field(
        default=None,
        description="Visual vocabulary file, one word or phrase a line ('#' comments, '[category]' headers); "
        "None: the shipped generic list (colours, shapes, the 47 DTD textures, parts, sizes, counts, materials).",
    )
    extend: bool = Field(
        default=False,
        description="Ask the LLM once for visual words that tell this label set's classes apart and add them to "
        "the vocabulary (through the junk filter; cached, so a resumed run repeats no call).",
    )


class SignalsConfig(Section):
    """Feedback signals beside the lambda-confusion feedback, one block each."""

    visual_words: VisualWordsConfig = Field(
        default_factory=VisualWordsConfig, description="Visual words (see VisualWordsConfig)."
    )


class ImageSideConfig(Section):
    """The image side of 'What do you see?': a test image fused with an MLLM's description and label guess."""

    parts: str | None = Field(
        default=None,
        description="Also score every method with the image side: the test image fused with a multimodal LLM's "
        "description and label guess; any of 'image,description,label'. None: off.",
    )
    weights: dict[str, float] | Literal["auto", "equal"] = Field(
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

    @field_validator("parts")
    @classmethod
    def _parts(cls, v: str | None) -> str | None:
        return None if v is None else ImageSide(parts=v).label.replace("+", ",")  # type: ignore[arg-type]

    @model_validator(mode="after")
    def _weights(self) -> ImageSideConfig:
        self.resolved  # noqa: B018 - builds the side once, so bad weights fail at load time
        return self

    @property
    def resolved(self) -> ImageSide | None:
        """The image side to score at the end of a run, or None when off."""
        if self.parts is None:
            return None
        weights = {} if self.weights == "equal" else self.weights
        return ImageSide(parts=self.parts, weights=weights)  # type: ignore[arg-type]


class BudgetConfig(Section):
    """Caps on what the LLM may spend; the run stops cleanly (and resumably) at the first one reached."""

    max_calls: int | None = Field(default=None, ge=0, description="Most LLM calls sent (None: unlimited).")
    max_total_tokens: int | None = Field(default=None, ge=0, description="Most LLM tokens (None: unlimited).")
    max_cost_usd: float | None = Field(default=None, ge=0, description="Most USD (None: unlimited).")
