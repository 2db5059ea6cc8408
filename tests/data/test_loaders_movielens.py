"""MovieLens loaders on tiny files in the publisher's formats: shapes, dtypes, features, missing values."""

import math

import numpy as np
import pytest

from recllm.data import DATASETS, DataWarning, load
from tests.data.tiny import write_ml1m, write_ml100k, write_ml_latest


def test_ml100k_shapes_features_and_real_missing_year(tmp_path):
    ds = load("ml-100k", root=write_ml100k(tmp_path / "ml-100k"), download=False, verify="off")
    assert (len(ds.interactions), ds.n_users, ds.n_items) == (9, 4, 5)
    assert ds.interactions["timestamp"].dtype == np.int64
    assert ds.interactions["rating"].dtype == np.float64
    assert ds.interactions["user_id"].iloc[0] == "1" and ds.interactions["item_id"].iloc[0] == "1"
    items = ds.items.set_index("item_id")
    assert items.loc["1", "genres"] == "Animation|Children's|Comedy"
    assert items.loc["2", "title"] == "Misérables, Les (1995)"  # latin-1 decoded
    assert items.loc["1", "year"] == 1995.0
    assert math.isnan(items.loc["4", "year"])  # empty release date stays missing
    assert ds.info["items_without_release_date"] == 1
    users = ds.users.set_index("user_id")
    assert users.loc["2", "age"] == 53 and users.loc["2", "gender"] == "F"
    assert users.loc["3", "occupation"] == "writer" and users.loc["1", "zip_code"] == "85711"
    assert ds.schema.item_text == ("title", "genres") and ds.schema.user_numeric == ("age",)
    assert set(ds.schema.user_categorical) == {"gender", "occupation", "zip_code"}
    assert ds.item_texts()[0] == "title: Toy Story (1995); genres: Animation|Children's|Comedy"


def test_ml1m_publisher_format(tmp_path):
    ds = load("ml-1m", root=write_ml1m(tmp_path / "ml-1m"), download=False)
    assert (len(ds.interactions), ds.n_users, ds.n_items) == (4, 3, 4)
    items = ds.items.set_index("item_id")
    assert items.loc["661", "genres"] == "Animation|Children's|Musical"
    assert items.loc["3408", "year"] == 2000.0
    assert items.loc["9999", "title"] == "Cérémonie, La" and math.isnan(items.loc["9999", "year"])
    users = ds.users.set_index("user_id")
    assert users.loc["1", "age"] == 1 and users.loc["1", "occupation"] == "K-12 student"
    assert users.loc["2", "occupation"] == "self-employed" and users.loc["2", "gender"] == "M"
    assert ds.schema == DATASETS["ml-100k"].parse(write_ml100k(tmp_path / "x")).schema  # same shape as ml-100k


def test_ml_latest_small_catalogue_tags_and_placeholders(tmp_path):
    ds = load("ml-latest-small", root=write_ml_latest(tmp_path / "mls"), download=False, verify="off")
    assert (len(ds.interactions), ds.n_users, ds.n_items) == (5, 2, 4)  # movie 7 is unrated but in the catalogue
    items = ds.items.set_index("item_id")
    assert items.loc["3", "title"] == "American President, The (1995)"
    assert items.loc["1", "tags"] == "pixar, funny"  # distinct, oldest first
    assert items.loc["7", "tags"] == "remake, sort of"
    assert items.loc["3", "tags"] == ""
    assert items.loc["6", "genres"] == "" and items.loc["6", "title"] == "Babylon 5"
    assert math.isnan(items.loc["6", "year"]) and items.loc["7", "year"] == 1995.0
    assert ds.info["movies_without_ratings"] == 1 and ds.info["movies_without_genres"] == 1
    assert list(ds.users["user_id"]) == ["1", "2"]
    assert ds.interactions["rating"].tolist() == [4.0, 4.5, 0.5, 3.0, 5.0]


def test_hash_mismatch_warns_by_default_and_strict_refuses(tmp_path):
    root = write_ml100k(tmp_path / "ml-100k")
    with pytest.warns(DataWarning, match="u.data has sha256"):
        load("ml-100k", root=root, download=False)
    from recllm.data import DataError

    with pytest.raises(DataError, match="not the publisher's"):
        load("ml-100k", root=root, download=False, verify="strict")
