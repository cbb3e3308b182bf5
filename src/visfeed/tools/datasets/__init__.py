"""Dataset sources: every source produces :class:`~visfeed.tools.datasets.base.DatasetSplits`.

Entry points: :func:`load_dataset` (name + root -> few-shot splits), :func:`load_dataset_with_report`
(also returns what was skipped and where each split came from), :func:`load_for_config` (the dataset a
run config names, split as its runs split it) and :func:`list_datasets` (names and the
expected on-disk layouts).
"""

from visfeed.tools.datasets.base import DatasetSplits, Split
from visfeed.tools.datasets.catalog import DatasetInfo
from visfeed.tools.datasets.protocol import LoadReport, SkippedFile
from visfeed.tools.datasets.registry import (
    LoadedDataset,
    canonical_name,
    list_datasets,
    load_dataset,
    load_dataset_with_report,
    load_for_config,
)
from visfeed.tools.datasets.stanford_dogs import StanfordDogsOptions
from visfeed.tools.datasets.world import WorldOptions

__all__ = [
    "DatasetInfo",
    "DatasetSplits",
    "LoadReport",
    "LoadedDataset",
    "SkippedFile",
    "Split",
    "StanfordDogsOptions",
    "WorldOptions",
    "canonical_name",
    "list_datasets",
    "load_dataset",
    "load_dataset_with_report",
    "load_for_config",
]
