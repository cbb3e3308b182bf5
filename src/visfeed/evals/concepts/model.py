"""A fitted concept classifier saved for ``visfeed concepts explain``: the estimator and what it needs.

Saved with joblib (scikit-learn's own persistence), so a model file is a pickle: load only files you made.
The bundle keeps the feature space (clue texts, parts, attributes), the class names, the logit scale and a
sample of training features (SHAP's background), so explaining new images needs only the backbone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import pandas as pd

from visfeed.errors import ConfigError
from visfeed.fileio import write_atomic
from visfeed.tools.concepts.features import FeatureSpace

MODEL_FILE = "model.joblib"
BACKGROUND_ROWS = 200


@dataclass
class ConceptModel:
    """A fitted estimator over ``space``'s columns, with the facts needed to score and explain new images."""

    model: Any
    space: FeatureSpace
    classnames: list[str]
    scale: float
    background: pd.DataFrame
    classifier: str
    source: str

    def save(self, folder: Path) -> Path:
        """Write ``folder/model.joblib`` atomically."""
        background = self.background.iloc[:BACKGROUND_ROWS]
        bundle = {**vars(self), "background": background, "format": 1}
        return write_atomic(Path(folder) / MODEL_FILE, lambda f: joblib.dump(bundle, f))

    @classmethod
    def load(cls, folder: Path) -> ConceptModel:
        """Read a bundle written by :meth:`save`; errors name the file."""
        path = Path(folder) / MODEL_FILE
        if not path.is_file():
            raise ConfigError(
                f"{folder} holds no fitted concept model ({MODEL_FILE}); run `visfeed concepts fit` first"
            )
        try:
            bundle = joblib.load(path)
        except Exception as exc:  # any unpickling failure is a bad file
            raise ConfigError(f"{path} is not a readable concept model: {exc}") from exc
        if not isinstance(bundle, dict) or bundle.get("format") != 1:
            raise ConfigError(f"{path} is not a concept model written by this version of visfeed")
        bundle.pop("format")
        return cls(**bundle)
