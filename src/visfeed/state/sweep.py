"""A sweep spec: the grid of runs that reproduces a paper's table (datasets x backbones x providers x seeds).

Why a spec of its own rather than a loop around ``visfeed optimize``: the grid is validated as a whole
before anything runs (every cell's :class:`RunConfig` is built up front, and an error names the cell and
the field), each cell gets a stable id and run directory under the sweep directory (so a second
``visfeed sweep`` knows which cells are done), and the summary knows each cell's place in the table.

Relative paths in a spec file (dataset roots, world specs, config files) are read relative to the
spec file's folder, so a spec can be committed beside its data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from visfeed.errors import ConfigError
from visfeed.state.config import DEFAULT_MODEL, RunConfig, format_validation_error, read_config_file
from visfeed.state.config.keys import WHOLE, flatten, get_path, merge, nest
from visfeed.state.templates import parse_source

#: The rows a sweep summary can show, in table order: what ``result.json`` scores for every run.
#: ``image_prototypes`` and ``linear_probe`` are the image line: fitted on the labelled feedback images.
Method = Literal[
    "names", "templates", "llm_oneshot", "waffle", "visual_words", "searched_words", "proapo", "proapo_words",
    "optimized",
    "image_prototypes", "linear_probe",
]  # fmt: skip
METHODS: tuple[Method, ...] = (
    "names", "templates", "llm_oneshot", "waffle", "visual_words", "searched_words", "proapo", "proapo_words",
    "optimized",
    "image_prototypes", "linear_probe",
)  # fmt: skip
SWEEP_FILE = "sweep.yaml"  # the spec as run, written into the sweep directory
PUBLISHED_FILE = "published.json"  # in a cell's run directory: row -> {source, test_accuracy} of published sets
CELLS_DIR = "cells"
_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
#: Cell fields the grid sets; a ``set`` or ``config`` mapping may not set them (the grid decides).
GRID_FIELDS = (
    "data.name", "data.root", "data.world_spec", "backbone.model", "backbone.pretrained", "llm.provider", "seed",
    "run_dir",
)  # fmt: skip
#: Config paths whose relative file names are read from the spec's folder.
PATH_FIELDS = ("method.init_file", "signals.visual_words.vocabulary", "backbone.embedding_cache", "llm.cache_file")


def _grid_free(overrides: dict[str, Any]) -> dict[str, Any]:
    """Reject overrides of the fields the grid sets itself (a cell's place in the table)."""
    clash = sorted(set(flatten(nest(overrides, warn=False), keep=WHOLE)) & set(GRID_FIELDS))
    if clash:
        raise ValueError(f"the grid axes (datasets, backbones, providers, seeds) set {', '.join(clash)}, not overrides")
    return overrides


def _folder_name(value: str) -> str:
    """A user-given name that will name a folder: checked, not rewritten."""
    if not _SLUG.match(value):
        raise ValueError("use letters, digits, '.', '_' or '-' (it names a folder)")
    return value


def _slug(value: str) -> str:
    """A name usable in a folder name: unsafe characters become '-'."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", value).strip("-.") or "x"


class _Entry(BaseModel):
    """Shared parts of a grid axis entry: a name for the table and folder, and config overrides."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="", description="Label in the summary and in cell folder names (derived if empty).")
    set: dict[str, Any] = Field(default_factory=dict, description="RunConfig overrides for the cells of this entry.")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _folder_name(v) if v else v

    @field_validator("set")
    @classmethod
    def _set(cls, v: dict[str, Any]) -> dict[str, Any]:
        return _grid_free(v)


class DatasetEntry(_Entry):
    """One dataset column: a dataset name with its root, or the synthetic world with a spec file."""

    dataset: str = Field(default="world", description="'world' or a dataset name (see `visfeed datasets`).")
    root: Path | None = Field(default=None, description="Folder (or file) holding the dataset.")
    world_spec: Path | None = Field(default=None, description="World spec YAML for dataset 'world'.")
    descriptions: dict[str, str] = Field(
        default_factory=dict,
        description="Published description sets scored on this dataset's cells, as rows of the table: row name "
        "-> '[FORMAT:]FILE' (CuPL JSON, 'class: prompt' lines, DCLIP descriptors, IVF *_sota.txt; as `eval -D`).",
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"dataset": data} if isinstance(data, str) else data

    @field_validator("descriptions")
    @classmethod
    def _descriptions(cls, v: dict[str, str]) -> dict[str, str]:
        clash = sorted(set(v) & set(METHODS))
        if clash:
            raise ValueError(f"row names {clash} are the built-in methods' rows; name the published sets otherwise")
        for source in v.values():
            try:
                parse_source(source)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return v

    @property
    def label(self) -> str:
        """The entry's name, or one derived from the world spec file or the dataset."""
        if self.name:
            return self.name
        return _slug(self.world_spec.stem if self.world_spec is not None else self.dataset)


class BackboneEntry(_Entry):
    """One backbone: an open_clip model and its weights, and whether its cells want a GPU."""

    backbone: str = Field(default=DEFAULT_MODEL, description="open_clip model, 'hf-hub:...' or 'local-dir:...'.")
    pretrained: str | None = Field(default=None, description="Pretrained tag or checkpoint file.")
    gpu: bool | None = Field(
        default=None, description="Request a GPU for its cells; None: when the machine or cluster has one."
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"backbone": data} if isinstance(data, str) else data

    @property
    def label(self) -> str:
        """The entry's name, or one derived from the model name."""
        return self.name or _slug(self.backbone.rsplit("/", 1)[-1].split(":")[-1])


class Limits(BaseModel):
    """How many cells may run at once (the local executor; Ray schedules by resource requests)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cells: int | None = Field(default=None, ge=1, description="Most cells at once; None: one per CPU core.")
    per_provider: dict[str, int] = Field(
        default_factory=lambda: {"local": 1},
        description="Most cells at once per LLM provider (by its name before ':'): each 'local' cell starts "
        "its own embedded LLM server on the CPU, so one at a time by default; unlisted providers: unlimited.",
    )
    cpus_per_cell: float = Field(default=1.0, gt=0, description="CPUs a cell asks for (Ray resource request).")

    @field_validator("per_provider")
    @classmethod
    def _positive(cls, v: dict[str, int]) -> dict[str, int]:
        bad = sorted(k for k, n in v.items() if n < 1)
        if bad:
            raise ValueError(f"limits for {', '.join(bad)} must be at least 1")
        return v


class SweepSpec(BaseModel):
    """The grid: every combination of dataset, backbone, provider and seed is one cell (one run)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="sweep", description="Name of the sweep (the default sweep directory).")
    datasets: list[DatasetEntry] = Field(min_length=1, description="Columns: datasets with their roots.")
    backbones: list[BackboneEntry] = Field(
        default_factory=lambda: [BackboneEntry()], min_length=1, description="Backbones (columns x backbone)."
    )
    providers: list[str] = Field(default_factory=lambda: ["local"], min_length=1, description="LLM providers.")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1, description="Seeds (mean ± std over them).")
    config: dict[str, Any] = Field(default_factory=dict, description="RunConfig overrides for every cell.")
    config_file: Path | None = Field(default=None, description="A RunConfig file every cell starts from.")
    methods: list[Method] = Field(
        default_factory=lambda: list(METHODS), min_length=1, description="Rows of the summary, in this order."
    )
    limits: Limits = Field(default_factory=Limits)

    @property
    def rows(self) -> list[str]:
        """The summary's accuracy rows: the chosen methods, then every published set (in spec order)."""
        return [*self.methods, *dict.fromkeys(name for d in self.datasets for name in d.descriptions)]

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _folder_name(v)

    @field_validator("config")
    @classmethod
    def _config(cls, v: dict[str, Any]) -> dict[str, Any]:
        return _grid_free(v)

    @model_validator(mode="after")
    def _unique(self) -> SweepSpec:
        for axis, labels in (
            ("datasets", [d.label for d in self.datasets]),
            ("backbones", [b.label for b in self.backbones]),
            ("providers", self.providers),
            ("seeds", [str(s) for s in self.seeds]),
        ):
            dup = sorted({x for x in labels if labels.count(x) > 1})
            if dup:
                raise ValueError(
                    f"{axis}: duplicate entries {dup} (dataset and backbone entries take a distinct 'name')"
                )
        return self


class Cell(BaseModel):
    """One run of the grid: its place in the table and its validated run config."""

    model_config = ConfigDict(frozen=True)

    id: str
    dataset: str
    backbone: str
    provider: str
    seed: int
    column: str = Field(description="Summary column: dataset × backbone (× provider when the sweep has several).")
    gpu: bool | None = None
    config: RunConfig
    descriptions: dict[str, str] = Field(
        default_factory=dict, description="Published sets to score on its test split: row -> 'FORMAT:FILE'."
    )

    @property
    def run_dir(self) -> Path:
        """The cell's run directory (:func:`expand` sets it; a hand-made cell without one is refused)."""
        if self.config.run_dir is None:
            raise ConfigError(f"cell {self.id} has no run directory (cells come from expand())")
        return self.config.run_dir


def _resolve(path: Path | None, base: Path) -> Path | None:
    if path is None:
        return None
    path = path.expanduser()
    return path if path.is_absolute() else (base / path).resolve()


def _published(sources: dict[str, str], base: Path) -> dict[str, str]:
    """Published sets with their files read from the spec's folder, format named: row -> 'FORMAT:FILE'."""
    out = {}
    for row, source in sources.items():
        path, fmt = parse_source(source)
        out[row] = f"{fmt}:{_resolve(path, base)}"
    return out


def cell_id(dataset: str, backbone: str, provider: str, seed: int) -> str:
    """Folder name of a cell: ``<dataset>__<backbone>__<provider>__s<seed>``."""
    return f"{dataset}__{backbone}__{_slug(provider)}__s{seed}"


def expand(spec: SweepSpec, sweep_dir: Path, *, base: Path | None = None) -> list[Cell]:
    """Every cell of the grid with its validated RunConfig; the first bad cell raises a ConfigError naming it.

    ``base``: folder that relative paths in the spec are read from (the spec file's folder).
    """
    base = base or Path.cwd()
    start: dict[str, Any] = {}
    if spec.config_file is not None:
        path = _resolve(spec.config_file, base) or spec.config_file
        start = nest(read_config_file(path), source=str(path))
    common = merge(start, nest(spec.config, source=f"config of sweep {spec.name!r}"))
    datasets = [(d, nest(d.set, source=f"set of dataset {d.label!r}")) for d in spec.datasets]
    backbones = [(b, nest(b.set, source=f"set of backbone {b.label!r}")) for b in spec.backbones]
    cells = []
    for d, d_set in datasets:
        for b, b_set in backbones:
            for provider in spec.providers:
                for seed in spec.seeds:
                    cid = cell_id(d.label, b.label, provider, seed)
                    fields = merge(common, d_set, b_set)
                    grid = {
                        "data.name": d.dataset,
                        "data.root": _resolve(d.root, base),
                        "data.world_spec": _resolve(d.world_spec, base),
                        "backbone.model": b.backbone,
                        "backbone.pretrained": b.pretrained,
                        "llm.provider": provider,
                        "seed": seed,
                        "run_dir": (sweep_dir / CELLS_DIR / cid).resolve(),
                    }
                    for key in PATH_FIELDS:
                        if get_path(fields, key) is not None:
                            grid[key] = _resolve(Path(get_path(fields, key)), base)
                    fields = merge(fields, nest(grid))
                    config = RunConfig.from_mapping(fields, source=f"cell {cid} of sweep {spec.name!r}")
                    column = f"{d.label} × {b.label}" + (f" × {provider}" if len(spec.providers) > 1 else "")
                    cells.append(
                        Cell(id=cid, dataset=d.label, backbone=b.label, provider=provider, seed=seed, column=column,
                             gpu=b.gpu, config=config, descriptions=_published(d.descriptions, base))
                    )  # fmt: skip
    return cells


def spec_from_mapping(data: Mapping[str, Any], *, source: str = "sweep spec") -> SweepSpec:
    """Validate a mapping; errors become one :class:`ConfigError` naming each bad field."""
    try:
        return SweepSpec.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, kind="sweep spec", fields=_fields_at)) from None


def _fields_at(loc: tuple[int | str, ...]) -> list[str]:
    """Valid field names of the part of a spec at ``loc`` (for 'unknown field' messages)."""
    models: dict[str, type[BaseModel]] = {"datasets": DatasetEntry, "backbones": BackboneEntry, "limits": Limits}
    model = models.get(str(loc[0]), SweepSpec) if loc else SweepSpec
    return list(model.model_fields)


def read_published(run_dir: Path) -> dict[str, dict[str, Any]]:
    """A cell's scored published sets (row -> {"source", "test_accuracy"}); empty when none were scored."""
    path = run_dir / PUBLISHED_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is not readable JSON ({exc}); delete it to score the published sets again") from None
    return dict(data)


def load_spec(path: Path) -> SweepSpec:
    """Read and validate a sweep spec file (YAML, TOML or JSON)."""
    return spec_from_mapping(read_config_file(path), source=str(path))
