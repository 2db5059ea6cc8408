"""MIND (Microsoft News Dataset): ``news.tsv`` (items) and ``behaviors.tsv`` (impression logs).

Interactions come from two sources, marked in the ``source`` column:

- ``"impression"``: every news item shown in an impression, at the impression's time, ``label`` 1 when it was
  clicked and 0 when not; ``impression_id`` says which impression.
- ``"history"``: the clicks listed in a user's history. MIND gives them no time; they happened before the
  log period. They are emitted once per user, from the user's earliest impression (MIND repeats the same
  history in every impression of a user; users whose histories differ are counted in
  ``info["users_with_differing_histories"]``), with ``label`` 1 and synthetic timestamps: consecutive seconds
  ending one second before the user's earliest impression, so their order is kept and every history click
  precedes every impression of that user. ``impression_id`` is missing (NaN).

News ids referenced in behaviors but absent from ``news.tsv`` (96% of them in the shared unofficial sample)
are kept in the catalogue with empty text and counted in ``info["referenced_news_missing"]``.
Times (``M/D/YYYY h:mm:ss AM/PM``) are read as UTC. Filter ``label == 1`` for click sequences.
A history that lists the same news twice (1,068 of the shared sample's histories do) gives two clicks at
different synthetic seconds, so they are not duplicates; exact duplicates (same user, news, time and label)
are kept and reported (see :func:`recllm.data.loaders.readers.check_interactions`).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from recllm.data.dataset import ITEM, LABEL, TIME, USER, DataError, RecDataset, Schema, ids_in
from recllm.data.loaders.base import DatasetLoader, SourceFile
from recllm.data.loaders.readers import (
    REDOWNLOAD,
    check_interactions,
    check_nonempty,
    check_unique,
    frame_lines,
    parse_times,
    read_table,
)

NEWS_FIELDS = ["news_id", "category", "subcategory", "title", "abstract", "url", "title_entities", "abstract_entities"]
BEHAVIOR_FIELDS = ["impression_id", USER, "time", "history", "impressions"]
TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"


def _impressions(behaviors: pd.DataFrame, path: Path, times: np.ndarray) -> pd.DataFrame:
    tokens = behaviors["impressions"].str.split()
    counts = tokens.str.len().to_numpy()
    lines = frame_lines(behaviors)
    if (counts == 0).any():
        row = int(np.flatnonzero(counts == 0)[0])
        raise DataError(f"{path}: column 'impressions', line {lines[row]} is empty; every impression shows at least "
                        f"one news item as NewsID-label; {REDOWNLOAD}")
    flat = pd.Series(np.concatenate(tokens.to_numpy()), dtype=object)
    parts = flat.str.rsplit("-", n=1, expand=True)
    ok = (parts.shape[1] == 2) and ids_in(parts[1], pd.Index(["0", "1"])).all() and (parts[0].str.len() > 0).all()
    if not ok:
        bad = ~flat.str.fullmatch(r".+-[01]")
        row = int(np.repeat(np.arange(len(behaviors)), counts)[np.flatnonzero(bad.to_numpy())[0]])
        raise DataError(f"{path}: column 'impressions', line {lines[row]}: {flat[bad].iloc[0]!r} is not NewsID-label "
                        f"with label 0 or 1; {REDOWNLOAD}")
    rows = np.repeat(np.arange(len(behaviors)), counts)
    return pd.DataFrame({
        USER: behaviors[USER].to_numpy()[rows],
        ITEM: parts[0].to_numpy(),
        TIME: times[rows],
        LABEL: parts[1].astype(np.int64).to_numpy(),
        "impression_id": behaviors["impression_id"].to_numpy()[rows],
        "source": "impression",
        "_line": lines[rows],
    })


def _histories(behaviors: pd.DataFrame, times: np.ndarray) -> tuple[pd.DataFrame, int]:
    order = np.lexsort((np.arange(len(behaviors)), times))  # earliest impression first, ties in file order
    ordered = behaviors.iloc[order]
    first = ordered.drop_duplicates(USER)
    differing = int((ordered.groupby(USER, sort=False)["history"].nunique() > 1).sum())
    tokens = first["history"].str.split()
    counts = tokens.str.len().to_numpy()
    if counts.sum() == 0:
        return pd.DataFrame(columns=[USER, ITEM, TIME, LABEL, "impression_id", "source", "_line"]), differing
    rows = np.repeat(np.arange(len(first)), counts)
    # position from the end within each history: the last click gets start - 1, the one before start - 2, ...
    ends = np.cumsum(counts)
    from_end = ends[rows] - np.arange(counts.sum())
    starts = times[order][~ordered[USER].duplicated().to_numpy()]
    return pd.DataFrame({
        USER: first[USER].to_numpy()[rows],
        ITEM: np.concatenate([t for t in tokens.to_numpy() if t]),
        TIME: (starts[rows] - from_end).astype(np.int64),
        LABEL: np.ones(len(rows), dtype=np.int64),
        "impression_id": np.nan,
        "source": "history",
        "_line": frame_lines(behaviors)[order][~ordered[USER].duplicated().to_numpy()][rows],
    }), differing


def parse_files(name: str, folder: Path) -> RecDataset:
    """news.tsv + behaviors.tsv -> RecDataset (see the module docstring for how interactions are built)."""
    news_path, beh_path = folder / "news.tsv", folder / "behaviors.tsv"
    news = read_table(news_path, "\t", NEWS_FIELDS, quoting=csv.QUOTE_NONE)
    behaviors = read_table(beh_path, "\t", BEHAVIOR_FIELDS, quoting=csv.QUOTE_NONE)
    check_nonempty(news, "news_id", news_path)
    check_unique(news, "news_id", news_path)
    for col in ("impression_id", USER):
        check_nonempty(behaviors, col, beh_path)
    check_unique(behaviors, "impression_id", beh_path)
    times = parse_times(behaviors, "time", beh_path, TIME_FORMAT).to_numpy()
    history, differing = _histories(behaviors, times)
    shown = _impressions(behaviors, beh_path, times)
    interactions = pd.concat([history, shown], ignore_index=True)
    interactions[TIME] = interactions[TIME].astype(np.int64)
    interactions[LABEL] = interactions[LABEL].astype(np.int64)
    interactions["impression_id"] = interactions["impression_id"].astype("str")  # NaN for history rows stays NaN
    checked = check_interactions(interactions, beh_path, interactions.pop("_line").to_numpy(), names={TIME: "time"})

    items = pd.DataFrame({
        ITEM: news["news_id"].str.strip(),
        "category": news["category"].str.strip(),
        "subcategory": news["subcategory"].str.strip(),
        "title": news["title"].str.strip(),
        "abstract": news["abstract"].str.strip(),
    })
    referenced = pd.unique(interactions[ITEM])
    absent = referenced[~ids_in(referenced, items[ITEM])]
    if len(absent):
        filler = pd.DataFrame({ITEM: absent, "category": np.nan, "subcategory": np.nan, "title": "", "abstract": ""})
        items = pd.concat([items, filler], ignore_index=True)
    users = pd.DataFrame({USER: pd.unique(behaviors[USER])})
    info = {
        **checked,
        "news_rows": len(news),
        "impression_rows": len(behaviors),
        "impressions_shown": int((interactions["source"] == "impression").sum()),
        "impressions_clicked": int(shown[LABEL].sum()),
        "history_clicks": len(history),
        "referenced_news": len(referenced),
        "referenced_news_missing": int(len(absent)),
        "users_with_differing_histories": differing,
        "history_timestamps": "synthetic: consecutive seconds ending 1 s before the user's earliest impression",
    }
    schema = Schema(
        has_label=True,
        item_text=("title", "abstract", "category", "subcategory"),
        item_categorical=("category", "subcategory"),
    )
    return RecDataset(name, interactions, items, users, schema, source=str(folder), info=info)


def _parse_mind(folder: Path) -> RecDataset:
    return parse_files("mind", folder)


def _parse_sample(folder: Path) -> RecDataset:
    return parse_files("mind-small-train-sample-unofficial", folder)


LOADER = DatasetLoader(
    name="mind",
    # The official MINDsmall training archive; no sha256 is published, the observed one is recorded on download.
    files=(SourceFile("news.tsv", None, "news.tsv"), SourceFile("behaviors.tsv", None, "behaviors.tsv")),
    parse=_parse_mind,
    version=3,
    base_url="https://mind201910small.blob.core.windows.net/release/",
    archive="MINDsmall_train.zip",
    homepage="https://msnews.github.io/",
)

SAMPLE_LOADER = DatasetLoader(
    name="mind-small-train-sample-unofficial",
    files=(
        SourceFile("news.tsv", "317a322c7b70518fb91ca08d937d1ec77a8b12fb9e28db5fc90374af16b354bf"),
        SourceFile("behaviors.tsv", "2a101e15ce197ba488abffb91d337bd069823011838de14dacc46a26c91484a5"),
    ),
    parse=_parse_sample,
    version=3,
    base_url=None,
    manual_hint=(
        "this is a third party's random sample of MINDsmall_train, not a Microsoft release, so it cannot be "
        "downloaded; use the data set 'mind' for the official MINDsmall training files"
    ),
)
