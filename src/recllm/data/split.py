"""Seeded splits of a RecDataset: chronological leave-one-out, global temporal, cold-start items."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recllm.data.dataset import ITEM, TIME, USER, DataError, RecDataset, ids_in

SPLITS = ("loo", "temporal", "cold_start")


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
    """Train/valid/test interaction frames of one dataset, plus how they were made."""

    name: str
    dataset: RecDataset
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    info: dict[str, object] = field(default_factory=dict)

    def sequences(self, stage: str = "train") -> dict[int, np.ndarray]:
        """Per-user chronological item-index sequences of ``train`` (or ``train``+``valid`` for stage "valid")."""
        frames = {"train": [self.train], "valid": [self.train, self.valid], "test": [self.train, self.valid, self.test]}
        if stage not in frames:
            raise ValueError(f"stage must be one of {list(frames)}, got {stage!r}")
        return _sequences(self.dataset, pd.concat(frames[stage]))

    def eval_cases(self, stage: str = "test") -> EvalCases:
        """Cases for evaluation: history = everything before the stage, targets = the stage's items per user."""
        if stage not in ("valid", "test"):
            raise ValueError(f"stage must be 'valid' or 'test', got {stage!r}")
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


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    """Sort by user then time, ties kept in file order (stable), so results never depend on hash order."""
    return frame.sort_values([USER, TIME], kind="stable")


def _sequences(dataset: RecDataset, frame: pd.DataFrame) -> dict[int, np.ndarray]:
    if frame.empty:
        return {}
    frame = frame.assign(_u=dataset.user_index(frame[USER]), _i=dataset.item_index(frame[ITEM]))
    frame = frame.sort_values(["_u", TIME], kind="stable")
    return {int(u): g["_i"].to_numpy(np.int64) for u, g in frame.groupby("_u", sort=True)}


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


def temporal_split(dataset: RecDataset, valid_fraction: float = 0.1, test_fraction: float = 0.1) -> Split:
    """Global temporal split: the last ``test_fraction`` of interactions by time are test, the
    ``valid_fraction`` before them valid. Nothing after a cut point is ever used for training."""
    if not (0 < valid_fraction < 1 and 0 < test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise ValueError("valid_fraction and test_fraction must be in (0, 1) and sum below 1")
    ts = dataset.interactions[TIME].to_numpy()
    t_valid = np.quantile(ts, 1 - valid_fraction - test_fraction, method="lower")
    t_test = np.quantile(ts, 1 - test_fraction, method="lower")
    if t_valid >= t_test:
        raise DataError(f"data set {dataset.name!r}: timestamps too coarse for a temporal split ({t_valid} >= {t_test})")
    frame = _ordered(dataset.interactions.reset_index(drop=True))
    train = frame[frame[TIME] < t_valid]
    valid = frame[(frame[TIME] >= t_valid) & (frame[TIME] < t_test)]
    test = frame[frame[TIME] >= t_test]
    info = {"valid_from": int(t_valid), "test_from": int(t_test)}
    return Split("temporal", dataset, train, valid, test, info)


def cold_start_split(
    dataset: RecDataset, valid_item_fraction: float = 0.1, test_item_fraction: float = 0.1, seed: int = 0
) -> Split:
    """Cold-start items: a seeded random set of items is held out whole; their interactions form valid/test.

    No test (or valid) item ever occurs in train, so ID-only models have never seen them.
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
    info = {"seed": seed, "test_items": len(test_items), "valid_items": len(valid_items)}
    return Split("cold_start", dataset, frame[~in_test & ~in_valid], frame[in_valid], frame[in_test], info)


def make_split(dataset: RecDataset, name: str, seed: int = 0) -> Split:
    """Build a split by name (``loo``, ``temporal`` or ``cold_start``)."""
    if name == "loo":
        return leave_one_out(dataset)
    if name == "temporal":
        return temporal_split(dataset)
    if name == "cold_start":
        return cold_start_split(dataset, seed=seed)
    raise ValueError(f"unknown split {name!r}; choose one of {SPLITS}")
