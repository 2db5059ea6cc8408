"""RecBole's saved scores are ranked by recllm's harness and set beside our runs; a missing run says what to do."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from recllm.bench.learn.recbole_ref import cases_fingerprint, recbole_reference
from recllm.models import PrecomputedScores
from recllm.errors import UserInputError


def _write_run(folder, loo, scores):
    users = loo.eval_cases("test").users
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps({"dataset": "ml-100k", "settings": {"seed": 0, "dropout": 0.5},
                                                      "test_cases": cases_fingerprint(loo.eval_cases("test"))}))
    (folder / "recbole_result.json").write_text(json.dumps({
        "test_users": loo.dataset.users["user_id"].iloc[users].astype(str).tolist(), "epoch_seconds": [10.0, 12.0],
        "best_epoch": 1, "threads": 1, "command": "run_recbole.py", "versions": {"recbole": "1.2.1"}}))
    np.save(folder / "recbole_test_scores.npy", scores)


def test_missing_run_names_the_make_target(loo, tmp_path):
    ref = recbole_reference([], loo, tmp_path / "absent")
    assert "make recbole-reference" in ref["error"] and "manifest.json" in ref["error"]


def test_oracle_scores_rank_every_target_first(loo, tmp_path):
    cases = loo.eval_cases("test")
    scores = np.zeros((len(cases.users), loo.dataset.n_items), np.float32)
    for row, targets in enumerate(cases.targets):
        scores[row, targets] = 1.0
    _write_run(tmp_path, loo, scores)
    ours = SimpleNamespace(seed=0, epoch_seconds=0.5, epochs=3, best_epoch=2,
                           per_user={m: np.zeros(len(cases.users)) for m in
                                     ("hr@10", "ndcg@10", "hr@50", "ndcg@50", "hr@200", "ndcg@200")})
    text = recbole_reference([ours], loo, tmp_path)["text"]
    recbole_row = next(line for line in text.splitlines() if line.startswith("| RecBole"))
    assert "| 1.0000" in recbole_row  # an oracle's HR@10 is 1 under our harness
    assert "recllm - RecBole" in text and "-1.0000" in text  # our all-zero run is 1 below it, paired


def test_precomputed_scores_refuse_unscored_users_and_wrong_width(loo):
    users = np.array([0, 1])
    model = PrecomputedScores(np.ones((2, loo.dataset.n_items)), users).fit(loo)
    np.testing.assert_array_equal(model.score(np.array([1]), [np.array([0])]), np.ones((1, loo.dataset.n_items)))
    with pytest.raises(KeyError, match="no precomputed scores"):
        model.score(np.array([2]), [np.array([0])])
    with pytest.raises(ValueError, match="catalogue items"):
        PrecomputedScores(np.ones((2, 3)), users).fit(loo)


def test_reference_is_stored_and_read_back_without_the_run_folder(loo, tmp_path):
    import shutil

    cases = loo.eval_cases("test")
    scores = np.random.default_rng(0).random((len(cases.users), loo.dataset.n_items)).astype(np.float32)
    _write_run(tmp_path / "run", loo, scores)
    ours = SimpleNamespace(seed=0, epoch_seconds=0.5, epochs=3, best_epoch=2,
                           per_user={m: np.zeros(len(cases.users)) for m in
                                     ("hr@10", "ndcg@10", "hr@50", "ndcg@50", "hr@200", "ndcg@200")})
    store = tmp_path / "learn.recbole.json"
    first = recbole_reference([ours], loo, tmp_path / "run", store)["text"]
    assert store.is_file()
    shutil.rmtree(tmp_path / "run")
    assert recbole_reference([ours], loo, tmp_path / "run", store)["text"] == first
    # a store made on another split is refused, naming the make target
    saved = json.loads(store.read_text())
    saved["split"] = "0" * 64
    store.write_text(json.dumps(saved))
    ref = recbole_reference([ours], loo, tmp_path / "run", store)
    assert "another split" in ref["error"] and "make recbole-reference" in ref["error"]
    store.write_text("{}")  # a store that is not a saved reference: said, not a KeyError
    ref = recbole_reference([ours], loo, tmp_path / "run", store)
    assert "is not a RecBole reference recllm saved" in ref["error"]
    _write_run(tmp_path / "run", loo, scores)  # with the run folder, the reference would be saved there again:
    store.write_text("my notes")  # a file recllm did not save, made after the up-front check, stays as it is
    with pytest.raises(UserInputError, match="not a RecBole reference recllm saved"):
        recbole_reference([ours], loo, tmp_path / "run", store)
    assert store.read_text() == "my notes"
    assert "text" in recbole_reference([ours], loo, tmp_path / "run", store, overwrite=True)  # --overwrite


def test_a_file_recllm_did_not_save_is_never_replaced_by_the_reference(tmp_path):
    from recllm.bench.learn.recbole_ref import check_reference_store
    from recllm.errors import UserInputError

    store = tmp_path / "learn.recbole.json"
    check_reference_store(store)  # absent: fine
    store.write_text('{"mine": 1}')
    with pytest.raises(UserInputError, match="not a RecBole reference recllm saved"):
        check_reference_store(store)
    check_reference_store(store, overwrite=True)
    store.write_text(json.dumps({"manifest": {}, "record": {}, "split": "x", "per_user": {}}))
    check_reference_store(store)  # recllm's own: rerunning updates it


def test_save_reference_stores_figures_on_the_benchmark_split(shared_data, tmp_path):
    """``make recbole-reference`` saves RecBole's figures at once, on the split ``recllm bench learn`` reads."""
    from recllm.data import make_split
    from recllm.bench.learn.run import load_dataset
    from recllm.bench.learn.recbole_ref import save_reference

    with pytest.raises(FileNotFoundError, match="make recbole-reference"):
        save_reference(tmp_path / "absent", tmp_path / "store.json")
    split = make_split(load_dataset("ml-100k"), "loo", seed=0)
    cases = split.eval_cases("test")
    scores = np.zeros((len(cases.users), split.dataset.n_items), np.float32)
    for row, targets in enumerate(cases.targets):
        scores[row, targets] = 1.0
    _write_run(tmp_path / "run", split, scores)
    store = save_reference(tmp_path / "run", tmp_path / "store.json")
    ours = SimpleNamespace(seed=0, epoch_seconds=0.5, epochs=3, best_epoch=2,
                           per_user={m: np.zeros(len(cases.users)) for m in
                                     ("hr@10", "ndcg@10", "hr@50", "ndcg@50", "hr@200", "ndcg@200")})
    text = recbole_reference([ours], split, tmp_path / "absent", store)["text"]  # read back from the store alone
    assert "| RecBole 1.2.1 SASRec (seed 0) | 1.0000" in text
    assert f"scores for the {len(cases.users)} test users" in text  # counted, not typed


def test_a_run_exported_from_another_split_is_refused_not_ranked(loo, tmp_path):
    """Saved scores belong to the split they were exported from: a run folder whose manifest names other test
    cases (or none, from a recllm that did not record them) says to rerun instead of scoring the new targets."""
    cases = loo.eval_cases("test")
    _write_run(tmp_path, loo, np.zeros((len(cases.users), loo.dataset.n_items), np.float32))
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    for fingerprint in ("0" * 64, None):
        manifest["test_cases"] = fingerprint
        (tmp_path / "manifest.json").write_text(json.dumps(manifest))
        ref = recbole_reference([], loo, tmp_path, store=tmp_path / "store.json")
        assert "another split" in ref["error"] and "make recbole-reference" in ref["error"]
        assert not (tmp_path / "store.json").exists()
