"""The concept-tree graph (wiring only): parts [-> sub-parts]* -> attributes -> values -> grounded values -> tree.

``build_graph()`` returns the compiled graph (the runner passes the SQLite checkpointer); ``langgraph dev``
loads the module-level ``graph`` (see ``langgraph.json``). Nodes need a :class:`ConceptContext` at run time.
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.types import Checkpointer

from visfeed.agents.concepts.context import ConceptContext
from visfeed.agents.concepts.nodes import (
    assemble_tree,
    ground_values,
    propose_attributes,
    propose_parts,
    propose_values,
    route_after_parts,
)
from visfeed.state.concepts import ConceptState


def build_graph(checkpointer: Checkpointer = None) -> Any:
    """Compile the tree-building state machine (with ``checkpointer`` when given)."""
    builder: Any = StateGraph(ConceptState, context_schema=ConceptContext)
    builder.add_node(propose_parts)
    builder.add_node(propose_attributes)
    builder.add_node(propose_values)
    builder.add_node(ground_values)
    builder.add_node(assemble_tree)
    builder.add_edge(START, "propose_parts")
    builder.add_conditional_edges(
        "propose_parts",
        route_after_parts,
        {"propose_parts": "propose_parts", "propose_attributes": "propose_attributes"},
    )
    builder.add_edge("propose_attributes", "propose_values")
    builder.add_edge("propose_values", "ground_values")
    builder.add_edge("ground_values", "assemble_tree")
    builder.add_edge("assemble_tree", END)
    return builder.compile(checkpointer=checkpointer, name="visfeed-concepts")


graph = build_graph()
