"""The run's checkpoint database: its serializer, its size, and dropping the history of a finished run.

Checkpoints store what changed (see :mod:`visfeed.state.models`): the fields that grow with the number of
classes are LangGraph ``DeltaChannel``s, kept as the writes of the nodes that changed them and rebuilt by
replaying those writes. A finished run needs none of that history to be read again (its result and
descriptions are files of their own); ``keep_last`` rewrites the database as one checkpoint that holds
the final state in full, so LangGraph tools (``langgraph dev``, ``get_state``) still see the end state.
"""

from __future__ import annotations

import asyncio
import sqlite3
import zlib
from pathlib import Path
from typing import Any, Literal

import aiosqlite
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from visfeed.agents.graph import build_graph
from visfeed.errors import ConfigError
from visfeed.state.rundir import CHECKPOINTS, checkpoint_bytes

THREAD: Any = {"configurable": {"thread_id": "run"}}
KeepCheckpoints = Literal["all", "last"]
_ZLIB = "+zlib"
_STATE_TYPES = (
    "Objective",
    "BankEntry",
    "MemoryBank",
    "Candidate",
    "LibraryItem",
    "ClassChange",
    "LineageEntry",
    "IterationRecord",
    "Usage",
    "GraphState",
)


class CompressedSerializer(JsonPlusSerializer):
    """LangGraph's serializer, with every blob zlib-compressed (type tag ``<type>+zlib``).

    State blobs are texts and repeated field names (descriptions, lineage entries, bank entries), which
    compress about 3-4 times; compressing costs milliseconds per node. Blobs written without the tag
    (older run directories) still load.
    """

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        """Serialize, then compress."""
        type_, data = super().dumps_typed(obj)
        return f"{type_}{_ZLIB}", zlib.compress(data, 1)

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        """Decompress when tagged, then deserialize."""
        type_, blob = data
        if type_.endswith(_ZLIB):
            return super().loads_typed((type_.removesuffix(_ZLIB), zlib.decompress(blob)))
        return super().loads_typed(data)


def checkpoint_serde() -> JsonPlusSerializer:
    """Serializer that may restore visfeed's own state models (and nothing else unexpected)."""
    return CompressedSerializer(allowed_msgpack_modules=[("visfeed.state.models", t) for t in _STATE_TYPES])


async def _keep_last(path: Path) -> None:
    async with aiosqlite.connect(str(path)) as conn:
        saver = AsyncSqliteSaver(conn, serde=checkpoint_serde())
        graph = build_graph(checkpointer=saver)
        snap = await graph.aget_state(THREAD)
        tup = await saver.aget_tuple(THREAD)
        if tup is None or snap.tasks or tup.pending_writes:
            raise ConfigError(f"{path.parent}: the run is not finished; finish it with `visfeed resume` first")
        # Every channel's value in the one checkpoint left: a DeltaChannel restored from a stored value
        # needs none of the writes it would otherwise replay.
        checkpoint = {**tup.checkpoint, "channel_values": {**tup.checkpoint["channel_values"], **snap.values}}
        metadata = {k: v for k, v in tup.metadata.items() if k != "counters_since_delta_snapshot"}
        await saver.adelete_thread(THREAD["configurable"]["thread_id"])
        await saver.aput({"configurable": {"thread_id": "run", "checkpoint_ns": ""}}, checkpoint, metadata, {})  # type: ignore[arg-type]


def keep_checkpoints(run_dir: Path, keep: KeepCheckpoints) -> tuple[int, int]:
    """Apply ``keep`` to a finished run's checkpoints; returns the database's bytes before and after.

    ``all`` keeps every checkpoint (time travel in ``langgraph dev``); ``last`` keeps only the final state.
    """
    path = Path(run_dir) / CHECKPOINTS
    before = checkpoint_bytes(run_dir)
    if keep == "all" or not path.exists():
        return before, before
    asyncio.run(_keep_last(path))
    con = sqlite3.connect(path)
    try:
        con.execute("VACUUM")  # deleted rows leave free pages; give them back to the file system
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()
    return before, checkpoint_bytes(run_dir)
