"""Evaluation: reports of runs and sweeps, the image side's and the concept trees' experiments, inspection."""
