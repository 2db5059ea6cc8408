"""The parse is cached as parquet under cache_dir("parsed", ...), keyed by the files' sha256, the loader version and
the source of recllm.data."""

import dataclasses
import os
import stat
import time

import pandas as pd

from recllm.data import DATASETS, RecDataset, load
from tests.data.tiny import write_mind, write_ml_latest


def _frames_equal(a: RecDataset, b: RecDataset) -> None:
    for part in ("interactions", "items", "users"):
        pd.testing.assert_frame_equal(getattr(a, part), getattr(b, part))
    assert a.schema == b.schema and a.info == b.info and a.name == b.name


def test_second_load_comes_from_cache_and_is_identical(tmp_path):
    root = write_mind(tmp_path / "mind")
    first = load("mind", root=root, download=False)
    cached = tmp_path / "recllm-cache" / "parsed" / "mind" / first.info["cache_key"]
    assert (cached / "interactions.parquet").is_file() and (cached / "dataset.json").is_file()

    def fail(folder):
        raise AssertionError("parsed again although the cache is valid")

    cached_loader = dataclasses.replace(DATASETS["mind"], parse=fail)
    second = cached_loader(root, download=False)
    _frames_equal(first, second)


def test_changed_file_or_version_misses_the_cache(tmp_path):
    root = write_ml_latest(tmp_path / "mls")
    first = load("ml-latest-small", root=root, download=False, verify="off")
    with open(root / "ratings.csv", "ab") as fh:
        fh.write(b"2,7,2.5,1445714999\r\n")
    second = load("ml-latest-small", root=root, download=False, verify="off")
    assert len(second.interactions) == len(first.interactions) + 1
    assert second.info["cache_key"] != first.info["cache_key"]
    bumped = dataclasses.replace(DATASETS["ml-latest-small"], version=DATASETS["ml-latest-small"].version + 1)
    assert bumped.cache_key(second.info["files_sha256"]) != second.info["cache_key"]


def test_a_parse_made_by_other_reader_code_is_not_reused(tmp_path, monkeypatch):
    import recllm.data.loaders.base as base

    root = write_ml_latest(tmp_path / "mls")
    first = load("ml-latest-small", root=root, download=False, verify="off")
    monkeypatch.setattr(base, "package_source_sha256", lambda package: "0" * 64)  # an edited reader
    calls = []
    loader = dataclasses.replace(DATASETS["ml-latest-small"],
                                 parse=lambda folder: calls.append(folder) or DATASETS["ml-latest-small"].parse(folder))
    second = loader(root, download=False, verify="off")
    assert calls and second.info["cache_key"] != first.info["cache_key"]


def test_read_only_data_folder_is_never_written(tmp_path):
    root = write_mind(tmp_path / "mind")
    before = sorted(os.listdir(root))
    os.chmod(root, stat.S_IRUSR | stat.S_IXUSR)
    try:
        ds = load("mind", root=root, download=False)
        ds2 = load("mind", root=root, download=False)
    finally:
        os.chmod(root, stat.S_IRWXU)
    assert sorted(os.listdir(root)) == before
    _frames_equal(ds, ds2)


def test_corrupt_cache_entry_is_rebuilt(tmp_path):
    root = write_mind(tmp_path / "mind")
    first = load("mind", root=root, download=False)
    cached = tmp_path / "recllm-cache" / "parsed" / "mind" / first.info["cache_key"]
    (cached / "items.parquet").write_bytes(b"not parquet")
    again = load("mind", root=root, download=False)
    _frames_equal(first, again)


def test_use_cache_false_writes_no_cache(tmp_path):
    root = write_mind(tmp_path / "mind")
    load("mind", root=root, download=False, use_cache=False)
    assert not (tmp_path / "recllm-cache" / "parsed" / "mind").exists()


def test_cached_load_is_faster_than_parse(tmp_path):
    # a larger synthetic MIND pair so the timing is not noise: 3,000 impressions of 30 items
    news = [f"N{i}\tnews\tsub\tTitle {i}\tAbstract {i}\tu\t[]\t[]" for i in range(500)]
    behaviors = [f"{k}\tU{k % 700}\t11/{9 + k % 5}/2019 {1 + k % 12}:0{k % 10}:00 PM\t"
                 + " ".join(f"N{(k + j) % 600}" for j in range(20)) + "\t"
                 + " ".join(f"N{(k * 7 + j) % 650}-{int(j == 0)}" for j in range(30)) for k in range(3000)]
    root = write_mind(tmp_path / "big", news=news, behaviors=behaviors)
    t0 = time.perf_counter()
    load("mind", root=root, download=False)
    parse_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    load("mind", root=root, download=False)
    cached_s = time.perf_counter() - t0
    assert cached_s < parse_s
