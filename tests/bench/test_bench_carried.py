"""The carried cache: generated texts survive a fresh machine through the file beside the report."""

import pickle

from recllm.bench.carried import CarriedCache
from recllm.llm.cache import DiskCache


def test_a_fresh_machine_reads_back_the_carried_texts_and_only_those(tmp_path):
    carried = tmp_path / "results" / "trsr.texts.jsonl"
    first = CarriedCache(carried, path=tmp_path / "machine1.sqlite")
    first.put_many({"a": {"text": "likes drama", "seconds": 1.5}, "b": {"p": [0.1, 0.9]}})
    first.put("c", {"text": "likes jazz", "seconds": 2.0})
    fresh = CarriedCache(carried, path=tmp_path / "machine2.sqlite")  # another machine: its cache is empty
    assert fresh.carried_ == 2
    assert fresh.get("a") == {"text": "likes drama", "seconds": 1.5} and fresh.get("c")["text"] == "likes jazz"
    assert fresh.get("b") is None  # scores are not carried (their keys hold the adapter's hash)


def test_a_line_cut_short_is_skipped_and_the_next_append_starts_a_new_line(tmp_path):
    carried = tmp_path / "t.texts.jsonl"
    CarriedCache(carried, path=tmp_path / "m1.sqlite").put("a", {"text": "x", "seconds": 1.0})
    with open(carried, "a", encoding="utf-8") as handle:
        handle.write('{"k": "b", "v": {"te')  # the session stopped mid-line
    cache = CarriedCache(carried, path=tmp_path / "m2.sqlite")
    assert cache.carried_ == 1
    cache.put("c", {"text": "y", "seconds": 1.0})
    again = CarriedCache(carried, path=tmp_path / "m3.sqlite")
    assert again.carried_ == 2 and again.get("c")["text"] == "y"


def test_it_pickles_as_the_plain_machine_cache(tmp_path):
    cache = CarriedCache(tmp_path / "t.texts.jsonl", path=tmp_path / "m.sqlite")
    copy = pickle.loads(pickle.dumps(cache))
    assert type(copy) is DiskCache and copy.path == cache.path


def test_two_appenders_keep_every_line(tmp_path):
    carried = tmp_path / "t.texts.jsonl"
    a = CarriedCache(carried, path=tmp_path / "a.sqlite")
    b = CarriedCache(carried, path=tmp_path / "b.sqlite")
    for i in range(20):
        (a if i % 2 else b).put(f"k{i}", {"text": f"t{i}", "seconds": 0.1})
    assert CarriedCache(carried, path=tmp_path / "c.sqlite").carried_ == 20
