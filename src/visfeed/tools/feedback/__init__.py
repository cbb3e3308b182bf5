"""Feedback: what the scores become for the LLM, and the baselines every report carries beside it.

The feedback signals (what the scorer tells the LLM besides the scores) share one seam: :mod:`.signal`
(the hooks a signal implements and when the host calls them), the signals in use are listed in
:mod:`.registry`, one module per signal, and :mod:`.render` is the host side every caller shares.
"""
