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
    assert "per-user mean over 2 vs 1 seed" in text and "+0.250" in text and "better" in text
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
