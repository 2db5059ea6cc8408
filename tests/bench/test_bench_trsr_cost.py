"""What keeps `recllm bench trsr` finishable: every summary prompt, SFT run and candidate score is made once, and the
plan counts only the work the benchmark does (no full language model; a tiny one where a ranker is fitted)."""

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

import recllm.bench.trsr.run as bench
from recllm.bench.trsr.plan import Rates, plan_units, summary_prompt_count
from recllm.trsr.segment import SegmentConfig


def test_summary_prompt_count_counts_shared_blocks_once():
    seg = SegmentConfig(block_size=5, max_blocks=5)
    h = np.arange(12)  # blocks [0-4] [5-9] [10 11]
    longer = np.arange(13)  # the same user one interaction later: only the newest block changes
    assert summary_prompt_count([h], [], seg) == 3 + 1  # three blocks and the merge
    assert summary_prompt_count([h, longer], [], seg) == 4 + 2  # one new block, one new merge
    assert summary_prompt_count([h], [h], seg) == 4 + 2  # recurrent: step 1 is block 1's prompt, then 2 steps
    assert summary_prompt_count([np.arange(3)], [np.arange(3)], seg) == 1  # one block: one prompt for both modes
    assert summary_prompt_count([h, h], [], seg) == 4


def test_summary_prompt_count_is_what_the_summariser_generates(monkeypatch, tmp_path):
    """Against summarize_histories with a shared cache: each distinct prompt's text is distinct, so the count is
    exact."""
    import recllm.trsr.summarize as summarize
    from recllm.llm.backbone import tiny_causal_lm
    from recllm.llm.cache import DiskCache

    made: dict[str, str] = {}
    monkeypatch.setattr(summarize, "generate",
                        lambda lm, texts, **k: [made.setdefault(t, f"summary {len(made)}") for t in texts])
    rng = np.random.default_rng(0)
    base = [rng.choice(40, size=n, replace=False) for n in (3, 7, 12, 18, 26, 31)]
    histories = base + [np.r_[b, 40 + i] for i, b in enumerate(base)] + [b[:-1] for b in base]
    lm, cache = tiny_causal_lm(), DiskCache(tmp_path / "c.sqlite")
    texts = [f"item {i}" for i in range(50)]
    seg = SegmentConfig(block_size=5, max_blocks=5)
    generated = 0
    for mode, hs in (("hierarchical", histories), ("recurrent", histories[:9])):
        cfg = summarize.SummarizerConfig(mode=mode, max_new_tokens=4, segment=seg)
        generated += summarize.summarize_histories(lm, hs, texts, cfg, cache=cache, show_progress=False).generated
    assert generated == len(made) == summary_prompt_count(histories, histories[:9], seg)


def test_prompts_to_generate_are_what_the_summariser_still_generates(monkeypatch, tmp_path):
    """With part of the summaries cached, the plan's count of prompts still to generate is exactly what
    summarize_histories then generates (merges and recurrent steps on cached summaries are found too)."""
    import recllm.trsr.summarize as summarize
    from recllm.bench.trsr.plan import summary_prompts_to_generate
    from recllm.llm.backbone import tiny_causal_lm
    from recllm.llm.cache import DiskCache

    made: dict[str, str] = {}
    monkeypatch.setattr(summarize, "generate",
                        lambda lm, texts, **k: [made.setdefault(t, f"summary {len(made)}") for t in texts])
    rng = np.random.default_rng(1)
    histories = [rng.choice(40, size=n, replace=False) for n in (3, 7, 12, 18, 26, 31, 9, 14)]
    lm, cache = tiny_causal_lm(), DiskCache(tmp_path / "c.sqlite")
    texts = [f"item {i}" for i in range(50)]
    seg = SegmentConfig(block_size=5, max_blocks=5)
    configs = {mode: summarize.SummarizerConfig(mode=mode, max_new_tokens=4, segment=seg)
               for mode in ("hierarchical", "recurrent")}
    count = lambda: summary_prompts_to_generate(lm, configs["hierarchical"], texts, histories, histories[:5], cache)
    total = summary_prompt_count(histories, histories[:5], seg)
    assert count() == (total, total)  # nothing cached yet
    for mode, hs in (("hierarchical", histories[:3]), ("recurrent", histories[:2])):  # an earlier session's part
        summarize.summarize_histories(lm, hs, texts, configs[mode], cache=cache, show_progress=False)
    distinct, todo = count()
    generated = sum(summarize.summarize_histories(lm, hs, texts, configs[mode], cache=cache,
                                                  show_progress=False).generated
                    for mode, hs in (("hierarchical", histories), ("recurrent", histories[:5])))
    assert distinct == total and 0 < todo == generated < total
    assert count() == (total, 0)  # everything cached: the plan calls the summaries stored


def test_seed_modes_drop_recurrent_after_its_seeds_and_keep_hardened():
    sizes = dataclasses.replace(bench.FULL, recurrent_seeds=1)
    assert [m for m, _ in bench.seed_modes(sizes, 0)[0]] == ["hierarchical", "recurrent", "none"]
    for position in (1, 2):
        modes, hardened = bench.seed_modes(sizes, position)
        assert [m for m, _ in modes] == ["hierarchical", "none"] and hardened
    assert len(bench.seed_modes(dataclasses.replace(sizes, recurrent_seeds=None), 2)[0]) == 3
    with pytest.raises(ValueError, match="recurrent_seeds"):
        dataclasses.replace(sizes, recurrent_seeds=0)
    # a part that trains fewer modes is another stored unit; a part that trains all keeps its key
    key = lambda s, position: bench._part_key(bench.DATASETS[0], s, {"data": "sha"}, position, position, 1e-4, "float32", "m")
    assert key(sizes, 1) != key(dataclasses.replace(sizes, recurrent_seeds=None), 1)
    assert key(sizes, 0) == key(dataclasses.replace(sizes, recurrent_seeds=None), 0)


def test_only_runs_whose_validation_chooses_or_feeds_the_curve_score_it():
    sizes, spec = bench.FULL, bench.DATASETS[1]
    cfg = lambda mode, seed, **kw: bench.bench_trsr_config(mode, sizes, spec, seed, **kw)
    assert bench.validates(cfg("hierarchical", 0)) and bench.validates(cfg("none", 0))
    assert not bench.validates(cfg("hierarchical", 1)) and not bench.validates(cfg("recurrent", 0))
    assert not bench.validates(cfg("hierarchical", 0, guarded=True, inject_fraction=0.5))
    assert not bench.validates(cfg("hierarchical", 0, fine_tune=False))
    assert bench.validates(bench.bench_trsr_config("recurrent", dataclasses.replace(sizes, epochs=2), spec, 1))


def test_fusion_users_are_the_validation_rows_then_a_seeded_top_up():
    rows = np.array([9, 2, 5])
    assert bench.fusion_rows(rows, 20, 2).tolist() == [2, 5]
    more = bench.fusion_rows(rows, 20, 6)
    assert set(rows) <= set(more.tolist()) and more.size == 6 == np.unique(more).size
    assert more.tolist() == sorted(more.tolist()) and more.tolist() == bench.fusion_rows(rows, 20, 6).tolist()
    assert bench.fusion_rows(np.array([3, 1]), 4, 10).tolist() == [0, 1, 2, 3]  # every case when there are fewer


class _Rows:
    """The first ``n`` cases of a stage as the benchmark's fixed rows (random candidates, the target first)."""

    def __init__(self, cases, n):
        self.case, self.users, self.histories = np.arange(n), np.asarray(cases.users[:n]), list(cases.histories[:n])
        self.candidates = np.random.default_rng(n).integers(0, 30, size=(n, 21))
        self.positive = np.zeros(n, dtype=np.int64)

    def __len__(self):
        return len(self.case)


@pytest.fixture
def toy_data(loo, monkeypatch, tmp_path):
    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path))
    sizes = dataclasses.replace(bench.QUICK, n_train_users=40, min_candidates=40 * 21, n_valid_rows=6, n_test_rows=8,
                                n_fusion_rows=6, curve_users=(10, 20, 40), seeds=(0, 1, 2), recurrent_seeds=1)
    data = SimpleNamespace(spec=bench.DATASETS[1], split=loo, train=bench.train_size(loo, sizes),
                           valid=_Rows(loo.eval_cases("valid"), 6), test=_Rows(loo.eval_cases("test"), 8),
                           candidates_sha="rows")
    return data, sizes


def test_plan_lists_each_sft_run_once_and_prices_what_the_benchmark_does(toy_data):
    data, sizes = toy_data
    lm = SimpleNamespace(name="tiny", fingerprint="tiny|float32", dtype="float32", device="cpu")
    rates = Rates(sft_group_s=2.0, score_candidate_s=0.5, summary_prompt_s=3.0, score_prompt_s=1.0, summary_batch=32)
    units = plan_units(data, sizes, rates, {"lr": 1e-4}, {}, False, lm)
    sft = [u.name for u in units if u.name.startswith("SFT")]
    assert not any("recurrent-seed1" in n or "recurrent-seed2" in n for n in sft)
    assert sum("recurrent-seed0" in n for n in sft) == 1 and sum("hardened" in n for n in sft) == 3
    assert len(sft) == len(set(sft)) == 3 * 3 + 1  # hierarchical, none, hardened per seed, recurrent once
    curve = [u for u in units if u.name.startswith("curve:")]
    assert sorted({int(u.name.split(", ")[-1].split()[0]) for u in curve}) == [10, 20]  # 40: the main runs
    groups = data.train.groups
    by_name = {u.name: u.seconds for u in units}
    valid_s = len(data.valid) * 21 * 0.5
    assert by_name[f"SFT hierarchical-seed1 ({groups} groups, lr 0.0001)"] == groups * 2.0  # does not validate
    assert by_name[f"SFT hierarchical-seed0 ({groups} groups, lr 0.0001)"] == groups * 2.0 + valid_s
    assert units[-1].name.startswith("learning curve") and units[-1].seconds == 0.0  # read back from the cache
    summary = units[0]
    assert summary.name.startswith("summaries (") and "batch 32" in summary.name
    count = int(summary.name.split("(")[1].split()[0])
    assert summary.seconds == 3.0 * count
    # what the runs summarise: hierarchical - test, validation (= fusion) rows, every seed's and curve point's
    # training cases; recurrent - test rows and seed 0's training cases only (no recurrent run validates)
    from recllm.trsr.pipeline import training_cases

    cases = lambda seed, n=data.train.users: list(training_cases(data.split, n, data.train.targets_per_user, seed,
                                                                 data.test.users).histories)
    test, valid = list(data.test.histories), list(data.valid.histories)
    seg = bench.bench_trsr_config("hierarchical", sizes, data.spec, 0).summarizer.segment
    hier = test + valid + cases(0) + cases(1) + cases(2) + cases(0, 10) + cases(0, 20)
    assert count == summary_prompt_count(hier, test + cases(0), seg) < summary_prompt_count(hier, test + valid
                                                                                             + cases(0), seg)


def test_plan_counts_a_stored_piece_as_done_and_drops_its_scoring_from_the_part(toy_data):
    data, sizes = toy_data
    lm = SimpleNamespace(name="tiny", fingerprint="tiny|float32", dtype="float32", device="cpu")
    rates = Rates(sft_group_s=2.0, score_candidate_s=0.5, summary_prompt_s=3.0, score_prompt_s=1.0, summary_batch=32)
    before = plan_units(data, sizes, rates, {"lr": 1e-4}, {}, False, lm)
    stored = {(0, "hierarchical-seed0"), (0, "baselines"), (None, "curve-none-10")}
    after = plan_units(data, sizes, rates, {"lr": 1e-4}, {}, False, lm, piece_stored=lambda s, p: (s, p) in stored)
    done = {u.name for u in after if u.stored} - {u.name for u in before if u.stored}
    assert sorted(done) == [f"SFT hierarchical-seed0 ({data.train.groups} groups, lr 0.0001)",
                            next(u.name for u in after if u.name.startswith("curve: SFT none-seed0")
                                 and u.name.endswith(", 10 users"))]
    part = {u.name: u.seconds for u in before if u.name.startswith("part seed 0")}
    part_after = {u.name: u.seconds for u in after if u.name.startswith("part seed 0")}
    assert list(part_after.values())[0] < list(part.values())[0]  # its scoring, two-stage and SASRec are done


def test_plan_lists_the_lr_grids_extension_once_the_grid_is_known(toy_data):
    """Before the grid is stored, one conditional run per ranker is priced; once it is stored, the extension its
    scores call for (the best is an edge) is listed by its lr, or nothing when the best lies inside."""
    from recllm.bench.trsr.run import lr_piece

    data, sizes = toy_data
    lm = SimpleNamespace(name="tiny", fingerprint="tiny|float32", dtype="float32", device="cpu")
    rates = Rates(sft_group_s=2.0, score_candidate_s=0.5, summary_prompt_s=3.0, score_prompt_s=1.0, summary_batch=32)
    grid_run = lambda name: name.endswith("; the lr grid)") or "lr grid: one more run" in name  # noqa: E731
    unknown = [u.name for u in plan_units(data, sizes, rates, None, {}, False, lm) if grid_run(u.name)]
    assert len(unknown) == 2 * 4 and sum("only if an edge validates best" in n for n in unknown) == 2
    scores = {lr_piece("hierarchical", lr): v for lr, v in ((1e-4, 1.0), (3e-4, 1.2), (1e-3, 1.5))}
    scores.update({lr_piece("none", lr): v for lr, v in ((1e-4, 1.0), (3e-4, 1.6), (1e-3, 1.5))})
    known = plan_units(data, sizes, rates, None, {}, False, lm, piece_stored=lambda s, p: p in scores,
                       piece_score=scores.get)
    grid = [u for u in known if grid_run(u.name)]
    assert [u.name for u in grid if not u.stored] == [
        f"SFT hierarchical-seed0 ({data.train.groups} groups, lr 0.003; the lr grid)"]
    assert not any("only if" in u.name for u in grid) and len(grid) == 7


def test_the_plan_prices_the_grids_best_run_again_where_its_adapter_is_not_in_this_machines_cache(toy_data):
    """A grid run stored on another machine left its adapter there: the headline seed-0 run at the grid's best lr
    is trained again here, so it is priced as a full run; with its finished folder here it costs nothing."""
    import json

    from recllm.bench.trsr.run import lr_piece

    data, sizes = toy_data
    lm = SimpleNamespace(name="tiny", fingerprint="tiny|float32", dtype="float32", device="cpu")
    rates = Rates(sft_group_s=2.0, score_candidate_s=0.5, summary_prompt_s=3.0, score_prompt_s=1.0, summary_batch=32)
    scores = {lr_piece("hierarchical", lr): v for lr, v in ((1e-4, 1.0), (3e-4, 1.6), (1e-3, 1.5))}
    plan = lambda: {u.name: u for u in plan_units(data, sizes, rates, None, {}, False, lm,  # noqa: E731
                                                  piece_stored=lambda s, p: p in scores, piece_score=scores.get)}
    groups = data.train.groups
    again = plan()[f"SFT hierarchical-seed0 ({groups} groups, lr 0.0003; the lr grid's best so far, trained again "
                   "as its adapter is not in this machine's cache)"]
    valid_s = len(data.valid) * 21 * 0.5
    assert again.seconds == groups * 2.0 + valid_s and not again.stored
    fitter = bench.Fitter(data, sizes, lm, None, None)
    best = fitter.run_dir("hierarchical-seed0", fitter.config("hierarchical", 0, lr=3e-4))
    _sft_folder(best.parent, best.name, [1.0], total=10, step=10)
    (best / "sft" / "checkpoint-10" / "trainer_state.json").write_text(json.dumps({"step": 10, "done": True}))
    reused = [u for u in plan().values() if u.name.startswith(f"SFT hierarchical-seed0 ({groups} groups, the lr "
                                                                "grid's best run above, reused")]
    assert len(reused) == 1 and reused[0].seconds == 0.0
    # the no-summary grid has no stored run: its best is not known, so its headline is the grid's run, reused
    assert any(n.startswith(f"SFT none-seed0 ({groups} groups, the lr grid's best run above") for n in plan())


def test_the_curve_reuses_the_main_seed0_runs(toy_data, monkeypatch):
    """The learning curve's full-size point trains nothing: it fits the folders of the headline seed-0 runs."""
    data, sizes = toy_data
    fitter = bench.Fitter(data, sizes, SimpleNamespace(name="tiny", fingerprint="tiny|float32", dtype="float32", device="cpu"), None, 1e-4)
    fitted = []

    def fake_fit(label, config):
        fitted.append(fitter.run_dir(label, config))
        return SimpleNamespace(n_train_groups_=1, n_train_candidates_=21,
                               rank=lambda hs, cs: [np.linspace(0, 1, len(c)) for c in cs])

    monkeypatch.setattr(fitter, "fit", fake_fit)
    rows = bench.learning_curve(fitter, log=lambda *a: None)
    main = {fitter.run_dir(f"{m}-seed0", fitter.config(m, 0)) for m in ("hierarchical", "none")}
    assert [r["users"] for r in rows] == [10, 10, 20, 20, 40, 40] and len(set(fitted)) == 6
    assert main <= set(fitted)  # the same folders: a finished headline run is reloaded, not trained again
    assert all(bench.validates(fitter.config(m, 0, train=dataclasses.replace(data.train, users=n)))
               for m in ("hierarchical", "none") for n in (10, 20, 40))


def test_every_benchmark_ranker_trains_with_the_class_balanced_loss(toy_data):
    """The benchmark's rankers (every mode, hardened too) take the library's class-balanced default, and it is part
    of each SFT folder's identity, so a run with labels weighed alike never lends its adapter."""
    data, sizes = toy_data
    fitter = bench.Fitter(data, sizes, SimpleNamespace(name="tiny", fingerprint="tiny|float32", dtype="float32",
                                                       device="cpu"), None, 1e-4)
    configs = [fitter.config(m, 0) for m in ("hierarchical", "recurrent", "none")]
    configs.append(fitter.config("hierarchical", 0, guarded=True, inject_fraction=0.5))
    assert all(c.class_weight == "balanced" for c in configs)
    alike = dataclasses.replace(configs[0], class_weight=None)
    assert fitter.run_dir("hierarchical-seed0", alike) != fitter.run_dir("hierarchical-seed0", configs[0])


def test_the_curve_takes_the_headline_point_from_the_stored_runs_and_stores_each_other_point(toy_data, tmp_path,
                                                                                             monkeypatch):
    """On a fresh machine (no SFT folder) the curve fits only its smaller points, each stored as it finishes."""
    from recllm.bench.runs import RunStore

    data, sizes = toy_data
    monkeypatch.setattr("recllm.bench.runs.PACKAGES", ("recllm.bench.trsr",))
    fitter = bench.Fitter(data, sizes, SimpleNamespace(name="tiny", fingerprint="tiny|float32", dtype="float32",
                                                       device="cpu"), None, 1e-4)
    fitted = []

    def fake_fit(label, config):
        fitted.append(config.max_train_users)
        return SimpleNamespace(n_train_groups_=1, n_train_candidates_=21,
                               rank=lambda hs, cs: [np.linspace(0, 1, len(c)) for c in cs])

    monkeypatch.setattr(fitter, "fit", fake_fit)
    headline = {label: {"train_groups": 40, "train_candidates": 840, "valid_recall@5": 0.25}
                for label in (bench.MODES[0][1], bench.MODES[2][1])}
    store = RunStore(tmp_path / "trsr.runs.jsonl")
    rows = bench.learning_curve(fitter, log=lambda *a: None, headline=headline,
                                piece=bench.stored_pieces(store, "curve-unit", log=lambda *a: None))
    assert sorted(fitted) == [10, 10, 20, 20]  # the 40-user point is the headline runs': nothing refitted
    assert [r["valid_recall@5"] for r in rows if r["users"] == 40] == [0.25, 0.25]
    fitted.clear()
    again = bench.learning_curve(fitter, log=lambda *a: None, headline=headline,
                                 piece=bench.stored_pieces(RunStore(store.path), "curve-unit", log=lambda *a: None))
    assert fitted == [] and again == rows  # every point stored: a later session fits nothing


def test_a_pinned_float32_turns_training_autocast_off_where_auto_would_use_bfloat16(monkeypatch):
    monkeypatch.setattr(bench, "resolve_dtype", lambda dtype, device: "bfloat16")  # a CPU with fast bfloat16
    assert bench.training_autocast(SimpleNamespace(dtype="float32", device="cpu")) is False
    assert bench.training_autocast(SimpleNamespace(dtype="bfloat16", device="cpu")) == "auto"
    monkeypatch.setattr(bench, "resolve_dtype", lambda dtype, device: "float32")  # AVX2 only
    assert bench.training_autocast(SimpleNamespace(dtype="float32", device="cpu")) == "auto"


def test_validation_scores_are_cached_so_no_candidate_is_scored_twice(tmp_path, monkeypatch):
    import recllm.llm.scoring as scoring
    from recllm.llm.backbone import tiny_causal_lm
    from recllm.llm.cache import DiskCache
    from recllm.llm.sft import LoRAConfig
    from recllm.trsr.ranker import LLMRanker, RankerConfig, RankQuery, ranker_sft_config

    calls = []
    real = scoring.next_token_logprobs
    monkeypatch.setattr(scoring, "next_token_logprobs", lambda *a, **k: calls.append(1) or real(*a, **k))
    q = [RankQuery(None, ("a film",)), RankQuery(None, ("a book",))]
    cands = [["x", "y", "z"], ["u", "v", "w"]]
    ranker = LLMRanker(tiny_causal_lm(), RankerConfig(n_recent=1, score_dtype="float32"),
                       sft=ranker_sft_config(show_progress=False), lora=LoRAConfig(r=2, alpha=4),
                       cache=DiskCache(tmp_path / "c.sqlite"), show_progress=False)
    ranker.fit(q, cands, [[1, 0, 0], [0, 1, 0]], valid=(q, cands, [0, 1]))
    assert len(calls) == 2 and ranker.valid_scores_  # the validation rows, scored once at the epoch's end
    again = ranker.score(q, cands)
    assert len(calls) == 2 and len(again) == 2  # the trained ranker reads them back


def test_the_report_lists_the_departures_the_sizes_make():
    from recllm.bench.trsr.report import departures

    full = " ".join(departures(bench.FULL))
    assert "recurrent-summary ranker" in full and "first 1 seed(s) only" in full and "up to 48 new tokens" in full
    assert "validation has no epoch to choose" in full and "reranks with the hierarchical ranker only" in full
    every = " ".join(departures(dataclasses.replace(bench.FULL, recurrent_seeds=None)))
    assert "recurrent-summary ranker" not in every and "hardened ranker" not in every
    assert "hardened ranker is trained for the first 2" in " ".join(
        departures(dataclasses.replace(bench.FULL, mitigation_seeds=2)))


def test_two_stage_reranks_with_the_configured_rankers_only_and_scores_each_list_once(loo):
    from recllm.models import MODELS

    scored = []

    def ranker(name):
        def rank(histories, lists):
            scored.extend((name, tuple(map(int, h)), tuple(map(int, c))) for h, c in zip(histories, lists))
            return [np.linspace(0, 1, len(x)) for x in lists]
        return SimpleNamespace(rank=rank)

    test_cases = loo.eval_cases("test")
    data = SimpleNamespace(split=loo, test=SimpleNamespace(case=np.arange(len(test_cases))),
                           valid=SimpleNamespace(case=np.arange(4)), spec=SimpleNamespace(name="toy"))
    sizes = dataclasses.replace(bench.QUICK, n_fusion_rows=6, n_rerank_rows=5, rerank_k=5, retrievers=("itemknn",),
                                two_stage_modes=("hierarchical",))
    llm = {"hierarchical": ranker("hierarchical"), "none": ranker("none")}
    rows, choice = bench.two_stage(data, sizes, llm, {"itemknn": MODELS["itemknn"]().fit(loo)}, log=lambda *a: None)
    assert list(choice["weights"]) == ["LLM-TRSR hierarchical"] and len(rows) == 3
    assert {s[0] for s in scored} == {"hierarchical"}
    assert len(scored) == len(set(scored)) == 6 + 5  # every weight and both test rows reuse one pass per user


def test_two_stage_fits_sasrec_and_learn_itself_and_picks_one_on_validation(loo, monkeypatch):
    """The path the full benchmark first reaches hours in: SASRec and LEARN (shared tower over content embeddings)
    fitted by the two-stage piece, each scored on validation, the best one reranked (tiny epochs and embeddings)."""
    import recllm.learn.encoder as encoder

    n_items = loo.dataset.n_items
    content = np.random.default_rng(0).normal(size=(n_items, 16)).astype(np.float32)
    monkeypatch.setattr(encoder, "content_for", lambda dataset, show_progress=False, **kw: (content, 0.0))
    test_cases = loo.eval_cases("test")
    data = SimpleNamespace(split=loo, test=SimpleNamespace(case=np.arange(len(test_cases))),
                           valid=SimpleNamespace(case=np.arange(4)), spec=SimpleNamespace(name="toy"))
    sizes = dataclasses.replace(bench.QUICK, n_fusion_rows=4, n_rerank_rows=4, rerank_k=5, retriever_epochs=1,
                                retrievers=("itemknn", "sasrec", "learn"), two_stage_modes=("hierarchical",))
    llm = {"hierarchical": SimpleNamespace(rank=lambda histories, lists: [np.linspace(0, 1, len(x)) for x in lists])}
    rows, choice = bench.two_stage(data, sizes, llm, {}, log=lambda *a: None)
    assert set(choice["retriever_validation_ndcg@10"]) == {"item-kNN", "SASRec", "LEARN (shared tower)"}
    assert all(np.isfinite(v) for v in choice["retriever_validation_ndcg@10"].values())
    assert len(rows) == 3 and rows[0]["method"] == f"{choice['retriever']} alone"


def test_which_runs_exist_does_not_move_a_finished_sft_runs_folder(loo, monkeypatch, tmp_path):
    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path))
    spec, users = bench.DATASETS[1], np.arange(3)
    config = bench.bench_trsr_config("hierarchical", bench.FULL, spec, 0)
    folder = lambda sizes, model="SmolLM2|float32": bench._run_dir(spec, "hierarchical-seed0", config, sizes, users,
                                                                  model)
    same = dataclasses.replace(bench.FULL, recurrent_seeds=None, two_stage_modes=("hierarchical", "none"),
                               mitigation_seeds=1, seeds=(0,))
    assert folder(bench.FULL) == folder(same)
    assert folder(bench.FULL) != folder(dataclasses.replace(bench.FULL, n_valid_rows=50))
    # a run begun where auto means float32 is not resumed where it means bfloat16 (autocast, bf16 summaries)
    assert folder(bench.FULL) != folder(bench.FULL, "SmolLM2|bfloat16")
    # validation scores belong to the rows they were made on: other rows, another folder
    assert bench._run_dir(spec, "hierarchical-seed0", config, bench.FULL, users, "SmolLM2|float32", "rows-a") != \
        bench._run_dir(spec, "hierarchical-seed0", config, bench.FULL, users, "SmolLM2|float32", "rows-b")
    # --quiet (progress bars off) resumes and reuses the same SFT runs
    quiet = bench.bench_trsr_config("hierarchical", bench.FULL, spec, 0, show_progress=True)
    assert bench._run_dir(spec, "hierarchical-seed0", quiet, bench.FULL, users, "SmolLM2|float32") == folder(bench.FULL)
    key = lambda s: bench._part_key(spec, s, {"data": "sha"}, 0, 0, 1e-4, "float32", "m")
    assert key(bench.FULL) != key(dataclasses.replace(bench.FULL, two_stage_modes=("hierarchical", "none")))


def test_an_sft_run_trained_by_other_trsr_code_gets_its_own_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path))
    spec, users = bench.DATASETS[1], np.arange(3)
    config = bench.bench_trsr_config("hierarchical", bench.FULL, spec, 0)
    folder = lambda: bench._run_dir(spec, "hierarchical-seed0", config, bench.FULL, users, "SmolLM2|float32")
    before = folder()
    monkeypatch.setattr(bench, "package_source_sha256", lambda package, exclude=(): "0" * 64)
    assert folder() != before  # an edited ranker, prompt or example builder trains afresh


def test_a_probe_from_a_saturated_machine_is_taken_again_when_it_calms_down(monkeypatch, tmp_path):
    import recllm.bench.trsr.plan as plan

    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path))
    probes, load = [], [12.0]
    monkeypatch.setattr(plan, "_load_average", lambda: load[0])
    monkeypatch.setattr(plan, "probe_rates", lambda *a: probes.append(load[0]) or Rates(9.0, 1.0, 5.0, load[0]))
    args = (SimpleNamespace(fingerprint="tiny"), None, bench.QUICK)
    assert plan.cached_rates(*args, log=lambda *a: None).load_average == 12.0
    load[0] = 8.0
    assert plan.cached_rates(*args, log=lambda *a: None).load_average == 12.0 and probes == [12.0]  # still busy
    load[0] = 1.5
    assert plan.cached_rates(*args, log=lambda *a: None).load_average == 1.5 and probes == [12.0, 1.5]
    load[0] = 0.5
    assert plan.cached_rates(*args, log=lambda *a: None).load_average == 1.5 and len(probes) == 2  # kept
    assert not plan.calmer_now(1.9, 0.1, 2) and plan.calmer_now(4.1, 2.0, 2) and not plan.calmer_now(4.1, 2.1, 2)
    # a probe that got 9% of its core (niced beside two busy processes) is taken again once a core is free
    assert plan.calmer_now(2.0, 1.2, 2, probe_share=0.09) and not plan.calmer_now(2.0, 1.6, 2, probe_share=0.09)
    assert not plan.calmer_now(2.0, 0.1, 2, probe_share=0.9)


def test_the_plan_gives_an_idle_estimate_from_the_probes_share_of_its_cores():
    """A probe that had a third of its cores (CPU time over wall time) prices every unit three times too long: the
    plan says so and gives the idle machine's estimate beside this machine's."""
    from recllm.bench.trsr.plan import Unit, format_plan

    rates = Rates(sft_group_s=2.0, score_candidate_s=0.5, summary_prompt_s=3.0, load_average=3.0, cpu_share=1 / 3)
    text = format_plan([Unit("toy", "SFT x", False, 3 * 3600.0), Unit("toy", "SFT y", True, 3600.0)], rates)
    assert "estimated time left on this machine: ~3.0 h" in text
    assert "on an idle machine roughly ~1.0 h (the probe had about 33% of its cores" in text
    assert "idle machine" not in format_plan([Unit("toy", "SFT x", False, 60.0)], dataclasses.replace(rates,
                                                                                                      cpu_share=1.0))


def _sft_folder(root, name, windows, bf16=False, threads=1, per_step=(1, 2), total=None, step=None, model="tiny",
                world_size=1):
    """A run folder as sft_train leaves it: config.json, a log with a start line and a step line every 10 steps
    of ``windows`` seconds each, and, with ``step``, the latest checkpoint's state."""
    import json

    sft = root / name / "sft"
    sft.mkdir(parents=True)
    (sft / "config.json").write_text(json.dumps({
        "base_model": model, "base_fingerprint": f"{model}|float32|code=x",
        "resolved": {"bf16": bf16, "torch_threads": threads, "device": "cpu", "world_size": world_size},
        "sft": {"batch_size": per_step[0], "grad_accum": per_step[1]}}))
    lines = [{"event": "start", "total_steps": total or 10 * len(windows), "bf16": bf16}]
    lines += [{"step": 10 * (i + 1), "epoch": 0, "seconds": s} for i, s in enumerate(windows)]
    (sft / "training_log.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    if step is not None:
        (sft / f"checkpoint-{step}").mkdir()
        (sft / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps({"step": step, "done": False}))
    return sft.parent


def test_logged_sft_seconds_is_the_median_window_of_runs_trained_like_the_plan(tmp_path):
    """Per training group (a step takes batch_size * grad_accum groups), the first window after a start (model
    loading) skipped, runs of another model, autocast, thread count or world size left out, too few windows: no
    figure; a damaged log is skipped, never an error."""
    from recllm.bench.trsr.plan import logged_sft_seconds

    _sft_folder(tmp_path, "hierarchical-seed0-aaa", [500.0, 200.0, 220.0, 180.0])  # 500: start-up, skipped
    _sft_folder(tmp_path, "hierarchical-seed1-bbb", [900.0, 240.0, 160.0])
    _sft_folder(tmp_path, "none-seed0-ccc", [100.0, 100.0])  # one window after the first: too few
    _sft_folder(tmp_path, "none-seed0-ddd", [10.0] * 9, bf16=True)  # another autocast
    _sft_folder(tmp_path, "none-seed0-eee", [10.0] * 9, threads=2)  # another thread count
    _sft_folder(tmp_path, "none-seed0-ggg", [10.0] * 9, model="bigger")  # another base model
    _sft_folder(tmp_path, "none-seed0-hhh", [10.0] * 9, world_size=2)  # a torchrun rank's pace
    (tmp_path / "recurrent-seed0-fff" / "sft").mkdir(parents=True)  # a run just begun: no config yet
    damaged = _sft_folder(tmp_path, "recurrent-seed0-iii", [10.0] * 9) / "sft" / "training_log.jsonl"
    damaged.write_text(damaged.read_text() + '7\n{"seconds": 3}\n{"step": null, "seconds": 1}\n{"step": 9')
    logged = logged_sft_seconds(tmp_path, "tiny", bf16=False, threads=1, min_windows=5)
    assert logged == {"hierarchical": (200.0 / 20, 5)}  # median of 200 220 180 240 160, over 10 steps x 2 groups
    assert logged_sft_seconds(tmp_path, "tiny", bf16=False, threads=1, min_windows=1)["none"] == (100.0 / 20, 1)
    assert logged_sft_seconds(tmp_path / "absent", "tiny", bf16=False, threads=1) == {}


def test_the_plan_prices_sft_at_the_logged_pace_and_an_interrupted_run_at_what_is_left(toy_data):
    from recllm.bench.trsr.plan import format_plan

    data, sizes = toy_data
    lm = SimpleNamespace(name="tiny", fingerprint="tiny|float32", dtype="float32", device="cpu")
    rates = Rates(sft_group_s=2.0, score_candidate_s=0.5, summary_prompt_s=3.0, score_prompt_s=1.0, summary_batch=32,
                  load_average=3.0, cpu_share=0.5)
    groups = data.train.groups
    fitter = bench.Fitter(data, sizes, lm, None, 1e-4)
    run = fitter.run_dir("hierarchical-seed1", fitter.config("hierarchical", 1))
    _sft_folder(run.parent, run.name, [1.0, 1.0], total=40, step=10)  # a quarter done
    units = plan_units(data, sizes, rates, {"lr": 1e-4}, {}, False, lm, logged={"hierarchical": (0.5, 40)})
    by_name = {u.name: u for u in units}
    resumed = by_name[f"SFT hierarchical-seed1 ({groups} groups, lr 0.0001; resumes at 25%)"]
    assert resumed.seconds == resumed.logged_s == groups * 0.5 * 0.75 and not resumed.stored
    assert by_name[f"SFT hierarchical-seed2 ({groups} groups, lr 0.0001)"].seconds == groups * 0.5
    none = by_name[f"SFT none-seed2 ({groups} groups, lr 0.0001)"]
    assert none.seconds == groups * 2.0 and none.logged_s == 0  # no logged pace for this kind: the probe's
    text = format_plan(units, rates, {"toy": {"hierarchical": (0.5, 40)}})
    assert "SFT of toy timed from this machine's logged runs" in text and "hierarchical 0.50 s (40 windows)" in text
    left = sum(u.seconds for u in units if not u.stored)
    probed = sum(u.seconds - u.logged_s for u in units if not u.stored)
    hours = lambda s: f"{s / 3600:.1f} h" if s >= 3600 else f"{s / 60:.0f} min"  # noqa: E731
    assert f"on an idle machine roughly ~{hours(left - probed / 2)}" in text


def test_the_plan_prices_the_lr_grids_extra_run_from_zero_whatever_the_edge_run_has_done(toy_data):
    """The 'one more lr' placeholder is a run at an lr not known yet: the grid's edge run being 75% done says
    nothing about it."""
    data, sizes = toy_data
    lm = SimpleNamespace(name="tiny", fingerprint="tiny|float32", dtype="float32", device="cpu")
    rates = Rates(sft_group_s=2.0, score_candidate_s=0.5, summary_prompt_s=3.0, score_prompt_s=1.0, summary_batch=32)
    from recllm.bench.trsr.scale import lr_candidates

    fitter = bench.Fitter(data, sizes, lm, None, None)
    edge = fitter.run_dir("hierarchical-seed0", fitter.config("hierarchical", 0, lr=lr_candidates()[-1]))
    _sft_folder(edge.parent, edge.name, [1.0, 1.0], total=40, step=30)
    units = plan_units(data, sizes, rates, None, {}, False, lm)
    extra = [u for u in units if u.name.startswith("SFT hierarchical-seed0 (lr grid: one more run")]
    edge_unit = [u for u in units if "resumes at 75%" in u.name]
    assert len(extra) == 1 and len(edge_unit) == 1 and extra[0].seconds == 4 * edge_unit[0].seconds


@pytest.mark.parametrize("logged_threads,timed_by_log", [(None, True), (7, False)])
def test_plan_benchmark_finds_this_machines_logged_runs(toy_data, monkeypatch, logged_threads, timed_by_log):
    """`recllm bench trsr --plan` end to end, the model work replaced: it looks for logged SFT runs in the cache
    folder the benchmark trains in, for its base model, autocast and torch thread count; runs logged at another
    thread count are named with the --threads that would use them."""
    import torch

    import recllm.bench.carried
    import recllm.bench.trsr.plan as plan
    import recllm.llm
    from recllm.utils import cache_dir

    data, sizes = toy_data
    lm = SimpleNamespace(name="tiny", fingerprint="tiny|float32", dtype="float32", device="cpu")
    monkeypatch.setattr(recllm.llm, "load_causal_lm", lambda *a, **k: lm)
    monkeypatch.setattr(bench, "prepare", lambda spec, sizes, show=False: data)
    monkeypatch.setattr(bench, "resolve_sizes", lambda quick, seeds: sizes)
    monkeypatch.setattr(bench, "inputs_identity", lambda spec, data: {"data": "toy"})
    monkeypatch.setattr(bench, "mind_available", lambda: False)
    monkeypatch.setattr(recllm.bench.carried, "CarriedCache", lambda path: None)  # summaries counted, not read
    monkeypatch.setattr(plan, "cached_rates", lambda *a, **k: Rates(
        sft_group_s=2.0, score_candidate_s=0.5, summary_prompt_s=3.0, score_prompt_s=1.0, summary_batch=32))
    threads = logged_threads or torch.get_num_threads()
    _sft_folder(cache_dir("trsr", "runs", data.spec.name), "hierarchical-seed0-aaa", [500.0] + [200.0] * 6,
                threads=threads)
    lines = []
    out = cache_dir("reports") / "trsr.md"
    assert plan.plan_benchmark(quick=True, out=out, datasets=[data.spec.name], precision="float32",
                               log=lines.append) == 0
    # with an lr (given, or chosen by an earlier run): `chosen_lr` was never imported, a NameError
    assert plan.plan_benchmark(quick=True, out=out, datasets=[data.spec.name], precision="float32", lr=1e-4,
                               log=[].append) == 0
    text = "\n".join(lines)
    assert (f"SFT of {data.spec.name} timed from this machine's logged runs" in text) == timed_by_log, text
    if timed_by_log:
        assert "hierarchical 10.00 s (6 windows)" in text  # 200 s per 10 steps x 2 groups
    else:
        assert f"logged SFT runs at 7 torch thread(s), not at this plan's {torch.get_num_threads()}" in text
        assert "pass --threads 7" in text
