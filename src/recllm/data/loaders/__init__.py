"""Data set loaders: one module per data set, an explicit registry, downloads with sha256 checks.

``load(name)`` reads ``$RECLLM_DATA/<name>`` (default ``~/.cache/recllm/data/<name>``), downloads missing files
from the publisher (or from ``$RECLLM_DATA_URL`` / ``base_url``), checks sha256 where the publisher's bytes are
known, and caches the parse as parquet under ``cache_dir("parsed", name)``.
"""

from recllm.data.loaders.base import DatasetLoader, SourceFile, data_home, data_root
from recllm.data.loaders.download import DataWarning
from recllm.data.loaders.registry import DATASETS, get_loader, load, prepare

__all__ = ["DATASETS", "DataWarning", "DatasetLoader", "SourceFile", "data_home", "data_root", "get_loader", "load",
           "prepare"]
