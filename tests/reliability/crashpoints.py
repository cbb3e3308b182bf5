"""A provider plug-in for crash tests: the scripted model, plus a SIGKILL at a chosen point of the run.

``--provider reliability.crashpoints:make`` behaves exactly like ``support.scripted_provider:make``. When
``VISFEED_TEST_KILL_AT`` is set in the environment of the ``visfeed`` process, the factory also arms one
crash point, and the process kills itself with SIGKILL (no cleanup, no finally blocks, like a power cut
or the OOM killer) at that exact moment, which polling from outside could not hit reliably because a node
of the tiny world lasts milliseconds. Points, as ``KIND:NODE:ITERATION``:

- ``scoring:crossover:1``: inside the second candidate evaluation of crossover in iteration 1 (a sweep of
  ``evaluate_sets``, or of the library search's candidates).
- ``checkpoint:crossover:0``: after crossover of iteration 0 returned, inside the SQLite transaction that
  writes its checkpoint (rows inserted, not yet committed).
- ``torn-trace:feedback:1``: between iterations, while ``trace.jsonl`` gets the ``node_start`` line of
  feedback in iteration 1: half of that line is written and fsync'd, then the process dies.

Resume the run without the variable (a resumed run loads the same provider spec from config.yaml).
"""

from __future__ import annotations

import json
import os
import signal
from typing import Any

from support.scripted_provider import ScriptedChat
from support.scripted_provider import make as scripted_make

KILL_ENV = "VISFEED_TEST_KILL_AT"
_installed: list[str] = []


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def install(spec: str) -> None:
    """Arm the crash point ``spec`` in this process (see the module docstring)."""
    kind, node, iteration_text = spec.split(":")
    iteration = int(iteration_text)
    if _installed:
        return
    _installed.append(spec)
    from aiosqlite import Connection
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    from visfeed.agents.trace import Tracer
    from visfeed.tools.scoring.session import ScoringSession

    armed = {"on": False, "count": 0, "in_put": False}
    emit = Tracer.emit

    def patched_emit(self: Tracer, event: str, **fields: Any) -> None:
        here = fields.get("node") == node and fields.get("iteration") == iteration
        if kind == "torn-trace" and event == "node_start" and here:
            line = json.dumps({"event": event, **fields}, default=str) + "\n"
            self._file.write(line[: len(line) // 2])
            self._file.flush()
            os.fsync(self._file.fileno())
            _die()
        emit(self, event, **fields)
        if kind == "scoring" and event == "node_start" and here:
            armed["on"] = True
        if kind == "checkpoint" and event == "node_end" and here:
            armed["on"] = True

    Tracer.emit = patched_emit  # type: ignore[method-assign]

    if kind == "scoring":
        evaluate = ScoringSession.evaluate_sets

        def patched_evaluate(self: ScoringSession, *args: Any, **kwargs: Any) -> Any:
            if armed["on"]:
                armed["count"] += 1
                if armed["count"] >= 2:
                    _die()
            return evaluate(self, *args, **kwargs)

        ScoringSession.evaluate_sets = patched_evaluate  # type: ignore[method-assign]

        # the library crossover (the default) scores candidates in the item search instead
        from visfeed.tools.search.fitness import LogitStats

        class_fitness = LogitStats.fitness

        def patched_fitness(self: LogitStats, *args: Any, **kwargs: Any) -> Any:
            if armed["on"]:
                armed["count"] += 1
                if armed["count"] >= 2:
                    _die()
            return class_fitness(self, *args, **kwargs)

        LogitStats.fitness = patched_fitness  # type: ignore[method-assign]

    if kind == "checkpoint":
        aput = AsyncSqliteSaver.aput
        commit = Connection.commit

        async def patched_aput(self: AsyncSqliteSaver, *args: Any, **kwargs: Any) -> Any:
            armed["in_put"] = armed["on"]
            return await aput(self, *args, **kwargs)

        async def patched_commit(self: Connection) -> None:
            if armed["in_put"]:
                _die()
            await commit(self)

        AsyncSqliteSaver.aput = patched_aput  # type: ignore[method-assign]
        Connection.commit = patched_commit  # type: ignore[method-assign]


def make(**kwargs: Any) -> ScriptedChat:
    """Provider factory; arms ``$VISFEED_TEST_KILL_AT`` when set."""
    spec = os.environ.get(KILL_ENV)
    if spec:
        install(spec)
    return scripted_make(**kwargs)
