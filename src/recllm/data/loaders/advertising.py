"""The synthetic "advertising" ad-click table (``advertising.csv``, 1,000 rows): one impression per row.

Each row becomes one interaction: user ``row-<n>`` (``n`` = 0-based data row) saw ad ``ad-<k>`` (``k`` numbers
the distinct ``Ad Topic Line`` values in order of first appearance) at ``Timestamp``; ``label`` is
``Clicked on Ad``. The row's person features form the users frame, the ad text the items frame. The file
has no confirmed upstream, so it is never downloaded: the user places it. Every row is its own user, so no
two interactions can be duplicates; times before 1970, empty ids and cut lines are errors naming the line.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from recllm.data.dataset import ITEM, LABEL, TIME, USER, RecDataset, Schema
from recllm.data.loaders.base import DatasetLoader, SourceFile
from recllm.data.loaders.readers import (
    check_interactions,
    check_nonempty,
    check_values,
    frame_lines,
    parse_times,
    read_table,
    to_numeric,
)

COLUMNS = {  # publisher column -> snake_case user feature
    "Daily Time Spent on Site": "daily_time_spent",
    "Age": "age",
    "Area Income": "area_income",
    "Daily Internet Usage": "daily_internet_usage",
}
HEADER = [*COLUMNS, "Ad Topic Line", "City", "Male", "Country", "Timestamp", "Clicked on Ad"]


def parse(folder: Path) -> RecDataset:
    """Parse advertising.csv; altered copies (renamed columns, re-formatted times) are refused with the reason."""
    path = folder / "advertising.csv"
    raw = read_table(path, ",", HEADER, header=True)
    for col in ("Ad Topic Line", "City", "Country"):
        check_nonempty(raw, col, path)
    for col in ("Male", "Clicked on Ad"):
        check_values(raw, col, path, {"0", "1"})
    users = pd.DataFrame({USER: [f"row-{n}" for n in range(len(raw))]})
    for source, column in COLUMNS.items():
        users[column] = to_numeric(raw, source, path, "int" if source == "Age" else "float")
    users["male"] = raw["Male"].astype(int)
    users["city"] = raw["City"].str.strip()
    users["country"] = raw["Country"].str.strip()
    topics = raw["Ad Topic Line"].str.strip()
    distinct = pd.unique(topics)
    item_of = {topic: f"ad-{k}" for k, topic in enumerate(distinct)}
    items = pd.DataFrame({ITEM: [item_of[t] for t in distinct], "ad_topic_line": distinct})
    interactions = pd.DataFrame({
        USER: users[USER],
        ITEM: topics.map(item_of),
        TIME: parse_times(raw, "Timestamp", path, "%Y-%m-%d %H:%M:%S"),
        LABEL: raw["Clicked on Ad"].astype(int),
    })
    schema = Schema(
        has_label=True,
        item_text=("ad_topic_line",),
        user_categorical=("male", "city", "country"),
        user_numeric=tuple(COLUMNS.values()),
    )
    names = {ITEM: "Ad Topic Line", TIME: "Timestamp", LABEL: "Clicked on Ad"}
    checked = check_interactions(interactions, path, frame_lines(raw), names=names)
    info = {**checked, "rows": len(raw), "distinct_ad_topic_lines": len(distinct)}
    return RecDataset("advertising", interactions, items, users, schema, source=str(folder), info=info)


LOADER = DatasetLoader(
    name="advertising",
    files=(SourceFile("advertising.csv", "00f638aa4103ebf52935d3a62a60328100cc02a8111ca2b4769b4b3596f498f9"),),
    parse=parse,
    version=2,
    base_url=None,
    manual_hint=(
        "no confirmed upstream URL exists for this synthetic teaching data set (it circulates in course material "
        "and on Kaggle, e.g. kaggle.com/datasets/gabrielsantello/advertisement-click-on-ad); download "
        "advertising.csv yourself and check that its sha256 is "
        "00f638aa4103ebf52935d3a62a60328100cc02a8111ca2b4769b4b3596f498f9"
    ),
    mismatch_hint="Many copies online are altered (labels flipped, times rewritten by spreadsheets); prefer a copy "
    "with the known sha256.",
)
