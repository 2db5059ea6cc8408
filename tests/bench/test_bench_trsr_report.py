"""trsr.md's paired comparisons use every seed a method ran, not only the first."""

import numpy as np

from recllm.bench.trsr.report import _paired


def test_paired_difference_averages_each_users_figure_over_seeds():
    users = 40
    a0, a1 = np.zeros(users), np.ones(users)  # seed 0 misses every user, seed 1 hits every user
    b = np.full(users, 0.25)
    rows = [{"method": "a", "seed": 0, "per_user": {"recall@10": a0.tolist()}},
            {"method": "a", "seed": 1, "per_user": {"recall@10": a1.tolist()}},
            {"method": "b", "seed": 0, "per_user": {"recall@10": b.tolist()}}]
    text = _paired(rows, "a", "b", "recall@10")
    assert "per-user mean over 2 seeds vs 1 seed; b's training noise is not measured)" in text
    assert "+0.250" in text and "better" in text
    assert "seed" not in _paired(rows[1:], "a", "b", "recall@10")  # one seed each: nothing to say about seeds
    assert _paired(rows, "a", "missing", "recall@10") == ""


def test_better_needs_both_the_users_and_the_seeds_interval_to_exclude_0():
    """Three seeds that disagree (one large gain, two small losses) give a user interval above 0 on the averaged
    figures, but not across seeds: the verdict is not "better"; seeds that agree give "better"."""
    users, rng = 300, np.random.default_rng(0)
    base = rng.random(users) < 0.3
    b = [{"method": "b", "seed": s, "per_user": {"recall@10": base.astype(float).tolist()}} for s in range(3)]

    def a_rows(gains):
        return [{"method": "a", "seed": s, "per_user": {"recall@10": np.clip(base + (rng.random(users) < g), 0, 1)
                                                        .astype(float).tolist()}} for s, g in enumerate(gains)]
    agree = _paired(a_rows([0.2, 0.2, 0.2]) + b, "a", "b", "recall@10")
    assert "per seed" in agree and "t-interval over 3 seeds" in agree and agree.endswith("better.")
    mixed = a_rows([0.6, 0.0, 0.0])
    for row in mixed[1:]:  # two seeds lose a few hits
        row["per_user"]["recall@10"] = np.where(base & (rng.random(users) < 0.1), 0.0, base).tolist()
    text = _paired(mixed + b, "a", "b", "recall@10")
    assert "95% CI over users +" in text and text.endswith("not distinguishable.")


def test_lr_section_warns_when_the_choice_is_at_the_grid_edge():
    from recllm.bench.trsr.report import RANDOM_ORDER_SCORE, _lr_section

    curve = {"0.0001": 1.12, "0.0003": 1.55, "0.001": 1.70}
    text = "\n".join(_lr_section({"lr": {"hierarchical": 0.001, "none": 0.0003}, "how": "chosen",
                                  "curve": {"hierarchical": curve, "none": {**curve, "0.001": 1.2}}}))
    assert f"random order scores {RANDOM_ORDER_SCORE:.3f}" in text and abs(RANDOM_ORDER_SCORE - 18 / 21) < 1e-12
    assert "hierarchical ranker's lr 0.001 is the largest the grid tried" in text
    assert "no summary ranker's lr" not in text  # an inner choice needs no warning
    inner = "\n".join(_lr_section({"lr": 0.0003, "how": "chosen", "curve": curve}))
    assert "the grid tried" not in inner and "| 0.0003 |" in inner


def _per_user(method, seed, values):
    return {"method": method, "seed": seed, "per_user": {"recall@3": list(values), "recall@10": list(values)}}


def test_injection_summary_judges_both_halves_of_the_goal_per_seed():
    """Places gained and clean recall@3 side by side per seed; 'gains at most 1 place' and 'clean recall not
    significantly below the unhardened ranker's' each get a met / not met line."""
    from recllm.bench.trsr.report import _injection_summary
    from recllm.bench.trsr.run import HARDENED

    plain, users = "LLM-TRSR hierarchical", 200
    injection = [{"method": m, "seed": s, "places_gained": g, "positive_recall@3_before": r}
                 for s in range(3) for m, g, r in ((plain, 6.0, 0.19), (HARDENED, 0.5 + s, 0.18))]
    same = np.r_[np.ones(40), np.zeros(users - 40)]
    rows = [_per_user(m, s, same) for s in range(3) for m in (plain, HARDENED)]
    text = "\n".join(_injection_summary(injection, rows))
    assert "| 2 | 6.00 | 2.50 | 0.190 | 0.180 |" in text
    assert "gains at most 1 place on average': not met (1.50 places" in text
    assert "clean recall within the unhardened ranker's interval': met" in text
    lower = [_per_user(plain, s, same) for s in range(3)] + [_per_user(HARDENED, s, np.zeros(users)) for s in range(3)]
    assert "interval': not met" in "\n".join(_injection_summary(injection, lower))


def test_measured_goals_are_printed_met_or_not():
    from recllm.bench.trsr.report import measured_goals

    users, rng = 300, np.random.default_rng(1)
    base = (rng.random(users) < 0.2).astype(float)
    better = np.clip(base + (rng.random(users) < 0.3), 0, 1)
    rows = [_per_user("LLM-TRSR hierarchical", s, better) for s in range(3)]
    rows += [_per_user("LLM no summary (TALLRec-style)", s, base) for s in range(3)]
    rows += [_per_user("LLM zero-shot (hierarchical prompt)", 0, better)]
    alone = {"method": "itemknn alone", "per_user": {"hr@10": better.tolist(), "ndcg@10": better.tolist()}}
    fused = {"method": "itemknn + w * logit P(Yes), hierarchical, w=0.5 (fused)",
             "per_user": {"hr@10": base.tolist(), "ndcg@10": base.tolist()}}
    text = "\n".join(measured_goals([{"dataset": "toy", "rows": rows, "two_stage": [alone, fused]}]))
    assert "above LLM no summary (TALLRec-style) (recall@10, every interval excluding 0) on at least one data " \
           "set: met, on toy." in text
    assert "above LLM zero-shot (hierarchical prompt)" in text and "set: not met, not on toy." in text
    assert "retriever alone (no significant loss in HR@10 or NDCG@10): not met on toy (worse on toy)." in text
    # above each on some data set is not above both on one: said on its own line
    assert "Above both on the same data set: not met, not on toy." in text
    rows = [r for r in rows if r["method"] != "LLM zero-shot (hierarchical prompt)"]
    rows.append(_per_user("LLM zero-shot (hierarchical prompt)", 0, base))
    text = "\n".join(measured_goals([{"dataset": "toy", "rows": rows, "two_stage": []}]))
    assert "Above both on the same data set: met, on toy." in text
    assert measured_goals([{"dataset": "toy", "rows": [], "two_stage": []}]) == []


def test_blocks_section_splits_the_users_by_history_blocks_and_compares_where_the_prompts_are_the_same():
    from recllm.bench.trsr.report import MIN_BUCKET_USERS, _blocks_section

    users = 2 * MIN_BUCKET_USERS
    blocks = np.array([1] * MIN_BUCKET_USERS + [3] * MIN_BUCKET_USERS)
    several = (blocks > 1).astype(float)
    metrics = lambda v: {m: np.asarray(v, dtype=float).tolist() for m in ("recall@10", "mrr@10")}  # noqa: E731
    rows = [{"method": "LLM no summary (TALLRec-style)", "seed": 0, "per_user": metrics(np.full(users, 0.5))},
            {"method": "LLM-TRSR hierarchical", "seed": 0, "per_user": metrics(several)},  # wins only beyond 1 block
            {"method": "LLM-TRSR recurrent", "seed": 0, "per_user": metrics(np.full(users, 0.5))}]
    text = "\n".join(_blocks_section({"rows": rows}, blocks, 3, 5))
    assert f"{MIN_BUCKET_USERS} test users have a history of one block (at most 5 items)" in text
    assert "| LLM-TRSR hierarchical | 0.000 | 0.000 | 1.000 | 1.000 |" in text
    one, several_h, several_r, same = [line for line in text.splitlines() if line.startswith("- ")]
    assert one.startswith("- one-block users: LLM-TRSR hierarchical minus LLM no summary") and "-0.500" in one
    assert one.endswith("worse.") and several_h.endswith("better.") and "+0.500" in several_h
    assert several_r.startswith("- users of two or more blocks: LLM-TRSR recurrent minus LLM no summary")
    assert same.startswith("- one-block users (the same prompts): LLM-TRSR hierarchical minus LLM-TRSR recurrent")
    # a group of fewer users than the minimum: no comparison, and a line that says why
    few = _blocks_section({"rows": rows}, np.array([3] * (users - 1) + [1]), 3, 5)
    assert "no comparison by history length" in few[-1] and "span two or more blocks" in few[-1]
    assert _blocks_section({"rows": rows}, None, 3, 5) == []  # blocks not known (another machine's candidates)
    assert _blocks_section({"rows": rows}, blocks[:-1], 3, 5) == []  # not the rows the figures are of


def test_test_row_facts_are_read_only_for_the_benchmarks_data_sets_with_their_fixed_candidates():
    from recllm.bench.trsr import run as bench
    from recllm.bench.trsr.report import test_row_facts

    assert test_row_facts({"dataset": "toy", "candidates": ["x.parquet"]}, bench.QUICK) is None
    assert test_row_facts({"dataset": bench.DATASETS[0].name, "candidates": []}, bench.QUICK) is None


def test_popularity_section_splits_the_users_by_their_targets_train_interactions():
    from recllm.bench.trsr.report import MIN_BUCKET_USERS, POPULARITY_BANDS, _popularity_section

    users = POPULARITY_BANDS * MIN_BUCKET_USERS
    counts = np.arange(users)[::-1].copy()  # row order is not popularity order
    popular = (counts >= 2 * MIN_BUCKET_USERS).astype(float)
    metrics = lambda v: {"recall@10": np.asarray(v, dtype=float).tolist()}  # noqa: E731
    rows = [{"method": "itemknn", "seed": 0, "per_user": metrics(popular)},  # hits only the most popular third
            {"method": "LLM-TRSR hierarchical", "seed": 0, "per_user": metrics(np.full(users, 0.5))}]
    text = "\n".join(_popularity_section({"rows": rows}, counts))
    top = f"target in {2 * MIN_BUCKET_USERS}-{users - 1} train interactions"
    assert f"| method | target in 0-{MIN_BUCKET_USERS - 1} train interactions |" in text and top in text
    assert f"3 bands ({MIN_BUCKET_USERS}, {MIN_BUCKET_USERS}, {MIN_BUCKET_USERS} users)" in text
    assert "| itemknn | 0.000 | 0.000 | 1.000 |" in text
    assert "| LLM-TRSR hierarchical | 0.500 | 0.500 | 0.500 |" in text
    assert f"- targets with 0-{MIN_BUCKET_USERS - 1} train interactions: LLM-TRSR hierarchical minus itemknn" in text
    assert _popularity_section({"rows": rows}, None) == []  # not known (another machine's candidates)
    assert _popularity_section({"rows": rows}, counts[:-1]) == []  # not the rows the figures are of
    assert _popularity_section({"rows": [{**r, "per_user": {"recall@10": r["per_user"]["recall@10"][:5]}}
                                         for r in rows]}, counts[:5]) == []  # too few users per band


def test_curve_section_names_the_lr_of_each_curve_and_why_it_stops_at_the_headline_size():
    from recllm.bench.trsr.report import _curve_section

    curve = [{"method": m, "users": n, "groups": 2 * n, "candidates": 42 * n, "valid_recall@5": 0.3}
             for n in (60, 239) for m in ("LLM-TRSR hierarchical", "LLM no summary (TALLRec-style)")]
    grid = {"lr": {"hierarchical": 3e-3, "none": 1e-3}, "curve": {"hierarchical": {"0.001": 1.0}}}
    text = "\n".join(_curve_section(curve, grid))
    assert "Each curve trained at its ranker's lr (hierarchical 0.003, no summary 0.001); where it is not the " \
           "paper's 0.0001, that lr validated lower at the headline size (above)." in text
    assert "stops at the headline runs' 239 training users" in text and "binomial" not in text
    assert "scored on 100 validation rows: a R@5 near 0.5 has a 95% binomial interval of about +-0.10" in \
        "\n".join(_curve_section(curve, grid, 100))
    # the paper's lr chosen by the grid: nothing to explain; given with --lr: no grid to point at
    paper = "\n".join(_curve_section(curve, {**grid, "lr": 1e-4}))
    assert "(hierarchical 0.0001)." in paper and "validated lower" not in paper
    given = "\n".join(_curve_section(curve, {"lr": 3e-3, "curve": {}, "how": "given (--lr)"}))
    assert "(hierarchical 0.003, given with --lr)." in given and "validated lower" not in given
    assert "Each curve" not in "\n".join(_curve_section(curve, None))
    assert _curve_section(None, None) == []


def test_popularity_bands_keep_users_with_the_same_count_together():
    from recllm.bench.trsr.report import MIN_BUCKET_USERS, popularity_bands

    n = 3 * MIN_BUCKET_USERS
    counts = np.array([0] * (n // 2) + list(range(1, n - n // 2 + 1)))  # half the targets never seen in training
    band = popularity_bands(counts)
    assert band is not None and len(set(band[counts == 0])) == 1  # the tied zeros in one band, not split by order
    for b in set(band.tolist()):  # bands are disjoint ranges of counts
        inside, outside = counts[band == b], counts[band != b]
        assert not np.isin(inside, outside).any()
    assert popularity_bands(np.zeros(n, dtype=int)) is None  # one count: no bands to compare
    assert popularity_bands(np.arange(2 * MIN_BUCKET_USERS)) is None  # a band would hold too few users


def test_a_seedless_baseline_is_paired_with_each_seed_and_a_one_seed_ranker_is_flagged():
    """A method no seed changes (zero-shot, popularity, item-kNN: run once) is the partner of every seed of a
    seeded ranker, so the comparison gets the seeds' t-interval like any other; a seeded ranker that ran one seed
    against one that ran several is compared on the users alone, and the text says its training noise is
    unmeasured."""
    from recllm.bench.trsr.report import SEEDLESS_METHODS

    users, rng = 300, np.random.default_rng(1)
    base = (rng.random(users) < 0.3).astype(float)
    zero_shot = sorted(SEEDLESS_METHODS)[0]
    seeded = [{"method": "a", "seed": s, "per_user": {"recall@10": np.clip(base + (rng.random(users) < 0.2), 0, 1)
                                                      .tolist()}} for s in range(3)]
    once = {"seed": 0, "per_user": {"recall@10": base.tolist()}}
    text = _paired(seeded + [{**once, "method": zero_shot}], "a", zero_shot, "recall@10")
    assert "over 3 seeds vs its one run (no seed changes it))" in text
    assert "t-interval over 3 seeds" in text and text.endswith("better.")
    flagged = _paired(seeded + [{**once, "method": "b"}], "a", "b", "recall@10")
    assert "over 3 seeds vs 1 seed; b's training noise is not measured)" in flagged and "t-interval" not in flagged


def _tiny_prepared():
    """A stand-in for a prepared data set: 3 users; user 0's last two interactions share a timestamp."""
    from types import SimpleNamespace

    import pandas as pd

    from recllm.eval.sampled import SampledCandidates

    frame = pd.DataFrame({"user_id": ["u0"] * 4 + ["u1"] * 3 + ["u2"] * 3,
                          "item_id": ["a", "b", "c", "d", "a", "b", "e", "c", "d", "e"],
                          "timestamp": [1, 2, 3, 3, 1, 2, 3, 5, 5, 5]})
    users = {"u0": 0, "u1": 1, "u2": 2}
    items = {k: i for i, k in enumerate("abcde")}
    dataset = SimpleNamespace(interactions=frame, user_index=lambda s: np.array([users[u] for u in s]),
                              item_index=lambda s: np.array([items[i] for i in s]))
    # validation rows: each user's second-to-last item as target; user 0's negative "d" is their later item
    valid = SampledCandidates(case=np.arange(3), users=np.array([0, 1, 2]),
                              histories=[np.array([0, 1]), np.array([0]), np.array([2])],
                              candidates=np.array([[2, 3], [1, 2], [3, 0]]), positive=np.array([0, 0, 0]),
                              n_items=5, seed=0)
    test = SampledCandidates(case=np.arange(3), users=np.array([2, 0, 1]),
                             histories=[np.array([2, 3]), np.array([0, 1, 2]), np.array([0, 1])],
                             candidates=np.array([[4, 0], [3, 4], [4, 2]]), positive=np.array([0, 0, 0]),
                             n_items=5, seed=0)
    return SimpleNamespace(dataset=dataset, valid=valid, test=test)


def test_row_facts_count_same_time_history_items_and_later_items_drawn_as_validation_negatives():
    from recllm.bench.trsr.report import _later_item_negatives, _same_time_counts

    data = _tiny_prepared()
    assert _same_time_counts(data).tolist() == [2, 1, 0]  # in test-row order: users 2, 0, 1
    assert _later_item_negatives(data).tolist() == [True, False, False]


def test_same_time_section_reports_the_share_and_each_methods_recall_on_both_groups():
    from recllm.bench.trsr.report import MIN_BUCKET_USERS, _same_time_section

    users = 2 * MIN_BUCKET_USERS
    same = np.r_[np.ones(MIN_BUCKET_USERS, dtype=int), np.zeros(MIN_BUCKET_USERS, dtype=int)]
    rows = [{"method": "itemknn", "seed": 0, "per_user": {"recall@10": (same > 0).astype(float).tolist()}}]
    text = "\n".join(_same_time_section({"rows": rows}, same))
    assert f"{MIN_BUCKET_USERS} of the {users} test rows (50%)" in text and "(1.0 such items" in text
    assert "| itemknn | 1.000 | 0.000 |" in text and "nothing later than the target is in any history" in text
    short = "\n".join(_same_time_section({"rows": rows}, np.zeros(users, dtype=int)))
    assert f"0 of the {users} test rows (0%)" in short and "| itemknn" not in short
    assert _same_time_section({"rows": rows}, None) == [] and _same_time_section({"rows": rows}, same[:-1]) == []


def test_seeds_with_the_same_total_are_named_with_how_many_users_differ():
    from recllm.bench.trsr.report import coinciding_seed_means

    def run(seed, hits):
        return {"method": "m", "seed": seed, "per_user": {"recall@10": hits, "mrr@10": [h / (seed + 1) for h in hits]}}

    rows = [run(0, [1, 1, 0, 0]), run(1, [0, 1, 1, 0]), run(2, [1, 0, 0, 1]),
            {"method": "one seed", "seed": 0, "per_user": {"recall@10": [1, 0, 0, 0], "mrr@10": [1, 0, 0, 0]}}]
    lines = coinciding_seed_means(rows, ["recall@10", "mrr@10"])
    assert len(lines) == 1  # mrr@10 differs between the seeds; a one-seed method has no interval to explain
    assert "m: recall@10 is the same under its 3 seeds (2 of 4 users each)" in lines[0]
    assert "differ for 2 to 4 users" in lines[0] and "not one run counted again" in lines[0]
    twice = coinciding_seed_means([run(0, [1, 0, 1, 0]), run(1, [1, 0, 1, 0])], ["recall@10"])
    assert "seeds 0 and 1 give identical per-user values: check that they are separate runs" in twice[0]
    assert coinciding_seed_means([run(0, [1, 0]), run(1, [0, 0])], ["recall@10"]) == []


def test_tie_metrics_give_the_pessimistic_rank_and_the_expectation_over_random_tie_breaks():
    from recllm.bench.trsr.report import tie_metrics

    scores = np.array([[1.0, 1.0, 0.0], [2.0, 1.0, 1.0], [0.0, 3.0, 1.0]])
    pessimistic, expected, tied = tie_metrics(scores, np.array([0, 1, 1]), ks=(1, 2))
    assert tied.tolist() == [True, True, False]
    assert pessimistic["recall@1"].tolist() == [0.0, 0.0, 1.0] and pessimistic["recall@2"].tolist() == [1.0, 0.0, 1.0]
    assert expected["recall@1"].tolist() == [0.5, 0.0, 1.0] and expected["recall@2"].tolist() == [1.0, 0.5, 1.0]
    assert np.allclose(expected["mrr@2"], [0.75, 0.25, 1.0])
    assert np.allclose(pessimistic["mrr@2"], [0.5, 0.0, 1.0])


def test_ties_section_sets_the_baselines_scored_with_random_ties_beside_the_tables_figures():
    from recllm.bench.trsr.report import _ties_section

    def row(method, hits, seed=0):
        return {"method": method, "seed": seed, "per_user": {"recall@10": hits, "mrr@10": [h / 2 for h in hits]}}

    users = 30
    res = {"rows": [row("itemknn", [0.0] * users), row("LLM-TRSR hierarchical", [1.0] * users),
                    row("LLM-TRSR hierarchical", [1.0] * users, seed=1)]}
    ties = {"itemknn": {"row": row("itemknn (ties at random)", [0.5] * users), "tied": users}}
    text = "\n".join(_ties_section(res, ties))
    assert "| itemknn | 30 of 30 | 0.000 | 0.500 | 0.000 | 0.250 |" in text
    assert "LLM-TRSR hierarchical minus itemknn (ties at random), recall@10" in text and "better" in text
    assert _ties_section(res, {}) == [] and _ties_section(res, None) == []


def test_named_labels_match_whole_words_ignoring_case_hyphens_and_a_plural():
    import pandas as pd

    from recllm.bench.trsr.report import item_labels, named_labels

    vocabulary = ["Action", "Sci-Fi", "Drama", "Musical", "War", "Cooking, Food & Wine", "Arts & Photography"]
    assert named_labels("Loves sci-fi and ACTION films, musicals too", vocabulary) == {"Sci-Fi", "Action", "Musical"}
    assert named_labels("a dramatic, award-winning story", vocabulary) == set()  # no word 'drama' or 'war'
    assert named_labels("enjoys wine and art", vocabulary) == {"Cooking, Food & Wine"}  # 'art' is under 4 letters
    assert named_labels("science fiction and comedies", ["Sci-Fi", "Comedy", "Parenting & Families"]) == \
        {"Sci-Fi", "Comedy"}
    assert named_labels("a family reader", ["Parenting & Families"]) == {"Parenting & Families"}
    genres = pd.DataFrame({"genres": ["Action|Sci-Fi", "(no genres listed)"], "category": ["x > y", "x > z"]})
    assert item_labels(genres) == ([{"Action", "Sci-Fi"}, set()], "genres")
    paths = pd.DataFrame({"category": ["Magazines > Cooking, Food & Wine > Recipes", "news", None]})
    assert item_labels(paths) == ([{"Cooking, Food & Wine"}, {"news"}, set()], "categories")  # flat: as it is
    assert item_labels(pd.DataFrame({"title": ["a"]})) is None


def test_summary_label_facts_compare_the_own_summary_with_the_others_and_the_recent_items():
    from recllm.bench.trsr.report import _summary_content_section, summary_label_facts

    genres = [{"Action"}, {"Drama"}, {"Comedy"}, set()]
    histories = [np.array([1, 0]), np.array([0, 1])]  # recent item (n_recent=1): Action, then Drama
    targets = np.array([2, 2])  # both targets are comedies
    negatives = [np.array([0, 3]), np.array([1])]
    facts = summary_label_facts(["likes comedy", "likes drama"], histories, targets, negatives, genres, 1)
    assert facts["own"].tolist() == [1.0, 0.0] and facts["other"].tolist() == [0.0, 1.0]
    assert facts["recent"].tolist() == [0.0, 0.0] and facts["beyond"].tolist() == [1.0, 0.0]
    assert facts["negatives"].tolist() == [0.0, 1.0]  # user 0's one labelled negative is Action; user 1's is Drama
    assert _summary_content_section(facts, 1, "2 distinct") == []  # too few users to say anything

    many = {k: np.tile(v, 15) for k, v in facts.items()}
    text = "\n".join(_summary_content_section(many, 1, "2 distinct"))
    assert "own summary minus another user's: +0.000" in text and "add no measurable information" in text
    many["beyond"] = many["beyond"] + 0.5
    assert "tell the ranker something" in "\n".join(_summary_content_section(many, 1, "2 distinct"))


def test_the_summariser_the_report_reads_with_cannot_generate():
    import pytest

    from recllm.bench.trsr.report import _ReadOnlyModel, _SummaryMissing

    class Model:
        config = "the model's config"

        def generate(self, *args, **kwargs):
            return "generated"

    reader = _ReadOnlyModel(Model())
    assert reader.config == "the model's config"
    with pytest.raises(_SummaryMissing):
        reader.generate([1, 2])


def test_the_read_only_summariser_keys_the_cache_as_the_real_one_and_never_generates():
    import dataclasses

    import pytest

    from recllm.bench.trsr.report import _ReadOnlyModel, _SummaryMissing
    from recllm.llm.backbone import tiny_causal_lm
    from recllm.llm.generate import generate

    lm = tiny_causal_lm(0)
    reader = dataclasses.replace(lm, model=_ReadOnlyModel(lm.model))
    assert reader.fingerprint == lm.fingerprint
    cache = {}

    class Cache:
        def key(self, **parts):
            return repr(sorted(parts.items()))

        def get_many(self, keys):
            return {k: cache[k] for k in keys if k in cache}

        def put_many(self, entries):
            cache.update(entries)

    made = generate(lm, ["hello"], max_new_tokens=2, cache=Cache(), show_progress=False)
    assert generate(reader, ["hello"], max_new_tokens=2, cache=Cache(), show_progress=False) == made
    with pytest.raises(_SummaryMissing):
        generate(reader, ["not cached"], max_new_tokens=2, cache=Cache(), show_progress=False)


def test_ties_section_names_a_baseline_that_did_not_reproduce_the_tables():
    from recllm.bench.trsr.report import _ties_section

    def row(method, hits, seed=0):
        return {"method": method, "seed": seed, "per_user": {"recall@10": hits, "mrr@10": hits}}

    res = {"rows": [row("itemknn", [0.0] * 30), row("popularity", [1.0] * 30),
                    row("LLM-TRSR hierarchical", [1.0] * 30)]}
    ties = {"itemknn": {"row": row("itemknn (ties at random)", [0.5] * 30), "tied": 30},
            "popularity": {"mismatch": True}}
    text = "\n".join(_ties_section(res, ties))
    assert "Here itemknn is scored again" in text and "popularity scored again did not reproduce" in text
    assert "| popularity |" not in text
    assert _ties_section(res, {"popularity": {"mismatch": True}}) == []


def test_random_tie_rows_rescore_the_baselines_and_set_aside_one_that_does_not_reproduce_its_run(monkeypatch):
    from types import SimpleNamespace

    import recllm.models
    from recllm.bench.trsr.report import _random_tie_rows, tie_metrics
    from recllm.eval.sampled import SampledCandidates

    class Flat:  # every item the same score: every target ties with every negative
        n_items_ = 5

        def fit(self, split):
            return self

        def score(self, users, histories):
            return np.zeros((len(users), self.n_items_))

    monkeypatch.setitem(recllm.models.MODELS, "popularity", Flat)
    monkeypatch.setitem(recllm.models.MODELS, "itemknn", Flat)
    test = SampledCandidates(case=np.arange(2), users=np.array([0, 1]), histories=[np.array([0]), np.array([1])],
                             candidates=np.array([[2, 3, 4], [3, 4, 0]]), positive=np.array([0, 1]), n_items=5, seed=0)
    pessimistic, _, _ = tie_metrics(np.zeros((2, 3)), test.positive)
    as_run = {m: v.tolist() for m, v in pessimistic.items()}
    res = {"rows": [{"method": "popularity", "per_user": as_run},
                    {"method": "itemknn", "per_user": {**as_run, "recall@3": [0.0, 1.0]}}]}
    out = _random_tie_rows(res, SimpleNamespace(split=None, test=test))
    assert out["itemknn"] == {"mismatch": True}  # its stored figures are not these scores'
    assert out["popularity"]["tied"] == 2
    assert out["popularity"]["row"]["method"] == "popularity (ties at random)"
    assert out["popularity"]["row"]["per_user"]["recall@3"] == [1.0, 1.0]  # 3 candidates: always in the top 3
    assert np.allclose(out["popularity"]["row"]["per_user"]["mrr@3"], [(1 + 1 / 2 + 1 / 3) / 3] * 2)
