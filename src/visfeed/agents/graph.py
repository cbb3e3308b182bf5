"""The optimization graph (wiring only): initialize -> feedback -> [mutate -> filter -> crossover -> memory]*.

``build_graph()`` returns the compiled graph; the runner passes the SQLite checkpointer, ``langgraph dev``
loads the module-level ``graph`` (see ``langgraph.json``). Nodes need a :class:`RunContext` at run time
(``context=`` of ``ainvoke``).
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.types import Checkpointer

from visfeed.agents.context import RunContext
from visfeed.agents.nodes.crossover import crossover
from visfeed.agents.nodes.feedback import feedback
from visfeed.agents.nodes.filtering import filter_similar
from visfeed.agents.nodes.initialize import initialize
from visfeed.agents.nodes.memory import update_memory
from visfeed.agents.nodes.mutate import mutate
from visfeed.agents.nodes.routing import route_after_feedback, route_after_mutate
from visfeed.state.models import GraphState


def build_graph(checkpointer: Checkpointer = None) -> Any:
    """Compile the optimization state machine (with ``checkpointer`` when given)."""
    builder: Any = StateGraph(GraphState, context_schema=RunContext)  # nodes are wrapped by @traced
    builder.add_node(initialize)
    builder.add_node(feedback)
    builder.add_node(mutate)
    builder.add_node(filter_similar)
    builder.add_node(crossover)
    builder.add_node(update_memory)
    builder.add_edge(START, "initialize")
    builder.add_edge("initialize", "feedback")
    builder.add_conditional_edges("feedback", route_after_feedback, {"mutate": "mutate", "__end__": END})
    builder.add_conditional_edges("mutate", route_after_mutate, {"filter_similar": "filter_similar", "__end__": END})
    builder.add_edge("filter_similar", "crossover")
    builder.add_edge("crossover", "update_memory")
    builder.add_edge("update_memory", "feedback")
    return builder.compile(checkpointer=checkpointer, name="visfeed")


graph = build_graph()
