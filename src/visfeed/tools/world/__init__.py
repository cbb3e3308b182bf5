"""The embedded test bed: the market world's spec, rendering, splits, captions, trained towers, gates and ceiling."""
