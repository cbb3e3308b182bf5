"""Pydantic records of an optimization run: memory banks, per-iteration history, lineage, the graph state.

The graph state holds only texts, small numbers and counters, never embeddings or score matrices (those
live in the embedding cache and in the scoring session of the run context). Fields written by more than one
node carry an explicit reducer in ``Annotated[...]``.

Checkpoints store what changed: every field that grows with the number of classes is a LangGraph
``DeltaChannel``, whose value is not copied into each checkpoint but rebuilt from the nodes' stored writes
(the SQLite saver keeps each node's update once). Logs that grow (history, lineage) and per-class maps
(banks) take reducers that append or merge, so a node writes only its new entries and a run of 1,000
classes adds about what one iteration changed, not the whole state, per node.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, TypeVar

from langgraph.channels import DeltaChannel
from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")

Descriptions = dict[str, list[str]]
"""Class name -> its raw descriptions (the template joins each with the class name)."""


def replace(_old: T, new: T) -> T:
    """Reducer of fields written by several nodes: the newest value wins (said explicitly)."""
    return new


# DeltaChannel reducers take the old value and every write since it, in order; each must give the same
# result whether the writes come one at a time or all at once (LangGraph replays them in batches).
def last_write(_old: T, writes: Sequence[T]) -> T:
    """Replace: the newest write wins (the channel still stores only the writes, not a copy per checkpoint)."""
    return writes[-1]


def append_all(old: list[Any], writes: Sequence[list[Any]]) -> list[Any]:
    """Append-only log: each write holds only new entries."""
    return [*old, *(e for w in writes for e in w)]


def merge_keys(old: dict[str, Any], writes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per-key map: each write holds only the keys it changed."""
    out = dict(old)
    for w in writes:
        out.update(w)
    return out


def upsert_lineage(old: list[LineageEntry], writes: Sequence[list[LineageEntry]]) -> list[LineageEntry]:
    """Lineage log: a write holds new entries and the closed versions of entries it ended (same key)."""
    out = list(old)
    at = {e.key: i for i, e in enumerate(out)}
    for w in writes:
        for e in w:
            i = at.get(e.key)
            if i is None:
                at[e.key] = len(out)
                out.append(e)
            else:
                out[i] = e
    return out


def _delta(reducer: Any) -> DeltaChannel[Any]:
    # snapshot_frequency: a full copy of the value every 1,000 updates of the field (never, in a run of
    # 100 iterations); until then a restore replays the writes of the field since the last copy.
    return DeltaChannel(reducer, snapshot_frequency=1000)


class Objective(BaseModel):
    """Few-shot objective: correct images first, mean margin as tie-break."""

    model_config = ConfigDict(frozen=True)

    n_correct: int = Field(description="Correct images on the split.")
    mean_margin: float = Field(description="Mean of (true-class score - best other score).")
    n_images: int = Field(description="Images in the split.")

    @property
    def accuracy(self) -> float:
        """Fraction of correct images."""
        return self.n_correct / self.n_images if self.n_images else 0.0

    def key(self) -> tuple[int, float]:
        """Sort key: larger is better."""
        return (self.n_correct, self.mean_margin)

    def better_than(self, other: Objective | None, eps: float = 1e-9) -> bool:
        """Strictly better: more correct images, or as many with a larger mean margin."""
        if other is None:
            return True
        if self.n_correct != other.n_correct:
            return self.n_correct > other.n_correct
        return self.mean_margin > other.mean_margin + eps


class BankEntry(BaseModel):
    """One remembered edit of a class's descriptions and what it did to the objective."""

    model_config = ConfigDict(frozen=True)

    text: str = Field(description="The description added or deleted.")
    action: Literal["added", "deleted", "proposed"] = Field(
        description="'added'/'deleted': an accepted edit; 'proposed': a candidate that scored worse and was rejected."
    )
    iteration: int = Field(description="Iteration of the edit.")
    delta_correct: int = Field(description="Change in correct feedback images the edit came with.")
    delta_margin: float = Field(description="Change in mean margin the edit came with.")


class MemoryBank(BaseModel):
    """Positive and negative memory of one class, each capped (the paper keeps the last 10)."""

    positive: list[BankEntry] = Field(default_factory=list, description="Edits that raised the objective.")
    negative: list[BankEntry] = Field(default_factory=list, description="Edits that lowered the objective.")


class Candidate(BaseModel):
    """One proposed description set for one class (new descriptions only), with where it came from."""

    origin: str = Field(description="Which mutation produced it, e.g. 'mutate:k=2' or 'agent' or 'llm-crossover'.")
    descriptions: list[str] = Field(description="The proposed descriptions.")


class LibraryItem(BaseModel):
    """One candidate of a class's item library: what the search may put in the class's set.

    ``text`` is what people and the LLM read (a description, a visual-word sentence, a class-name template);
    ``prompts`` are the sentences the text tower embeds for it (one per template of the run's template set),
    so the class vector is the normalised mean over every prompt of its chosen items.
    """

    model_config = ConfigDict(frozen=True)

    text: str = Field(description="The item as shown (unique within its class).")
    source: str = Field(description="Where it came from: 'name', 'oneshot', 'words', 'visual_words', 'mutate:k=0', ...")
    prompts: list[str] = Field(description="The prompt sentences embedded for it.")
    iteration: int = Field(default=0, description="Iteration that added it (0: before the loop).")


class ClassChange(BaseModel):
    """What crossover did to one class in one iteration (consumed by update_memory)."""

    before: list[str] = Field(description="Descriptions before crossover.")
    after: list[str] = Field(description="Descriptions chosen by crossover.")
    origins: dict[str, str] = Field(default_factory=dict, description="Added description -> candidate origin.")
    delta_correct: int = Field(default=0, description="Objective change (correct images) of the chosen set.")
    delta_margin: float = Field(default=0.0, description="Objective change (mean margin) of the chosen set.")
    class_acc_before: float = Field(default=0.0, description="Class accuracy before (feedback split).")
    class_acc_after: float = Field(default=0.0, description="Class accuracy after (feedback split).")
    rejected: list[BankEntry] = Field(default_factory=list, description="Worse proposals, for the negative bank.")


class LineageEntry(BaseModel):
    """Life of one accepted description: who introduced it, what it brought, when and why it left."""

    class_name: str
    text: str
    introduced_iteration: int = Field(description="0 for the initial set, else the mutation iteration.")
    origin: str = Field(description="'init', 'init-file', 'mutate:k=..', 'agent', 'regenerate', 'llm-crossover'.")
    delta_correct: int = Field(default=0, description="Objective change of the set that brought it in.")
    delta_margin: float = Field(default=0.0, description="Mean-margin change of the set that brought it in.")
    deleted_iteration: int | None = Field(default=None, description="Iteration in which crossover dropped it.")
    deleted_reason: str | None = Field(default=None, description="Why it was dropped.")

    @property
    def key(self) -> tuple[str, str, int]:
        """Identity of the entry in the lineage log (a text may come back in a later iteration)."""
        return (self.class_name, self.text, self.introduced_iteration)


class IterationRecord(BaseModel):
    """The objective after one iteration (0 = initial descriptions)."""

    iteration: int
    feedback: Objective
    validation: Objective | None = None
    n_descriptions: int = Field(description="Descriptions over all classes.")
    llm_calls: int = Field(description="LLM calls sent so far (cache hits excluded).")
    per_class_accuracy: dict[str, float] = Field(default_factory=dict, description="Feedback accuracy per class.")
    improved: bool = Field(description="Whether this iteration became the new best.")


class Usage(BaseModel):
    """LLM usage carried through checkpoints, so a resumed run keeps paying from the same budget."""

    calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


class GraphState(BaseModel):
    """The LangGraph state of one run: texts, banks, history and counters only."""

    iteration: Annotated[int, replace] = Field(default=0, description="Mutation iterations done.")
    descriptions: Annotated[Descriptions, _delta(last_write)] = Field(
        default_factory=dict, description="Current descriptions per class."
    )
    initial: Annotated[Descriptions, _delta(last_write)] = Field(
        default_factory=dict, description="Initial (one-shot LLM or file) descriptions: a baseline."
    )
    best: Annotated[Descriptions, _delta(last_write)] = Field(
        default_factory=dict, description="Best-so-far descriptions."
    )
    best_iteration: Annotated[int, replace] = Field(default=0, description="Iteration that produced ``best``.")
    best_objective: Annotated[Objective | None, replace] = Field(default=None, description="Objective of ``best``.")
    stale: Annotated[int, replace] = Field(default=0, description="Iterations since the last improvement.")
    candidates: Annotated[dict[str, list[Candidate]], _delta(last_write)] = Field(
        default_factory=dict, description="Proposals of the current iteration (cleared by crossover)."
    )
    changes: Annotated[dict[str, ClassChange], _delta(last_write)] = Field(
        default_factory=dict, description="Crossover's per-class edits of the current iteration."
    )
    banks: Annotated[dict[str, MemoryBank], _delta(merge_keys)] = Field(
        default_factory=dict, description="Memory banks per class (a write holds the classes it changed)."
    )
    library: Annotated[dict[str, list[LibraryItem]], _delta(merge_keys)] = Field(
        default_factory=dict,
        description="Item library per class (crossover 'library'): every item the search may choose; a write "
        "holds the classes that gained items. ``descriptions`` then hold the chosen items' texts.",
    )
    templates: Annotated[list[str], replace] = Field(
        default_factory=list, description="The template set the library's name and description items use."
    )
    history: Annotated[list[IterationRecord], _delta(append_all)] = Field(
        default_factory=list, description="Objective per iteration (append-only)."
    )
    lineage: Annotated[list[LineageEntry], _delta(upsert_lineage)] = Field(
        default_factory=list,
        description="Lineage of every accepted description (a write holds new and newly closed entries).",
    )
    usage: Annotated[Usage, replace] = Field(default_factory=Usage, description="LLM usage so far.")
    stop_reason: Annotated[str | None, replace] = Field(
        default=None, description="Set by a node that must end the run (e.g. 'budget')."
    )
    filter_dropped: Annotated[int, replace] = Field(default=0, description="Descriptions dropped by the filter so far.")
    vocabulary_extra: Annotated[list[str], replace] = Field(
        default_factory=list, description="Visual words the LLM added to the vocabulary (vocabulary_extend)."
    )

    def prompts_of(self, descriptions: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
        """What a scoring session embeds for ``descriptions``.

        With an item library (crossover 'library'): the chosen items' prompts; otherwise the texts themselves
        (the session's template joins the class name).
        """
        if not self.library:
            return {n: list(d) for n, d in descriptions.items()}
        out: dict[str, list[str]] = {}
        for name, texts in descriptions.items():
            by_text = {it.text: it for it in self.library[name]}
            out[name] = [p for t in texts for p in by_text[t].prompts]
        return out
