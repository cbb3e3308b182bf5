"""Pydantic models of a run: the validated config and the LangGraph state (texts and counters only)."""

from visfeed.state.config import RunConfig
from visfeed.state.models import (
    BankEntry,
    Candidate,
    ClassChange,
    Descriptions,
    GraphState,
    IterationRecord,
    LineageEntry,
    MemoryBank,
    Objective,
    Usage,
)
from visfeed.state.templates import DEFAULT_TEMPLATE

__all__ = [
    "DEFAULT_TEMPLATE",
    "BankEntry",
    "Candidate",
    "ClassChange",
    "Descriptions",
    "GraphState",
    "IterationRecord",
    "LineageEntry",
    "MemoryBank",
    "Objective",
    "RunConfig",
    "Usage",
]
