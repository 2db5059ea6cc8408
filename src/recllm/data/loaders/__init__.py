"""Data set loaders: one module per data set, an explicit registry, downloads with sha256 checks."""

from recllm.data.loaders.base import DatasetLoader, SourceFile, data_home, data_root
from recllm.data.loaders.download import DataWarning
from recllm.data.loaders.registry import DATASETS, get_loader, load, prepare

__all__ = ["DATASETS", "DataWarning", "DatasetLoader", "SourceFile", "data_home", "data_root", "get_loader", "load",
           "prepare"]
