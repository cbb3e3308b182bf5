"""The ``visfeed`` command (typer). Rich output lives here and only here."""

from __future__ import annotations

import typer

from visfeed import __version__

app = typer.Typer(
    name="visfeed",
    help="Optimize class descriptions for zero-shot image classifiers with LLMs and visual feedback.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.command()
def version() -> None:
    """Print the installed version."""
    typer.echo(__version__)
