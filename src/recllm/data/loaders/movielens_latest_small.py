"""MovieLens "latest-small" (GroupLens, September 2018 build): ratings, movies and free-text user tags.

The catalogue is every movie of ``movies.csv`` (9,742, of which 18 have no rating); users are the raters.
``tags`` aggregates each movie's user tags into one text (distinct tags, oldest first, joined by ", "). It is kept
as a column but is not part of the item text (``schema.item_text``): tags were written from 2006 to 2018, most of
them after the ratings a time-based protocol holds out (27% of leave-one-out test items carry only tags written after
their test interaction, the most common tag is "In Netflix queue", and a test item is three times as likely as a
sampled negative to carry any tag), so a text built from them tells a model about the future. Pass the columns
yourself (e.g. ``item_text_columns``) to use them where time does not matter.
``(no genres listed)`` is the publisher's placeholder for missing genres and becomes ``""``.
Ratings are 0.5 to 5.0 in half stars (the publisher's README); a rating off that scale, a negative timestamp
(ratings or tags), an empty id or a cut line is an error naming the file and line. Exact duplicate ratings are
kept and reported (see :func:`recllm.data.loaders.readers.check_interactions`); this build has none.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from recllm.data.dataset import ITEM, RATING, TIME, USER, RecDataset, Schema, ids_in
from recllm.data.loaders.base import DatasetLoader, SourceFile
from recllm.data.loaders.movielens_1m import year_from_title
from recllm.data.loaders.readers import (
    Scale,
    check_interactions,
    check_known,
    check_nonempty,
    check_times,
    check_unique,
    frame_lines,
    read_table,
    to_numeric,
)

NO_GENRES = "(no genres listed)"
HALF_STARS = Scale(0.5, 5, 0.5)


def aggregate_tags(tags: pd.DataFrame) -> pd.Series:
    """movie id -> its distinct tags (case kept, stripped) in order of first use, joined by ", "."""
    tags = tags.assign(tag=tags["tag"].str.strip())
    tags = tags[tags["tag"] != ""].sort_values([ITEM, TIME], kind="stable")
    tags = tags.drop_duplicates([ITEM, "tag"])
    return tags.groupby(ITEM, sort=False)["tag"].agg(", ".join)


def parse(folder: Path) -> RecDataset:
    """Parse ratings.csv, movies.csv and tags.csv (CRLF line endings are handled by the CSV reader)."""
    r_path, m_path, t_path = folder / "ratings.csv", folder / "movies.csv", folder / "tags.csv"
    ratings = read_table(r_path, ",", ["userId", "movieId", "rating", "timestamp"], header=True)
    movies = read_table(m_path, ",", ["movieId", "title", "genres"], header=True)
    tags = read_table(t_path, ",", ["userId", "movieId", "tag", "timestamp"], header=True)
    check_nonempty(movies, "movieId", m_path)
    check_unique(movies, "movieId", m_path)
    known = pd.Index(movies["movieId"])
    for frame, path in ((ratings, r_path), (tags, t_path)):
        check_nonempty(frame, "userId", path)
        check_nonempty(frame, "movieId", path)
        check_known(frame, "movieId", path, known, m_path)
    tag_times = to_numeric(tags, "timestamp", t_path, "int")
    check_times(t_path, "timestamp", tag_times, frame_lines(tags))
    tag_frame = pd.DataFrame({ITEM: tags["movieId"], "tag": tags["tag"], TIME: tag_times})
    titles = movies["title"].str.strip()
    genres = movies["genres"].str.strip()
    items = pd.DataFrame({
        ITEM: movies["movieId"],
        "title": titles,
        "genres": genres.where(genres != NO_GENRES, ""),
        "tags": movies["movieId"].map(aggregate_tags(tag_frame)).fillna("").astype(str),
        "year": year_from_title(titles),
    })
    interactions = pd.DataFrame({
        USER: ratings["userId"],
        ITEM: ratings["movieId"],
        TIME: to_numeric(ratings, "timestamp", r_path, "int"),
        RATING: to_numeric(ratings, "rating", r_path, "float"),
    })
    names = {USER: "userId", ITEM: "movieId"}
    checked = check_interactions(interactions, r_path, frame_lines(ratings), HALF_STARS, names)
    users = pd.DataFrame({USER: pd.unique(interactions[USER])})
    # tags are not item text: most were written after the interactions a time-based protocol holds out (see above)
    schema = Schema(has_rating=True, item_text=("title", "genres"), item_numeric=("year",))
    info = {
        **checked,
        "movies_without_ratings": int((~ids_in(items[ITEM], interactions[ITEM])).sum()),
        "movies_without_genres": int((items["genres"] == "").sum()),
        "movies_without_year": int(items["year"].isna().sum()),
        "movies_with_tags": int((items["tags"] != "").sum()),
        "tag_rows": len(tags),
    }
    return RecDataset("ml-latest-small", interactions, items, users, schema, source=str(folder), info=info)


LOADER = DatasetLoader(
    name="ml-latest-small",
    files=(
        SourceFile("ratings.csv", "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646",
                   "ml-latest-small/ratings.csv"),
        SourceFile("movies.csv", "5a5f32dd9bb3797b8e728a1b98958789d2b13f294a69fdfbc5727f8a9611aa07",
                   "ml-latest-small/movies.csv"),
        SourceFile("tags.csv", "92a9f8bb7916dceef6151209845788c3643f794dfa79d1feaec7121b5960399d",
                   "ml-latest-small/tags.csv"),
    ),
    parse=parse,
    version=2,
    base_url="https://files.grouplens.org/datasets/movielens/",
    archive="ml-latest-small.zip",
    homepage="https://grouplens.org/datasets/movielens/latest/",
    mismatch_hint="ml-latest-small is rebuilt by GroupLens from time to time; the known hashes are of the "
    "September 2018 build (100,836 ratings).",
)
