"""Feedback signals: what the scorer tells the LLM besides the scores, one module per signal.

The seam is :mod:`.signal` (the hooks a signal implements and when the host calls them), the signals in
use are listed in :mod:`.registry`, and :mod:`.render` is the host side every caller shares.
"""
