"""Splits: chronological leave-one-out, global temporal cut, cold-start items in time, EvalCases, determinism."""

import numpy as np
import pandas as pd
import pytest

from recllm.data import (DataError, RecDataset, Schema, cold_start_split, leave_one_out, make_split,
                         random_item_cold_start_split, temporal_split)


def toy(n_users: int = 30, n_items: int = 40, per_user: int = 8, seed: int = 0) -> RecDataset:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        items = rng.choice(n_items, size=per_user, replace=False)
        times = np.sort(rng.choice(10_000, size=per_user, replace=False)) + 1_000_000
        rows += [(f"u{u}", f"i{i}", int(t)) for i, t in zip(items, times)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).sample(frac=1.0, random_state=seed)
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(n_items)]})
    users = pd.DataFrame({"user_id": [f"u{u}" for u in range(n_users)]})
    return RecDataset("toy", frame.reset_index(drop=True), items, users, Schema())


def growing(n_users: int = 60, n_items: int = 60, per_user: int = 6, seed: int = 0) -> RecDataset:
    """Items are released over time (item i at time 100 i); each user meets items already released."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        times = np.sort(rng.choice(100 * n_items, size=per_user, replace=False))
        for t in times:
            rows.append((f"u{u}", f"i{rng.integers(t // 100 + 1)}", int(t)))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    items = pd.DataFrame({"item_id": [f"i{i}" for i in range(n_items)]})
    return RecDataset("growing", frame, items, pd.DataFrame({"user_id": [f"u{u}" for u in range(n_users)]}), Schema())


def table(rows: list[tuple[str, str, int]]) -> RecDataset:
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    items = pd.DataFrame({"item_id": sorted(frame["item_id"].unique())})
    return RecDataset("t", frame, items, pd.DataFrame({"user_id": sorted(frame["user_id"].unique())}), Schema())


def test_leave_one_out_last_is_test_previous_is_valid():
    ds = toy()
    split = leave_one_out(ds)
    for user, group in ds.interactions.groupby("user_id"):
        ordered = group.sort_values("timestamp")
        assert split.test.loc[split.test["user_id"] == user, "item_id"].tolist() == [ordered["item_id"].iloc[-1]]
        assert split.valid.loc[split.valid["user_id"] == user, "item_id"].tolist() == [ordered["item_id"].iloc[-2]]
        train = split.train[split.train["user_id"] == user]
        assert len(train) == len(group) - 2 and train["timestamp"].max() < ordered["timestamp"].iloc[-2]
    assert len(split.train) + len(split.valid) + len(split.test) == len(ds.interactions)


def test_leave_one_out_short_users_stay_in_train():
    ds = toy()
    short = ds.interactions[ds.interactions["user_id"] == "u0"].head(2)
    ds2 = RecDataset("t", pd.concat([ds.interactions[ds.interactions["user_id"] != "u0"], short]), ds.items, ds.users)
    split = leave_one_out(ds2)
    assert "u0" not in set(split.test["user_id"]) and (split.train["user_id"] == "u0").sum() == 2
    assert split.info["short_users_train_only"] == 1
    with pytest.raises(ValueError, match="at least 3"):
        leave_one_out(ds, min_interactions=2)


def test_eval_cases_history_is_everything_before_the_stage():
    ds = toy()
    split = leave_one_out(ds)
    cases = split.eval_cases("test")
    assert len(cases) == ds.n_users
    u = int(cases.users[0])
    user_id = ds.users["user_id"].iloc[u]
    ordered = ds.interactions[ds.interactions["user_id"] == user_id].sort_values("timestamp")
    assert cases.histories[0].tolist() == ds.item_index(ordered["item_id"].iloc[:-1]).tolist()  # oldest first
    assert cases.targets[0].tolist() == ds.item_index([ordered["item_id"].iloc[-1]]).tolist()
    valid = split.eval_cases("valid")
    assert valid.histories[0].tolist() == ds.item_index(ordered["item_id"].iloc[:-2]).tolist()
    sub = cases.subset(np.array([2, 0]))
    assert sub.users.tolist() == [cases.users[2], cases.users[0]] and sub.targets[1] is cases.targets[0]
    with pytest.raises(ValueError, match="stage"):
        split.eval_cases("train")
    with pytest.raises(ValueError, match="stage"):
        split.sequences("nope")


def test_temporal_split_never_trains_after_a_cut():
    ds = toy()
    split = temporal_split(ds, valid_fraction=0.1, test_fraction=0.2)
    t_valid, t_test = split.info["valid_from"], split.info["test_from"]
    assert split.train["timestamp"].max() < t_valid <= split.valid["timestamp"].min()
    assert split.valid["timestamp"].max() < t_test <= split.test["timestamp"].min()
    assert len(split.train) + len(split.valid) + len(split.test) == len(ds.interactions)
    assert abs(len(split.test) / len(ds.interactions) - 0.2) < 0.02
    cases = split.eval_cases("test")
    for hist, u in zip(cases.histories, cases.users):
        user_id = ds.users["user_id"].iloc[u]
        before = ds.interactions[(ds.interactions["user_id"] == user_id) & (ds.interactions["timestamp"] < t_test)]
        assert len(hist) == len(before)


def test_temporal_split_rejects_coarse_time_and_bad_fractions():
    ds = toy()
    flat = RecDataset("flat", ds.interactions.assign(timestamp=np.int64(5)), ds.items, ds.users)
    with pytest.raises(DataError, match=r"too few distinct values \(1\) for a temporal split") as err:
        temporal_split(flat)
    assert "'timestamp'" in str(err.value) and "loo" in str(err.value) and len(str(err.value).splitlines()) == 1
    with pytest.raises(DataError, match="for a cold-start split"):
        cold_start_split(flat)
    with pytest.raises(ValueError, match="sum below 1"):
        temporal_split(ds, 0.5, 0.5)


def test_temporal_split_flags_too_few_test_users():
    split = temporal_split(toy(), valid_fraction=0.1, test_fraction=0.2)
    cases = split.eval_cases("test")
    assert split.info["test_users"] == len(cases) < 200 and not split.info["informative"]
    assert f"only {len(cases)} test users (fewer than 200)" in split.info["note"]
    enough = temporal_split(toy(), valid_fraction=0.1, test_fraction=0.2, min_test_users=len(cases))
    assert enough.info["informative"] and "note" not in enough.info


# a hand-made table: valid period [5, 7), test period [7, ...); v1 is new at validation, n1, n2 and n3 at test
COLD_ROWS = [("a", "o1", 1), ("b", "o2", 2), ("a", "o2", 3), ("c", "o1", 4), ("b", "v1", 5), ("a", "v1", 6),
             ("c", "n1", 7), ("d", "n1", 7), ("a", "n2", 8), ("a", "n3", 8), ("a", "n1", 9), ("b", "n1", 10),
             ("b", "o1", 10)]


def test_cold_start_split_in_time_known_answer():
    ds = table(COLD_ROWS)
    split = cold_start_split(ds, valid_fraction=0.25, test_fraction=0.35, min_test_users=3)
    assert (split.info["valid_from"], split.info["test_from"]) == (5, 7)
    assert (split.info["valid_items"], split.info["test_items"]) == (1, 3)
    assert split.train["timestamp"].tolist() == [1, 3, 2, 4]  # before the valid cut, by user then time
    names = lambda idx: ds.items["item_id"].iloc[idx].tolist()  # noqa: E731
    users = lambda cases: ds.users["user_id"].iloc[cases.users].tolist()  # noqa: E731
    test = split.eval_cases("test")
    # a: first new-item interactions are n2 and n3 in the same second: file order picks n2, and n3 is not history;
    # b's o1 in the second of its target is not history either; d has nothing before its target and is skipped
    assert users(test) == ["a", "b", "c"]
    assert [names(h) for h in test.histories] == [["o1", "o2", "v1"], ["o2", "v1"], ["o1"]]
    assert [names(t) for t in test.targets] == [["n2"], ["n1"], ["n1"]]
    assert split.info["test_skipped_users"] == 1 and split.info["informative"]
    assert split.test[["user_id", "item_id"]].values.tolist() == [["a", "n2"], ["b", "n1"], ["c", "n1"]]
    valid = split.eval_cases("valid")
    assert users(valid) == ["a", "b"] and [names(h) for h in valid.histories] == [["o1", "o2"], ["o2"]]
    assert [names(t) for t in valid.targets] == [["v1"], ["v1"]] and len(split.valid) == 2
    assert cold_start_split(ds, 0.25, 0.35).info["note"].startswith("only 3 test users")


def test_cold_start_split_without_new_items_says_what_to_do():
    ds = table([("a", "i1", 1), ("a", "i2", 1), ("b", "i1", 2), ("b", "i2", 3), ("a", "i1", 4), ("b", "i2", 5)])
    with pytest.raises(DataError, match="raise test_fraction"):
        cold_start_split(ds, 0.2, 0.3)
    with pytest.raises(ValueError, match="sum below 1"):
        cold_start_split(ds, 0.5, 0.5)


def test_cold_start_split_on_growing_catalogue():
    ds = growing()
    split = cold_start_split(ds, min_test_users=1)
    cases = split.eval_cases("test")
    assert len(cases) > 10 and all(len(t) == 1 for t in cases.targets)
    assert not set(split.train["item_id"]) & (set(split.test["item_id"]) | set(split.valid["item_id"]))
    assert split.train["timestamp"].max() < split.info["valid_from"] <= split.valid["timestamp"].min()
    assert split.valid["timestamp"].max() < split.info["test_from"] <= split.test["timestamp"].min()


def test_cold_start_split_records_its_candidates_known_answer():
    ds = table(COLD_ROWS)
    split = cold_start_split(ds, valid_fraction=0.25, test_fraction=0.35, min_test_users=3)
    names = lambda idx: ds.items["item_id"].iloc[idx].tolist()  # noqa: E731
    assert names(split.candidates("valid")) == ["v1"]  # first seen at 5, in [valid cut 5, test cut 7)
    assert names(split.candidates("test")) == ["n1", "n2", "n3"]  # first seen at or after 7
    for stage in ("valid", "test"):  # every target is among its stage's candidates
        assert set(np.concatenate(split.eval_cases(stage).targets)) <= set(split.candidates(stage))
    with pytest.raises(ValueError, match="stage must be"):
        split.candidates("train")
    assert sorted(names(split.known_items())) == sorted(set(ds.items["item_id"]) - {"v1", "n1", "n2", "n3"})
    assert len(leave_one_out(ds).known_items()) == ds.n_items  # no split but cold-start holds items out


def test_cold_start_candidates_are_the_items_first_seen_in_each_period():
    ds = growing()
    split = cold_start_split(ds, min_test_users=1)
    first = ds.interactions.groupby("item_id")["timestamp"].min()
    t_valid, t_test = split.info["valid_from"], split.info["test_from"]
    valid_new = first.index[(first >= t_valid) & (first < t_test)]
    test_new = first.index[first >= t_test]
    assert len(valid_new) and len(test_new)
    np.testing.assert_array_equal(split.candidates("valid"), np.sort(ds.item_index(valid_new)))
    np.testing.assert_array_equal(split.candidates("test"), np.sort(ds.item_index(test_new)))
    assert len(split.candidates("valid")) == split.info["valid_items"]
    assert len(split.candidates("test")) == split.info["test_items"]


@pytest.mark.parametrize("name", ["loo", "temporal"])
def test_other_splits_rank_among_the_full_catalogue(name):
    split = make_split(toy(), name)
    assert split.candidates("valid") is None and split.candidates("test") is None


def test_random_item_cold_start_split_is_kept_and_seeded():
    ds = toy(n_items=60)
    split = random_item_cold_start_split(ds, seed=3)
    train_items = set(split.train["item_id"])
    assert not train_items & set(split.test["item_id"]) and not train_items & set(split.valid["item_id"])
    assert not set(split.valid["item_id"]) & set(split.test["item_id"])
    assert split.info["test_items"] == round(0.1 * ds.interactions["item_id"].nunique()) and split.info["leaks_future"]
    same = random_item_cold_start_split(ds, seed=3)
    other = random_item_cold_start_split(ds, seed=4)
    assert same.test.equals(split.test) and not set(other.test["item_id"]) == set(split.test["item_id"])


@pytest.mark.parametrize("name", ["loo", "temporal", "cold_start"])
def test_make_split_is_deterministic(name):
    a, b = make_split(growing(), name, seed=1), make_split(growing(), name, seed=1)
    assert a.name == name
    for part in ("train", "valid", "test"):
        pd.testing.assert_frame_equal(getattr(a, part), getattr(b, part))
    ca, cb = a.eval_cases("test"), b.eval_cases("test")
    assert ca.users.tolist() == cb.users.tolist()
    assert all(np.array_equal(x, y) for x, y in zip(ca.histories, cb.histories))


def test_make_split_unknown_name():
    with pytest.raises(ValueError, match="unknown split"):
        make_split(toy(), "random")
