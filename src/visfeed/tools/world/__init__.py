"""The embedded test bed: the market world's spec, rendering, captions, trained towers and eyes, gates and ceiling.

Its rendered splits are a dataset like any other: :mod:`visfeed.tools.datasets.world`.
"""
