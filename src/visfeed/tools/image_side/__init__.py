"""The image side: a multimodal LLM's answers about a picture, fused with the picture's embedding."""
