"""The concept-tree graph: the LLM decomposes a domain into parts, attributes and per-class values."""

from visfeed.agents.concepts.run import BUILD_FILE, TREE_FILE, TreeBuild, build_tree

__all__ = ["BUILD_FILE", "TREE_FILE", "TreeBuild", "build_tree"]
