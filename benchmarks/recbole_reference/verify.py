"""Check that RecBole built exactly recllm's split: same training transitions, valid/test histories and targets.

``run_recbole.py`` dumps the rows of RecBole's own dataset objects (after its parsing and id re-mapping) to
``recbole_view.npz``; here they are decoded back to item ids and compared, user by user, with a split made afresh
by recllm (not with the exported files), so a fault in the export, in RecBole's reading or in tie order shows up.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recllm.data import ITEM, TIME, USER, Split

Row = tuple[tuple[str, ...], str]


@dataclass
class StageCheck:
    """One stage's comparison: row counts, users compared, and the users whose rows differ (with a first example)."""

    stage: str
    rows_recllm: int
    rows_recbole: int
    users: int
    mismatched_users: list[str] = field(default_factory=list)
    example: str = ""

    @property
    def ok(self) -> bool:
        return self.rows_recllm == self.rows_recbole and not self.mismatched_users


def expected_rows(split: Split, max_len: int) -> dict[str, dict[str, list[Row]]]:
    """Per stage, per user id: the (last ``max_len`` history items, target) rows recllm's split implies."""
    items = split.dataset.items[ITEM].astype(str).to_numpy()
    users = split.dataset.users[USER].astype(str).to_numpy()
    out: dict[str, dict[str, list[Row]]] = {"train": defaultdict(list)}
    for u, seq in split.sequences("train").items():
        tokens = items[seq]
        for t in range(1, len(tokens)):
            out["train"][users[u]].append((tuple(tokens[max(0, t - max_len):t]), tokens[t]))
    for stage in ("valid", "test"):
        cases = split.eval_cases(stage)
        out[stage] = defaultdict(list)
        for u, hist, tgt in zip(cases.users, cases.histories, cases.targets):
            for target in items[tgt]:
                out[stage][users[u]].append((tuple(items[hist[-max_len:]]), target))
    return out


def recbole_rows(view: Mapping[str, np.ndarray], stage: str) -> dict[str, list[Row]]:
    """Per user id: the rows RecBole holds for ``stage``, decoded through its own id maps."""
    user_tokens, item_tokens = view["user_tokens"], view["item_tokens"]
    users = user_tokens[view[f"{stage}_user"]]
    histories, lengths = view[f"{stage}_history"], view[f"{stage}_length"]
    targets = item_tokens[view[f"{stage}_target"]]
    out: dict[str, list[Row]] = defaultdict(list)
    for user, hist, n, target in zip(users, histories, lengths, targets):
        if (hist[n:] != 0).any():
            raise ValueError(f"RecBole {stage} row of user {user!r} has items after its length {n}")
        out[str(user)].append((tuple(item_tokens[hist[:n]].astype(str).tolist()), str(target)))
    return out


def check_view(split: Split, view: Mapping[str, np.ndarray], max_len: int) -> list[StageCheck]:
    """Compare every stage's rows per user (order-free within a user for train, where RecBole may shuffle)."""
    expected = expected_rows(split, max_len)
    checks = []
    for stage in ("train", "valid", "test"):
        ours, theirs = expected[stage], recbole_rows(view, stage)
        check = StageCheck(stage, sum(map(len, ours.values())), sum(map(len, theirs.values())),
                           len(set(ours) | set(theirs)))
        for user in sorted(set(ours) | set(theirs), key=lambda u: (len(u), u)):
            a, b = sorted(ours.get(user, [])), sorted(theirs.get(user, []))
            if a != b:
                check.mismatched_users.append(user)
                if not check.example:
                    check.example = f"user {user}: recllm {_show(a, b)} vs RecBole {_show(b, a)}"
        checks.append(check)
    return checks


def _show(rows: list[Row], other: list[Row]) -> str:
    """The first row of ``rows`` missing from ``other``, briefly (last 3 history items -> target)."""
    missing = [r for r in rows if r not in set(other)]
    if not missing:
        return f"{len(rows)} rows"
    hist, target = missing[0]
    return f"[{'... ' if len(hist) > 3 else ''}{' '.join(hist[-3:])}] -> {target} ({len(rows)} rows)"


def tie_counts(split: Split, max_len: int) -> dict[str, int]:
    """How much the tie rule matters: users whose valid and test items share a timestamp, and users with any
    equal timestamps inside the (last ``max_len`` + 1 items of the) test history."""
    test = split.test.set_index(USER)[TIME]
    valid = split.valid.set_index(USER)[TIME].reindex(test.index)
    frame = pd.concat([split.train, split.valid, split.test]).sort_values([USER, TIME], kind="stable")
    tail = frame.groupby(USER, sort=False).tail(max_len + 2)
    tied = tail.groupby(USER, sort=False)[TIME].agg(lambda t: t.duplicated().any())
    return {"test_users": int(len(test)), "test_time_equals_valid_time": int((test == valid).sum()),
            "users_with_tied_times_in_window": int(tied.sum())}
