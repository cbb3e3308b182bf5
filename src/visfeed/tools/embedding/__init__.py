"""Embedding: vision-language backbones (open_clip and the built-in one), their caches and shards, the embedding job."""
