"""``recllm bench learn``: the content encoder as a benchmark dimension (run keys, embedding-time records)."""

import numpy as np
import pytest

from recllm.bench.learn import content as contents
from recllm.bench.learn import run as bench
from recllm.bench.learn.run import MINILM_LEARN, RunResult
from recllm.bench.runs import RunStore


def fake_measure(dataset, encoder, sample=0, seed=0, show_progress=False):
    timing = contents.ContentTiming(dataset.name, encoder, dataset.n_items, 8, 0.1, 1.0, sample, "float32: test", 1,
                                    "Test CPU", "2026-12-02 04:00 UTC")
    return (None if sample else np.zeros((dataset.n_items, 8), np.float32)), timing


@pytest.fixture()
def fake_bench(monkeypatch, dataset, content):
    """The benchmark on the tiny data with fits replaced by a recorder: (model, encoder, content) per fit."""
    fits = []

    def run_one(spec, split, seed, epochs, content, key=""):
        fits.append((spec.name, spec.encoder, None if content is None else float(content[0, 0])))
        per_user = {f"{m}@{k}": [0.5] * 4 for m in ("hr", "ndcg") for k in bench.KS}
        return RunResult(split.dataset.name, split.name, seed, spec.name, {k: 0.5 for k in per_user}, per_user,
                         1.0, 0.5, 2, 1, 1.0, 4, key)

    # each encoder its own vectors, so a fit shows which one it was given
    monkeypatch.setattr(bench, "content_for",
                        lambda ds, show, encoder="smollm2": (content + (encoder == "minilm"), 0.0))
    monkeypatch.setattr("recllm.bench.runs.PACKAGES", ("recllm.bench.learn",))
    monkeypatch.setattr(bench, "load_dataset", lambda name: dataset)
    monkeypatch.setattr(bench, "run_one", run_one)
    monkeypatch.setattr(contents, "measure_content", fake_measure)
    return fits


def test_the_encoder_is_part_of_the_run_key(fake_bench, dataset, content, tmp_path):
    out = tmp_path / "learn.md"
    kw = dict(quick=True, datasets=["cyclic"], splits=["loo"], epochs=1, out=str(out), show_progress=False)
    bench.run_benchmark(models=[MINILM_LEARN], **kw)
    assert fake_bench == [(MINILM_LEARN, "minilm", float(content[0, 0]) + 1)]
    # the SmolLM2 model with otherwise identical settings is fitted, not taken from the MiniLM run
    bench.run_benchmark(models=["LEARN (shared tower)"], **kw)
    assert fake_bench[1] == ("LEARN (shared tower)", "smollm2", float(content[0, 0]))
    bench.run_benchmark(models=[MINILM_LEARN, "LEARN (shared tower)"], **kw)
    assert len(fake_bench) == 2  # both stored now
    specs = {s.name: s for s in bench.model_specs(quick=True)}
    assert specs[MINILM_LEARN].settings["content"]["model"] == "minilm"
    assert {k: v for k, v in specs[MINILM_LEARN].settings.items() if k != "content"} == \
        {k: v for k, v in specs["LEARN (shared tower)"].settings.items() if k != "content"}


def test_quick_mode_runs_the_headline_models_with_both_encoders():
    specs = bench.model_specs(quick=True)
    quick = [s.name for s in specs if bench.planned(s, "ml-100k", True, quick=True)]
    assert quick == ["popularity", "content-kNN", "SASRec-CE", "HSTU", "LEARN (shared tower)", MINILM_LEARN]
    full = [s.name for s in specs if bench.planned(s, "ml-latest-small", False)]
    assert MINILM_LEARN in full and "LEARN-ID (ablation)" not in full


def test_embedding_time_is_measured_once_per_data_set_and_encoder(fake_bench, tmp_path, monkeypatch):
    out = tmp_path / "learn.md"
    kw = dict(quick=False, datasets=["cyclic"], splits=["loo"], seeds=[0], epochs=1, out=str(out),
              show_progress=False, models=["SASRec-CE", "LEARN (shared tower)", MINILM_LEARN])
    bench.run_benchmark(**kw)
    store = RunStore(tmp_path / "learn.content.jsonl", packages=contents.TIMING_PACKAGES)
    assert len(store) == 2  # one record per encoder, the whole catalogue timed (full mode)
    assert {row["encoder"]: row["sample"] for row in map(store.get, store.keys())} == {"smollm2": 0, "minilm": 0}
    text = out.read_text()
    times = text.split("### What embedding a catalogue costs", 1)[1]
    assert "| cyclic | SmolLM2-135M | 30 | 8 | 1.0 | 30.0 |  |  | 0.1 | whole catalogue | float32: test | 1 | Test CPU | " \
           "not recorded |" in times  # a record made before timings kept the load average and "| cyclic | all-MiniLM-L6-v2 | 30 |" in times
    # a rerun (all runs stored) measures nothing and still shows the table
    calls = []
    monkeypatch.setattr(contents, "measure_content", lambda *a, **k: calls.append(a) or fake_measure(*a, **k))
    bench.run_benchmark(**kw)
    assert calls == [] and "| cyclic | all-MiniLM-L6-v2 | 30 |" in out.read_text()


def test_measure_content_times_a_real_encoder_fresh_or_on_a_sample(tmp_path, monkeypatch, dataset, capsys):
    from recllm.llm.backbone import tiny_causal_lm

    folder = tmp_path / "tiny"
    lm = tiny_causal_lm(seed=0)  # before the cache moves: the real tokenizer comes from the user's cache
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path / "cache"))  # the embeddings go to an empty disk cache
    emb, timing = contents.measure_content(dataset, str(folder))
    assert "embedding" not in capsys.readouterr().err  # quiet unless asked (`recllm bench learn --quiet`)
    assert emb.shape == (dataset.n_items, 64) and timing.items == dataset.n_items and timing.sample == 0
    assert timing.encode_seconds > 0 and timing.precision.startswith("float32") and timing.threads >= 1
    before, after = (float(x) for x in timing.load_average.split(" / "))  # the CPU's load around the timing
    assert before >= 0 and after >= 0
    # its FLOP/s (counted on a sample in a pass of its own) against the matmul peak measured in the same run
    assert timing.gflops > 0 and timing.peak_gflops > 0
    assert timing.gflops < 1.5 * timing.peak_gflops  # a count or a time off by an order of magnitude would show
    none, sampled = contents.measure_content(dataset, str(folder), sample=8)
    assert none is None and sampled.sample == 8 and sampled.items == dataset.n_items
    # the fresh pass filled the disk cache: the benchmark's content_for reads the same vectors from it
    from recllm.learn import encoder

    encoder._MEMO.clear()
    monkeypatch.setattr("recllm.llm.embed._embed_causal", lambda *a, **k: pytest.fail("the vectors were not cached"))
    again, _ = encoder.content_for(dataset, encoder=str(folder))
    assert np.array_equal(again, emb)


def test_padded_tokens_follow_the_encoders_batches():
    from types import SimpleNamespace

    config = SimpleNamespace(batch_size=2, max_length=3)
    # longest first, two per batch, each batch padded to its longest: (4, 2) -> 2 x 4, (1) -> 1 x 1
    assert contents.padded_tokens(None, ["bb", "c", "aaaa"], config) == 9

    def tokenizer(texts, truncation, max_length):
        return {"input_ids": [list(range(min(len(t), max_length))) for t in texts]}

    assert contents.padded_tokens(tokenizer, ["bb", "c", "aaaa"], config) == 2 * 3 + 1
