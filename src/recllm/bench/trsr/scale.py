"""How big the LLM-TRSR benchmark's training is, and the choices made from validation (pure functions).

* :func:`training_size`: the training users and ``targets_per_user`` that give at least ``min_candidates``
  labelled candidates (groups x (1 + negatives)) on a split, whichever users the seeded sample picks, with as few
  groups as that allows (SFT time grows with the groups);
* :func:`optimizer_steps`, :func:`lr_candidates`, :func:`pick_lr`, :func:`lr_for`: the lr, chosen once on seed
  0's validation from a small grid that holds the paper's, for the hierarchical and the no-summary ranker each
  (:data:`LR_MODES`: the two the headline compares, so neither runs at the other's best lr); its runs train 5
  epochs, these one: at the paper's lr one epoch of 478 groups left the Amazon ranker at the label prior, below
  random order on validation;
* :func:`pick_weight`: the fused two-stage weight, chosen on validation figures only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from recllm.errors import UserInputError
from recllm.llm.sft import SFTConfig
from recllm.trsr.ranker import ranker_sft_config

__all__ = ["MIN_CANDIDATES", "LR_GRID", "LR_LADDER", "LR_MODES", "FUSION_WEIGHTS", "TrainingSize", "training_size",
           "training_size_of_split", "optimizer_steps", "PAPER_EPOCHS", "paper_lr", "lr_candidates", "pick_lr",
           "extend_lr", "lr_for", "pick_weight"]

MIN_CANDIDATES = 10_000  # labelled candidates per fine-tuned ranker (the paper trains on about 10k samples)
LR_GRID = (1e-4, 3e-4, 1e-3)  # chosen from once, on seed 0's validation; the paper's 1e-4 is one of them
# where the grid's best is its largest (or smallest) lr, one more run at the ladder's next value beyond it, and so on
# while the best stays at the edge: a grid whose best is its edge has not found the best lr
LR_LADDER = (3e-5, 1e-4, 3e-4, 1e-3, 3e-3)
LR_MODES = ("hierarchical", "none")  # each chooses its own lr; the recurrent and hardened rankers use the first's
FUSION_WEIGHTS = (0.0, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0)  # w of "retriever z-score + w * logit P(Yes)"; 0 = retriever


@dataclass(frozen=True)
class TrainingSize:
    """``users`` training users with up to ``targets_per_user`` cases each: at least ``groups`` groups and
    ``candidates`` labelled candidates (``(1 + n_negatives)`` per group) for any seeded sample of the users."""

    users: int
    targets_per_user: int
    groups: int
    candidates: int


def training_size(history_lengths: Sequence[int], n_users: int, n_negatives: int = 20,
                  min_candidates: int = MIN_CANDIDATES, where: str = "training split") -> TrainingSize:
    """The smallest ``targets_per_user`` that gives ``min_candidates`` labelled candidates from at most ``n_users``
    users (fewer when the split has fewer eligible users), then the fewest users that still give them, counted on
    the users with the shortest train histories, so every seeded sample of that many users reaches the count and no
    run trains on many more groups than the count needs (e.g. 347 users x 2 targets would be 694 groups where 477
    reach 10k candidates).

    ``history_lengths``: each user's number of train interactions; a user with ``n`` of them gives up to ``n - 1``
    cases (each earlier item a target with the history before it). Raises :class:`UserInputError` when even every
    earlier item of every user is not enough.
    """
    if n_users < 1 or n_negatives < 1 or min_candidates < 1:
        raise ValueError(f"n_users, n_negatives and min_candidates must be positive, got {n_users}, {n_negatives}, "
                         f"{min_candidates}")
    cases = sorted(int(n) - 1 for n in history_lengths if int(n) >= 2)
    if not cases:
        raise UserInputError("no user has two or more train interactions", where, "use a larger data set")
    users = min(n_users, len(cases))
    shortest = cases[:users]
    need = math.ceil(min_candidates / (1 + n_negatives))
    most = max(shortest)
    for t in range(1, most + 1):
        reached = np.flatnonzero(np.cumsum([min(t, c) for c in shortest]) >= need)
        if reached.size:
            fewest = int(reached[0]) + 1
            groups = sum(min(t, c) for c in shortest[:fewest])
            return TrainingSize(fewest, t, groups, groups * (1 + n_negatives))
    raise UserInputError(f"{users} training users give at most {sum(shortest)} training groups "
                         f"({sum(shortest) * (1 + n_negatives)} labelled candidates), fewer than {min_candidates}",
                         where, "lower the labelled-candidate target or use more users")


def training_size_of_split(split, n_users: int, n_negatives: int = 20,
                           min_candidates: int = MIN_CANDIDATES) -> TrainingSize:
    """:func:`training_size` on the train part of a :class:`~recllm.data.split.Split`."""
    lengths = [len(seq) for seq in split.sequences("train").values()]
    return training_size(lengths, n_users, n_negatives, min_candidates, where=f"train part of {split.dataset.name}")


def optimizer_steps(groups: int, sft: SFTConfig) -> int:
    """Optimizer steps of a run on ``groups`` groups (``batch_size * grad_accum`` groups a step, every epoch)."""
    return math.ceil(groups / (sft.batch_size * sft.grad_accum)) * sft.epochs


PAPER_EPOCHS = 5  # LLM-TRSR's SFT epochs (PAPERS.md: lr 1e-4, 5 epochs)


def paper_lr() -> float:
    """The paper's learning rate, as the ranker's SFT defaults hold it (:func:`ranker_sft_config`)."""
    return float(ranker_sft_config().learning_rate)


def lr_candidates(grid: Sequence[float] = LR_GRID) -> tuple[float, ...]:
    """The lrs to choose from on validation: ``grid`` with the paper's lr among them (added if missing), ascending.
    The paper's lr is not taken as is whatever the step count: its runs train 5 epochs and these one, and on Amazon
    magazines one epoch at 1e-4 (239 optimizer steps) scored below random order on validation while 1e-3 on an
    eighth of the data did not (docs/results/trsr.md shows the curve that chose each data set's lr)."""
    return tuple(sorted({float(lr) for lr in grid} | {paper_lr()}))


def pick_lr(validation: Mapping[float, float]) -> float:
    """The lr with the best validation score (higher is better); ties go to the smaller lr (closer to the
    paper's)."""
    if not validation:
        raise ValueError("pick_lr needs at least one (lr, validation score)")
    return min(validation, key=lambda lr: (-float(validation[lr]), float(lr)))


def extend_lr(validation: Mapping[float, float], ladder: Sequence[float] = LR_LADDER) -> float | None:
    """The next lr to try after the runs of ``validation`` (lr -> score; non-finite scores ignored): when the best
    (:func:`pick_lr`) is the largest lr tried, the ladder's next larger value; when it is the smallest, the next
    smaller one; None when the best lies inside the tried range or the ladder ends there."""
    finite = {float(lr): float(v) for lr, v in validation.items() if np.isfinite(v)}
    if len(finite) < 2:
        return None
    best, tried = pick_lr(finite), sorted(finite)
    if best == tried[-1]:
        beyond = [float(lr) for lr in sorted(ladder) if lr > best * (1 + 1e-9)]
        return beyond[0] if beyond else None
    if best == tried[0]:
        below = [float(lr) for lr in sorted(ladder) if lr < best * (1 - 1e-9)]
        return below[-1] if below else None
    return None


def lr_for(lrs: float | Mapping[str, float] | None, mode: str) -> float | None:
    """The lr of a ranker of summary ``mode`` under ``lrs``: one lr for all, or one per mode of :data:`LR_MODES`
    (a mode without its own, recurrent, takes the hierarchical ranker's)."""
    if lrs is None or not isinstance(lrs, Mapping):
        return lrs
    return float(lrs[mode] if mode in lrs else lrs[LR_MODES[0]])


def pick_weight(validation: Mapping[float, float]) -> float:
    """The fusion weight with the best validation figure; ties go to the smaller weight (towards the retriever)."""
    if not validation:
        raise ValueError("pick_weight needs at least one (weight, validation figure)")
    return min(validation, key=lambda w: (-float(validation[w]), float(w)))
