"""Feedback: what the scores become for the LLM (text, visual words, agent tools) and the baselines beside it."""
