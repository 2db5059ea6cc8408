"""Model selection on the validation stage only: an exhaustive grid over a Recommender's parameters."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from recllm.eval.ranking import check_ks, evaluate_full_ranking

if TYPE_CHECKING:
    from recllm.data.split import Split
    from recllm.models.base import Recommender


@dataclass
class TuneResult:
    """The chosen parameters, their validation score, and one row per configuration tried (in grid order)."""

    best_params: dict[str, Any]
    best_score: float
    metric: str
    rows: list[dict[str, Any]]


def grid_search(
    make_model: Callable[..., "Recommender"],
    split: "Split",
    grid: Mapping[str, Sequence[Any]],
    metric: str = "ndcg@10",
    ks: Sequence[int] = (10,),
    show_progress: bool = True,
) -> TuneResult:
    """Fit ``make_model(**params)`` on ``split.train`` for every point of ``grid`` and rank the catalogue for the
    validation cases (history = train, target = valid); the best mean ``metric`` wins, the first on ties.

    The test stage is never touched, so the chosen configuration can be evaluated on it honestly.
    """
    ks = check_ks(ks)
    if not grid or any(len(values) == 0 for values in grid.values()):
        raise ValueError(f"grid must map each parameter to at least one value, got {dict(grid)!r}")
    cases = split.eval_cases("valid")
    if len(cases) == 0:
        raise ValueError(f"split {split.name!r} has no validation cases to tune on")
    from tqdm.auto import tqdm

    names = list(grid)
    points = list(itertools.product(*(grid[n] for n in names)))
    rows: list[dict[str, Any]] = []
    best_params: dict[str, Any] | None = None
    best_score = -float("inf")
    for values in tqdm(points, desc="grid search", unit="config", disable=not show_progress):
        params = dict(zip(names, values))
        start = time.perf_counter()
        model = make_model(**params).fit(split)
        means = evaluate_full_ranking(model, cases, ks=ks, show_progress=False).mean()
        if metric not in means:
            raise ValueError(f"metric {metric!r} is not computed; choose from {sorted(means)} (or change ks)")
        rows.append({**params, **means, "seconds": time.perf_counter() - start})
        if means[metric] > best_score:
            best_params, best_score = params, means[metric]
    assert best_params is not None
    return TuneResult(best_params, float(best_score), metric, rows)
