"""MovieLens 1M (GroupLens): ``ratings.dat``, ``users.dat``, ``movies.dat``; ``::``-separated, latin-1.

Same shape as ml-100k. Age and occupation are codes in ``users.dat``: ``age`` keeps the code, which is the
lower bound of the publisher's age bracket (1 = "under 18", 18 = "18-24", ..., 56 = "56+"); ``occupation`` is
mapped to the publisher's names. ``year`` comes from the ``(YYYY)`` at the end of the title (NaN without one).
Ratings are whole stars 1-5; the shared checks are those of ml-100k (``movielens_dataset``).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from recllm.data.dataset import ITEM, RATING, TIME, USER, RecDataset
from recllm.data.loaders.base import DatasetLoader, SourceFile
from recllm.data.loaders.movielens_100k import movielens_dataset
from recllm.data.loaders.readers import (
    check_nonempty,
    check_unique,
    check_values,
    read_table,
)

# Occupation codes 0..20 as listed in the publisher's README of ml-1m.
OCCUPATIONS = (
    "other", "academic/educator", "artist", "clerical/admin", "college/grad student", "customer service",
    "doctor/health care", "executive/managerial", "farmer", "homemaker", "K-12 student", "lawyer", "programmer",
    "retired", "sales/marketing", "scientist", "self-employed", "technician/engineer", "tradesman/craftsman",
    "unemployed", "writer",
)
AGE_CODES = {"1", "18", "25", "35", "45", "50", "56"}
YEAR_AT_END = r"\((\d{4})\)\s*$"


def year_from_title(titles: pd.Series) -> pd.Series:
    """The ``(YYYY)`` suffix of a MovieLens title as float; NaN when the title has none."""
    return titles.str.extract(YEAR_AT_END, expand=False).astype(np.float64)


def parse(folder: Path) -> RecDataset:
    """Parse the three ``.dat`` files of the publisher's ml-1m.zip."""
    r_path, u_path, m_path = folder / "ratings.dat", folder / "users.dat", folder / "movies.dat"
    opts = {"encoding": "latin-1", "quoting": csv.QUOTE_NONE}
    raw = read_table(r_path, "::", [USER, ITEM, RATING, TIME], **opts)
    users_raw = read_table(u_path, "::", [USER, "gender", "age", "occupation", "zip_code"], **opts)
    movies_raw = read_table(m_path, "::", [ITEM, "title", "genres"], **opts)
    for frame, path, col in ((users_raw, u_path, USER), (movies_raw, m_path, ITEM)):
        frame[col] = frame[col].str.strip()
        check_nonempty(frame, col, path)
        check_unique(frame, col, path)
    check_values(users_raw, "age", u_path, AGE_CODES)
    check_values(users_raw, "occupation", u_path, {str(i) for i in range(len(OCCUPATIONS))})
    titles = movies_raw["title"].str.strip()
    items = pd.DataFrame({
        ITEM: movies_raw[ITEM],
        "title": titles,
        "genres": movies_raw["genres"].str.strip(),
        "year": year_from_title(titles),
    })
    users = pd.DataFrame({
        USER: users_raw[USER],
        "age": users_raw["age"].astype(np.int64),
        "gender": users_raw["gender"].str.strip(),
        "occupation": users_raw["occupation"].astype(int).map(dict(enumerate(OCCUPATIONS))).astype(str),
        "zip_code": users_raw["zip_code"].str.strip(),
    })
    info = {"items_without_year": int(items["year"].isna().sum())}
    return movielens_dataset("ml-1m", raw, items, users, (r_path, m_path, u_path), folder, info)


LOADER = DatasetLoader(
    name="ml-1m",
    # No per-file sha256 is published for ml-1m and none was checked here; the observed hashes are recorded
    # on download (DOWNLOADS.json) and in the loaded data set's info["files_sha256"].
    files=(
        SourceFile("ratings.dat", None, "ml-1m/ratings.dat"),
        SourceFile("users.dat", None, "ml-1m/users.dat"),
        SourceFile("movies.dat", None, "ml-1m/movies.dat"),
    ),
    parse=parse,
    version=2,
    base_url="https://files.grouplens.org/datasets/movielens/",
    archive="ml-1m.zip",
    homepage="https://grouplens.org/datasets/movielens/1m/",
)
