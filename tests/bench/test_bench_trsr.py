"""Benchmark plumbing without language models: two-stage reranking, row subsets, report rendering."""

import numpy as np
import pytest

from recllm.eval.sampled import SampledCandidates
from recllm.models.base import Recommender
from recllm.bench.trsr.run import QUICK, BenchSizes, Reranked, subset_rows
from recllm.bench.trsr.report import aggregate, render


class Fixed(Recommender):
    def __init__(self, scores):
        self.scores = np.asarray(scores, dtype=np.float64)
        self.n_items_ = self.scores.shape[1]

    def fit(self, split):
        return self

    def score(self, users, histories):
        return np.repeat(self.scores, len(users), axis=0)


def test_reranked_reorders_only_the_retrievers_top_k():
    retriever = Fixed([[9.0, 8.0, 7.0, 6.0, 5.0, 4.0]])
    seen = []

    def rerank(histories, lists):
        seen.append([list(map(int, x)) for x in lists])
        return [np.linspace(0, 1, len(x)) for x in lists]  # reverses the retriever's order inside the top k

    model = Reranked(retriever, rerank, k=3).fit(None)
    scores = model.score(np.array([0]), [np.array([0])])  # item 0 is seen: the top 3 unseen are 1, 2, 3
    assert seen == [[[1, 2, 3]]]
    order = np.argsort(-scores[0], kind="stable").tolist()
    assert order[:3] == [3, 2, 1] and order[3:] == [0, 4, 5]


def test_subset_rows_is_seeded_and_ordered():
    cands = SampledCandidates(np.arange(10), np.arange(10), [np.array([i]) for i in range(10)],
                              np.tile(np.arange(3), (10, 1)), np.zeros(10, dtype=np.int64), 20, 0, "toy")
    a, b = subset_rows(cands, 4, 0), subset_rows(cands, 4, 0)
    assert np.array_equal(a.case, b.case) and np.all(np.diff(a.case) > 0) and len(a) == 4
    assert len(subset_rows(cands, 50, 0)) == 10


def test_sizes_are_validated():
    with pytest.raises(ValueError, match="seeds"):
        BenchSizes(**{**QUICK.__dict__, "seeds": ()})
    with pytest.raises(ValueError, match="n_test_rows"):
        BenchSizes(**{**QUICK.__dict__, "n_test_rows": 0})


def _rows(method, values, seed=0):
    per = {f"{m}@{k}": np.asarray(values, dtype=float) for m in ("recall", "mrr") for k in (3, 5, 10)}
    return {"method": method, "seed": seed, "per_user": per}


def test_aggregate_uses_seeds_when_there_are_several():
    one = aggregate([_rows("a", [1, 0, 1, 1])], ["recall@10"])[0]
    assert one["seeds"] == 1 and one["recall@10"][0] == pytest.approx(0.75)
    many = aggregate([_rows("a", [1, 1], 0), _rows("a", [0, 0], 1)], ["recall@10"])[0]
    assert many["seeds"] == 2 and many["recall@10"][0] == pytest.approx(0.5) and many["recall@10"][1] < 0.5


def test_render_builds_every_section_from_measurements():
    res = {
        "dataset": "toy", "n_test": 4, "n_valid": 2,
        "summary": {"users": 5, "items": 9, "interacted_items": 7, "interactions": 30},
        "summary_stats": {"mean_blocks": 1.5, "one_block_share": 0.5, "history_len_median": 6},
        "rows": [_rows("popularity", [1, 0, 1, 0]), _rows("LLM-TRSR hierarchical", [1, 1, 1, 0]),
                 _rows("LLM no summary (TALLRec-style)", [0, 1, 0, 0])],
        "two_stage": [{"method": "itemknn (full ranking)", "seed": 0,
                       "per_user": {"hr@10": np.array([1.0, 0.0]), "ndcg@10": np.array([0.5, 0.0])}}],
        "injection": [{"method": "LLM-TRSR hierarchical", "seed": 0, "victim_rank_before": 11.0,
                       "victim_rank_after": 3.0, "places_gained": 8.0, "victim_top1_after": 0.25,
                       "positive_recall@3_before": 0.5, "positive_recall@3_after": 0.25}],
        "throughput": [{"method": "LLM-TRSR hierarchical", "seed": 0, "summary_users_per_s": 1.5,
                        "summary_prompts": 6, "candidates_per_s": 40.0, "train_pairs": 8, "train_s": 12.0,
                        "valid_scores": {0: 1.2}, "summary_gflop_per_user": 2.0, "summary_peak_gflops": 30.0,
                        "rank_gflop_per_candidate": 0.5, "rank_peak_gflops": 100.0}],
        "speed": {"users": 2, "candidates": 42, "shared_s": 1.0, "full_s": 3.0, "speedup": 3.0,
                  "max_abs_p_diff": 1e-3, "dtype": "bfloat16+float32-answers"},
        "examples": [{"user_row": 0, "mode": "hierarchical", "history_len": 6, "recent": ["a", "b"],
                      "summary": "Likes a and b."}],
    }
    text = render([res], QUICK, "tiny", ["a note"], quick=True)
    # 1.5 users/s x 2 GFLOP of a 30 GFLOP/s peak; 40 candidates/s x 0.5 GFLOP of 100
    assert "| LLM-TRSR hierarchical | 0 | 1.50 | 10.0% | 6 | 40.00 | 20.0% | 8 |" in text
    for needle in ("## toy", "Quick mode", "recall@10", "Two-stage", "Prompt injection", "Throughput", "3.00x",
                   "Likes a and b.", "a note", "LLM-TRSR hierarchical minus popularity", "trsr-agreement.md"):
        assert needle in text
    assert "the LLM rankers scored in float32, the precision they were trained and validated in" in text
    # the pointer to the full campaign's bfloat16 agreement: not in a quick report, whose rankers it is not about
    assert "Scored in bfloat16 instead" not in text
    from recllm.bench.trsr.report import _dataset_section

    assert "Scored in bfloat16 instead, on a CPU that multiplies it natively" in _dataset_section(res)
    # a table that compares a faster precision itself needs no pointer to the separate measurement
    res["rows"][1]["faster"] = {"dtype": "bfloat16", "spearman": 0.9, "same_top1": 0.8}
    text = render([res], QUICK, "tiny", ["a note"], quick=True)
    assert "trsr-agreement.md" not in text and "bfloat16: 0.900 / 80%" in text


@pytest.mark.integration
def test_a_later_seeds_part_holds_only_that_seeds_fine_tuned_runs(shared_data, tmp_path, monkeypatch):
    """run_dataset(first_position=1): SASRec and the three fine-tuned rankers, nothing seed-independent again."""
    import dataclasses

    import recllm.bench.trsr.run as bench
    from recllm.bench.trsr.run import HARDENED
    from recllm.llm.backbone import tiny_causal_lm
    from recllm.llm.cache import DiskCache

    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path))
    monkeypatch.setattr(bench, "load_causal_lm", lambda *a, **k: tiny_causal_lm(seed=1))
    monkeypatch.setattr(bench, "ranker_base", lambda *a, **k: tiny_causal_lm(seed=1))
    sizes = dataclasses.replace(QUICK, n_train_users=4, n_valid_rows=2, n_test_rows=3, summary_tokens=4,
                                retriever_epochs=1, seeds=(1,), min_candidates=4 * 21)
    spec = bench.DATASETS[0]
    from recllm.bench.runs import RunStore

    monkeypatch.setattr("recllm.bench.runs.PACKAGES", ("recllm.bench.trsr",))
    store = RunStore(tmp_path / "trsr.runs.jsonl")
    part = bench.run_dataset(spec, sizes, tiny_causal_lm(seed=0), DiskCache(tmp_path / "c.sqlite"),
                             score_dtype="float32", log=lambda *a: None, first_position=1,
                             piece=bench.stored_pieces(store, "part-key", log=lambda *a: None))
    methods = [(row["method"], row["seed"]) for row in part["rows"]]
    assert methods == [("sasrec", 1), ("LLM-TRSR hierarchical", 1), ("LLM-TRSR recurrent", 1),
                       ("LLM no summary (TALLRec-style)", 1), (HARDENED, 1)]  # hardened at every seed
    assert all(t["train_users"] == 4 and t["train_candidates"] == t["train_groups"] * 21 >= 84
               for t in part["throughput"])
    # FLOPs counted for every ranker, and for the summaries of those that read one
    assert all(t["rank_gflop_per_candidate"] > 0 and t["rank_peak_gflops"] > 0 for t in part["throughput"])
    assert all(("summary_gflop_per_user" in t) == ("summary" not in t["method"]) for t in part["throughput"])
    assert part["two_stage"] == []  # the two-stage protocol runs with the first seed only
    assert "speed" not in part and part["examples"] == []
    # a later session on a fresh machine: every piece is read back from the store, nothing is fitted or scored
    monkeypatch.setattr(bench.Fitter, "fit", lambda *a, **k: pytest.fail("a stored piece was fitted again"))
    again = bench.run_dataset(spec, sizes, tiny_causal_lm(seed=0), DiskCache(tmp_path / "fresh.sqlite"),
                              score_dtype="float32", log=lambda *a: None, first_position=1,
                              piece=bench.stored_pieces(RunStore(store.path), "part-key", log=lambda *a: None))
    assert [(r["method"], r["seed"]) for r in again["rows"]] == methods
    assert all(np.array_equal(a["per_user"]["recall@10"], b["per_user"]["recall@10"])
               for a, b in zip(part["rows"], again["rows"]))


def test_bench_trsr_command_parses():
    from recllm.cli import build_parser

    args = build_parser().parse_args(["bench", "trsr", "--quick", "--seeds", "0", "1", "--lr", "1e-4"])
    assert args.quick and args.seeds == [0, 1] and args.lr == 1e-4 and args.score_dtype == "auto"
    assert args.out is None and not args.allow_dirty


def test_bench_reuses_a_data_sets_stored_results(tmp_path, monkeypatch):
    """A finished data set is stored beside the report; a rerun (even on a fresh machine) does not refit it."""
    from pathlib import Path
    from types import SimpleNamespace

    import numpy as np

    import recllm.bench.trsr.run as bench
    import recllm.bench.trsr.report as report

    calls, rendered = [], []
    monkeypatch.setenv("RECLLM_DATA", str(tmp_path / "data"))
    monkeypatch.setattr("recllm.bench.runs.PACKAGES", ("recllm.bench.trsr",))  # reuse by key (see test_bench_runs.py)
    data_file = tmp_path / "data" / "ml-latest-small" / "ratings.csv"  # a file its loader declares
    data_file.parent.mkdir(parents=True)
    data_file.write_text("a\n1\n")

    def fake_run_dataset(spec, sizes, *a, first_position=0, **k):
        calls.append((spec.name, sizes.seeds, first_position))
        row = {"method": "sasrec", "seed": sizes.seeds[0], "per_user": {"recall@10": np.array([0.0, 1.0])}}
        return {"dataset": spec.name, "rows": [row], "two_stage": [], "data_files": [data_file],
                "candidates": [str(tmp_path / "cache" / "c.parquet")],
                "speed": {"dtype": "torch.bfloat16", "speedup": np.float64(2.5)}}

    lr_units, curve_units = [], []

    def fake_decide_lr(fitter, **k):
        lr_units.append(fitter.data.spec.name)
        return {"lr": {"hierarchical": 3e-4, "none": 1e-4},
                "curve": {"hierarchical": {"0.0001": 1.0, "0.0003": 1.5}, "none": {"0.0001": 1.2}}, "how": "chosen"}

    def fake_curve(fitter, **k):
        curve_units.append(fitter.lr)
        return [{"method": "m", "users": 4, "groups": 4, "candidates": 84, "valid_recall@5": 0.5}]

    monkeypatch.setattr(bench, "load_causal_lm", lambda *a, **k: SimpleNamespace(name="lm", fingerprint="lm|f32", dtype="float32",
                                                                                device="cpu"))
    monkeypatch.setattr(bench, "prepare", lambda spec, sizes, show=False: SimpleNamespace(spec=spec, candidates_sha="c"))
    monkeypatch.setattr(bench, "decide_lr", fake_decide_lr)
    monkeypatch.setattr(bench, "learning_curve", fake_curve)
    monkeypatch.setattr(bench, "run_dataset", fake_run_dataset)
    monkeypatch.setattr(report, "render", lambda results, *a: rendered.append(results) or "body")
    monkeypatch.setattr(bench, "mind_available", lambda: False)
    out = tmp_path / "trsr.md"
    for _ in range(2):
        assert bench.run_benchmark(quick=True, out=str(out), datasets=["ml-latest-small"]) == 0
    assert calls == [("ml-latest-small", (0,), 0)]
    chosen = {"hierarchical": 3e-4, "none": 1e-4}  # one lr per compared ranker, through the store's JSON
    assert lr_units == ["ml-latest-small"] and curve_units == [chosen]  # every unit stored: the rerun fits nothing
    first, second = rendered[0][0], rendered[1][0]
    assert second["lr_choice"]["lr"] == chosen and second["curve"][0]["valid_recall@5"] == 0.5
    assert np.array_equal(second["rows"][0]["per_user"]["recall@10"], first["rows"][0]["per_user"]["recall@10"])
    assert second["data_files"] == [data_file] and second["speed"]["speedup"] == 2.5
    assert str(tmp_path) not in (tmp_path / "trsr.runs.jsonl").read_text()  # no machine paths in the store
    # another learning rate is another run
    assert bench.run_benchmark(quick=True, out=str(out), datasets=["ml-latest-small"], lr=1e-4) == 0
    assert calls[1:] == [("ml-latest-small", (0,), 0)] and lr_units == ["ml-latest-small"]  # a given lr: no choice
    assert curve_units == [chosen, 1e-4]
    # more seeds: the stored seed is reused, only the new ones run (one at a time), and the parts are merged
    assert bench.run_benchmark(quick=True, out=str(out), datasets=["ml-latest-small"], seeds=[0, 1, 2]) == 0
    assert calls[2:] == [("ml-latest-small", (1,), 1), ("ml-latest-small", (2,), 2)]
    assert [row["seed"] for row in rendered[-1][0]["rows"]] == [0, 1, 2]
    assert lr_units == ["ml-latest-small"] and curve_units == [chosen, 1e-4]  # seed-independent units reused


def test_a_pinned_precision_scores_once_whatever_the_cpu(tmp_path, monkeypatch):
    """--precision float32 on a CPU with fast bfloat16: no second, machine-dependent scoring (and so the same part
    keys as on a CPU without it)."""
    from types import SimpleNamespace

    import recllm.bench.trsr.run as bench
    import recllm.bench.trsr.report as report

    monkeypatch.setenv("RECLLM_DATA", str(tmp_path / "data"))
    (tmp_path / "data" / "ml-latest-small").mkdir(parents=True)
    (tmp_path / "data" / "ml-latest-small" / "ratings.csv").write_text("a\n1\n")
    monkeypatch.setattr(bench, "resolve_dtype", lambda dtype, device: "bfloat16" if dtype == "auto" else dtype)
    monkeypatch.setattr(bench, "load_causal_lm", lambda *a, dtype="auto", **k: SimpleNamespace(
        name="lm", fingerprint=f"lm|{dtype}", dtype=dtype, device="cpu"))
    monkeypatch.setattr(bench, "prepare", lambda spec, sizes, show=False: SimpleNamespace(spec=spec, candidates_sha="c"))
    monkeypatch.setattr(bench, "learning_curve", lambda fitter, **k: [])
    monkeypatch.setattr(report, "render", lambda *a: "body")
    monkeypatch.setattr(bench, "mind_available", lambda: False)
    seen = []

    def fake_run_dataset(spec, sizes, summarizer, cache, score_dtype="auto", **k):
        seen.append((summarizer.dtype, score_dtype))
        return {"dataset": spec.name, "rows": [], "two_stage": [], "data_files": [], "candidates": []}

    monkeypatch.setattr(bench, "run_dataset", fake_run_dataset)
    assert bench.run_benchmark(quick=True, out=str(tmp_path / "trsr.md"), datasets=["ml-latest-small"], lr=1e-4,
                               precision="float32") == 0
    assert seen == [("float32", "float32")]
