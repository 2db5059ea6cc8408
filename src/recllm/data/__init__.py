"""Data layer: RecDataset, loaders, splits, missingness injection, RecBole atomic files."""

from recllm.data.files import data_files
from recllm.data.dataset import ITEM, LABEL, RATING, TIME, USER, DataError, RecDataset, Schema
from recllm.data.folder import read_folder
from recllm.data.loaders import DATASETS, DataWarning, data_home, data_root, get_loader, load, prepare
from recllm.data.split import (EvalCases, Split, cold_start_split, leave_one_out, make_split,
                               random_item_cold_start_split, temporal_split)

__all__ = [
    "DATASETS", "ITEM", "LABEL", "RATING", "TIME", "USER", "DataError", "DataWarning", "EvalCases", "RecDataset",
    "Schema", "Split", "cold_start_split", "data_files", "data_home", "data_root", "get_loader", "leave_one_out", "load",
    "make_split", "prepare", "random_item_cold_start_split", "read_folder", "temporal_split",
]
