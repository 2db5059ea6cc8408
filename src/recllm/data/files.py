"""The data files behind a data set, for the sha256 lines of report headers and the data identity of stored runs."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

# Not data: documentation, parquet caches, hidden files, ML-100K's ready-made folds (recllm makes its own splits).
_SKIPPED_SUFFIXES = (".md", ".parquet")
_SKIPPED_PREFIXES = (".", "u1.", "u2.", "u3.", "u4.", "u5.", "ua.", "ub.")


def data_files(names: Iterable[str]) -> list[Path]:
    """The files of each data set folder (``recllm.data.data_root``) a loader may read, sorted per data set; a
    data set that is not present contributes nothing."""
    from recllm.data.loaders import data_root

    files: list[Path] = []
    for name in names:
        root = Path(data_root(name))
        if root.is_dir():
            files += sorted(p for p in root.iterdir() if p.is_file() and p.suffix not in _SKIPPED_SUFFIXES
                            and not p.name.startswith(_SKIPPED_PREFIXES))
    return files
