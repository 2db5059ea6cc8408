"""Cut files, values outside the publisher's documented domain, empty ids and the duplicate policy.

Each case writes a tiny bad file and checks the DataError names the file and the 1-based line (as an editor
shows it); exact duplicates are kept and reported by a warning naming the file, on every load.
"""

import gzip
import json
import warnings

import pytest

from recllm.data import DataError, DataWarning, load
from tests.data.tiny import AMAZON_REVIEWS, ML100K_DATA, write_advertising, write_amazon, write_mind, write_ml1m, \
    write_ml100k, write_ml_latest

U_DATA = ["\t".join(map(str, r)) for r in ML100K_DATA]  # 9 lines


def _load(name, root, **kw):
    return load(name, root=root, download=False, verify="off", **kw)


def _fails(name, root, *parts):
    with pytest.raises(DataError) as err:
        _load(name, root)
    msg = str(err.value)
    assert "\n" not in msg
    for part in parts:
        assert part in msg, msg
    return msg


# ------------------------------------------------------------------------------------------------ cut files
def test_last_line_cut_inside_its_last_field(tmp_path):
    root = write_ml100k(tmp_path / "m")
    (root / "u.data").write_text("\n".join(U_DATA[:-1] + ["3\t1\t4\t8788"]), encoding="ascii")  # no final \n
    _fails("ml-100k", root, "u.data: line 9 (the last) ends without a line break", "'8788'", "cut off",
           "publisher's archive")


def test_last_line_cut_with_fewer_fields(tmp_path):
    root = write_ml100k(tmp_path / "m")
    (root / "u.data").write_text("\n".join(U_DATA[:-1] + ["3\t1\t4"]), encoding="ascii")
    _fails("ml-100k", root, "u.data: line 9 has 3 fields", "expected 4", "the last line", "cut off")
    root = write_ml_latest(tmp_path / "mls")
    text = (root / "ratings.csv").read_bytes().rstrip(b"\r\n")
    (root / "ratings.csv").write_bytes(text[: text.rindex(b",")])  # "2,6,5.0" instead of "2,6,5.0,1445714995"
    _fails("ml-latest-small", root, "ratings.csv: line 6 has 3 fields separated by ',', expected 4", "cut off")


def test_complete_last_line_without_line_break_loads(tmp_path):
    root = write_ml100k(tmp_path / "m")
    (root / "u.data").write_text("\n".join(U_DATA), encoding="ascii")
    assert len(_load("ml-100k", root).interactions) == len(U_DATA)


def test_amazon_last_json_line_cut(tmp_path):
    root = write_amazon(tmp_path / "amz")
    lines = [json.dumps(r) for r in AMAZON_REVIEWS]
    with gzip.open(root / "Magazine_Subscriptions_5.json.gz", "wt") as fh:
        fh.write("\n".join(lines[:-1]) + "\n" + lines[-1][:30])
    _fails("amazon2018-magazine-subscriptions", root, "Magazine_Subscriptions_5.json.gz: line 4 is not valid JSON")


# ------------------------------------------------------------------------------------------------ domains
@pytest.mark.parametrize("rating", ["99", "-3", "0", "4.5"])
def test_movielens_100k_rating_off_whole_star_scale(tmp_path, rating):
    lines = list(U_DATA)
    lines[4] = f"2\t3\t{rating}\t891717743"
    _fails("ml-100k", write_ml100k(tmp_path / "m", data_lines=lines), "u.data: column 'rating', line 5:",
           "outside the publisher's rating scale (1 to 5 in steps of 1)", "1 such rows")


def test_ml1m_rating_off_scale(tmp_path):
    root = write_ml1m(tmp_path / "m1")
    (root / "ratings.dat").write_bytes(b"1::1193::5::978300760\n1::661::6::978302109\n")
    _fails("ml-1m", root, "ratings.dat: column 'rating', line 2: 6 is outside")


@pytest.mark.parametrize("rating", ["0", "5.5", "4.3"])
def test_ml_latest_rating_off_half_star_scale(tmp_path, rating):
    ratings = f"userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,{rating},964981247\n"
    _fails("ml-latest-small", write_ml_latest(tmp_path / "mls", ratings=ratings),
           "ratings.csv: column 'rating', line 3:", "(0.5 to 5 in steps of 0.5)")


def test_negative_timestamps(tmp_path):
    lines = list(U_DATA)
    lines[1] = "1\t2\t3\t-5"
    _fails("ml-100k", write_ml100k(tmp_path / "m", data_lines=lines), "u.data: column 'timestamp', line 2: -5",
           "negative timestamp")
    tags = "userId,movieId,tag,timestamp\n2,1,pixar,1445714990\n2,1,funny,-1\n"
    _fails("ml-latest-small", write_ml_latest(tmp_path / "mls", tags=tags), "tags.csv: column 'timestamp', line 3",
           "negative timestamp")
    root = write_advertising(tmp_path / "ad", rows=[
        "68.95,35,61833.9,256.09,Cloned,Wrightburgh,0,Tunisia,1969-12-31 23:59:59,0"])
    _fails("advertising", root, "advertising.csv: column 'Timestamp', line 2", "negative timestamp")


def test_amazon_rating_and_time_off_domain(tmp_path):
    bad = [dict(AMAZON_REVIEWS[0]), {**AMAZON_REVIEWS[1], "overall": 6.0}]
    _fails("amazon2018-magazine-subscriptions", write_amazon(tmp_path / "a", reviews=bad),
           "Magazine_Subscriptions_5.json.gz: column 'overall', line 2: 6 is outside")
    bad = [dict(AMAZON_REVIEWS[0]), {**AMAZON_REVIEWS[1], "unixReviewTime": -86400}]
    _fails("amazon2018-magazine-subscriptions", write_amazon(tmp_path / "b", reviews=bad),
           "column 'unixReviewTime', line 2: -86400 is a negative timestamp")


# ------------------------------------------------------------------------------------------------ empty ids
def test_empty_ids(tmp_path):
    root = write_ml1m(tmp_path / "m1")
    (root / "ratings.dat").write_bytes(b"1::1193::5::978300760\n::661::3::978302109\n")
    _fails("ml-1m", root, "ratings.dat: column 'user_id', line 2", "empty")
    ratings = "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,,4.5,964981247\n"
    _fails("ml-latest-small", write_ml_latest(tmp_path / "mls", ratings=ratings),
           "ratings.csv: column 'movieId', line 3", "empty")
    bad = [dict(AMAZON_REVIEWS[0]), {**AMAZON_REVIEWS[1], "reviewerID": "  "}]
    _fails("amazon2018-magazine-subscriptions", write_amazon(tmp_path / "a", reviews=bad),
           "column 'reviewerID', line 2", "empty id")


def test_line_numbers_count_blank_lines(tmp_path):
    lines = U_DATA[:3] + [""] + U_DATA[3:]
    lines[6] = "2\t4\t9\t891717744"  # the 7th line of the file, the 6th data row
    _fails("ml-100k", write_ml100k(tmp_path / "m", data_lines=lines), "u.data: column 'rating', line 7: 9")


# ------------------------------------------------------------------------------------------------ duplicates
def test_exact_duplicates_are_kept_counted_and_warned_on_every_load(tmp_path):
    lines = U_DATA + [U_DATA[1], U_DATA[1], "1\t2\t4\t881250999"]  # two exact copies; a re-rating is no copy
    root = write_ml100k(tmp_path / "m", data_lines=lines)
    for _ in range(2):  # the second load comes from the parsed cache and must warn too
        with pytest.warns(DataWarning) as record:
            ds = _load("ml-100k", root)
        msg = "\n".join(str(w.message) for w in record)
        assert f"{root / 'u.data'}: 2 exact duplicate interaction rows" in msg and "lines 2 and 10" in msg
        assert len(ds.interactions) == len(lines) and ds.info["exact_duplicate_interactions"] == 2


def test_no_warning_without_exact_duplicates(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        ds = _load("mind", write_mind(tmp_path / "mind"))  # a history listing N1 twice: two clicks, no copies
    assert ds.info["exact_duplicate_interactions"] == 0


def test_a_refused_file_gets_one_error_and_no_checksum_warning(tmp_path):
    lines = list(U_DATA)
    lines[2] = "1\t3\t9\t881250951"
    root = write_ml100k(tmp_path / "m", data_lines=lines)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(DataError, match="rating scale"):
            load("ml-100k", root=root, download=False)  # verify="warn": these tiny files are not the publisher's
    assert not [w for w in seen if issubclass(w.category, DataWarning)]
    lines[2] = "1\t3\t4\t881250951"
    root = write_ml100k(tmp_path / "ok", data_lines=lines)
    with pytest.warns(DataWarning, match="u.data has sha256"):  # a file that parses still gets the warning
        load("ml-100k", root=root, download=False)
