"""Graph nodes, one module per concern; ``graph.py`` wires them."""
