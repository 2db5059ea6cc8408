"""`recllm bench trsr-agreement`: a faster scoring precision's rank agreement with trsr.md's headline scores, on the
campaign's seed-0 rankers reloaded from this machine's finished SFT runs -- never trained here."""

import dataclasses

import numpy as np
import pytest

import recllm.bench.trsr.run as bench
import recllm.bench.trsr_agreement as agreement
from recllm.bench.runs import RunStore, run_key
from recllm.errors import UserInputError


def _silent(*args):
    return None


@pytest.fixture
def small(monkeypatch, tmp_path):
    """The trsr benchmark at a tiny size on tiny models, its caches under tmp_path."""
    from recllm.llm.backbone import tiny_causal_lm

    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("recllm.bench.runs.PACKAGES", ("recllm.bench.trsr",))
    monkeypatch.setattr(bench, "ranker_base", lambda *a, **k: tiny_causal_lm(seed=1))
    sizes = dataclasses.replace(bench.QUICK, n_train_users=4, n_valid_rows=2, n_test_rows=3, summary_tokens=4,
                                retriever_epochs=1, seeds=(0,), min_candidates=4 * 21)
    monkeypatch.setattr(bench, "FULL", sizes)
    return sizes, tiny_causal_lm(seed=0)


@pytest.mark.integration
def test_rankers_are_reloaded_never_trained_scored_in_both_precisions_and_stored(shared_data, small, tmp_path,
                                                                                  monkeypatch):
    from recllm.llm.cache import DiskCache

    sizes, summarizer = small
    spec = bench.DATASETS[0]
    cache = DiskCache(tmp_path / "c.sqlite")
    campaign, store = RunStore(tmp_path / "trsr.runs.jsonl"), RunStore(tmp_path / "agree.runs.jsonl")
    real_fit = bench.Fitter.fit

    # no lr chosen yet: the fine-tuned rankers are named and skipped, the zero-shot one is measured
    monkeypatch.setattr(bench.Fitter, "fit", lambda self, label, config: (
        real_fit(self, label, config) if not config.fine_tune else pytest.fail("a ranker was trained")))
    rows = agreement.measure_dataset(spec, summarizer, cache, campaign, store, "bfloat16", log=_silent)
    assert [r["ranker"] for r in rows] == [label for label, _, _ in agreement.RANKERS]
    zero, *tuned = rows
    assert "skipped" not in zero and all("lr yet" in r["skipped"] for r in tuned)
    assert zero["faster precision"].startswith("bfloat16") and -1.0 <= zero["Spearman"] <= 1.0
    assert 0.0 <= zero["same top-1"] <= 1.0 and zero["test users"] == sizes.n_test_rows

    # the lr chosen (the campaign's unit stored) but no finished SFT run on this machine: still nothing trained
    data = bench.prepare(spec, sizes)
    unit = bench._unit_key("bench-trsr-lr", spec, sizes, bench.inputs_identity(spec, data), summarizer.fingerprint)
    campaign.put(unit, {"lr": {"hierarchical": 1e-3, "none": 3e-4}, "curve": {}, "how": "chosen"})
    rows = agreement.measure_dataset(spec, summarizer, cache, campaign, store, "bfloat16", log=_silent)
    assert [r["lr"] for r in rows[1:]] == [1e-3, 3e-4] and all("not trained" in r["skipped"] for r in rows[1:])

    # a finished run with the same SFT settings but other training examples (a learning-curve point: fewer users)
    # is not taken for the headline ranker: sft_train's own check refuses it, and nothing is trained
    monkeypatch.setattr(bench.Fitter, "fit", real_fit)
    fitter = bench.Fitter(data, sizes, summarizer, cache, None)
    config = fitter.config("hierarchical", 0, lr=1e-3)
    fewer = fitter.config("hierarchical", 0, lr=1e-3, train=dataclasses.replace(data.train, users=2))
    fitter.fit("hierarchical-seed0", fewer)
    assert agreement.finished_runs(fitter, "hierarchical-seed0", config) == [fitter.run_dir("hierarchical-seed0",
                                                                                             fewer)]
    rows = agreement.measure_dataset(spec, summarizer, cache, campaign, store, "bfloat16", log=_silent)
    assert "not trained" in rows[1]["skipped"]

    # the campaign trains the hierarchical ranker, from an older commit whose source hash named its folder
    # otherwise: it is found, reloaded, and its test scores are the campaign's
    trained = fitter.fit("hierarchical-seed0", config)
    scores = trained.rank(data.test.histories, list(data.test.candidates))
    expected = bench.evaluate_sampled(bench.precomputed_score_fn(data.test, scores), data.test, ks=bench.KS,
                                      show_progress=False)
    named = fitter.run_dir("hierarchical-seed0", config)
    folder = named.with_name("hierarchical-seed0-0ldercommit")
    named.rename(folder)
    log_file = folder / "sft" / "training_log.jsonl"

    def files():
        return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and p != log_file}

    written, logged = files(), log_file.read_text().splitlines()
    rows = agreement.measure_dataset(spec, summarizer, cache, campaign, store, "bfloat16", log=_silent)
    assert files() == written  # reloaded, not trained: the adapter and its state are as the campaign left them
    added = log_file.read_text().splitlines()[len(logged):]
    assert all('"event": "resume"' in line for line in added)  # no training step
    hierarchical = rows[1]
    assert "skipped" not in hierarchical and hierarchical["lr"] == 1e-3
    assert hierarchical["recall@10"] == pytest.approx(float(expected.per_user["recall@10"].mean()))
    assert -1.0 <= hierarchical["Spearman"] <= 1.0 and "skipped" in rows[2]

    # measured rows are stored: a rerun (another session) fits and scores nothing
    monkeypatch.setattr(bench.Fitter, "fit", lambda *a, **k: pytest.fail("a stored row was measured again"))
    again = agreement.measure_dataset(spec, summarizer, cache, campaign, RunStore(store.path), "bfloat16",
                                      log=_silent)
    assert again[:2] == rows[:2]
    body = agreement.report_body(again, "float32", "bfloat16")
    assert "LLM-TRSR hierarchical" in body and "Not measured" in body and "not trained on this machine" in body

    # a later session on another CPU with no faster precision measures nothing and keeps this CPU's rows
    monkeypatch.setattr("recllm.hardware.cpu_model", lambda: "Another CPU")
    monkeypatch.setattr(agreement, "reload_ranker", lambda *a: pytest.fail("a ranker was loaded"))
    other = agreement.measure_dataset(spec, summarizer, cache, campaign, RunStore(store.path), "bfloat16",
                                      log=_silent, measure=False)
    assert [r for r in other if "skipped" not in r] == rows[:2]
    assert all("Another CPU" in r["skipped"] for r in other[:2] if "skipped" in r)


def test_the_lr_is_read_from_a_complete_grid_and_none_while_it_is_incomplete(tmp_path, monkeypatch):
    """Before the campaign stores its lr unit, the choice is the one its stored grid runs make."""
    from types import SimpleNamespace

    monkeypatch.setattr("recllm.bench.runs.PACKAGES", ("recllm.bench.trsr",))
    store = RunStore(tmp_path / "trsr.runs.jsonl")
    fitter = SimpleNamespace(data=SimpleNamespace(spec=SimpleNamespace(name="d")))
    grid = bench.lr_candidates()
    assert len(grid) >= 3
    best = grid[1]  # inside the grid: no further lr is tried
    for lr in grid[:-1]:
        store.put(run_key(unit="u", piece=bench.lr_piece("hierarchical", lr)), {"lr": lr, "score": float(lr == best)})
    assert agreement.campaign_lr(store, "u", fitter, "hierarchical") is None  # the last grid run is missing
    store.put(run_key(unit="u", piece=bench.lr_piece("hierarchical", grid[-1])), {"lr": grid[-1], "score": 0.0})
    assert agreement.campaign_lr(store, "u", fitter, "hierarchical") == best
    assert agreement.campaign_lr(store, "u", fitter, "none") is None
    store.put("u", {"lr": {"hierarchical": 3e-3, "none": 1e-4}, "curve": {}})  # the unit wins once stored
    assert agreement.campaign_lr(store, "u", fitter, "none") == 1e-4


def test_bad_arguments_are_one_line_before_any_model_is_loaded(tmp_path, monkeypatch, checkout):
    from recllm.cli import build_parser

    monkeypatch.setattr("recllm.llm.load_causal_lm", lambda *a, **k: pytest.fail("a model was loaded"))

    def run(*argv):
        args = build_parser().parse_args(["bench", "trsr-agreement", "--out", str(tmp_path / "a.md"), "--allow-dirty",
                                          *argv])
        return args.func(args)

    with pytest.raises(UserInputError, match=r"no trsr run store at .*\(--trsr-runs\)"):
        run("--faster", "bfloat16")
    (tmp_path / "trsr.runs.jsonl").write_text("")
    with pytest.raises(UserInputError, match="--only"):
        run("--only", "no-such-data")
    assert not (tmp_path / "a.md").exists()
