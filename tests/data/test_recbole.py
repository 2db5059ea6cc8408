"""RecBole atomic files: field:type headers, and an exact round trip through export and import."""

import pandas as pd
import pytest

from recllm.data import DataError, RecDataset, load
from recllm.data.recbole import export_atomic, import_atomic
from tests.data.tiny import write_advertising, write_amazon, write_mind, write_ml100k


def _assert_same(a: RecDataset, b: RecDataset) -> None:
    for part in ("interactions", "items", "users"):
        pd.testing.assert_frame_equal(getattr(a, part), getattr(b, part))
    assert a.schema == b.schema and a.name == b.name


def test_headers_and_types(tmp_path):
    ds = load("ml-100k", root=write_ml100k(tmp_path / "m"), download=False, verify="off")
    paths = export_atomic(ds, tmp_path / "out")
    inter, item, user = (paths[p].read_text().splitlines() for p in ("interactions", "items", "users"))
    assert inter[0] == "user_id:token\titem_id:token\ttimestamp:float\trating:float"
    assert inter[1] == "1\t1\t881250949\t5"
    assert item[0] == "item_id:token\ttitle:token_seq\tgenres:token_seq\tyear:float"
    assert item[1] == "1\tToy Story (1995)\tAnimation Children's Comedy\t1995"
    assert item[4] == "4\tunknown\tunknown\t"  # a missing year is an empty field
    assert user[0] == "user_id:token\tage:float\tgender:token\toccupation:token\tzip_code:token"


@pytest.mark.parametrize("writer, name", [
    (write_ml100k, "ml-100k"), (write_advertising, "advertising"), (write_mind, "mind"),
])
def test_round_trip_is_exact(tmp_path, writer, name):
    ds = load(name, root=writer(tmp_path / "src"), download=False, verify="off")
    export_atomic(ds, tmp_path / "out")
    _assert_same(ds, import_atomic(tmp_path / "out", name))


def test_round_trip_flattens_line_breaks_in_text(tmp_path):
    ds = load("amazon2018-magazine-subscriptions", root=write_amazon(tmp_path / "src"), download=False, verify="off")
    export_atomic(ds, tmp_path / "out", name="amz")
    back = import_atomic(tmp_path / "out", "amz")
    assert back.interactions["review_text"].iloc[0] == "Good magazine"  # the format has no escaping for "\n"
    expected = ds.interactions.assign(review_text=ds.interactions["review_text"].str.replace("\n", " "))
    pd.testing.assert_frame_equal(back.interactions, expected)
    pd.testing.assert_frame_equal(back.items, ds.items)


def test_import_without_sidecar_infers_schema(tmp_path):
    ds = load("ml-100k", root=write_ml100k(tmp_path / "m"), download=False, verify="off")
    paths = export_atomic(ds, tmp_path / "out")
    paths["sidecar"].unlink()
    back = import_atomic(tmp_path / "out", "ml-100k")
    assert back.schema.item_text == ("title", "genres") and back.schema.item_numeric == ("year",)
    assert back.schema.user_categorical == ("gender", "occupation", "zip_code")
    assert back.schema.user_numeric == ("age",) and back.schema.has_rating
    assert back.items["genres"].iloc[0] == "Animation|Children's|Comedy"
    assert back.interactions["timestamp"].tolist() == ds.interactions["timestamp"].tolist()
    assert back.users["age"].tolist() == [24.0, 53.0, 23.0, 40.0]


def test_inter_only_and_bad_header(tmp_path):
    (tmp_path / "x.inter").write_text("user_id:token\titem_id:token\n1\ta\n2\tb\n")
    back = import_atomic(tmp_path, "x")
    assert back.n_items == 2 and back.interactions["timestamp"].tolist() == [0, 1]
    (tmp_path / "y.inter").write_text("user_id\titem_id:token\n1\ta\n")
    with pytest.raises(DataError, match=r"header field 'user_id' is not 'name:type'"):
        import_atomic(tmp_path, "y")
    with pytest.raises(DataError, match=r"z.inter not found"):
        import_atomic(tmp_path, "z")
