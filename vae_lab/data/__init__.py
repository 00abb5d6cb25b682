"""The data layer: load, check, clean, split and cache sparse voxel datasets.

`prepare_dataset(path)` is the one call training needs; the pieces are public for the CLI,
notebooks and tests.
"""

from vae_lab.data.clean import CleanReport, all_zero_rows, clean, duplicate_rows
from vae_lab.data.load import VoxelTable, load_voxels
from vae_lab.data.prepare import PreparedDataset, VoxelSplit, default_dataset, prepare_dataset
from vae_lab.data.reference import DataRef
from vae_lab.data.sparse import from_sparse, max_occupied, to_sparse
from vae_lab.data.split import split_indices, split_sizes
from vae_lab.data.summary import summarize
from vae_lab.data.synth import synthesize, write_dataset

__all__ = [
    "CleanReport",
    "DataRef",
    "PreparedDataset",
    "VoxelSplit",
    "VoxelTable",
    "all_zero_rows",
    "clean",
    "default_dataset",
    "duplicate_rows",
    "from_sparse",
    "load_voxels",
    "max_occupied",
    "prepare_dataset",
    "split_indices",
    "split_sizes",
    "summarize",
    "synthesize",
    "to_sparse",
    "write_dataset",
]
