"""The one validated run configuration: every knob of an optimization run, in sections, with the paper's defaults.

Why one model: the CLI, config files, the graph's run context and ``result.json`` share it, so a run is
fully described by its ``config.yaml``. Defaults follow the paper and its reference code (lambda 0.9,
m 5, K 4, about 10 classes per LLM call, temperature 1.0 for remote models) except where the embedded
local model needs smaller work per call to stay under ten minutes on two cores (fewer iterations, short
proposals, only confused classes mutated).

Modules: :mod:`~visfeed.state.config.sections` (one model per section), :mod:`~visfeed.state.config.run`
(RunConfig, loading, error messages), :mod:`~visfeed.state.config.keys` (dotted keys and the flat keys of
older files), :mod:`~visfeed.state.config.table` (the fields table of docs/config.md).
"""

from visfeed.state.config.keys import LEGACY_KEYS
from visfeed.state.config.run import (
    PROSE_SENTENCES_PER_CALL,
    RunConfig,
    format_validation_error,
    read_config_file,
)
from visfeed.state.config.sections import DEFAULT_MODEL

__all__ = [
    "DEFAULT_MODEL",
    "LEGACY_KEYS",
    "PROSE_SENTENCES_PER_CALL",
    "RunConfig",
    "format_validation_error",
    "read_config_file",
]
