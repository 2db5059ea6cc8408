"""The LLM-TRSR benchmark at the paper's scale: training sizes, the lr choice, the fused two-stage weight chosen on
validation only, the report naming what each run trained on, and the plan's arithmetic (no language model)."""

from types import SimpleNamespace

import numpy as np
import pytest

from recllm.bench.trsr.scale import (LR_GRID, PAPER_EPOCHS, lr_candidates, optimizer_steps, paper_lr, pick_lr,
                                     pick_weight, training_size, training_size_of_split)
from recllm.errors import UserInputError
from recllm.trsr.pipeline import training_cases
from recllm.trsr.ranker import ranker_sft_config


def test_a_data_set_with_many_users_needs_one_target_each_and_no_more_users_than_the_count():
    size = training_size([20 + i % 50 for i in range(610)], n_users=500, n_negatives=20, min_candidates=10_000)
    assert (size.users, size.targets_per_user, size.groups, size.candidates) == (477, 1, 477, 10_017)
    capped = training_size([20] * 610, n_users=300, n_negatives=20, min_candidates=10_000)
    assert (capped.users, capped.targets_per_user, capped.groups) == (239, 2, 478)  # 2 targets, fewest users


def test_short_histories_get_more_targets_per_user_and_the_smallest_that_reaches_the_count():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 9, size=348)  # Amazon-like: few users, short histories
    size = training_size(lengths, n_users=500, n_negatives=20, min_candidates=10_000)
    assert size.candidates >= 10_000 and size.targets_per_user > 1
    fewer = sum(min(size.targets_per_user - 1, n - 1) for n in lengths if n >= 2)
    assert fewer * 21 < 10_000  # one target fewer would not reach it
    # the fewest users that reach it, counted on the shortest histories: one user fewer would not
    cases = sorted(int(n) - 1 for n in lengths if n >= 2)
    t = size.targets_per_user
    assert sum(min(t, c) for c in cases[:size.users]) == size.groups >= 477
    assert sum(min(t, c) for c in cases[:size.users - 1]) < 477 and size.users < len(cases)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_every_seeded_sample_of_users_reaches_the_count(loo, seed):
    size = training_size_of_split(loo, n_users=50, n_negatives=20, min_candidates=2_000)
    cases = training_cases(loo, size.users, size.targets_per_user, seed=seed)
    assert np.unique(cases.users).size == size.users == 48 and len(cases) * 21 >= 2_000
    assert size.targets_per_user == 2  # 50 users x 1 target give 1,050 candidates; 48 x 2 reach 2,000


def test_too_few_interactions_for_the_count_is_one_line():
    with pytest.raises(UserInputError, match="fewer than 10000.*lower the labelled-candidate target"):
        training_size([3, 4, 5], n_users=10, min_candidates=10_000)


def test_lr_is_chosen_from_a_grid_that_holds_the_papers():
    sft = ranker_sft_config()
    assert paper_lr() == sft.learning_rate
    assert optimizer_steps(500, sft) == 500 // (sft.batch_size * sft.grad_accum) * sft.epochs
    assert lr_candidates() == LR_GRID and paper_lr() in LR_GRID
    assert lr_candidates((3e-4, 1e-3)) == (paper_lr(), 3e-4, 1e-3)  # the paper's is always a candidate
    assert pick_lr({1e-4: 1.0, 3e-4: 1.4, 1e-3: 1.2}) == 3e-4
    assert pick_lr({1e-4: 1.0, 1e-3: 1.0}) == 1e-4  # a tie goes towards the paper's value


@pytest.mark.parametrize("groups", [20, 2_000])
def test_decide_lr_fits_the_grid_once_on_seed_0_for_each_compared_ranker_whatever_the_step_count(groups):
    """The hierarchical and the no-summary ranker each get the lr of their own best validation run: the headline
    compares them, so neither may run at an lr chosen for the other."""
    from recllm.bench.trsr.run import decide_lr

    # the hierarchical grid's best is its largest lr, the no-summary one's its smallest: each is extended one lr
    scores = {"hierarchical": {1e-4: 1.0, 3e-4: 1.1, 1e-3: 1.6, 3e-3: 1.2},
              "none": {3e-5: 0.8, 1e-4: 1.3, 3e-4: 1.2, 1e-3: 0.9}}

    class FakeFitter:
        def __init__(self, groups):
            self.data = SimpleNamespace(train=SimpleNamespace(groups=groups), spec=SimpleNamespace(name="toy"))
            self.fits = []

        def config(self, mode, seed, lr=None, **kw):
            return SimpleNamespace(sft=ranker_sft_config(), lr=lr, seed=seed, mode=mode)

        def fit(self, label, config):
            self.fits.append((label, config.seed, config.lr))
            best = scores[config.mode][config.lr]
            return SimpleNamespace(ranker_=SimpleNamespace(valid_scores_={0: best - 1, 1: best}))

    fitter = FakeFitter(groups=groups)
    out = decide_lr(fitter, log=lambda *a: None)
    assert out["lr"] == {"hierarchical": 1e-3, "none": 1e-4}
    assert out["curve"] == {"hierarchical": {"0.0001": 1.0, "0.0003": 1.1, "0.001": 1.6, "0.003": 1.2},
                            "none": {"0.0001": 1.3, "0.0003": 1.2, "0.001": 0.9, "3e-05": 0.8}}
    assert fitter.fits == ([("hierarchical-seed0", 0, lr) for lr in (*LR_GRID, 3e-3)]
                           + [("none-seed0", 0, lr) for lr in (*LR_GRID, 3e-5)])
    assert "validation" in out["how"]
    assert f"{ranker_sft_config().epochs} epoch(s); the paper trains {PAPER_EPOCHS})" in out["how"]
    assert out["steps"] == optimizer_steps(groups, ranker_sft_config())


def test_each_lr_grid_run_is_a_stored_piece_so_a_grid_longer_than_a_session_resumes(tmp_path):
    """The grid's runs are stored one by one: a session that stopped after two of them (on a machine whose cache
    is gone) trains only the others."""
    from recllm.bench.runs import RunStore
    from recllm.bench.trsr.run import decide_lr, lr_piece, stored_pieces

    class FakeFitter:
        def __init__(self, fail_after=None):
            self.data = SimpleNamespace(train=SimpleNamespace(groups=20), spec=SimpleNamespace(name="toy"))
            self.fits, self.fail_after = [], fail_after

        def config(self, mode, seed, lr=None, **kw):
            return SimpleNamespace(sft=ranker_sft_config(), lr=lr, seed=seed, mode=mode)

        def fit(self, label, config):
            if self.fail_after is not None and len(self.fits) == self.fail_after:
                raise KeyboardInterrupt  # the session ends
            self.fits.append((config.mode, config.lr))
            return SimpleNamespace(ranker_=SimpleNamespace(valid_scores_={1: config.lr * 1000}))

    store = RunStore(tmp_path / "runs.jsonl")
    first = FakeFitter(fail_after=2)
    with pytest.raises(KeyboardInterrupt):
        decide_lr(first, log=lambda *a: None, piece=stored_pieces(store, "lr-unit", log=lambda *a: None))
    second = FakeFitter()
    out = decide_lr(second, log=lambda *a: None, piece=stored_pieces(RunStore(tmp_path / "runs.jsonl"), "lr-unit",
                                                                      log=lambda *a: None))
    # the score grows with the lr: each grid is extended to the ladder's end (3e-3)
    grid = [(mode, lr) for mode in ("hierarchical", "none") for lr in (*LR_GRID, 3e-3)]
    assert first.fits == grid[:2] and second.fits == grid[2:]
    assert out["lr"] == {"hierarchical": 3e-3, "none": 3e-3}
    assert lr_piece("none", 3e-4) == "lr-none-0.0003"


class Fixed:
    """A retriever with fixed scores (item i scores n_items - i: item 0 first)."""

    def __init__(self, n_items):
        self.n_items_ = n_items

    def fit(self, split):
        return self

    def score(self, users, histories):
        return np.tile(np.arange(self.n_items_, 0, -1, dtype=np.float64), (len(users), 1))

    def recommend(self, users, histories, k=10, filter_seen=True):
        from recllm.models.base import Recommender

        return Recommender.recommend(self, users, histories, k, filter_seen)


def test_fused_weight_0_keeps_the_retrievers_order_and_a_large_one_follows_the_llm():
    from recllm.bench.trsr.run import Reranked

    def rerank(histories, lists):
        return [np.linspace(0.1, 0.9, len(x)) for x in lists]  # prefers the retriever's last items

    retriever = Fixed(8)
    for weight, expected in ((0.0, [1, 2, 3, 4]), (100.0, [4, 3, 2, 1]), (None, [4, 3, 2, 1])):
        scores = Reranked(retriever, rerank, k=4, weight=weight).fit(None).score(np.array([0]), [np.array([0])])
        order = np.argsort(-scores[0], kind="stable").tolist()
        assert order[:4] == expected and order[4:] == [0, 5, 6, 7]  # the seen item 0 is left to the evaluation


def test_fused_weight_0_scores_exactly_as_the_retriever_alone_even_for_a_re_consumed_target():
    """The two-stage rows are compared with the retriever alone: at weight 0 they must be the same ranking, also for
    a target the user had already consumed (masked by the evaluator for both, never rankable in the top k only)."""
    from recllm.bench.trsr.run import Reranked
    from recllm.data.split import EvalCases
    from recllm.eval import evaluate_full_ranking

    retriever = Fixed(12)
    cases = EvalCases(np.arange(3), [np.array([0, 1]), np.array([2]), np.array([0, 5])],
                      [np.array([3]), np.array([9]), np.array([5])])
    rerank = lambda histories, lists: [np.linspace(0.9, 0.1, len(x)) for x in lists]
    alone = evaluate_full_ranking(retriever, cases, ks=(1, 5), show_progress=False)
    fused = evaluate_full_ranking(Reranked(retriever, rerank, k=4, weight=0.0).fit(None), cases, ks=(1, 5),
                                  show_progress=False)
    for name, values in alone.per_user.items():
        np.testing.assert_array_equal(fused.per_user[name], values, err_msg=name)
    assert alone.per_user["hr@5"].tolist() == [1.0, 0.0, 0.0]  # the re-consumed item 5 is a miss for both


def test_the_fusion_weight_is_chosen_on_validation_cases_and_never_sees_a_test_target(loo, monkeypatch):
    import recllm.bench.trsr.run as bench
    from recllm.bench.trsr.scale import FUSION_WEIGHTS
    from recllm.models import MODELS

    seen = []
    real = bench.choose_weight

    def spy(retriever, rerank, cases, split, k, *a):
        seen.append(cases)
        return real(retriever, rerank, cases, split, k, *a)

    monkeypatch.setattr(bench, "choose_weight", spy)
    test_cases = loo.eval_cases("test")
    data = SimpleNamespace(split=loo, test=SimpleNamespace(case=np.arange(len(test_cases))),
                           valid=SimpleNamespace(case=np.arange(4)), spec=SimpleNamespace(name="toy"))
    sizes = bench.dataclasses.replace(bench.QUICK, n_fusion_rows=10, n_rerank_rows=8, rerank_k=5,
                                      retrievers=("itemknn",))
    llm = {"hierarchical": SimpleNamespace(rank=lambda hs, ls: [np.linspace(0, 1, len(x)) for x in ls])}
    rows, choice = bench.two_stage(data, sizes, llm, {"itemknn": MODELS["itemknn"]().fit(loo)}, log=lambda *a: None)
    assert len(seen) == 1 and len(seen[0]) == 10
    valid_cases = loo.eval_cases("valid")  # the benchmark's validation rows first (their summaries exist)
    assert set(map(int, valid_cases.users[:4])) <= set(map(int, seen[0].users))
    test_target = {int(u): set(map(int, t)) for u, t in zip(test_cases.users, test_cases.targets)}
    valid = loo.eval_cases("valid")
    valid_target = {int(u): set(map(int, t)) for u, t in zip(valid.users, valid.targets)}
    for u, h, t in zip(seen[0].users, seen[0].histories, seen[0].targets):
        assert set(map(int, t)) == valid_target[int(u)]  # a validation target
        assert not test_target[int(u)] & (set(map(int, h)) | set(map(int, t)))  # the test item nowhere
    w = choice["weights"]["LLM-TRSR hierarchical"]
    assert w["w"] in FUSION_WEIGHTS and w["w"] == pick_weight(w["validation_ndcg@10"])
    assert [r["method"].split(" ")[-1] for r in rows] == ["alone", "(rerank)", "(fused)"]
    assert all(len(r["per_user"]["ndcg@10"]) == 8 for r in rows) and choice["retriever"] == "item-kNN"


def test_pick_weight_prefers_the_retriever_on_ties():
    assert pick_weight({0.0: 0.3, 1.0: 0.3, 2.0: 0.2}) == 0.0 and pick_weight({0.0: 0.3, 0.5: 0.31}) == 0.5


def test_report_names_training_users_groups_and_candidates_per_run():
    from recllm.bench.trsr.report import render
    from recllm.bench.trsr.run import QUICK

    per = {f"{m}@{k}": np.array([1.0, 0.0]) for m in ("recall", "mrr") for k in (3, 5, 10)}
    res = {"dataset": "toy", "n_test": 2, "n_valid": 2,
           "summary": {"users": 5, "items": 9, "interacted_items": 7, "interactions": 30},
           "train": {"users": 16, "targets_per_user": 1, "groups": 16, "candidates": 336},
           "lr_choice": {"lr": {"hierarchical": 3e-4, "none": 1e-4},
                         "curve": {"hierarchical": {"0.0001": 1.0, "0.0003": 1.5},
                                   "none": {"0.0001": 1.2, "0.0003": 0.7}}, "how": "chosen on seed 0's validation"},
           "curve": [{"method": "LLM-TRSR hierarchical", "users": 8, "groups": 8, "candidates": 168,
                      "valid_recall@5": 0.25}],
           "rows": [{"method": "popularity", "seed": 0, "per_user": per},
                    {"method": "LLM-TRSR hierarchical", "seed": 0, "per_user": per,
                     "faster": {"dtype": "bfloat16+float32-answers", "spearman": 0.97, "same_top1": 0.9}}],
           "two_stage": [{"method": m, "seed": 0, "per_user": {"hr@10": np.array(v), "ndcg@10": np.array(v) / 2}}
                         for m, v in (("SASRec alone", [1.0, 0.0, 0.0]), ("SASRec top-50 -> x (rerank)", [1.0, 1.0, 0.0]),
                                      ("SASRec + w * logit P(Yes), x, w=0.5 (fused)", [1.0, 1.0, 1.0]))],
           "two_stage_choice": {"retriever": "SASRec", "retriever_validation_ndcg@10": {"item-kNN": 0.1, "SASRec": 0.2},
                                "weights": {"x": {"w": 0.5, "validation_ndcg@10": {"0": 0.1, "0.5": 0.2}}},
                                "fusion_users": 3, "test_users": 3, "k": 50},
           "injection": [], "examples": [],
           "throughput": [{"method": "LLM-TRSR hierarchical", "seed": 0, "summary_users_per_s": 1.0,
                           "summary_prompts": 2, "candidates_per_s": 9.0, "train_pairs": 336, "train_s": 5.0,
                           "train_users": 16, "train_groups": 16, "train_candidates": 336, "lr": 3e-4,
                           "valid_scores": {0: 1.5}}]}
    text = render([res], QUICK, "tiny", [], quick=True)
    for needle in ("trained on 16 training users, 16 groups, 336 labelled candidates (lr 0.0003)",
                   "Learning curve", "LLM-TRSR hierarchical: valid R@5",
                       "Learning rates hierarchical 0.0003, no summary 0.0001: chosen",
                       "| 0.0003 | 1.500 | 0.700 |",
                   "bfloat16+float32-answers: 0.970 / 90%", "at least 16 groups", "Retriever: **SASRec**",
                   "x: w = 0.5 (validation NDCG@10 w=0: 0.100, w=0.5: 0.200)",
                   "SASRec + w * logit P(Yes), x, w=0.5 (fused) minus SASRec alone, hr@10: +0.667"):
        assert needle in text, needle


def test_plan_counts_only_what_is_not_stored():
    from recllm.bench.trsr.plan import Rates, Unit, format_plan

    rates = Rates(sft_group_s=2.0, score_candidate_s=0.05, summary_prompt_s=1.0)
    text = format_plan([Unit("toy", "SFT a", True, 7200.0), Unit("toy", "SFT b", False, 1800.0),
                        Unit("toy", "part seed 0", False, 1800.0)], rates)
    assert "estimated time left on this machine: ~1.0 h" in text and "stored" in text and "20.0 candidates/s" in text


def test_extend_lr_steps_beyond_an_edge_that_validates_best_and_stops_inside_or_at_the_ladders_end():
    from recllm.bench.trsr.scale import LR_LADDER, extend_lr

    assert extend_lr({1e-4: 1.0, 3e-4: 1.5, 1e-3: 1.7}) == 3e-3
    assert extend_lr({1e-4: 1.0, 3e-4: 1.5, 1e-3: 1.7, 3e-3: 1.9}) is None  # the ladder ends
    assert extend_lr({1e-4: 1.8, 3e-4: 1.5, 1e-3: 1.1}) == 3e-5
    assert extend_lr({1e-4: 1.0, 3e-4: 1.9, 1e-3: 1.1}) is None  # the best is inside
    assert extend_lr({1e-4: 1.0, 3e-4: float("nan"), 1e-3: 0.5}) == 3e-5  # nan runs are ignored
    assert extend_lr({1e-4: 1.0}) is None and min(LR_LADDER) < 1e-4 < 1e-3 < max(LR_LADDER)
