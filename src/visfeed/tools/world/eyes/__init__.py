"""The embedded stand-in for a multimodal LLM: an attribute-naming image network and its chat model."""
