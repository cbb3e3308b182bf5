"""Live views: ``visfeed optimize`` (iteration, objective, best so far, LLM calls, tokens, ETA) and ``visfeed sweep``."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Self

from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table


class _Live:
    """A rich Live display used as a context manager (subclasses set ``_live``)."""

    _live: Live

    def __enter__(self) -> Self:
        self._live.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._live.__exit__(exc_type, exc, tb)


class LiveView(_Live):
    """A small rich table refreshed from the runner's progress callback (``update(what, info)``)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.t0 = time.perf_counter()
        self.state: dict[str, Any] = {"node": "starting", "iteration": 0}
        self.iteration_times: list[float] = []
        self._live = Live(self._render(), console=console, refresh_per_second=4, transient=False)

    def update(self, what: str, info: dict[str, Any]) -> None:
        """Take one progress event; never raises into the run."""
        if what == "iteration_end" or (what == "node_start" and info.get("iteration") != self.state.get("iteration")):
            self.iteration_times.append(time.perf_counter() - self.t0)
        self.state.update(info)
        if info.get("accuracy") is not None:
            self.state["best_accuracy"] = max(float(info["accuracy"]), float(self.state.get("best_accuracy") or 0.0))
        if "node" in info:
            self.state["node"] = info["node"]
        self.state["event"] = what
        self._live.update(self._render())

    def _eta(self) -> str:
        max_it = self.state.get("max_iterations")
        done = int(self.state.get("iteration", 0))
        if not max_it or not self.iteration_times or done <= 0:
            return "-"
        per_iteration = self.iteration_times[-1] / max(1, done)
        return f"<= {per_iteration * max(0, int(max_it) - done):.0f} s"

    def _render(self) -> Table:
        s = self.state
        table = Table(show_header=False, box=None, title="visfeed optimize")

        def acc(key: str) -> str:
            v = s.get(key)
            return "-" if v is None else f"{100 * float(v):.1f}%"

        rows = [
            ("step", f"{s.get('node')} (iteration {s.get('iteration', 0)})"),
            ("objective", acc("accuracy")),
            ("best so far", acc("best_accuracy")),
            (
                "LLM calls",
                f"{s.get('llm_calls', 0)} ({s.get('cache_hits', 0)} cached), projected <= {s.get('projected_llm_calls', '?')}",
            ),
            ("tokens", str(s.get("tokens", 0))),
            ("elapsed", f"{time.perf_counter() - self.t0:.0f} s"),
            ("ETA", self._eta()),
        ]
        for k, v in rows:
            table.add_row(f"[bold]{k}[/bold]", v)
        return table


class SweepView(_Live):
    """The live table of ``visfeed sweep``: one row per cell, polled from the run directories.

    Why polling rather than callbacks: cells run in other processes (or on other Ray nodes), and their run
    directories are what every executor shares, so one view serves both executors.
    """

    def __init__(self, console: Console, poll: Callable[[], Sequence[Any]], title: str) -> None:
        self.poll = poll
        self.title = title
        self.t0 = time.perf_counter()
        self._live = Live(console=console, get_renderable=self._render, refresh_per_second=1, transient=False)

    def _render(self) -> Table:
        cells = self.poll()
        done = sum(1 for c in cells if c.status == "completed" or c.status.startswith("stopped"))
        table = Table(title=f"{self.title}: {done}/{len(cells)} cells done, {time.perf_counter() - self.t0:.0f} s")
        for col in ("cell", "status", "step", "feedback acc", "LLM calls"):
            table.add_column(col)
        for c in cells:
            step = f"{c.node} (it. {c.iteration})" if c.node else ("" if c.iteration is None else f"it. {c.iteration}")
            acc = "-" if c.feedback_accuracy is None else f"{100 * c.feedback_accuracy:.1f}%"
            calls = "-" if c.llm_calls is None else str(c.llm_calls)
            table.add_row(escape(c.id), escape(c.status[:60]), escape(step), acc, calls)
        return table
