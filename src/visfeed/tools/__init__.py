"""The tools the agents call, one package per stage of the method (tests/test_layers.py holds the order).

``llm``, ``datasets``, ``world`` (the embedded test bed) and ``embedding`` feed ``scoring``; scores become
the LLM's ``feedback``; ``search`` picks each class's descriptions from its library; ``image_side`` and
``concepts`` are the field's two other ways of using LLMs for classification. ``doctor`` checks them all.
"""
