"""advertising, Amazon 2018 (any category) and MIND loaders on tiny publisher-format files."""

import numpy as np
import pandas as pd
import pytest

from recllm.data import DATASETS, get_loader, load
from recllm.data.loaders.amazon2018 import category_name, clean_text
from tests.data.tiny import write_advertising, write_amazon, write_mind


def test_advertising_one_interaction_per_row(tmp_path):
    ds = load("advertising", root=write_advertising(tmp_path / "ad"), download=False, verify="off")
    assert (len(ds.interactions), ds.n_users, ds.n_items) == (4, 4, 3)  # one ad topic line repeats
    inter = ds.interactions
    assert inter["user_id"].tolist() == ["row-0", "row-1", "row-2", "row-3"]
    assert inter["item_id"].tolist() == ["ad-0", "ad-1", "ad-2", "ad-0"]
    assert inter["label"].tolist() == [0, 0, 1, 1]
    assert inter["timestamp"].iloc[0] == int(pd.Timestamp("2016-03-27 00:53:11", tz="UTC").timestamp())
    users = ds.users.set_index("user_id")
    assert users.loc["row-1", "daily_time_spent"] == 80.23 and users.loc["row-1", "age"] == 31
    assert users.loc["row-1", "male"] == 1 and users.loc["row-1", "country"] == "Nauru"
    assert ds.items.set_index("item_id").loc["ad-1", "ad_topic_line"] == "Monitored national standardization"
    assert ds.schema.user_numeric == ("daily_time_spent", "age", "area_income", "daily_internet_usage")
    assert ds.schema.has_label


def test_amazon_reviews_meta_dedup_missing_meta_and_cleaning(tmp_path):
    ds = load("amazon2018-magazine-subscriptions", root=write_amazon(tmp_path / "amz"), download=False, verify="off")
    assert (len(ds.interactions), ds.n_users) == (4, 2)
    assert ds.items["item_id"].tolist() == ["A1", "A2", "A3", "A9"]  # meta deduplicated, then reviewed-only A9
    assert ds.info["items_without_metadata"] == 1 and ds.info["meta_duplicate_rows"] == 1
    items = ds.items.set_index("item_id")
    assert items.loc["A1", "title"] == ""  # the <span ...> placeholder is not a title
    assert items.loc["A1", "description"] == "Designed for PC fans & tinkerers."
    assert items.loc["A1", "category"] == "Magazine Subscriptions > Arts, Music & Photography"
    assert items.loc["A1", "publisher"] == "Future US, Inc."
    assert items.loc["A2", "title"] == "Disney & Me" and items.loc["A2", "description"] == "Fun for kids"
    assert items.loc["A3", "description"] == "Quarterly"
    assert (items.loc["A9", ["title", "description", "category", "publisher"]] == "").all()
    inter = ds.interactions
    assert inter["rating"].tolist() == [4.0, 5.0, 1.0, 3.0]
    assert inter["timestamp"].dtype == np.int64 and inter["timestamp"].iloc[0] == 1393372800
    assert inter["review_text"].tolist() == ["Good\nmagazine", "Great", "", "No metadata for this one"]
    assert ds.item_texts()[3] == ""


def test_amazon_any_category_resolves_publisher_file_names(tmp_path):
    assert category_name("cds-and-vinyl") == "CDs_and_Vinyl"
    assert category_name("amazon-fashion") == "AMAZON_FASHION"
    assert category_name("new-thing-and-more") == "New_Thing_and_More"  # unknown: title case, 'and' kept
    assert "amazon2018-video-games" in DATASETS
    root = write_amazon(tmp_path / "vg", category="Video_Games")
    ds = load("amazon2018-video-games", root=root, download=False)
    assert ds.name == "amazon2018-video-games" and len(ds.interactions) == 4
    loader = get_loader("amazon2018-new-thing-and-more")
    assert [f.name for f in loader.files] == ["New_Thing_and_More_5.json.gz", "meta_New_Thing_and_More.json.gz"]
    assert loader.url_of(loader.files[0]).endswith("/categoryFilesSmall/New_Thing_and_More_5.json.gz")


def test_clean_text():
    assert clean_text(["a <b>bold</b>", "", "x&amp;y"]) == "a bold x&y"
    assert clean_text('<span class="a-size-medium a-color-secondary"') == ""
    assert clean_text("&lt;i&gt;Time&lt;/i&gt; is 5 &lt; 6") == "Time is 5 < 6"
    assert clean_text(None) == "" and clean_text(3) == ""


def test_mind_impressions_histories_and_missing_news(tmp_path):
    ds = load("mind", root=write_mind(tmp_path / "mind"), download=False)
    inter = ds.interactions
    shown = inter[inter["source"] == "impression"]
    assert len(shown) == 6 and shown["label"].tolist() == [1, 0, 0, 0, 1, 1]
    assert shown["impression_id"].tolist() == ["10", "10", "10", "11", "11", "12"]
    hist = inter[inter["source"] == "history"]
    # U1's history once (from its earliest impression), in order; U2 has an empty history
    assert hist["user_id"].tolist() == ["U1", "U1", "U1"] and hist["item_id"].tolist() == ["N1", "N2", "N1"]
    first_u1 = int(pd.Timestamp("2019-11-11 09:00:00", tz="UTC").timestamp())
    assert hist["timestamp"].tolist() == [first_u1 - 3, first_u1 - 2, first_u1 - 1]
    assert hist["impression_id"].isna().all() and (hist["label"] == 1).all()
    assert (inter.loc[inter["user_id"] == "U1", "timestamp"].max()
            == int(pd.Timestamp("2019-11-12 14:14:46", tz="UTC").timestamp()))
    items = ds.items.set_index("item_id")
    assert len(items) == 5 and items.loc["N9", "title"] == "" and pd.isna(items.loc["N9", "category"])
    assert items.loc["N2", "title"] == '"Quoted" title two' and items.loc["N2", "abstract"] == ""
    assert ds.info["referenced_news_missing"] == 1 and ds.info["referenced_news"] == 4
    assert ds.users["user_id"].tolist() == ["U1", "U2"]


def test_mind_sample_name_uses_same_parser(tmp_path):
    ds = load("mind-small-train-sample-unofficial", root=write_mind(tmp_path / "s"), download=False, verify="off")
    assert ds.name == "mind-small-train-sample-unofficial" and len(ds.interactions) == 9


@pytest.mark.parametrize("name", sorted(n for n in DATASETS if not n.startswith("amazon2018-")) + [
    "amazon2018-magazine-subscriptions"])
def test_registry_entries_are_complete(name):
    loader = DATASETS[name]
    assert loader.name == name and loader.files and loader.version >= 1
    if loader.base_url is None:
        assert loader.manual_hint  # no upstream: the error must say where to put the file
    else:
        assert all(loader.url_of(f).startswith("https://") for f in loader.files)
