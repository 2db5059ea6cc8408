"""Bad input gets a DataError naming the file, the column, the line and the fix."""

import gzip

import pytest

from recllm.data import DataError, load
from tests.data.tiny import (
    ADVERTISING_HEADER,
    write_advertising,
    write_amazon,
    write_mind,
    write_ml1m,
    write_ml100k,
    write_ml_latest,
)


def _load(name, root):
    return load(name, root=root, download=False, verify="off")


def test_missing_file_names_file_folder_url_and_fix(tmp_path):
    root = write_ml100k(tmp_path / "ml-100k")
    (root / "u.user").unlink()
    with pytest.raises(DataError) as err:
        _load("ml-100k", root)
    msg = str(err.value)
    assert "u.user" in msg and str(root) in msg and "https://files.grouplens.org/datasets/movielens/ml-100k.zip" in msg
    assert "RECLLM_DATA" in msg and "place" in msg


def test_missing_folder_default_root_uses_recllm_data(tmp_path, monkeypatch):
    monkeypatch.setenv("RECLLM_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match=r"nowhere/ml-1m \(the folder does not exist\)"):
        load("ml-1m", download=False)


def test_advertising_has_no_upstream_and_says_where_to_put_the_file(tmp_path):
    with pytest.raises(DataError) as err:
        load("advertising", root=tmp_path / "ad")  # download=True, but there is nothing to download from
    msg = str(err.value)
    assert "advertising.csv" in msg and str(tmp_path / "ad") in msg and "no confirmed upstream" in msg
    assert "00f638aa" in msg  # the sha256 to check a copy against


def test_wrong_columns(tmp_path):
    root = write_advertising(tmp_path / "ad", header=ADVERTISING_HEADER.replace("Male", "Gender"))
    with pytest.raises(DataError, match=r"advertising.csv: missing column\(s\) \['Male'\]"):
        _load("advertising", root)


def test_wrong_field_count_in_headerless_file(tmp_path):
    root = write_ml100k(tmp_path / "m", data_lines=["1\t1\t5\t881250949", "1\t2\t3"])
    with pytest.raises(DataError, match=r"u.data: line 2 has 3 fields separated by '\\t', expected 4"):
        _load("ml-100k", root)


def test_bad_encoding_names_line(tmp_path):
    root = write_ml_latest(tmp_path / "mls")
    movies = (root / "movies.csv").read_bytes().replace(b"Sabrina", "Sabriné".encode("latin-1"))
    (root / "movies.csv").write_bytes(movies)
    with pytest.raises(DataError, match=r"movies.csv: line 5 is not valid utf-8"):
        _load("ml-latest-small", root)


def test_empty_data(tmp_path):
    root = write_ml_latest(tmp_path / "mls", ratings="userId,movieId,rating,timestamp\n")
    with pytest.raises(DataError, match=r"ratings.csv: no data rows"):
        _load("ml-latest-small", root)
    (root / "ratings.csv").write_bytes(b"")
    with pytest.raises(DataError, match=r"ratings.csv: the file is empty"):
        _load("ml-latest-small", root)


def test_duplicate_ids(tmp_path):
    root = write_ml1m(tmp_path / "m1")
    with open(root / "movies.dat", "ab") as fh:
        fh.write(b"661::Again (1996)::Drama\n")
    with pytest.raises(DataError, match=r"movies.dat: column 'item_id' has duplicate id '661' on lines 2 and 5"):
        _load("ml-1m", root)


def test_non_numeric_junk_in_numeric_column(tmp_path):
    root = write_ml_latest(tmp_path / "mls", ratings="userId,movieId,rating,timestamp\n1,1,4.0,964982703\n"
                                                        "1,3,four,964981247\n")
    with pytest.raises(DataError) as err:
        _load("ml-latest-small", root)
    msg = str(err.value)
    assert "ratings.csv" in msg and "column 'rating'" in msg and "line 3" in msg and "'four' is not a number" in msg
    assert "fix or remove" in msg


def test_non_integer_age_and_bad_flag(tmp_path):
    root = write_ml100k(tmp_path / "m", user_lines=["1|24|M|technician|85711", "2|5x|F|other|94043",
                                                    "3|23|M|writer|32067"])
    with pytest.raises(DataError, match=r"u.user: column 'age', line 2: '5x' is not an integer"):
        _load("ml-100k", root)
    root = write_advertising(tmp_path / "ad", rows=[
        "68.95,35,61833.9,256.09,Cloned,Wrightburgh,2,Tunisia,2016-03-27 00:53:11,0"])
    with pytest.raises(DataError, match=r"column 'Male', line 2: '2' is not one of \['0', '1'\]"):
        _load("advertising", root)


def test_spreadsheet_rewritten_timestamp(tmp_path):
    root = write_advertising(tmp_path / "ad", rows=[
        "68.95,35,61833.9,256.09,Cloned,Wrightburgh,0,Tunisia,27/03/2016 0:53,0"])
    with pytest.raises(DataError, match=r"column 'Timestamp', line 2: '27/03/2016 0:53' does not match"):
        _load("advertising", root)


def test_interaction_with_unknown_item(tmp_path):
    root = write_ml100k(tmp_path / "m", data_lines=["1\t1\t5\t881250949", "1\t77\t3\t881250950"])
    with pytest.raises(DataError, match=r"u.data: column 'item_id', line 2: id '77' is not in u.item"):
        _load("ml-100k", root)


def test_amazon_corrupt_gzip_and_bad_json(tmp_path):
    root = write_amazon(tmp_path / "amz")
    data = (root / "Magazine_Subscriptions_5.json.gz").read_bytes()
    (root / "Magazine_Subscriptions_5.json.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"Magazine_Subscriptions_5.json.gz: cannot be read as gzip"):
        _load("amazon2018-magazine-subscriptions", root)
    with gzip.open(root / "Magazine_Subscriptions_5.json.gz", "wt") as fh:
        fh.write('{"reviewerID": "U1", "asin": "A1", "overall": 5.0, "unixReviewTime": 1}\n{"reviewerID": \n')
    with pytest.raises(DataError, match=r"line 2 is not valid JSON"):
        _load("amazon2018-magazine-subscriptions", root)
    with gzip.open(root / "Magazine_Subscriptions_5.json.gz", "wt") as fh:
        fh.write('{"reviewerID": "U1", "asin": "A1", "overall": "five", "unixReviewTime": 1}\n')
    with pytest.raises(DataError, match=r"field 'overall', line 1: 'five' is not a number"):
        _load("amazon2018-magazine-subscriptions", root)


def test_mind_malformed_impression_token_and_time(tmp_path):
    root = write_mind(tmp_path / "mind", behaviors=["10\tU1\t11/12/2019 2:14:46 PM\tN1\tN3-1 N2"])
    with pytest.raises(DataError, match=r"behaviors.tsv: column 'impressions', line 1: 'N2' is not NewsID-label"):
        _load("mind", root)
    root = write_mind(tmp_path / "mind2", behaviors=["10\tU1\t2019-11-12 14:14:46\tN1\tN3-1"])
    with pytest.raises(DataError, match=r"column 'time', line 1: '2019-11-12 14:14:46' does not match"):
        _load("mind", root)
    root = write_mind(tmp_path / "mind3", news=["N1\tnews\tx\tT\tA\tu\t[]\t[]", "N1\tnews\tx\tT\tA\tu\t[]\t[]"])
    with pytest.raises(DataError, match=r"news.tsv: column 'news_id' has duplicate id 'N1' on lines 1 and 2"):
        _load("mind", root)


def _frames(**items_columns):
    import pandas as pd

    interactions = pd.DataFrame({"user_id": ["u1", "u1"], "item_id": ["a", "b"], "timestamp": [1, 2]})
    items = pd.DataFrame({"item_id": ["a", "b", "c"], **items_columns})
    return interactions, items, pd.DataFrame({"user_id": ["u1"]})


@pytest.mark.parametrize("title, row", [([None, 3, "c"], 1), (["a", b"b", "c"], 1), ([1.5, "", "c"], 0)])
def test_an_item_text_that_is_not_a_string_is_named_not_dropped(title, row):
    from recllm.data import RecDataset, Schema

    interactions, items, users = _frames(title=title)
    with pytest.raises(DataError, match=rf"items\.title holds .* at row {row}: its text must be strings"):
        RecDataset("x", interactions, items, users, Schema(item_text=("title",)))


def test_a_missing_item_text_means_no_text():
    from recllm.data import RecDataset, Schema

    interactions, items, users = _frames(title=[None, float("nan"), "c"])
    data = RecDataset("x", interactions, items, users, Schema(item_text=("title",)))
    assert data.item_texts() == ["", "", "title: c"]


def test_an_unknown_item_text_column_is_named_not_a_key_error():
    from recllm.data import RecDataset, Schema

    interactions, items, users = _frames(title=["a", "b", "c"])
    data = RecDataset("x", interactions, items, users, Schema(item_text=("title",)))
    with pytest.raises(DataError, match=r"item text column\(s\) \['blurb'\] are not columns of data set 'x'.*"
                                        r"it has \['item_id', 'title'\]"):
        data.item_texts(("title", "blurb"))


def test_ids_that_are_not_strings_are_refused_with_the_frame_and_column():
    from recllm.data import RecDataset

    interactions, items, users = _frames()
    with pytest.raises(DataError, match=r"interactions\.item_id holds 10 at row 0 \(2 such rows\): its ids must be"):
        RecDataset("x", interactions.assign(item_id=[10, 11]), items.assign(item_id=[10, 11, 12]), users)
    with pytest.raises(DataError, match=r"users\.user_id holds nan at row 0: its ids must be strings"):
        RecDataset("x", interactions, items, users.assign(user_id=[float("nan")]))
