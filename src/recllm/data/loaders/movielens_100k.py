"""MovieLens 100K (GroupLens): ``u.data`` ratings, ``u.item`` movies (latin-1), ``u.user`` demographics.

Ratings are whole stars 1-5 (the publisher's README); a rating off that scale, a negative timestamp, an empty id
or a cut line is an error naming the file and line. Exact duplicate rows are kept and reported (see
:func:`recllm.data.loaders.readers.check_interactions`).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from recllm.data.dataset import ITEM, RATING, TIME, USER, RecDataset, Schema
from recllm.data.loaders.base import DatasetLoader, SourceFile
from recllm.data.loaders.readers import (
    Scale,
    check_interactions,
    check_known,
    check_nonempty,
    check_unique,
    check_values,
    frame_lines,
    row_error,
    read_table,
    to_numeric,
)

STARS = Scale(1, 5, 1)  # MovieLens 100K and 1M: whole stars, 1 to 5

# The 19 genre flags of u.item in order, as listed by the publisher's u.genre (ids 0..18).
GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)
ITEM_FIELDS = ["movie_id", "title", "release_date", "video_release_date", "imdb_url", *GENRES]


def genres_from_flags(frame: pd.DataFrame, path: Path, genres: tuple[str, ...] = GENRES) -> pd.Series:
    """Join the names of the set 0/1 genre flags with ``|`` (``"Action|Comedy"``); no flag set gives ``""``."""
    for g in genres:
        check_values(frame, g, path, {"0", "1"})
    flags = frame[list(genres)].to_numpy() == "1"
    names = np.asarray(genres, dtype=object)
    return pd.Series(["|".join(names[row]) for row in flags], index=frame.index, dtype=object)


def parse(folder: Path) -> RecDataset:
    """Parse the three publisher files; ``year`` comes from the release date (NaN where it is empty)."""
    data_path, item_path, user_path = folder / "u.data", folder / "u.item", folder / "u.user"
    raw = read_table(data_path, "\t", [USER, ITEM, RATING, TIME], quoting=csv.QUOTE_NONE)
    items_raw = read_table(item_path, "|", ITEM_FIELDS, encoding="latin-1", quoting=csv.QUOTE_NONE)
    users_raw = read_table(user_path, "|", [USER, "age", "gender", "occupation", "zip_code"], quoting=csv.QUOTE_NONE)

    for frame, col, path in ((items_raw, "movie_id", item_path), (users_raw, USER, user_path)):
        check_nonempty(frame, col, path)
        check_unique(frame, col, path)
    release = items_raw["release_date"].str.strip()
    dates = pd.to_datetime(release, format="%d-%b-%Y", errors="coerce")
    bad = dates.isna() & (release != "")
    if bad.any():
        raise row_error(item_path, items_raw, "release_date", bad, "is not a date like 01-Jan-1995")
    items = pd.DataFrame({
        ITEM: items_raw["movie_id"].str.strip(),
        "title": items_raw["title"].str.strip(),
        "genres": genres_from_flags(items_raw, item_path),
        "year": dates.dt.year.astype(np.float64),
    })
    users = pd.DataFrame({
        USER: users_raw[USER].str.strip(),
        "age": to_numeric(users_raw, "age", user_path, "int"),
        "gender": users_raw["gender"].str.strip(),
        "occupation": users_raw["occupation"].str.strip(),
        "zip_code": users_raw["zip_code"].str.strip(),
    })
    info = {"items_without_release_date": int(items["year"].isna().sum())}
    return movielens_dataset("ml-100k", raw, items, users, (data_path, item_path, user_path), folder, info)


def movielens_dataset(name: str, raw: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame,
                      paths: tuple[Path, Path, Path], folder: Path, info: dict) -> RecDataset:
    """The RecDataset shared by the MovieLens 100K and 1M loaders: checked ids, typed ratings, one schema.

    ``paths`` are the ratings, items and users files, named in errors.
    """
    ratings_path, item_path, user_path = paths
    raw[USER], raw[ITEM] = raw[USER].str.strip(), raw[ITEM].str.strip()
    for col in (USER, ITEM):
        check_nonempty(raw, col, ratings_path)
    interactions = pd.DataFrame({
        USER: raw[USER],
        ITEM: raw[ITEM],
        TIME: to_numeric(raw, TIME, ratings_path, "int"),
        RATING: to_numeric(raw, RATING, ratings_path, "float"),
    })
    info = {**info, **check_interactions(interactions, ratings_path, frame_lines(raw), STARS)}
    check_known(raw, ITEM, ratings_path, pd.Index(items[ITEM]), item_path)
    check_known(raw, USER, ratings_path, pd.Index(users[USER]), user_path)
    schema = Schema(
        has_rating=True,
        item_text=("title", "genres"),
        item_numeric=("year",),
        user_categorical=("gender", "occupation", "zip_code"),
        user_numeric=("age",),
    )
    return RecDataset(name, interactions, items, users, schema, source=str(folder), info=info)


LOADER = DatasetLoader(
    name="ml-100k",
    files=(
        SourceFile("u.data", "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490", "ml-100k/u.data"),
        SourceFile("u.item", "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701", "ml-100k/u.item"),
        SourceFile("u.user", "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c", "ml-100k/u.user"),
    ),
    parse=parse,
    version=2,
    base_url="https://files.grouplens.org/datasets/movielens/",
    archive="ml-100k.zip",
    homepage="https://grouplens.org/datasets/movielens/100k/",
)
