"""Features of the concept classifiers: the similarity of each image to each clue or description.

A :class:`FeatureSpace` names the columns (the texts the VLM scores) and says where each comes from: a tree
clue (its part and attribute) or a description (the class it was written for). Texts are embedded through
the backbone's text cache and images are taken from the splits the data loader already embedded, so
nothing is embedded twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from visfeed.errors import ConfigError
from visfeed.state.concepts import ConceptTree
from visfeed.tools.scoring.measures import similarity_matrix
from visfeed.tools.scoring.session import TextEncoder

FeatureSource = Literal["tree", "descriptions", "both"]
DESCRIPTION_ATTRIBUTE = "description"


@dataclass(frozen=True)
class FeatureSpace:
    """Column metadata: text (the feature name), group (part path or 'descriptions/<class>'), attribute."""

    texts: tuple[str, ...]
    groups: tuple[str, ...]
    attributes: tuple[str, ...]
    values: tuple[str, ...]
    classes: tuple[tuple[str, ...], ...]

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, keep: Sequence[int]) -> FeatureSpace:
        """The columns at ``keep`` (in that order)."""
        return FeatureSpace(*(tuple(getattr(self, f)[i] for i in keep) for f in _FIELDS))

    def frame(self, features: np.ndarray) -> pd.DataFrame:
        """Features as a DataFrame whose columns are the texts (scikit-learn's ``feature_names_in_``)."""
        return pd.DataFrame(features, columns=list(self.texts))


_FIELDS = ("texts", "groups", "attributes", "values", "classes")


def tree_space(tree: ConceptTree) -> FeatureSpace:
    """One column per clue of the tree."""
    clues = tree.clues()
    return FeatureSpace(
        texts=tuple(c.text for c in clues),
        groups=tuple(c.part for c in clues),
        attributes=tuple(c.attribute for c in clues),
        values=tuple(c.value for c in clues),
        classes=tuple(c.classes for c in clues),
    )


def description_space(prompts: Mapping[str, Sequence[str]]) -> FeatureSpace:
    """One column per distinct description sentence (a CuPL file or a run's descriptions), in class order."""
    owners: dict[str, list[str]] = {}
    for cls, texts in prompts.items():
        for t in texts:
            owners.setdefault(t, []).append(cls)
    return FeatureSpace(
        texts=tuple(owners),
        groups=tuple(f"descriptions/{cs[0]}" for cs in owners.values()),
        attributes=(DESCRIPTION_ATTRIBUTE,) * len(owners),
        values=tuple(owners),
        classes=tuple(tuple(cs) for cs in owners.values()),
    )


def combine(*spaces: FeatureSpace) -> FeatureSpace:
    """Columns of several spaces; a text already present is not added twice."""
    seen: set[str] = set()
    keep: list[tuple[FeatureSpace, int]] = []
    for space in spaces:
        for i, t in enumerate(space.texts):
            if t not in seen:
                seen.add(t)
                keep.append((space, i))
    return FeatureSpace(*(tuple(getattr(s, f)[i] for s, i in keep) for f in _FIELDS))


def select_space(
    source: FeatureSource, tree: ConceptTree | None, prompts: Mapping[str, Sequence[str]] | None
) -> FeatureSpace:
    """The feature space of a source; errors say which input the source needs."""
    spaces: list[FeatureSpace] = []
    if source in ("tree", "both"):
        if tree is None:
            raise ConfigError(f"feature source {source!r} needs a concept tree (--tree)")
        spaces.append(tree_space(tree))
    if source in ("descriptions", "both"):
        if prompts is None:
            raise ConfigError(f"feature source {source!r} needs a description file (--descriptions)")
        spaces.append(description_space(prompts))
    return combine(*spaces)


def clue_features(
    encoder: TextEncoder, space: FeatureSpace, image_emb: np.ndarray, *, scale: float, device: str = "auto"
) -> np.ndarray:
    """(N, F) similarities, times the backbone's logit scale (as Hi-CoDe), of images to the space's texts."""
    if not len(space):
        raise ConfigError("the feature space is empty: the tree has no values and no descriptions were given")
    return similarity_matrix(image_emb, encoder.embed_texts(list(space.texts)), scale=scale, device=device)
