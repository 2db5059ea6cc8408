"""What makes `recllm bench trsr`'s stored pieces the same runs on every machine and session: retrievers trained to an
epoch cap (no wall-clock budget), keys that name the seeds, candidates and library versions they used, the two-stage
protocol as a piece of its own, and a report that says where each time was measured."""

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

import recllm.bench.trsr.run as bench
from recllm.bench.trsr.plan import Rates, plan_units
from recllm.errors import UserInputError
from recllm.eval.sampled import SampledCandidates


# ---------------------------------------------------------------------------------------------- 1: epoch caps
def test_retrievers_train_to_an_epoch_cap_with_the_learn_benchmarks_settings(loo):
    from recllm.bench.learn.run import model_specs

    assert not [f.name for f in dataclasses.fields(bench.BenchSizes) if "second" in f.name or "budget" in f.name]
    for sizes in (bench.QUICK, bench.FULL):
        assert sizes.retriever_epochs >= 1 and bench._shape(sizes)["retriever_epochs"] == sizes.retriever_epochs
    assert bench.FULL.retriever_patience == 10  # its campaign's (learn's earlier patience; see BenchSizes)
    learn = {s.name: s.settings for s in model_specs(False, bench.FULL.retriever_patience)}
    for name, label in (("sasrec", "SASRec-CE"), ("learn", "LEARN (shared tower)")):
        ours = bench.retriever_settings(name, bench.FULL)
        assert ours["max_epochs"] == bench.FULL.retriever_epochs and "time_budget" not in ours
        theirs = {k: v for k, v in learn[label].items() if k != "content"}  # the encoder: content_for's default
        assert {k: v for k, v in ours.items() if k != "max_epochs"} == theirs
    sizes = dataclasses.replace(bench.QUICK, retriever_epochs=3, retriever_patience=2)
    model = bench._retriever("sasrec", loo, 0, sizes, {}, False)
    assert model.config.max_epochs == 3 and model.config.patience == 2 and model.config.time_budget is None
    assert 1 <= len(model.history_) <= 3
    again = bench._retriever("sasrec", loo, 0, sizes, {}, False)
    users, histories = np.arange(3), [np.array([1, 2]), np.array([3]), np.array([4, 5, 6])]
    assert np.array_equal(model.score(users, histories), again.score(users, histories))  # seeded, no clock


# ---------------------------------------------------------------------------------------------- 3: seeds
@pytest.mark.parametrize("seeds", [[1], [0, 2], [1, 0], [2, 1, 0]])
def test_a_seed_list_whose_parts_another_session_would_not_find_is_one_line_before_any_work(seeds, monkeypatch,
                                                                                            tmp_path):
    from recllm.cli import build_parser

    monkeypatch.setattr(bench, "load_causal_lm", lambda *a, **k: pytest.fail("work began"))
    monkeypatch.setattr(bench, "prepare", lambda *a, **k: pytest.fail("work began"))
    with pytest.raises(UserInputError, match=r"\(--seeds\); .*--only"):
        bench.resolve_sizes(False, seeds)
    args = build_parser().parse_args(["bench", "trsr", "--seeds", *map(str, seeds), "--out",
                                      str(tmp_path / "t.md"), "--allow-dirty"])
    with pytest.raises(UserInputError, match="--seeds"):
        args.func(args)


def test_prefixes_of_0_1_2_are_accepted():
    assert bench.resolve_sizes(False, [0]).seeds == (0,) and bench.resolve_sizes(False, [0, 1, 2]).seeds == (0, 1, 2)
    assert bench.resolve_sizes(True).seeds == bench.QUICK.seeds and bench.resolve_sizes(False).seeds == (0, 1, 2)


# ---------------------------------------------------------------------------------------------- 4: identity
def test_a_stale_cached_candidates_file_is_drawn_again(loo, monkeypatch, tmp_path):
    from recllm.trsr.candidates import fixed_candidates

    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path))
    first, path = fixed_candidates(loo, "test")
    # another draw (seed 5, same catalogue size) saved under the seed-0 name: the n_items check alone took it
    pool = loo.dataset.item_index(loo.dataset.interactions["item_id"].unique())
    SampledCandidates.draw(loo.dataset, loo.eval_cases("test"), seed=5, pool=pool).save(path)
    again, _ = fixed_candidates(loo, "test")
    assert np.array_equal(again.candidates, first.candidates) and again.seed == 0
    monkeypatch.setattr(SampledCandidates, "draw", lambda *a, **k: pytest.fail("a valid file was drawn again"))
    kept, _ = fixed_candidates(loo, "test")
    assert np.array_equal(kept.candidates, first.candidates)


def test_part_and_unit_keys_name_the_candidates_and_library_versions_used(tmp_path, monkeypatch):
    """Another candidates draw, or another torch / transformers / peft / tokenizers / numpy, is another run."""
    import recllm.bench.trsr.report as report

    monkeypatch.setenv("RECLLM_DATA", str(tmp_path / "data"))
    monkeypatch.setattr("recllm.bench.runs.PACKAGES", ("recllm.bench.trsr",))
    (tmp_path / "data" / "ml-latest-small").mkdir(parents=True)
    (tmp_path / "data" / "ml-latest-small" / "ratings.csv").write_text("a\n1\n")
    sha, versions, calls, units = ["c0"], {"torch": "2.0"}, [], []
    monkeypatch.setattr(bench, "library_versions", lambda: dict(versions))
    monkeypatch.setattr(bench, "load_causal_lm", lambda *a, **k: SimpleNamespace(
        name="lm", fingerprint="lm|float32", dtype="float32", device="cpu"))
    monkeypatch.setattr(bench, "prepare", lambda spec, sizes, show=False: SimpleNamespace(spec=spec,
                                                                                          candidates_sha=sha[0]))
    monkeypatch.setattr(bench, "decide_lr", lambda fitter, **k: units.append("lr") or {"lr": 1e-4, "curve": {}})
    monkeypatch.setattr(bench, "learning_curve", lambda fitter, **k: units.append("curve") or [])
    monkeypatch.setattr(bench, "run_dataset", lambda spec, sizes, *a, **k: calls.append(1) or {
        "dataset": spec.name, "rows": [], "two_stage": [], "data_files": [], "candidates": []})
    monkeypatch.setattr(report, "render", lambda *a: "body")
    monkeypatch.setattr(bench, "mind_available", lambda: False)

    def run() -> None:
        assert bench.run_benchmark(quick=True, out=str(tmp_path / "trsr.md"), datasets=["ml-latest-small"]) == 0

    run()
    run()
    assert len(calls) == 1 and units == ["lr", "curve"]  # stored: reused
    sha[0] = "c1"
    run()
    assert len(calls) == 2 and units == ["lr", "curve"] * 2  # other candidates: every unit again
    versions["torch"] = "2.1"
    run()
    assert len(calls) == 3 and units == ["lr", "curve"] * 3  # another library version: every unit again
    assert set(bench.LIBRARIES) == {"torch", "transformers", "peft", "tokenizers", "numpy"}


# ---------------------------------------------------------------------------------------------- 5: two-stage piece
def _prepared(loo):
    from recllm.trsr.candidates import subset_rows

    valid = SampledCandidates.draw(loo.dataset, loo.eval_cases("valid"), n_negatives=5, seed=0)
    test = SampledCandidates.draw(loo.dataset, loo.eval_cases("test"), n_negatives=5, seed=0)
    sizes = dataclasses.replace(bench.QUICK, n_train_users=4, min_candidates=4 * 21)
    return bench.Prepared(bench.DATASETS[1], loo.dataset, loo, subset_rows(valid, 4), subset_rows(test, 6),
                          ("v", "t"), bench.train_size(loo, sizes), "sha")


def test_the_two_stage_protocol_is_its_own_piece_at_the_first_position_only_right_after_its_rankers(
        loo, monkeypatch):
    names = []

    def record(name, compute):  # a piece runner that computes nothing: which pieces a part has
        names.append(name)
        return {}

    data = _prepared(loo)
    lm = SimpleNamespace(name="tiny", fingerprint="tiny|float32", dtype="float32", device="cpu")
    for position in (0, 1):
        names.clear()
        bench.run_dataset(data.spec, dataclasses.replace(bench.QUICK, seeds=(position,)), lm, None,
                          data=data, piece=record, first_position=position, log=lambda *a: None)
        seed = f"seed{position}"
        rankers = [f"{m}-{seed}" for m in ("hierarchical", "recurrent", "none")]
        if position == 0:  # QUICK reranks with hierarchical and none: the piece follows none's, before hardened's
            assert names == ["baselines", "zero-shot", *rankers, "two-stage", f"hardened-{seed}"]
        else:
            assert names == ["baselines", *rankers, f"hardened-{seed}"]
    names.clear()  # the full preset reranks with hierarchical only: right after it, not hours of SFT later
    bench.run_dataset(data.spec, dataclasses.replace(bench.QUICK, seeds=(0,), two_stage_modes=("hierarchical",)),
                      lm, None, data=data, piece=record, first_position=0, log=lambda *a: None)
    assert names.index("two-stage") == names.index("hierarchical-seed0") + 1


def test_the_two_stage_piece_reuses_this_sessions_ranker_else_fits_it_again(loo, monkeypatch):
    data = _prepared(loo)
    sizes = dataclasses.replace(bench.QUICK, two_stage_modes=("hierarchical",))
    fitter = bench.Fitter(data, sizes, SimpleNamespace(name="tiny", fingerprint="tiny|float32", dtype="float32",
                                                       device="cpu"), None, 1e-4)
    fitted, staged = [], []
    monkeypatch.setattr(fitter, "fit", lambda label, config: fitted.append((label, config.seed)) or "refitted")
    monkeypatch.setattr(bench, "two_stage", lambda data, sizes, llm, *a: staged.append(llm) or ([], {"k": 5}))
    assert bench.two_stage_piece(fitter, {"hierarchical": "loaded"}) == {"two_stage": [], "two_stage_choice": {"k": 5}}
    assert fitted == [] and staged == [{"hierarchical": "loaded"}]
    bench.two_stage_piece(fitter, {})  # a later session: the ranker's piece is stored, its model is not loaded
    assert fitted == [("hierarchical-seed0", 0)] and staged[-1] == {"hierarchical": "refitted"}


def test_the_plan_says_when_the_two_stage_piece_trains_its_ranker_again(loo, monkeypatch, tmp_path):
    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path))
    data = _prepared(loo)
    sizes = dataclasses.replace(bench.QUICK, n_train_users=4, two_stage_modes=("hierarchical",))
    lm = SimpleNamespace(name="tiny", fingerprint="tiny|float32", dtype="float32", device="cpu")
    rates = Rates(sft_group_s=2.0, score_candidate_s=0.5, summary_prompt_s=3.0, score_prompt_s=1.0)

    def two_stage_unit(stored):
        units = plan_units(data, sizes, rates, {"lr": 1e-4}, {}, False, lm, piece_stored=lambda s, p: (s, p) in stored)
        return next(u for u in units if u.name.startswith("two-stage seed 0"))

    fresh = two_stage_unit(set())
    assert not fresh.stored and "again" not in fresh.name  # the ranker's own piece trains it in this session
    again = two_stage_unit({(0, "hierarchical-seed0")})
    assert "first trains hierarchical-seed0 again: its adapter is not in this machine's cache" in again.name and again.seconds > fresh.seconds
    done = two_stage_unit({(0, "hierarchical-seed0"), (0, "two-stage")})
    assert done.stored and "again" not in done.name


def test_two_stage_with_the_learn_retriever_on_tiny_data_and_a_tiny_model(loo, content, monkeypatch, tmp_path):
    """The LEARN retriever path (`_fit_learn`) end to end: fitted to its epoch cap, compared on validation, and
    reranked by a (zero-shot) TRSR ranker on a tiny llama."""
    import recllm.learn.encoder as encoder
    from recllm.llm.backbone import tiny_causal_lm
    from recllm.llm.cache import DiskCache
    from recllm.trsr.pipeline import TRSR

    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path))
    monkeypatch.setattr(encoder, "content_for", lambda dataset, show_progress=False: (content, 0.0))
    data = _prepared(loo)
    sizes = dataclasses.replace(bench.QUICK, retrievers=("itemknn", "learn"), retriever_epochs=2, rerank_k=5,
                                n_fusion_rows=3, n_rerank_rows=3, summary_tokens=2,
                                two_stage_modes=("hierarchical",))
    lm = tiny_causal_lm(seed=0)
    config = bench.bench_trsr_config("hierarchical", sizes, data.spec, 0, fine_tune=False, score_dtype="float32")
    ranker = TRSR(lm, lm, config, cache=DiskCache(tmp_path / "c.sqlite"), show_progress=False).fit(loo)
    learn = bench._retriever("learn", loo, 0, sizes, {}, False)
    assert learn.config.max_epochs == 2 and learn.config.time_budget is None and 1 <= len(learn.history_) <= 2
    rows, choice = bench.two_stage(data, sizes, {"hierarchical": ranker}, {}, log=lambda *a: None)
    assert set(choice["retriever_validation_ndcg@10"]) == {"item-kNN", "LEARN (shared tower)"}
    assert len(rows) == 3 and all(len(r["per_user"]["ndcg@10"]) == 3 for r in rows)


def test_the_benchmarks_ranker_sft_checkpoints_every_10_steps():
    config = bench.bench_trsr_config("hierarchical", bench.FULL, bench.DATASETS[1], 0)
    assert config.sft.checkpoint_every == bench.CHECKPOINT_EVERY == 10


# ---------------------------------------------------------------------------------------------- 6: report
def test_the_report_says_which_interval_each_row_has_where_times_were_measured_and_the_sizes_run():
    from recllm.bench.trsr.report import render

    per = lambda v: {f"{m}@{k}": np.asarray(v, dtype=float) for m in ("recall", "mrr") for k in (3, 5, 10)}
    machine = {"cpu": "AMD EPYC 9R14", "threads": 2}
    res = {"dataset": "toy", "n_test": 4, "n_valid": 3,
           "summary": {"users": 5, "items": 9, "interacted_items": 7, "interactions": 30},
           "train": {"users": 7, "targets_per_user": 2, "groups": 14, "candidates": 294},
           "rows": [{"method": "popularity", "seed": 0, "per_user": per([1, 0, 1, 0])},
                    {"method": "LLM-TRSR hierarchical", "seed": 0, "per_user": per([1, 1, 1, 0])},
                    {"method": "LLM-TRSR hierarchical", "seed": 1, "per_user": per([1, 0, 1, 0])}],
           "two_stage": [], "injection": [], "examples": [],
           "throughput": [{"method": "LLM-TRSR hierarchical", "seed": 0, "summary_users_per_s": 1.5,
                           "summary_prompts": 6, "candidates_per_s": 40.0, "train_pairs": 8, "train_s": 12.0,
                           "valid_scores": {}, "machine": machine, "sft_threads": 2}],
           "speed": {"users": 2, "candidates": 42, "shared_s": 1.0, "full_s": 3.0, "speedup": 3.0,
                     "max_abs_p_diff": 1e-3, "dtype": "float32", "machine": {"cpu": "Intel Xeon", "threads": 1}}}
    text = render([res], bench.FULL, "tiny", [], quick=False)
    assert "Student-t over seeds\"" not in text and "intervals: Student-t over seeds" not in text
    assert "| bootstrap over 4 users |" in text and "| Student-t over 2 seeds |" in text
    assert "AMD EPYC 9R14, 2 threads" in text and "measured on Intel Xeon, 1 thread)" in text
    assert "toy: 7 training users x up to 2 target(s)" in text and "3 validation rows, 4 test rows" in text
    assert "seeds 0, 1" in text and "300 test rows" not in text  # the runs' sizes, not the preset's
    assert "300 test rows" in render([], bench.FULL, "tiny", [], quick=False)  # nothing run yet: the plan's


def test_the_sft_folder_key_leaves_out_the_command_lines_and_the_users_folder_readers():
    """Fixing `recllm trsr`'s command line or a reader of users' own data folders orphans no SFT folder of the
    benchmark (a lane running from an older commit, or a resumed run, finds its folders again)."""
    from pathlib import Path

    import recllm.data
    import recllm.trsr
    from recllm.utils import package_source_sha256

    for package, module in (("recllm.trsr", recllm.trsr), ("recllm.data", recllm.data)):
        assert set(bench.NOT_RUN_CODE[package]) <= {p.name for p in Path(module.__file__).parent.iterdir()}
    ours = bench.run_code_version()
    assert ours == [package_source_sha256(p, exclude=bench.NOT_RUN_CODE[p]) for p in ("recllm.trsr", "recllm.data")]
    assert ours != [package_source_sha256(p) for p in ("recllm.trsr", "recllm.data")]
