"""Splits of a RecDataset: chronological leave-one-out, global temporal, cold-start items in time.

No history of any case holds an interaction later than its target (tests/data/test_split_leakage.py checks it).
The older random-item cold-start split, which breaks that rule, is kept only to reproduce old reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recllm.data.dataset import ITEM, TIME, USER, DataError, RecDataset, ids_in

SPLITS = ("loo", "temporal", "cold_start")
MIN_TEST_USERS = 200  # below this many test users a split is flagged as not informative (info["note"])


@dataclass
class EvalCases:
    """What an evaluator needs, aligned by position: user index, chronological history, target items."""

    users: np.ndarray
    histories: list[np.ndarray]
    targets: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.users)

    def subset(self, idx: np.ndarray) -> "EvalCases":
        return EvalCases(self.users[idx], [self.histories[i] for i in idx], [self.targets[i] for i in idx])


@dataclass
class Split:
    """Train/valid/test interaction frames of one dataset, plus how they were made.

    ``cases``: evaluation cases built with the split (the cold-start split, whose histories are not "everything
    before the stage"); ``eval_cases`` returns them instead of deriving cases from the frames. ``info["note"]``,
    when present, says why the split is not informative (too few test users): reports should print it.
    ``info["valid_candidates"]``/``info["test_candidates"]``, when present (the cold-start split: its valid- and
    test-new items), are the sorted item indices that stage's cases are ranked among for model selection; read
    them with :meth:`candidates`.
    """

    name: str
    dataset: RecDataset
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    info: dict[str, object] = field(default_factory=dict)
    cases: dict[str, EvalCases] = field(default_factory=dict, repr=False)

    def sequences(self, stage: str = "train") -> dict[int, np.ndarray]:
        """Per-user chronological item-index sequences of ``train`` (or ``train``+``valid`` for stage "valid")."""
        frames = {"train": [self.train], "valid": [self.train, self.valid], "test": [self.train, self.valid, self.test]}
        if stage not in frames:
            raise ValueError(f"stage must be one of {list(frames)}, got {stage!r}")
        return _sequences(self.dataset, pd.concat(frames[stage]))

    def known_items(self) -> np.ndarray:
        """The sorted indices of the catalogue items a model may learn anything from, text statistics included (a
        whitening of item vectors, a vocabulary): every item but those the split holds out as new (the validation
        and test candidates of a cold-start split); every item for the other splits."""
        new = [c for c in (self.candidates("valid"), self.candidates("test")) if c is not None]
        everything = np.arange(self.dataset.n_items, dtype=np.int64)
        return np.setdiff1d(everything, np.concatenate(new)) if new else everything

    def candidates(self, stage: str = "valid") -> np.ndarray | None:
        """The sorted item indices the ``stage`` ("valid" or "test") cases are ranked among for model selection,
        or None: the full catalogue."""
        if stage not in ("valid", "test"):
            raise ValueError(f"stage must be 'valid' or 'test', got {stage!r}")
        items = self.info.get(f"{stage}_candidates")
        return None if items is None else np.asarray(items, dtype=np.int64)

    def eval_cases(self, stage: str = "test") -> EvalCases:
        """Cases for evaluation: history = everything before the stage, targets = the stage's items per user."""
        if stage not in ("valid", "test"):
            raise ValueError(f"stage must be 'valid' or 'test', got {stage!r}")
        if stage in self.cases:
            return self.cases[stage]
        target_frame = self.valid if stage == "valid" else self.test
        history = self.sequences("train" if stage == "valid" else "valid")
        targets = _sequences(self.dataset, target_frame)
        users, hists, tgts = [], [], []
        for u in sorted(targets):
            h = history.get(u)
            if h is None or len(h) == 0:
                continue  # a user with no history cannot be scored; counted in info["skipped_users"]
            users.append(u)
            hists.append(h)
            tgts.append(np.unique(targets[u]))
        self.info[f"{stage}_skipped_users"] = len(targets) - len(users)
        return EvalCases(np.asarray(users, dtype=np.int64), hists, tgts)


def tie_order(frame: pd.DataFrame) -> np.ndarray:
    """The order of a user's interactions that share a timestamp: a fixed hash of (user id, item id), the same on
    every run, machine and subset of the rows. Not the file's order: MovieLens-latest's ratings.csv lists a user's
    ratings by movie id and Amazon's reviews come grouped by item, so among interactions of the same second (bulk
    ratings) or day (Amazon's review dates) file order would make "the next item" the one with the larger id, i.e.
    the newer film or product, which a model reading item text can learn."""
    keys = frame[USER].astype(str) + "\x1f" + frame[ITEM].astype(str)
    return pd.util.hash_pandas_object(keys, index=False).to_numpy()


def chronological_order(users: np.ndarray, times: np.ndarray, ties: np.ndarray) -> np.ndarray:
    """Row order by user, then time, then :func:`tie_order` (exact duplicates in file order)."""
    return np.lexsort((ties, times, users))


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows by user, then time, then :func:`tie_order`."""
    return frame.iloc[chronological_order(frame[USER].to_numpy(), frame[TIME].to_numpy(), tie_order(frame))]


def _sequences(dataset: RecDataset, frame: pd.DataFrame) -> dict[int, np.ndarray]:
    if frame.empty:
        return {}
    users, items = dataset.user_index(frame[USER]), dataset.item_index(frame[ITEM])
    order = chronological_order(users, frame[TIME].to_numpy(), tie_order(frame))
    users, items = users[order], items[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    return {int(users[a]): items[a:b] for a, b in zip(starts, np.r_[starts[1:], len(users)])}


def leave_one_out(dataset: RecDataset, min_interactions: int = 3) -> Split:
    """Chronological leave-one-out: each user's last interaction is test, the one before is valid.

    Users with fewer than ``min_interactions`` interactions stay wholly in train (reported in ``info``).
    """
    if min_interactions < 3:
        raise ValueError("min_interactions must be at least 3 (one train, one valid, one test item)")
    frame = _ordered(dataset.interactions.reset_index(drop=True))
    rank_from_end = frame.groupby(USER, sort=False).cumcount(ascending=False).to_numpy()
    counts = frame.groupby(USER, sort=False)[ITEM].transform("size").to_numpy()
    eligible = counts >= min_interactions
    test = frame[eligible & (rank_from_end == 0)]
    valid = frame[eligible & (rank_from_end == 1)]
    train = frame[~(eligible & (rank_from_end <= 1))]
    info = {"short_users_train_only": int(frame.loc[~eligible, USER].nunique())}
    return Split("loo", dataset, train, valid, test, info)


def _check_fractions(valid_fraction: float, test_fraction: float) -> None:
    if not (0 < valid_fraction < 1 and 0 < test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise ValueError("valid_fraction and test_fraction must be in (0, 1) and sum below 1")


def _cuts(dataset: RecDataset, valid_fraction: float, test_fraction: float, split: str = "temporal"
          ) -> tuple[int, int]:
    """Timestamps at which the valid and the test periods begin: quantiles of all interaction times; a one-line
    DataError naming the data set's source and the ``split`` when both cuts fall on the same time."""
    _check_fractions(valid_fraction, test_fraction)
    ts = dataset.interactions[TIME].to_numpy()
    t_valid = np.quantile(ts, 1 - valid_fraction - test_fraction, method="lower")
    t_test = np.quantile(ts, 1 - test_fraction, method="lower")
    if t_valid >= t_test:
        where = f"{dataset.source or dataset.name}, column {TIME!r}"
        raise DataError(f"the interaction times take too few distinct values ({len(np.unique(ts))}) for a {split} "
                        f"split: its validation and test periods would both begin at {t_valid}", where,
                        "give finer timestamps, or use the leave-one-out split (loo)")
    return int(t_valid), int(t_test)


def _size_note(info: dict[str, object], test_users: int, min_test_users: int) -> None:
    """Record how many test users the split leaves, and flag it as not informative below ``min_test_users``."""
    info["test_users"] = test_users
    info["informative"] = test_users >= min_test_users
    if test_users < min_test_users:
        info["note"] = (f"only {test_users} test users (fewer than {min_test_users}): too few for an informative "
                        "comparison; read its figures as indicative only")


def temporal_split(dataset: RecDataset, valid_fraction: float = 0.1, test_fraction: float = 0.1,
                   min_test_users: int = MIN_TEST_USERS) -> Split:
    """Global temporal split: the last ``test_fraction`` of interactions by time are test, the
    ``valid_fraction`` before them valid. Nothing after a cut point is ever used for training.

    A test user needs an interaction before the test cut (a history). When fewer than ``min_test_users`` remain
    (ML-latest-small: 27; no test fraction up to 0.5 reaches 200 there or on ML-100K), ``info["informative"]`` is
    False and ``info["note"]`` says so.
    """
    t_valid, t_test = _cuts(dataset, valid_fraction, test_fraction)
    frame = _ordered(dataset.interactions.reset_index(drop=True))
    train = frame[frame[TIME] < t_valid]
    valid = frame[(frame[TIME] >= t_valid) & (frame[TIME] < t_test)]
    test = frame[frame[TIME] >= t_test]
    info: dict[str, object] = {"valid_from": t_valid, "test_from": t_test}
    _size_note(info, int(ids_in(test[USER].unique(), frame.loc[frame[TIME] < t_test, USER]).sum()), min_test_users)
    return Split("temporal", dataset, train, valid, test, info)


def _first_new(users: np.ndarray, times: np.ndarray, first_seen: np.ndarray, start: int, stop: float) -> np.ndarray:
    """Positions of each user's first interaction with an item first seen in [start, stop), among interactions
    before ``stop``; the arrays are sorted by user, then time, then :func:`tie_order`, ``first_seen`` per row."""
    rows = np.flatnonzero((first_seen >= start) & (first_seen < stop) & (times < stop))
    return rows[np.r_[True, users[rows][1:] != users[rows][:-1]]] if len(rows) else rows


def _cases_before(users: np.ndarray, times: np.ndarray, items: np.ndarray, rows: np.ndarray
                  ) -> tuple[EvalCases, np.ndarray]:
    """One case per target row: the user's interactions strictly earlier than the target (same-second ones
    excluded), oldest first. Returns the cases and which target rows have a non-empty history."""
    starts = np.searchsorted(users, users[rows], side="left")
    stops = np.array([a + np.searchsorted(times[a:r], times[r], side="left") for a, r in zip(starts, rows)], np.int64)
    keep = stops > starts
    hists = [items[a:b] for a, b in zip(starts[keep], stops[keep])]
    return EvalCases(users[rows[keep]], hists, [items[r : r + 1] for r in rows[keep]]), keep


def cold_start_split(dataset: RecDataset, valid_fraction: float = 0.1, test_fraction: float = 0.4,
                     min_test_users: int = MIN_TEST_USERS) -> Split:
    """Cold-start items in time: test items are those first seen at or after a cut, and nothing later than a
    target is in its history.

    The cuts are quantiles of all interaction times, as in :func:`temporal_split`: the test period holds the last
    ``test_fraction`` of interactions, the valid period the ``valid_fraction`` before it. An item first seen in the
    test period is new at test; one first seen in the valid period is new at validation.

    - test: one case per user, their FIRST interaction with a test-new item (earliest time, ties by :func:`tie_order`);
      its history is the user's interactions strictly before that moment, oldest first. Interactions in the same
      second as the target are left out of the history (their order is unknown), so a history is never later than
      its target and never holds a new item. One target per case, so HR@K is about one item.
    - valid: the same, for valid-new items, with targets before the test cut.
    - train: the interactions before the valid cut; no valid- or test-new item occurs in it.
    ``info["valid_candidates"]``/``info["test_candidates"]`` hold the valid-new/test-new item indices (sorted): the
    items :meth:`Split.candidates` says each stage's cases are ranked among for model selection.
    Users with no interaction before their target are skipped (``info["test_skipped_users"]``). The defaults
    (0.1, 0.4) leave ~230 test cases on ML-100K and ML-latest-small (training on the first half of the
    interactions); a split with fewer than ``min_test_users`` cases is flagged in ``info["note"]``.
    ``split.test``/``split.valid`` hold the target rows; histories live in ``split.eval_cases(stage)``.
    """
    t_valid, t_test = _cuts(dataset, valid_fraction, test_fraction, "cold-start")
    raw = dataset.interactions.reset_index(drop=True)
    order = chronological_order(dataset.user_index(raw[USER]), raw[TIME].to_numpy(), tie_order(raw))
    users = dataset.user_index(raw[USER])[order]
    items = dataset.item_index(raw[ITEM])[order]
    times = raw[TIME].to_numpy()[order]
    first = np.full(dataset.n_items, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(first, items, times)
    seen = first[first < np.iinfo(np.int64).max]
    info: dict[str, object] = {"valid_from": t_valid, "test_from": t_test,
                               "valid_items": int(((seen >= t_valid) & (seen < t_test)).sum()),
                               "test_items": int((seen >= t_test).sum()),
                               "valid_candidates": np.flatnonzero((first >= t_valid) & (first < t_test)),
                               "test_candidates": np.flatnonzero((first >= t_test) & (first < np.iinfo(np.int64).max))}
    stages: dict[str, pd.DataFrame] = {}
    cases: dict[str, EvalCases] = {}
    for stage, start, stop in (("valid", t_valid, t_test), ("test", t_test, np.inf)):
        rows = _first_new(users, times, first[items], start, stop)
        cases[stage], keep = _cases_before(users, times, items, rows)
        stages[stage] = raw.iloc[order[rows[keep]]]
        info[f"{stage}_skipped_users"] = int((~keep).sum())
    if len(cases["test"]) == 0:
        why = ("no item is first seen at or after the test cut" if info["test_items"] == 0 else
               "no user has a history before their first interaction with an item first seen after the test cut")
        raise DataError(f"data set {dataset.name!r}: {why} ({t_test}), so there is no cold-start case; "
                        f"raise test_fraction (now {test_fraction})")
    _size_note(info, len(cases["test"]), min_test_users)
    train = _ordered(raw[raw[TIME] < t_valid])
    return Split("cold_start", dataset, train, stages["valid"], stages["test"], info, cases)


def random_item_cold_start_split(
    dataset: RecDataset, valid_item_fraction: float = 0.1, test_item_fraction: float = 0.1, seed: int = 0
) -> Split:
    """The former cold-start split: a seeded random set of items is held out whole; their interactions form
    valid/test, and each user's history is ALL their train (+valid) interactions.

    It leaks the future: history ignores time, so on ML-100K 88% of the history of its test users was later than
    the user's first held-out target, and a user has ~11 targets (HR@10 = "any of 11 in the top 10"). Kept only to
    reproduce reports made with it; use :func:`cold_start_split`. No held-out item ever occurs in train.
    """
    if not (0 < valid_item_fraction < 1 and 0 < test_item_fraction < 1 and valid_item_fraction + test_item_fraction < 1):
        raise ValueError("item fractions must be in (0, 1) and sum below 1")
    items = np.sort(dataset.interactions[ITEM].unique())
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(items))
    n_test = max(1, int(round(test_item_fraction * len(items))))
    n_valid = max(1, int(round(valid_item_fraction * len(items))))
    test_items = set(items[perm[:n_test]])
    valid_items = set(items[perm[n_test : n_test + n_valid]])
    frame = _ordered(dataset.interactions.reset_index(drop=True))
    in_test = ids_in(frame[ITEM], pd.Index(sorted(test_items)))
    in_valid = ids_in(frame[ITEM], pd.Index(sorted(valid_items)))
    info = {"seed": seed, "test_items": len(test_items), "valid_items": len(valid_items), "leaks_future": True}
    return Split("cold_start_random", dataset, frame[~in_test & ~in_valid], frame[in_valid], frame[in_test], info)


def make_split(dataset: RecDataset, name: str, seed: int = 0) -> Split:
    """Build a split by name (``loo``, ``temporal`` or ``cold_start``); all three are deterministic, ``seed``
    is accepted for callers that pass one per run."""
    if name == "loo":
        return leave_one_out(dataset)
    if name == "temporal":
        return temporal_split(dataset)
    if name == "cold_start":
        return cold_start_split(dataset)
    raise ValueError(f"unknown split {name!r}; choose one of {SPLITS}")
