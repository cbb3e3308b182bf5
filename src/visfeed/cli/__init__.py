"""The ``visfeed`` command (typer): ``main`` is the console script, ``app`` the typer application.

Modules: ``commands`` (optimize, resume, runs, export, report, datasets), ``inspect`` (trace, eval),
``world`` (render, train), ``sweep`` (sweep), ``embed`` (embed), ``live`` (the live views), ``common`` (consoles, exit codes, ``--set``). Heavy
imports stay inside the commands, so ``visfeed --help`` starts fast.
"""

from visfeed.cli.commands import app, main

__all__ = ["app", "main"]
