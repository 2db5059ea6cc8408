"""The loaders on the real data sets in $RECLLM_DATA reproduce the counts stated in each SOURCE.md."""

import numpy as np
import pytest

from recllm.data import DataWarning, leave_one_out, load

pytestmark = pytest.mark.integration


def _load(shared_data, name):
    if not (shared_data / name).is_dir():
        pytest.skip(f"{name} is not in RECLLM_DATA")
    return load(name, root=shared_data / name, download=False, verify="strict", show_progress=False)


def test_ml100k(shared_data):
    ds = _load(shared_data, "ml-100k")
    assert (len(ds.interactions), ds.n_users, ds.n_items) == (100_000, 943, 1_682)
    assert int(ds.items["year"].isna().sum()) == 1
    assert set(ds.users["gender"]) == {"M", "F"} and ds.users["occupation"].nunique() == 21
    split = leave_one_out(ds)
    assert len(split.test) == 943


def test_ml_latest_small(shared_data):
    ds = _load(shared_data, "ml-latest-small")
    assert (len(ds.interactions), ds.n_users, ds.n_items) == (100_836, 610, 9_742)
    assert ds.interactions["item_id"].nunique() == 9_724
    assert ds.info["exact_duplicate_interactions"] == 0  # SOURCE.md: no duplicate (user, movie) pairs
    assert int((ds.items["tags"] != "").sum()) == 1_572


def test_advertising(shared_data):
    ds = _load(shared_data, "advertising")
    assert len(ds.interactions) == 1_000 and int(ds.interactions["label"].sum()) == 500
    assert not ds.users.isna().any().any()


def test_amazon_magazine(shared_data):
    with pytest.warns(DataWarning, match=r"Magazine_Subscriptions_5.json.gz: 47 exact duplicate interaction rows"):
        ds = _load(shared_data, "amazon2018-magazine-subscriptions")
    # the publisher's 2,375 rows, duplicates kept (47 equal on user, item, time and rating; 42 identical lines)
    assert (len(ds.interactions), ds.n_users, ds.interactions["item_id"].nunique()) == (2_375, 348, 157)
    assert ds.info["exact_duplicate_interactions"] == 47
    assert ds.info["meta_distinct_asins"] == 2_320 and ds.info["items_without_metadata"] == 6
    assert ds.n_items == 2_320 + 6
    assert not ds.items["title"].str.contains("<span", regex=False).any()
    assert not any("<" in t and ">" in t for t in ds.item_texts())


def test_mind_sample(shared_data):
    ds = _load(shared_data, "mind-small-train-sample-unofficial")
    assert ds.info["news_rows"] == 2_000 and ds.info["impression_rows"] == 5_000
    assert ds.info["impressions_shown"] == 189_359 and ds.info["impressions_clicked"] == 7_542
    assert ds.info["referenced_news_missing"] / ds.info["referenced_news"] > 0.95  # the sample's 96% gap, kept
    hist = ds.interactions[ds.interactions["source"] == "history"]
    shown = ds.interactions[ds.interactions["source"] == "impression"]
    spans = hist.groupby("user_id")["timestamp"].max().to_frame("last_history").join(
        shown.groupby("user_id")["timestamp"].min().rename("first_impression"))
    assert (spans["last_history"] < spans["first_impression"]).all()  # every history click precedes the log
    same_user = hist["user_id"].to_numpy()[1:] == hist["user_id"].to_numpy()[:-1]
    assert (np.diff(hist["timestamp"].to_numpy())[same_user] == 1).all()  # consecutive seconds, file order kept

def test_benchmark_section_reports_every_figure_matching(shared_data):
    from recllm.bench.foundation import data as foundation_data

    section = foundation_data.run()
    assert "**NO**" not in section and "phrase not found" not in section
    assert f"{len(foundation_data.CLAIMS)} of {len(foundation_data.CLAIMS)} figures match" in section
