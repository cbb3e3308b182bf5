"""Shared pieces of the CLI package: consoles, the error-to-exit-code wrapper, ``--set`` parsing."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import yaml
from rich.console import Console
from rich.markup import escape

from visfeed.errors import ConfigError, DataError, VisfeedError

console = Console(stderr=True)
out = Console()

F = TypeVar("F", bound=Callable[..., Any])
USAGE_ERRORS = (ConfigError, DataError)

# Options every data-loading command shares.
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Run config file (YAML, TOML or JSON).")]
DatasetOpt = Annotated[
    str | None, typer.Option("--dataset", "-d", help="'world' (default) or a dataset name (see `visfeed datasets`).")
]
RootOpt = Annotated[Path | None, typer.Option("--root", help="Folder (or manifest file) holding the dataset.")]
BackboneOpt = Annotated[
    str | None, typer.Option("--backbone", help="open_clip model, 'hf-hub:ORG/NAME' or 'local-dir:PATH'.")
]
PretrainedOpt = Annotated[str | None, typer.Option("--pretrained", help="open_clip pretrained tag or checkpoint file.")]
DownloadOpt = Annotated[bool, typer.Option("--download", help="Allow downloading weights or data (off by default).")]
SeedOpt = Annotated[int | None, typer.Option("--seed", help="Seed of splits, sampling and search.")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Any config key: --set method.patience=3.")]
ProviderOpt = Annotated[
    str | None,
    typer.Option("--provider", "-p", help="local | openai:MODEL | openai-compatible:MODEL | pkg.mod:factory."),
]


def handle_errors(fn: F) -> F:
    """Map the error hierarchy to exit codes, with one readable line instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except USAGE_ERRORS as exc:
            console.print(f"[red]error:[/red] {escape(str(exc))}")
            raise typer.Exit(2) from None
        except VisfeedError as exc:
            console.print(f"[red]failed:[/red] {escape(str(exc))}")
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/yellow]")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def parse_sets(pairs: list[str]) -> dict[str, Any]:
    """``--set key=value`` pairs (values parsed as YAML scalars) to config overrides.

    A value that is not valid YAML, or that YAML would read as a mapping (every template starts with
    ``{classname}``), is taken as the literal string: no config field is a mapping.
    """
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {pair!r}")
        parsed: Any = None
        if value:
            try:
                parsed = yaml.safe_load(value)
            except yaml.YAMLError:
                parsed = value
            if isinstance(parsed, dict):
                parsed = value
        overrides[key.strip().replace("-", "_")] = parsed
    return overrides
