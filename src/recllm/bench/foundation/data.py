"""Loader counts against the counts each data set's SOURCE.md states.

``run() -> str`` returns the markdown section that ``recllm bench foundation`` stitches into its report
(``--only data`` for this section alone). For every real data set present in ``$RECLLM_DATA``, each figure the
loader produces sits beside the figure SOURCE.md states. The stated figures are transcribed below together with
the exact phrase of SOURCE.md they come from; the phrase is looked up in the file at run time, so a transcription
that no longer matches its source is flagged instead of trusted.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from recllm.data import ITEM, LABEL, RecDataset, data_home


def _shown_in_news(ds: RecDataset) -> int:
    """Impression items whose id is a row of news.tsv (read straight from the file, not from the loader)."""
    with open(Path(ds.source) / "news.tsv", encoding="utf-8") as fh:
        news_ids = {line.split("\t", 1)[0] for line in fh if line.strip()}
    shown = ds.interactions.loc[ds.interactions["source"] == "impression", ITEM]
    return int(shown.isin(news_ids).sum())


@dataclass(frozen=True)
class Claim:
    """One figure stated in a SOURCE.md: the quantity, its value, the phrase that states it, how to measure it."""

    dataset: str
    quantity: str
    stated: int
    phrase: str
    measure: Callable[[RecDataset], int]


CLAIMS: tuple[Claim, ...] = (
    Claim("ml-100k", "interactions (u.data rows)", 100_000, "**100,000 rows**", lambda d: len(d.interactions)),
    Claim("ml-100k", "users", 943, "943 distinct users", lambda d: d.n_users),
    Claim("ml-100k", "items (u.item rows)", 1_682, "**1,682 rows**", lambda d: d.n_items),
    Claim("ml-100k", "ratings equal to 5", 21_201, "5: 21,201", lambda d: int((d.interactions["rating"] == 5).sum())),
    Claim("ml-100k", "items without release date", 1, "release date is empty in 1 row",
          lambda d: int(d.items["year"].isna().sum())),
    Claim("ml-latest-small", "interactions (ratings)", 100_836, "**100,836 rows**", lambda d: len(d.interactions)),
    Claim("ml-latest-small", "users", 610, "610 users", lambda d: d.n_users),
    Claim("ml-latest-small", "items (movies.csv rows)", 9_742, "**9,742 rows**", lambda d: d.n_items),
    Claim("ml-latest-small", "rated items", 9_724, "9,724 distinct movies", lambda d: d.interactions[ITEM].nunique()),
    Claim("ml-latest-small", "movies with tags", 1_572, "on 1,572\nmovies", lambda d: int((d.items["tags"] != "").sum())),
    Claim("ml-latest-small", "titles without (year)", 13, "13 titles have no `(year)` suffix",
          lambda d: int(d.items["year"].isna().sum())),
    Claim("ml-latest-small", "movies with no genres", 34, "34 movies have genre `(no genres listed)`",
          lambda d: int((d.items["genres"] == "").sum())),
    Claim("advertising", "interactions (rows)", 1_000, "**1,000 data rows x 10 columns**", lambda d: len(d.interactions)),
    Claim("advertising", "clicked", 500, "exactly balanced (500 / 500)", lambda d: int(d.interactions[LABEL].sum())),
    Claim("advertising", "distinct ad topic lines (items)", 1_000, "`Ad Topic Line` (text, 1,000\n  unique)",
          lambda d: d.n_items),
    Claim("advertising", "male = 1", 481, "481 rows are 1", lambda d: int(d.users["male"].sum())),
    Claim("amazon2018-magazine-subscriptions", "interactions (reviews)", 2_375, "**2,375 rows**",
          lambda d: len(d.interactions)),
    Claim("amazon2018-magazine-subscriptions", "users", 348, "348 distinct `reviewerID`s", lambda d: d.n_users),
    Claim("amazon2018-magazine-subscriptions", "reviewed items", 157, "157 distinct `asin`s",
          lambda d: d.interactions[ITEM].nunique()),
    Claim("amazon2018-magazine-subscriptions", "distinct meta asins", 2_320, "2,320 distinct `asin`s",
          lambda d: int(d.info["meta_distinct_asins"])),
    Claim("amazon2018-magazine-subscriptions", "duplicate meta rows", 1_065, "1,065 rows are exact duplicates",
          lambda d: int(d.info["meta_duplicate_rows"])),
    Claim("amazon2018-magazine-subscriptions", "reviewed items with metadata", 151,
          "151 of the 157 items in the 5-core file have metadata",
          lambda d: int(d.info["reviewed_items"]) - int(d.info["items_without_metadata"])),
    Claim("amazon2018-magazine-subscriptions", "items with a real title", 157,
          "Only 157 of the 2,320 distinct items have a real title", lambda d: int((d.items["title"] != "").sum())),
    Claim("mind-small-train-sample-unofficial", "news rows", 2_000, "**2,000 rows**",
          lambda d: int(d.info["news_rows"])),
    Claim("mind-small-train-sample-unofficial", "impressions (behaviors rows)", 5_000, "**5,000 rows**",
          lambda d: int(d.info["impression_rows"])),
    Claim("mind-small-train-sample-unofficial", "users", 4_637, "4,637 distinct users", lambda d: d.n_users),
    Claim("mind-small-train-sample-unofficial", "impression items", 189_359, "The impressions hold 189,359 items",
          lambda d: int(d.info["impressions_shown"])),
    Claim("mind-small-train-sample-unofficial", "impression items clicked", 7_542, "7,542 clicked",
          lambda d: int(d.info["impressions_clicked"])),
    Claim("mind-small-train-sample-unofficial", "impression items found in news.tsv", 5_310, "only 5,310 do",
          _shown_in_news),
)


def _phrase_found(source: str, phrase: str) -> bool:
    squash = " ".join  # SOURCE.md wraps lines; compare with whitespace collapsed
    return squash(phrase.split()) in squash(source.split())


def measure(name: str) -> tuple[RecDataset, float, float]:
    """Load ``name`` twice: a fresh parse (no cache) and the cached load; return the data set and both times."""
    from recllm.data import load

    start = time.perf_counter()
    dataset = load(name, use_cache=False, download=False, show_progress=False)
    parse_s = time.perf_counter() - start
    load(name, download=False, show_progress=False)  # fill the cache
    start = time.perf_counter()
    load(name, download=False, show_progress=False)
    return dataset, parse_s, time.perf_counter() - start


def run() -> str:
    """The markdown section: per data set, loader counts beside SOURCE.md counts, a match column, load times."""
    from recllm.eval.report import format_table

    home = data_home()
    rows, timing, absent = [], [], []
    for name in dict.fromkeys(c.dataset for c in CLAIMS):
        source_md = home / name / "SOURCE.md"
        if not (home / name).is_dir():
            absent.append(name)
            continue
        text = source_md.read_text(encoding="utf-8") if source_md.is_file() else ""
        dataset, parse_s, cached_s = measure(name)
        timing.append({"data set": name, "interactions": f"{len(dataset.interactions):,}",
                       "users": f"{dataset.n_users:,}", "items": f"{dataset.n_items:,}",
                       "parse (s)": f"{parse_s:.2f}", "cached load (s)": f"{cached_s:.2f}"})
        for claim in (c for c in CLAIMS if c.dataset == name):
            value = int(claim.measure(dataset))
            found = _phrase_found(text, claim.phrase)
            rows.append({
                "data set": name, "quantity": claim.quantity, "loader": f"{value:,}", "SOURCE.md": f"{claim.stated:,}",
                "match": "yes" if value == claim.stated else "**NO**",
                "stated as": f"\"{' '.join(claim.phrase.split())}\"" + ("" if found else " (**phrase not found**)"),
            })
    n_match = sum(r["match"] == "yes" for r in rows)
    lines = [
        "## Data: loader counts against SOURCE.md",
        "",
        f"Each row puts a figure computed from the loaded `RecDataset` beside the figure stated in "
        f"`$RECLLM_DATA/<data set>/SOURCE.md`; the quoted phrase is searched in that file at run time. "
        f"{n_match} of {len(rows)} figures match.",
        "",
        format_table(rows, ["data set", "quantity", "loader", "SOURCE.md", "match", "stated as"]),
        "",
        "Catalogue sizes include items without text: Amazon items reviewed but absent from the metadata, MIND news "
        "referenced in behaviors but absent from news.tsv. Load times on this machine (a fresh parse, then a load "
        "from the parquet cache):",
        "",
        format_table(timing, ["data set", "interactions", "users", "items", "parse (s)", "cached load (s)"]),
    ]
    if absent:
        lines += ["", f"Not present in `$RECLLM_DATA`, so not checked: {', '.join(absent)}."]
    return "\n".join(lines) + "\n"
