"""Amazon Review Data (2018, Ni, Li and McAuley): one category's 5-core reviews plus its item metadata.

Files: ``<Category>_5.json.gz`` (reviews) and ``meta_<Category>.json.gz`` (metadata), JSON Lines. Any category
works: ``amazon2018-<category>`` with the category in lower case and ``-`` for ``_`` (``magazine-subscriptions``).
Interactions are reviews (``rating`` = ``overall``, ``timestamp`` = ``unixReviewTime``, the review text kept in
``review_text``/``review_summary``). Items are the metadata deduplicated on ``asin`` plus every reviewed item
that has no metadata (empty text; counted in ``info["items_without_metadata"]``). Item text is cleaned of HTML
tags and entities; a title that is only an HTML fragment (the broken ``<span class=...`` titles) is missing.

Checks: ``overall`` must be a whole star 1-5, ``unixReviewTime`` unix seconds >= 0, ids non-empty (else a
DataError naming file and line). Exact duplicate reviews (same reviewer, asin, time and rating) are kept, as
the publisher ships them (its row counts include them) and as RecBole does by default, and reported by one
warning line naming the file: the shared Magazine_Subscriptions 5-core file has 47 (42 of them identical lines).
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pandas as pd

from recllm.data.dataset import ITEM, RATING, TIME, USER, DataError, RecDataset, Schema, ids_in
from recllm.data.loaders.base import DatasetLoader, SourceFile
from recllm.data.loaders.readers import REDOWNLOAD, Scale, check_interactions, iter_json_lines

PREFIX = "amazon2018-"
# The 29 categories of the 2018 release, as the publisher spells them in file names.
CATEGORIES = (
    "AMAZON_FASHION", "All_Beauty", "Appliances", "Arts_Crafts_and_Sewing", "Automotive", "Books", "CDs_and_Vinyl",
    "Cell_Phones_and_Accessories", "Clothing_Shoes_and_Jewelry", "Digital_Music", "Electronics", "Gift_Cards",
    "Grocery_and_Gourmet_Food", "Home_and_Kitchen", "Industrial_and_Scientific", "Kindle_Store", "Luxury_Beauty",
    "Magazine_Subscriptions", "Movies_and_TV", "Musical_Instruments", "Office_Products", "Patio_Lawn_and_Garden",
    "Pet_Supplies", "Prime_Pantry", "Software", "Sports_and_Outdoors", "Tools_and_Home_Improvement",
    "Toys_and_Games", "Video_Games",
)
BASE_URL = "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_v2/"
KNOWN_SHA256 = {  # from the shared copy's SOURCE.md; other categories have no published hash
    "Magazine_Subscriptions_5.json.gz": "95c124603d62d6acdfd1bd62284934fb6c513db836ea64c2e8176c14256426f2",
    "meta_Magazine_Subscriptions.json.gz": "147cb78dac0f9ce04849b196e2e13cad6a504bff45d53500b7a1fe8121d91595",
}
TEXT_COLUMNS = ("title", "description", "category", "publisher")
STARS = Scale(1, 5, 1)  # ``overall``: whole stars 1 to 5
REVIEW_FIELDS = {USER: "reviewerID", ITEM: "asin", TIME: "unixReviewTime", RATING: "overall"}

_TAG = re.compile(r"<[A-Za-z/!][^>]*(?:>|$)")  # a tag, or a dangling tag cut off at the end of the text
_SPACE = re.compile(r"\s+")


def slug(category: str) -> str:
    """``Magazine_Subscriptions`` -> ``magazine-subscriptions``."""
    return category.lower().replace("_", "-")


def category_name(category_slug: str) -> str:
    """The publisher's spelling of a category slug; an unknown slug is title-cased word by word."""
    for name in CATEGORIES:
        if slug(name) == category_slug.lower():
            return name
    small = {"and"}
    return "_".join(w if w in small else w.capitalize() for w in category_slug.lower().split("-"))


def clean_text(value: object) -> str:
    """HTML tags removed, entities decoded, whitespace collapsed; lists are joined with a space."""
    if isinstance(value, list):
        value = " ".join(str(v) for v in value if v is not None)
    if not isinstance(value, str):
        return ""
    text = _TAG.sub(" ", html.unescape(value))
    text = _TAG.sub(" ", html.unescape(text))  # entities that encoded tags (&lt;b&gt;) become tags in pass one
    return _SPACE.sub(" ", text).strip()


def _publisher(details: object) -> str:
    if not isinstance(details, dict):
        return ""
    for key, value in details.items():
        if str(key).strip().rstrip(":").strip().lower() == "publisher":
            return clean_text(value)
    return ""


def _reviews(path: Path) -> tuple[pd.DataFrame, dict]:
    rows, lines = [], []
    for number, obj in iter_json_lines(path):
        missing = [k for k in ("reviewerID", "asin", "overall", "unixReviewTime") if obj.get(k) in (None, "")]
        if missing:
            raise DataError(f"{path}: line {number} lacks field(s) {missing}; every review needs reviewerID, asin, "
                            f"overall and unixReviewTime; {REDOWNLOAD}")
        overall, when = obj["overall"], obj["unixReviewTime"]
        if isinstance(overall, bool) or not isinstance(overall, (int, float)):
            raise DataError(f"{path}: field 'overall', line {number}: {overall!r} is not a number; {REDOWNLOAD}")
        if isinstance(when, bool) or not isinstance(when, int):
            raise DataError(f"{path}: field 'unixReviewTime', line {number}: {when!r} is not integer unix seconds; "
                            f"{REDOWNLOAD}")
        rows.append((str(obj["reviewerID"]), str(obj["asin"]), int(when), float(overall),
                     obj.get("reviewText") or "", obj.get("summary") or ""))
        lines.append(number)
    if not rows:
        raise DataError(f"{path}: no reviews in the file; {REDOWNLOAD}")
    frame = pd.DataFrame(rows, columns=[USER, ITEM, TIME, RATING, "review_text", "review_summary"])
    frame[TIME] = frame[TIME].astype(np.int64)
    return frame, check_interactions(frame, path, np.asarray(lines), STARS, REVIEW_FIELDS)


def _meta(path: Path) -> tuple[pd.DataFrame, dict[str, int]]:
    rows, seen, duplicates, placeholder = [], set(), 0, 0
    for number, obj in iter_json_lines(path):
        asin = obj.get("asin")
        if not asin:
            raise DataError(f"{path}: line {number} has no 'asin'; every metadata record needs one; {REDOWNLOAD}")
        if asin in seen:
            duplicates += 1  # the 2018 metadata repeats records; the first one is kept
            continue
        seen.add(asin)
        raw_title = obj.get("title") if isinstance(obj.get("title"), str) else ""
        title = clean_text(raw_title)
        placeholder += int(bool(raw_title.strip()) and not title)
        category = obj.get("category") if isinstance(obj.get("category"), list) else []
        rows.append((
            str(asin),
            title,
            clean_text(obj.get("description")),
            " > ".join(c for c in (clean_text(c) for c in category) if c),
            _publisher(obj.get("details")),
            clean_text(obj.get("brand")) or np.nan,
        ))
    if not rows:
        raise DataError(f"{path}: no metadata records in the file; {REDOWNLOAD}")
    frame = pd.DataFrame(rows, columns=[ITEM, *TEXT_COLUMNS, "brand"])
    return frame, {"meta_duplicate_rows": duplicates, "titles_only_html": placeholder}


def parse_files(name: str, reviews_path: Path, meta_path: Path, folder: Path) -> RecDataset:
    """Reviews + metadata -> RecDataset (items without metadata kept with empty text)."""
    reviews, checked = _reviews(reviews_path)
    meta, counts = _meta(meta_path)
    lacking = pd.unique(reviews.loc[~ids_in(reviews[ITEM], meta[ITEM]), ITEM])
    filler = pd.DataFrame({ITEM: lacking, **{c: "" for c in TEXT_COLUMNS}, "brand": np.nan})
    items = pd.concat([meta, filler], ignore_index=True) if len(lacking) else meta
    users = pd.DataFrame({USER: pd.unique(reviews[USER])})
    info = {
        **checked,
        **counts,
        "meta_distinct_asins": len(meta),
        "items_without_metadata": int(len(lacking)),
        "reviewed_items": int(reviews[ITEM].nunique()),
        "items_with_title": int((items["title"] != "").sum()),
        "items_with_description": int((items["description"] != "").sum()),
    }
    schema = Schema(has_rating=True, item_text=TEXT_COLUMNS, item_categorical=("brand",))
    return RecDataset(name, reviews, items, users, schema, source=str(folder), info=info)


def make_loader(category_slug: str) -> DatasetLoader:
    """The loader of ``amazon2018-<category_slug>`` (any category of the 2018 release)."""
    category = category_name(category_slug)
    reviews, meta = f"{category}_5.json.gz", f"meta_{category}.json.gz"
    name = PREFIX + category_slug.lower()

    def parse(folder: Path) -> RecDataset:
        return parse_files(name, folder / reviews, folder / meta, folder)

    return DatasetLoader(
        name=name,
        files=(
            SourceFile(reviews, KNOWN_SHA256.get(reviews), f"categoryFilesSmall/{reviews}"),
            SourceFile(meta, KNOWN_SHA256.get(meta), f"metaFiles2/{meta}"),
        ),
        parse=parse,
        version=2,
        base_url=BASE_URL,
        homepage="https://nijianmo.github.io/amazon/index.html",
    )
