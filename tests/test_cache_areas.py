"""``recllm cache``: the cache's areas are listed with their sizes, and cleaning removes only what recllm made."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from recllm.cache_areas import AREAS, IN_USE_MINUTES, area_entries, clean, format_size, usage
from recllm.cli import main
from recllm.errors import UserInputError

DAY = 86400.0


def _put(root: Path, rel: str, size: int = 10, age_days: float = 30.0, folder: bool = False) -> Path:
    """A file (or a folder holding one) of ``size`` bytes, last written ``age_days`` ago."""
    path = root / rel
    target = path / "weights.bin" if folder else path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(b"x" * size)
    when = time.time() - age_days * DAY
    for p in (target, path):
        os.utime(p, (when, when))
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A cache folder with one old entry of every area, a recent GReaT run, and files recllm does not name."""
    root = tmp_path / "cache"
    monkeypatch.setenv("RECLLM_CACHE", str(root))
    _put(root, "models/SmolLM2-135M-Instruct-019822eb0b/recllm_source.json", 2)  # the conversion's own record
    _put(root, "models/SmolLM2-135M-Instruct-019822eb0b", 1000, folder=True)
    _put(root, "cache.sqlite", 200)
    _put(root, "parsed/ml-100k/3a12731a4d23dfcafec6", 50, folder=True)
    _put(root, "trsr/runs/ml-100k/hierarchical-seed0-4e1b58bb1bb7", 70, folder=True)
    _put(root, "trsr/candidates/ml-100k-loo-test-neg20-interacted-seed0.parquet", 5)
    _put(root, "impute/adapters/156042731b58603bfa577a5030ce8564", 60, folder=True)
    _put(root, "impute/great-runs/4128624a6124a9457e331137", 3000, folder=True)
    _put(root, "impute/great-runs/1c01cfd84d327569f8f4e7bb", 3000, age_days=0.001, folder=True)  # 1.4 min ago
    _put(root, "hardware/bf16-probe-0539ae6c8b465a85.json", 3)
    _put(root, "data/ml-100k/u.data", 400)
    # what a user put in these folders: names recllm never gives
    _put(root, "models/my-notes.txt", 7)
    _put(root, "impute/great-runs/keep-me", 7, folder=True)
    _put(root, "downloads/download.k3x_9q2a", 9, folder=True)  # tempfile.mkdtemp(prefix="download.")
    _put(root, "downloads/download.pdf", 11)  # a user's file with a name close to ours
    return root


def test_usage_counts_each_area_once(cache: Path) -> None:
    parts = {p.name: p for p in usage(cache)}
    assert set(parts) == set(AREAS)
    assert len(parts["great-runs"].entries) == 2 and parts["great-runs"].size >= 6000
    assert [e.path.name for e in parts["models"].entries] == ["SmolLM2-135M-Instruct-019822eb0b"]
    assert len(parts["llm-outputs"].entries) == 1 and len(parts["probes"].entries) == 1
    assert parts["demo"].entries == () and parts["data"].size >= 400


def test_clean_removes_only_old_entries_recllm_names(cache: Path) -> None:
    removed, kept = clean(cache, ["great-runs", "models"])
    assert sorted(e.path.name for e in removed) == ["4128624a6124a9457e331137", "SmolLM2-135M-Instruct-019822eb0b"]
    assert not (cache / "impute/great-runs/4128624a6124a9457e331137").exists()
    # a job may be writing the recent run; a user's files are not entries at all
    assert [e.path.name for e, why in kept] == ["1c01cfd84d327569f8f4e7bb"] and "--force" in kept[0][1]
    assert (cache / "impute/great-runs/1c01cfd84d327569f8f4e7bb/weights.bin").is_file()
    assert (cache / "impute/great-runs/keep-me/weights.bin").is_file()
    assert (cache / "models/my-notes.txt").is_file()
    assert (cache / "data/ml-100k/u.data").is_file() and (cache / "cache.sqlite").is_file()
    removed, _ = clean(cache, ["downloads"])
    assert [e.path.name for e in removed] == ["download.k3x_9q2a"] and (cache / "downloads/download.pdf").is_file()


def test_a_user_file_shaped_like_recllm_names_is_not_an_entry(cache: Path) -> None:
    """Each area matches what recllm writes exactly: the writers' own paths (and, for a model folder, the file its
    writer puts inside) are entries; names that only look like them are a user's and stay."""
    from recllm.bench.learn.plan import _speed_cache
    from recllm.demo import _probe_path
    from recllm.llm.precision import _probe_key
    from recllm.utils import write_json_atomic

    ours = [_speed_cache(), _probe_path(), cache / "hardware" / f"bf16-probe-{_probe_key()[0]}.json",
            cache / "trsr/plan/rates-0123456789abcdef.json"]  # bench.trsr.plan: rates-{sha256[:16]}.json
    for path in ours:
        write_json_atomic(path, {"seconds": 1.0})
    for name, marker in (("tokenizer-5f4ca4864d", "tokenizer_config.json"),
                         ("all-MiniLM-L6-v2-5f4ca4864d", "modules.json"),
                         ("great-SmolLM2-135M-Instruct-ba837f5bbc", "config.json")):
        _put(cache, f"models/{name}/{marker}", 3)
    mine = ["bench/probe-mine.json", "bench/learn-speed.json.bak", "hardware/bf16-probe-mine.json",
            "demo/probe-0123456789abcdef0.json", "demo/content-notes.txt", "trsr/plan/rates-mine.json",
            "models/mything-0123456789", "models/tokenizer-0123456789/vocab.txt",
            "models/SmolLM2-135M-Instruct-0123456789/config.json",  # a copy without the conversion's record
            "trsr/candidates/my-list-seed1.json", "trsr/runs/ml-100k/backup-0123456789ab/a.txt"]
    for rel in mine:
        _put(cache, rel, 4)
    removed, _ = clean(cache, ["models", "probes", "demo", "trsr-candidates", "trsr-runs"], force=True)
    assert {e.path for e in removed} >= set(ours)
    assert {e.path.name for e in removed if e.path.parent.name == "models"} == {
        "SmolLM2-135M-Instruct-019822eb0b", "tokenizer-5f4ca4864d", "all-MiniLM-L6-v2-5f4ca4864d",
        "great-SmolLM2-135M-Instruct-ba837f5bbc"}
    assert [rel for rel in mine if not (cache / rel).is_file()] == []


def test_force_older_than_and_dry_run(cache: Path) -> None:
    before = sorted(p for p in cache.rglob("*"))
    removed, kept = clean(cache, ["great-runs"], dry_run=True, force=True)
    assert len(removed) == 2 and kept == [] and sorted(cache.rglob("*")) == before
    removed, kept = clean(cache, ["great-runs", "parsed"], older_than_days=40)
    assert removed == [] and len(kept) == 3 and sorted(cache.rglob("*")) == before
    removed, _ = clean(cache, ["great-runs"], force=True)
    assert len(removed) == 2 and [p.name for p in (cache / "impute/great-runs").iterdir()] == ["keep-me"]


def test_a_link_out_of_the_cache_is_not_followed(cache: Path, tmp_path: Path) -> None:
    outside = _put(tmp_path / "elsewhere", "precious", 9, folder=True)
    link = cache / "impute/adapters" / ("a" * 32)
    link.symlink_to(outside, target_is_directory=True)
    inner = cache / "trsr/runs/ml-100k/none-seed0-0123456789ab"
    inner.mkdir(parents=True)
    (inner / "link").symlink_to(outside, target_is_directory=True)
    old = time.time() - DAY
    for p in (inner / "link", inner):
        os.utime(p, (old, old), follow_symlinks=False)
    os.utime(link, (old, old), follow_symlinks=False)
    removed, _ = clean(cache, ["impute-adapters", "trsr-runs"])
    assert {e.path.name for e in removed} >= {"a" * 32, "none-seed0-0123456789ab"}
    assert (outside / "weights.bin").read_bytes() == b"x" * 9  # neither link's target was touched


def test_bad_areas_and_days_are_refused_before_anything_is_removed(cache: Path) -> None:
    before = sorted(cache.rglob("*"))
    for names, days, words in ((["great-runs", "data"], 0.0, "never cleans"),
                               (["great-runs", "nope"], 0.0, "no cache area"),
                               (["great-runs"], -1.0, "--older-than")):
        with pytest.raises(UserInputError, match=words):
            clean(cache, names, older_than_days=days)
    assert sorted(cache.rglob("*")) == before


def test_entries_are_never_outside_the_area_globs(cache: Path) -> None:
    for area in AREAS.values():
        for entry in area_entries(cache, area):
            assert cache.resolve() in entry.path.resolve().parents or entry.path.is_symlink()


def test_format_size() -> None:
    assert [format_size(n) for n in (0, 1023, 1024, 5 * 1024**2, 3 * 1024**3, 5000 * 1024**3)] == [
        "0 B", "1023 B", "1.0 KB", "5.0 MB", "3.0 GB", "5000.0 GB"]
    assert IN_USE_MINUTES > 0


def test_cli_list_and_clean(cache: Path, capsys) -> None:
    assert main(["cache", "list"]) == 0
    out = capsys.readouterr().out
    assert str(cache) in out and "great-runs" in out and "(never cleaned)" in out
    # only the user's three files (7 + 7 + 11 bytes) are other files; folders' own blocks are not counted
    assert "(other files: 25 B)" in out
    assert main(["cache", "list", "great-runs"]) == 0
    assert "4128624a6124a9457e331137" in capsys.readouterr().out
    assert main(["cache", "clean", "great-runs", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would remove 1 entry" in out and (cache / "impute/great-runs/4128624a6124a9457e331137").exists()
    assert main(["cache", "clean", "data"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("recllm cache clean: error: recllm never cleans the 'data' area")


def test_cli_list_and_clean_never_create_a_missing_cache_folder(tmp_path, monkeypatch, capsys) -> None:
    """A mistyped $RECLLM_CACHE is reported as empty; listing or cleaning it creates no folder."""
    root = tmp_path / "typo" / "cache"
    monkeypatch.setenv("RECLLM_CACHE", str(root))
    assert main(["cache", "list"]) == 0
    assert "does not exist" in capsys.readouterr().out
    assert main(["cache", "list", "parsed"]) == 0
    assert main(["cache", "clean", "parsed", "models", "--force"]) == 0
    assert "removed 0 entries" in capsys.readouterr().out
    assert not (tmp_path / "typo").exists()


def test_every_writer_names_an_entry_of_its_area(cache: Path) -> None:
    """The areas restate the names their writers give: each writer's own path (made by the writer's code) must be an
    entry of the area that lists it, so a renamed writer cannot leave its files outside `cache list` and `clean`
    (the learn plan's epochs memo was in no area)."""
    import numpy as np

    from recllm.bench.learn.plan import _epochs_memo
    from recllm.bench.learn.run import fit_checkpoints
    from recllm.data import leave_one_out
    from recllm.learn.demo import _artifact_folder
    from recllm.trsr.candidates import fixed_candidates
    from tests.learn.learn_synthetic import cyclic_dataset

    _, candidates = fixed_candidates(leave_one_out(cyclic_dataset()), "test", seed=3, n_negatives=4)
    written = {"probes": [_epochs_memo()], "learn-fits": [fit_checkpoints("0123456789abcdef" * 4)],
               "demo": [_artifact_folder(0, 5, np.zeros((3, 2), np.float32))],
               "trsr-candidates": [candidates, candidates.with_suffix(".json")]}
    for area, paths in written.items():
        for path in paths:
            if not path.exists():
                _put(cache, str(path.relative_to(cache)), 3, folder=path.suffix == "")
    entries = {name: {e.path for e in area_entries(cache, AREAS[name])} for name in written}
    assert {name: [p for p in paths if p not in entries[name]] for name, paths in written.items()} == {
        name: [] for name in written}
