"""Data layer: RecDataset, loaders, splits, missingness injection, RecBole atomic files."""

from recllm.data.dataset import ITEM, LABEL, RATING, TIME, USER, DataError, RecDataset, Schema
from recllm.data.split import EvalCases, Split, cold_start_split, leave_one_out, make_split, temporal_split

__all__ = [
    "ITEM", "LABEL", "RATING", "TIME", "USER", "DataError", "EvalCases", "RecDataset", "Schema", "Split",
    "cold_start_split", "leave_one_out", "make_split", "temporal_split",
]
