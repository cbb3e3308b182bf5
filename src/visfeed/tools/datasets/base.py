"""The one shape every dataset source hands to the optimizer: labelled image paths per split.

Images are referenced by path so that the embedding cache can key them by content hash and so that the
graph state stays small (it holds this model, never pixels or embeddings).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from visfeed.errors import DataError


class Split(BaseModel):
    """Image paths and their integer labels (indices into ``DatasetSplits.classnames``)."""

    model_config = ConfigDict(frozen=True)

    paths: list[str] = Field(description="Absolute image file paths.")
    labels: list[int] = Field(description="Class index of each path.")

    @model_validator(mode="after")
    def _same_length(self) -> Split:
        if len(self.paths) != len(self.labels):
            raise DataError(f"split has {len(self.paths)} paths but {len(self.labels)} labels")
        return self

    def __len__(self) -> int:
        return len(self.paths)


class DatasetSplits(BaseModel):
    """A dataset ready for optimization: class names plus feedback, validation and test splits.

    The feedback split is the few-shot set the optimizer selects on; the validation split may be used for
    early stopping; the test split is touched once, at the end of a run.
    """

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="Dataset name, for reports.")
    classnames: list[str] = Field(description="Readable class names, index = label.")
    feedback: Split
    validation: Split | None = None
    test: Split

    @model_validator(mode="after")
    def _check(self) -> DatasetSplits:
        names = [c.strip() for c in self.classnames]
        if not names:
            raise DataError(f"dataset {self.name!r} has no classes")
        if any(not c for c in names):
            raise DataError(f"dataset {self.name!r} has an empty class name")
        seen: set[str] = set()
        for c in names:
            if c.casefold() in seen:
                raise DataError(f"dataset {self.name!r} has the class name {c!r} twice")
            seen.add(c.casefold())
        n = len(names)
        for split_name in ("feedback", "validation", "test"):
            split = getattr(self, split_name)
            if split is None:
                continue
            bad = [label for label in split.labels if not 0 <= label < n]
            if bad:
                raise DataError(f"{split_name} split of {self.name!r} has label {bad[0]} outside 0..{n - 1}")
        return self
