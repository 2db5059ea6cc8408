"""Evaluation harness: full-catalogue ranking, fixed sampled candidates, metrics, intervals and reports."""

from recllm.eval.ranking import RankingResult, evaluate_full_ranking
from recllm.eval.sampled import SampledCandidates, evaluate_sampled, from_recommender
from recllm.eval.stats import bootstrap_ci, paired_bootstrap_diff, seed_ci
from recllm.eval.tuning import TuneResult, grid_search

__all__ = [
    "RankingResult", "SampledCandidates", "TuneResult", "bootstrap_ci", "evaluate_full_ranking", "evaluate_sampled",
    "from_recommender", "grid_search", "paired_bootstrap_diff", "seed_ci",
]
