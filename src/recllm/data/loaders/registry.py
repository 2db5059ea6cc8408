"""The explicit registry of data sets: name -> DatasetLoader, plus ``load``, ``prepare`` and ``get_loader``."""

from __future__ import annotations

from pathlib import Path

from recllm.data.dataset import RecDataset
from recllm.data.loaders import advertising, amazon2018, mind, movielens_1m, movielens_100k, movielens_latest_small
from recllm.data.loaders.base import DatasetLoader

DATASETS: dict[str, DatasetLoader] = {
    "ml-100k": movielens_100k.LOADER,
    "ml-latest-small": movielens_latest_small.LOADER,
    "ml-1m": movielens_1m.LOADER,
    "advertising": advertising.LOADER,
    "mind": mind.LOADER,
    "mind-small-train-sample-unofficial": mind.SAMPLE_LOADER,
    # every category of the Amazon 2018 release; get_loader also accepts categories not in this list
    **{amazon2018.PREFIX + amazon2018.slug(c): amazon2018.make_loader(amazon2018.slug(c)) for c in amazon2018.CATEGORIES},
}


def get_loader(name: str) -> DatasetLoader:
    """The loader registered under ``name``; ``amazon2018-<category>`` works for any category."""
    if name in DATASETS:
        return DATASETS[name]
    if name.startswith(amazon2018.PREFIX) and len(name) > len(amazon2018.PREFIX):
        return amazon2018.make_loader(name[len(amazon2018.PREFIX):])
    known = ", ".join(n for n in DATASETS if not n.startswith(amazon2018.PREFIX))
    raise KeyError(f"unknown data set {name!r}; known: {known}, and amazon2018-<category> "
                   f"(e.g. amazon2018-magazine-subscriptions)")


def load(
    name: str,
    root: str | Path | None = None,
    download: bool = True,
    base_url: str | None = None,
    verify: str = "warn",
    use_cache: bool = True,
    show_progress: bool = True,
) -> RecDataset:
    """Load data set ``name`` from ``root`` (the folder holding its files; default ``$RECLLM_DATA/<name>``).

    Missing files are downloaded from the publisher (``base_url`` or ``$RECLLM_DATA_URL`` replace the
    publisher's server); ``verify="warn"`` warns when a file's sha256 differs from the publisher's, "strict"
    raises. The parse is cached as parquet, keyed by the files' sha256, so a second load is fast.
    """
    return get_loader(name)(root, download=download, base_url=base_url, verify=verify, use_cache=use_cache,
                            show_progress=show_progress)


def prepare(
    name: str, root: str | Path | None = None, base_url: str | None = None, show_progress: bool = True
) -> RecDataset:
    """Download if missing, verify sha256 strictly (a mismatch with a published hash is an error), parse and cache."""
    return get_loader(name)(root, download=True, base_url=base_url, verify="strict", show_progress=show_progress)
