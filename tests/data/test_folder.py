"""A data set from a folder of the user's own files: read as written, every mistake one line naming its place."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recllm.data import RecDataset, Schema
from recllm.data.dataset import DataError
from recllm.data.folder import data_reference, is_data_folder, load_if_present, load_named_or_folder, read_folder

EVENTS = "user_id,item_id,timestamp,rating\n007,a,1700000000,5\n007,b,1700000100,4\nx,a,1700000200,3\n"
ITEMS = 'item_id,title,description\na,Red mug,"A mug, red"\nb,Blue mug,\nc,Kettle,Never bought\n'


def _folder(tmp_path, **files: str):
    folder = tmp_path / "shop"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name.replace("_", ".")).write_text(text)
    return folder


def test_a_folder_reads_as_written(tmp_path):
    dataset = read_folder(_folder(tmp_path, interactions_csv=EVENTS, items_csv=ITEMS))
    assert dataset.name == "shop"
    assert dataset.interactions["user_id"].tolist() == ["007", "007", "x"]  # ids are text: the leading zeros stay
    assert dataset.interactions["timestamp"].dtype == np.int64
    assert dataset.interactions["rating"].tolist() == [5.0, 4.0, 3.0]
    assert dataset.items["item_id"].tolist() == ["a", "b", "c"]  # c: never interacted with, still in the catalogue
    assert dataset.items["description"].tolist() == ["A mug, red", "", "Never bought"]
    assert dataset.schema.item_text == ("title", "description") and dataset.schema.has_rating
    assert dataset.users["user_id"].tolist() == ["007", "x"]
    assert dataset.item_texts()[0] == "title: Red mug; description: A mug, red"
    assert dataset.info["timestamps"] == "unix seconds" and set(dataset.info["files"]) == {"interactions.csv",
                                                                                           "items.csv"}


def test_without_items_the_catalogue_is_the_interacted_items(tmp_path):
    dataset = read_folder(_folder(tmp_path, interactions_csv="user_id,item_id,timestamp\nu,z,1\nu,y,2\nv,z,3\n"))
    assert dataset.items["item_id"].tolist() == ["y", "z"] and dataset.schema.item_text == ()


def test_iso_times_are_read_as_utc_seconds(tmp_path):
    events = ("user_id,item_id,timestamp\nu,a,2024-03-01\nu,b,2024-03-01T01:00:00+01:00\n"
              "u,a,2024-03-01 00:00:30.9\n")
    dataset = read_folder(_folder(tmp_path, interactions_csv=events))
    assert dataset.interactions["timestamp"].tolist() == [1709251200, 1709251200, 1709251230]
    assert dataset.info["timestamps"] == "ISO 8601, as UTC seconds"


def test_parquet_files(tmp_path):
    folder = _folder(tmp_path)
    when = pd.to_datetime(["2024-03-01", "2024-03-02"])
    pd.DataFrame({"user_id": [7, 8], "item_id": ["a", "b"], "timestamp": when}).to_parquet(folder /
                                                                                          "interactions.parquet")
    pd.DataFrame({"item_id": ["a", "b"], "title": ["A", None]}).to_parquet(folder / "items.parquet")
    dataset = read_folder(folder)
    assert dataset.interactions["user_id"].tolist() == ["7", "8"]
    assert dataset.interactions["timestamp"].tolist() == [1709251200, 1709337600]
    assert dataset.items["title"].tolist() == ["A", ""]


def test_a_saved_data_set_is_read_back(tmp_path):
    original = read_folder(_folder(tmp_path, interactions_csv=EVENTS, items_csv=ITEMS))
    original.save(tmp_path / "saved")
    again = read_folder(tmp_path / "saved")
    assert isinstance(again, RecDataset) and again.schema == original.schema
    pd.testing.assert_frame_equal(again.interactions, original.interactions, check_dtype=False)


@pytest.mark.parametrize("name", ["interactions.csv", "items.parquet", "users.csv"])
def test_a_table_written_as_a_folder_is_named_not_skipped(tmp_path, name):
    """A table saved as a folder of parts (e.g. a partitioned parquet data set) is an error naming it: an optional
    items/users table is not silently left out, and the interactions get no 'rename X to X' advice."""
    folder = _folder(tmp_path, **({} if name.startswith("interactions") else {"interactions_csv": EVENTS}))
    (folder / name).mkdir()
    (folder / name / "part-0.parquet").write_bytes(b"")
    with pytest.raises(DataError) as info:
        read_folder(folder)
    message = str(info.value)
    assert f"{name} is a folder, not a file" in message and "rename" not in message, message
    assert "\n" not in message


@pytest.mark.parametrize("files, words", [
    ({}, "no interactions.csv or interactions.parquet"),
    ({"interactions_csv": "user,item,timestamp\nu,a,1\n"}, "no column 'user_id'"),
    ({"interactions_csv": "user_id,item_id,timestamp\nu,a,1\n,b,2\n"}, "line 3"),
    ({"interactions_csv": "user_id,item_id,timestamp\nu,a,1\nu,b,2024-01-01\n"}, "is not integer unix seconds"),
    ({"interactions_csv": "user_id,item_id,timestamp\nu,a,2024-01-01\nu,b,yesterday\n"}, "'yesterday'"),
    ({"interactions_csv": "user_id,item_id,timestamp\nu,a,soon\n"}, "neither integer unix seconds nor"),
    ({"interactions_csv": "user_id,item_id,timestamp\nu,a,1700000000000\n"}, "milliseconds"),
    ({"interactions_csv": "user_id,item_id,timestamp\nu,a,-5\n"}, "before 1970"),
    ({"interactions_csv": "user_id,item_id,timestamp,rating\nu,a,1,five\n"}, "'five' is not a number"),
    ({"interactions_csv": "user_id,item_id,timestamp,label\nu,a,1,2\n"}, "not a 0/1 label"),
    ({"interactions_csv": "user_id,item_id,timestamp,rating\nu,a,1,\"3,5\"\n"}, "with a decimal point, not a comma"),
    ({"interactions_csv": "user_id,item_id,timestamp,rating\nu,a,1,4\nu,b,2,\n"}, "an empty cell where a number is needed"),
    ({"interactions_csv": "user_id,item_id,timestamp\nu,a,1\nu,q,2\nu,q,3\n", "items_csv": "item_id,title\na,A\n"},
     "item_id 'q' is not in items.csv (2 rows like it)"),
    ({"interactions_csv": "user_id,item_id,timestamp\nu,a,1\n", "items_csv": "item_id,title\na,A\nb,B\na,C\n"},
     "item_id 'a' is listed twice ("),
    ({"interactions_csv": "user_id,item_id,timestamp\nu,a,1\n", "users_csv": "user_id,age\nv,3\n"},
     "user_id 'u' is not in users.csv"),
    ({"interactions_csv": "user_id;item_id;timestamp\nu;a;1\n"}, "save the file with ','"),
    ({"interactions_csv": "user_id,item_id,timestamp\nu,a,1\n", "interactions_parquet": ""}, "keep one of them"),
])
def test_a_mistake_is_one_line_naming_its_place(tmp_path, files, words):
    folder = _folder(tmp_path, **files)
    with pytest.raises(DataError) as info:
        read_folder(folder)
    message = str(info.value)
    assert words in message and "shop" in message and "\n" not in message, message


def test_exact_duplicate_interactions_are_kept_and_counted(tmp_path):
    dataset = read_folder(_folder(tmp_path, interactions_csv="user_id,item_id,timestamp\nu,a,1\nu,a,1\n"))
    assert len(dataset.interactions) == 2 and dataset.info["exact_duplicate_interactions"] == 1


def test_a_folder_or_a_registry_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ml-100k").mkdir()  # a registry name: the data set, unless written as a path
    (tmp_path / "shop").mkdir()
    (tmp_path / "notes.csv").write_text("x\n")
    assert not is_data_folder("ml-100k") and is_data_folder("./ml-100k")
    assert is_data_folder("shop") and is_data_folder("notes.csv") and is_data_folder("~/x") and is_data_folder("d/x")
    assert not is_data_folder("nope") and not is_data_folder("")
    (tmp_path / "ml-100k" / "interactions.csv").write_text("user_id,item_id,timestamp\nu,a,1\n")
    with pytest.raises(DataError, match="write ./ml-100k"):  # both a data set and a data folder here: ambiguous
        is_data_folder("ml-100k")
    _folder(tmp_path, interactions_csv=EVENTS)
    assert len(load_named_or_folder("shop").interactions) == 3
    assert data_reference("shop") == data_reference("./shop") == str(tmp_path / "shop")
    assert load_if_present(str(tmp_path / "gone")) is None and load_if_present("nope") is None


def test_parquet_ids_keep_their_digits_and_gaps_are_named(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = _folder(tmp_path)
    big = 2**63 + 5
    pq.write_table(pa.table({"user_id": pa.array([big, 7], pa.uint64()), "item_id": ["a", "b"],
                             "timestamp": pa.array([1, 2], pa.uint64())}), folder / "interactions.parquet")
    assert read_folder(folder).interactions["user_id"].tolist() == [str(big), "7"]
    pq.write_table(pa.table({"user_id": pa.array([7, None], pa.int64()), "item_id": ["a", "b"],
                             "timestamp": [1, 2]}), folder / "interactions.parquet")
    with pytest.raises(DataError, match=r"an empty cell is not an id.*row 2"):
        read_folder(folder)
    pq.write_table(pa.table({"user_id": [1.5, 2.0], "item_id": ["a", "b"], "timestamp": [1, 2]}),
                   folder / "interactions.parquet")
    with pytest.raises(DataError, match="holds float64 values, not ids"):
        read_folder(folder)
    pq.write_table(pa.table({"user_id": ["u", "v"], "item_id": ["a", "b"], "timestamp": pa.array([1, None])}),
                   folder / "interactions.parquet")
    with pytest.raises(DataError, match=r"an empty cell is not a time.*row 2"):
        read_folder(folder)
    pq.write_table(pa.table({"user_id": ["u", "v"], "item_id": ["a", "b"], "timestamp": [1.0, 2.5]}),
                   folder / "interactions.parquet")
    with pytest.raises(DataError, match=r"2.5 is not a whole number of seconds"):
        read_folder(folder)
    pq.write_table(pa.table({"user_id": ["u", "v"], "item_id": ["a", "b"], "timestamp": [1, 2],
                             "label": [True, False]}), folder / "interactions.parquet")
    assert read_folder(folder).interactions["label"].tolist() == [1, 0]
    pq.write_table(pa.table([pa.array(["u"]), pa.array(["a"]), pa.array([1]), pa.array(["b"])],
                            names=["user_id", "item_id", "timestamp", "item_id"]), folder / "interactions.parquet")
    with pytest.raises(DataError, match="column 'item_id' appears more than once"):
        read_folder(folder)


@pytest.mark.parametrize("stamps, words", [
    (["20240301", "20240302"], "reads as a YYYYMMDD date"),
    (["2019", "2020", "2021"], "'2019' reads as a year, not unix seconds"),
    (["1960-01-01", "2024-01-01"], "'1960-01-01' is before 1970"),
    (["2024-01-01", "6000-01-01"], "after the year 5000"),
])
def test_ambiguous_or_impossible_times_are_refused(tmp_path, stamps, words):
    folder = _folder(tmp_path, interactions_csv="user_id,item_id,timestamp\n" + "".join(
        f"u,i{k},{t}\n" for k, t in enumerate(stamps)))
    with pytest.raises(DataError, match=words):
        read_folder(folder)


def test_saved_folders_and_the_users_own_dataset_json(tmp_path):
    original = read_folder(_folder(tmp_path, interactions_csv=EVENTS, dataset_json='{"mine": 1}'))  # not recllm's
    assert len(original.interactions) == 3
    original.save(tmp_path / "saved")
    assert read_folder(tmp_path / "saved").info["data_folder"] == str(tmp_path / "saved")


def test_a_misnamed_file_is_pointed_at(tmp_path):
    folder = _folder(tmp_path, Interactions_CSV="user_id,item_id,timestamp\nu,a,1\n")
    with pytest.raises(DataError, match="rename Interactions.CSV to interactions.csv"):
        read_folder(folder)


def test_the_files_are_never_changed(tmp_path):
    folder = _folder(tmp_path, interactions_csv=EVENTS, items_csv=ITEMS)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    read_folder(folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_schema_of_user_text(tmp_path):
    folder = _folder(tmp_path, interactions_csv=EVENTS, users_csv="user_id,bio\n007,likes tea\nx,\n")
    dataset = read_folder(folder)
    assert dataset.schema == Schema(has_rating=True, user_text=("bio",))
    assert dataset.users["bio"].tolist() == ["likes tea", ""]
