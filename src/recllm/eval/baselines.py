"""The simple baselines every method is judged against, evaluated the same way: Popularity and tuned ItemKNN.

ItemKNN's parameters are chosen on the validation stage only (:func:`recllm.eval.tuning.grid_search`); both models
are then fitted on ``split.train`` and rank the full catalogue for the test cases (history = train + valid).
Used by ``recllm bench foundation`` (:mod:`recllm.bench.foundation.baselines`) and ``recllm demo``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from recllm.eval.ranking import RankingResult, check_ks, evaluate_full_ranking
from recllm.eval.report import fmt_ci
from recllm.eval.stats import PairedDiff, paired_bootstrap_diff
from recllm.eval.tuning import TuneResult, grid_search

if TYPE_CHECKING:
    from recllm.data.split import Split

# The benchmark grid (about 1.5 s per configuration on MovieLens-100K) and a small one for the demo.
ITEMKNN_GRID: dict[str, list[Any]] = {
    "k": [50, 100, 200, 500],
    "shrinkage": [0.0, 10.0, 100.0],
    "recency_decay": [None, 0.9, 0.7, 0.5, 0.3, 0.1],
}
DEMO_GRID: dict[str, list[Any]] = {"k": [100], "shrinkage": [10.0], "recency_decay": [None, 0.5]}


@dataclass
class BaselineResults:
    """Test-stage results of each baseline, the ItemKNN tuning record, and ItemKNN-vs-Popularity paired tests."""

    dataset: str
    split: str
    ks: tuple[int, ...]
    seed: int
    results: dict[str, RankingResult]
    summaries: dict[str, dict[str, tuple[float, float, float]]]
    params: dict[str, dict[str, Any]]
    seconds: dict[str, float]
    tuning: TuneResult
    grid: dict[str, list[Any]]
    n_boot: int
    comparisons: dict[str, PairedDiff] = field(default_factory=dict)

    @property
    def n_test_users(self) -> int:
        return len(next(iter(self.results.values())))

    def table_rows(self, metrics: Sequence[str] | None = None, digits: int = 4) -> list[dict[str, str]]:
        """One row per model: ``model``, ``params`` and ``"mean ± half-width"`` text per metric."""
        metrics = list(metrics) if metrics is not None else self.metric_names()
        rows = []
        for name, summary in self.summaries.items():
            params = ", ".join(f"{k}={v}" for k, v in self.params[name].items()) or "-"
            rows.append({"model": name, "params": params, **{m: fmt_ci(*summary[m], digits=digits) for m in metrics}})
        return rows

    def metric_names(self) -> list[str]:
        return [f"{m}@{k}" for k in self.ks for m in ("hr", "ndcg")]


def run_baselines(
    split: "Split",
    grid: Mapping[str, Sequence[Any]] = ITEMKNN_GRID,
    ks: Sequence[int] = (10, 50),
    seed: int = 0,
    n_boot: int = 1000,
    tune_metric: str = "ndcg@10",
    show_progress: bool = False,
) -> BaselineResults:
    """Fit Popularity and validation-tuned ItemKNN on ``split`` and rank the catalogue for its test users.

    Both models are deterministic, so ``seed`` only fixes the bootstrap resampling of the intervals.
    """
    from recllm.models import ItemKNN, Popularity

    ks = check_ks(ks)
    tuning = grid_search(ItemKNN, split, grid, metric=tune_metric, ks=ks, show_progress=show_progress)
    cases = split.eval_cases("test")
    models = {"popularity": (Popularity, {}), "itemknn": (ItemKNN, tuning.best_params)}
    results, summaries, params, seconds = {}, {}, {}, {}
    for name, (cls, kwargs) in models.items():
        start = time.perf_counter()
        model = cls(**kwargs).fit(split)
        results[name] = evaluate_full_ranking(model, cases, ks=ks, show_progress=show_progress)
        seconds[name] = time.perf_counter() - start
        summaries[name] = results[name].summary(seed=seed, n_boot=n_boot)
        params[name] = dict(kwargs)
    comparisons = {
        metric: paired_bootstrap_diff(results["itemknn"].per_user[metric], results["popularity"].per_user[metric],
                                      n_boot=n_boot, seed=seed)
        for metric in (f"{m}@{k}" for k in ks for m in ("hr", "ndcg"))
    }
    return BaselineResults(split.dataset.name, split.name, ks, seed, results, summaries, params, seconds, tuning,
                           {k: list(v) for k, v in grid.items()}, n_boot, comparisons)
