"""RecBole benchmark files written from a recllm split carry exactly its histories and targets."""

import json

from recllm.learn.recbole_ref import FixedScores, export_split


def test_export_matches_split(loo, tmp_path):
    export_split(loo, tmp_path, {"max_len": 4}, name="t")
    rows = {s: (tmp_path / "t" / f"t.{s}.inter").read_text().splitlines() for s in ("train", "valid", "test")}
    assert rows["train"][0] == "user_id:token\titem_id_list:token_seq\titem_id:token\ttimestamp:float"
    seqs = loo.sequences("train")
    assert len(rows["train"]) - 1 == sum(len(s) - 1 for s in seqs.values())
    cases = loo.eval_cases("test")
    ids = loo.dataset.items["item_id"].tolist()
    user, hist, item, _ = rows["test"][1].split("\t")
    assert user == loo.dataset.users["user_id"][cases.users[0]]
    assert hist.split(" ") == [ids[i] for i in cases.histories[0][-4:]]
    assert item == ids[cases.targets[0][0]]
    meta = json.loads((tmp_path / "cases.json").read_text())
    assert meta["catalogue"] == ids and len(meta["histories"]) == len(cases)


def test_fixed_scores_serves_rows_in_order(loo):
    import numpy as np

    scores = np.arange(6 * loo.dataset.n_items, dtype=np.float32).reshape(6, -1)
    model = FixedScores(scores).fit(loo)
    assert model.n_items_ == loo.dataset.n_items
    np.testing.assert_array_equal(model.score(np.arange(4), [np.array([0])] * 4), scores[:4])
    np.testing.assert_array_equal(model.score(np.arange(2), [np.array([0])] * 2), scores[4:])
