"""The data files behind a data set, for the sha256 lines of report headers and the data identity of stored runs."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def data_files(names: Iterable[str]) -> list[Path]:
    """The files each data set's loader reads (its declared ``files``, under ``recllm.data.data_root``), in the
    loader's order; files that are not present, and data sets that are not (or have no loader: data built in code),
    contribute nothing."""
    from recllm.data.loaders import data_root, get_loader

    files: list[Path] = []
    for name in names:
        try:
            declared = get_loader(name).files
        except KeyError:
            continue
        root = Path(data_root(name))
        files += [root / f.name for f in declared if (root / f.name).is_file()]
    return files
