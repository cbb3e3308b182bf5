"""The concept-tree graph: the LLM decomposes a domain into parts, attributes and per-class values."""

from visfeed.agents.concepts.run import TREE_FILE, TreeBuild, build_tree

__all__ = ["TREE_FILE", "TreeBuild", "build_tree"]
