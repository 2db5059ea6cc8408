"""No split lets the future into a history: over random interaction tables (random times, many ties), no history
interaction of any case is later than its target; cold-start targets are new items never seen in training."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recllm.data import (DataError, RecDataset, Schema, Split, cold_start_split, leave_one_out,
                         random_item_cold_start_split, temporal_split)


@st.composite
def tables(draw) -> RecDataset:
    """3-8 users x 4-12 items, 10-60 interactions, each (user, item) pair at most once (so a history item has one time). An item
    is released at a random time (all at 0 sometimes) and met a random while later; times come from a small
    range, so that many interactions share a second."""
    n_users, n_items = draw(st.integers(3, 8)), draw(st.integers(4, 12))
    pairs = draw(st.lists(st.tuples(st.integers(0, n_users - 1), st.integers(0, n_items - 1)),
                          min_size=10, max_size=60, unique=True))
    release = draw(st.lists(st.integers(0, 20), min_size=n_items, max_size=n_items))
    later = draw(st.lists(st.integers(0, draw(st.integers(0, 20))), min_size=len(pairs), max_size=len(pairs)))
    frame = pd.DataFrame({"user_id": [f"u{u}" for u, _ in pairs], "item_id": [f"i{i}" for _, i in pairs],
                          "timestamp": np.asarray([release[i] + d for (_, i), d in zip(pairs, later)], np.int64)})
    return RecDataset("random", frame, pd.DataFrame({"item_id": [f"i{i}" for i in range(n_items)]}),
                      pd.DataFrame({"user_id": [f"u{u}" for u in range(n_users)]}), Schema())


def times_of(ds: RecDataset) -> dict[tuple[int, int], int]:
    f = ds.interactions
    keys = zip(ds.user_index(f["user_id"]).tolist(), ds.item_index(f["item_id"]).tolist())
    return dict(zip(keys, f["timestamp"].tolist()))


def future_in_history(split: Split, stage: str, strict: bool, when: dict[tuple[int, int], int] | None = None
                      ) -> list[str]:
    """Every history interaction later than its case's (earliest) target; with ``strict``, also same-second ones."""
    when = when or times_of(split.dataset)
    cases = split.eval_cases(stage)
    bad = []
    for u, hist, targets in zip(cases.users.tolist(), cases.histories, cases.targets):
        t_target = min(when[(u, int(i))] for i in targets)
        for i in hist.tolist():
            if when[(u, i)] > t_target or (strict and when[(u, i)] == t_target):
                bad.append(f"{stage}: user {u} history item {i} at {when[(u, i)]}, target at {t_target}")
    return bad


def check_cold_start(split: Split, when: dict[tuple[int, int], int] | None = None) -> None:
    """Targets are new (first seen in the stage's period), never in training, each user's first new item,
    one per user, every user who qualifies has a case, and a history is exactly the user's earlier interactions."""
    ds, when = split.dataset, when or times_of(split.dataset)
    first_seen: dict[int, int] = {}
    timeline: dict[int, list[tuple[int, int]]] = {}
    for (u, i), t in when.items():
        first_seen[i] = min(t, first_seen.get(i, t))
        timeline.setdefault(u, []).append((t, i))
    train_items = set(ds.item_index(split.train["item_id"]).tolist())
    t_valid, t_test = split.info["valid_from"], split.info["test_from"]
    assert split.train.empty or split.train["timestamp"].max() < t_valid
    for stage, start, stop in (("valid", t_valid, t_test), ("test", t_test, np.inf)):
        new = {i for i, t in first_seen.items() if start <= t < stop}
        later = {i for i, t in first_seen.items() if t >= start}
        cases = split.eval_cases(stage)
        expected = set()
        for u, mine in timeline.items():
            t_first = min((t for t, i in mine if i in new and t < stop), default=None)
            if t_first is not None and any(t < t_first for t, _ in mine):
                expected.add(u)
        assert sorted(cases.users.tolist()) == sorted(expected)  # one case per qualifying user
        for u, hist, targets in zip(cases.users.tolist(), cases.histories, cases.targets):
            (target,) = targets.tolist()
            t_target = when[(u, target)]
            assert target in new and target not in train_items and t_target < stop
            assert not any(i in new and t < t_target for t, i in timeline[u])  # the user's first new item
            assert len(hist) == sum(t < t_target for t, _ in timeline[u])  # all of the past, nothing else
            assert not set(hist.tolist()) & later


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ds=tables(), fractions=st.sampled_from([(0.1, 0.1), (0.2, 0.3), (0.1, 0.4), (0.3, 0.5)]))
def test_no_history_is_later_than_its_target(ds, fractions):
    splits = [(leave_one_out(ds), False)]  # chronological leave-one-out: same-second history is allowed (stable order)
    for make in (temporal_split, cold_start_split):
        try:
            splits.append((make(ds, *fractions), True))
        except DataError:  # timestamps too coarse for the cuts, or no cold-start case: nothing to check
            pass
    when = times_of(ds)
    for split, strict in splits:
        for stage in ("valid", "test"):
            assert future_in_history(split, stage, strict, when) == []
        if split.name == "cold_start":
            check_cold_start(split, when)


def test_the_checker_sees_the_leak_of_the_random_item_split():
    """The old split's histories hold later interactions; the same check finds them (so it can fail)."""
    rows = [("a", f"i{k}", k) for k in range(10)] + [("b", f"i{k}", 20 - k) for k in range(10)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    ds = RecDataset("t", frame, pd.DataFrame({"item_id": [f"i{k}" for k in range(10)]}),
                    pd.DataFrame({"user_id": ["a", "b"]}), Schema())
    leaky = random_item_cold_start_split(ds, 0.2, 0.2, seed=0)
    assert future_in_history(leaky, "test", strict=True)
    # a meets i0..i4 at 0..4, b meets i0..i9 at 5..14: i5..i9 are first seen late, so they are new at test
    rows = [("a", f"i{k}", k) for k in range(5)] + [("b", f"i{k}", 5 + k) for k in range(10)]
    growing = RecDataset("g", pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]), ds.items, ds.users)
    split = cold_start_split(growing, 0.2, 0.4)
    assert len(split.eval_cases("test")) == 1
    check_cold_start(split)
    with pytest.raises(AssertionError):  # a target in training is caught
        check_cold_start(Split("cold_start", growing, growing.interactions, split.valid, split.test, split.info,
                               split.cases))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(), st.randoms(use_true_random=False))
def test_ties_do_not_follow_the_files_row_order(ds: RecDataset, rnd) -> None:
    """Interactions of the same time are ordered by a fixed hash of (user, item), not by their place in the file:
    shuffling the file's rows changes no split (a file sorted by item id would otherwise decide "the next item")."""
    rows = list(range(len(ds.interactions)))
    rnd.shuffle(rows)
    shuffled = RecDataset(ds.name, ds.interactions.iloc[rows].reset_index(drop=True), ds.items, ds.users, ds.schema)
    for make in (leave_one_out, lambda d: temporal_split(d, min_test_users=1),
                 lambda d: cold_start_split(d, min_test_users=1)):
        try:
            a, b = make(ds), make(shuffled)
        except DataError:
            continue
        for stage in ("valid", "test"):
            ca, cb = a.eval_cases(stage), b.eval_cases(stage)
            assert ca.users.tolist() == cb.users.tolist()
            assert [h.tolist() for h in ca.histories] == [h.tolist() for h in cb.histories]
            assert [t.tolist() for t in ca.targets] == [t.tolist() for t in cb.targets]


def test_tie_order_is_a_fixed_hash_not_the_item_id() -> None:
    """Ten films rated in the same second, listed by id: the test item is not simply the largest id."""
    frame = pd.DataFrame({"user_id": ["u"] * 10, "item_id": [f"m{i:02d}" for i in range(10)],
                          "timestamp": np.zeros(10, np.int64)})
    ds = RecDataset("ties", frame, pd.DataFrame({"item_id": frame["item_id"]}), pd.DataFrame({"user_id": ["u"]}),
                    Schema())
    split = leave_one_out(ds)
    assert split.test["item_id"].tolist() != ["m09"] and split.valid["item_id"].tolist() != ["m08"]
    assert leave_one_out(ds).test["item_id"].tolist() == split.test["item_id"].tolist()  # the same every time
