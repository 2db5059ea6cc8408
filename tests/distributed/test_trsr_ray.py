"""LLM-TRSR on Ray: summaries and P(Yes) scoring of a fine-tuned ranker on 2 workers give exactly the local scores
and ranks (float32), under the local path's cache keys; ``recllm trsr rank --engine ray`` prints the local metrics."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

# the worker scripts beside this file (tests/distributed/conftest.py puts the folder on sys.path)
import trsr_worker

pytest.importorskip("ray.data")

pytestmark = pytest.mark.distributed


@pytest.fixture(scope="module")
def ray_options():
    import ray
    import torch

    from recllm.distributed.ray_jobs import RayOptions, ensure_ray

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # like each worker: reductions over other thread counts may differ in the last bit
    options = RayOptions(workers=2)
    ensure_ray(options)
    yield options
    ray.shutdown()
    torch.set_num_threads(threads)


def _forbid_the_model_here(monkeypatch) -> None:  # noqa: ANN001
    """The driver may not score or summarise: only the Ray workers' processes keep the real functions."""
    def not_here(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("the driver ran the model: the ray engine was not used")

    monkeypatch.setattr(importlib.import_module("recllm.llm.scoring"), "next_token_logprobs", not_here)
    monkeypatch.setattr(importlib.import_module("recllm.trsr.summarize"), "generate", not_here)


def test_ranks_on_ray_equal_local_ranks_and_share_the_cache(ray_options, tmp_path, monkeypatch):
    from recllm.eval.sampled import SampledCandidates
    from recllm.llm.backbone import tiny_causal_lm
    from recllm.llm.cache import DiskCache
    from recllm.llm.sft import SFTConfig
    from recllm.trsr.pipeline import TRSR, TRSRConfig
    from recllm.trsr.ranker import RankerConfig, target_ranks_of
    from recllm.trsr.segment import SegmentConfig
    from recllm.trsr.summarize import SummarizerConfig

    split = trsr_worker.toy_split()
    config = TRSRConfig(
        summarizer=SummarizerConfig(max_new_tokens=3, segment=SegmentConfig(block_size=8, item_tokens=8)),  # 1 round
        ranker=RankerConfig(n_recent=2),
        sft=SFTConfig(epochs=1, batch_size=4, learning_rate=1e-3, show_progress=False, bf16=False),
        n_negatives=5, max_valid_rows=4)
    model = TRSR(tiny_causal_lm(0), tiny_causal_lm(1), config, cache=DiskCache(tmp_path / "fit.sqlite"),
                 show_progress=False).fit(split)
    assert model.ranker_.lm_.fingerprint.count("adapter=") == 1  # the fine-tuned ranker is what the workers get
    test = SampledCandidates.draw(split.dataset, split.eval_cases("test"), n_negatives=5, seed=0)
    histories, rows = test.histories, list(test.candidates)

    model.set_params(cache=DiskCache(tmp_path / "local.sqlite"))
    local = model.rank(histories, rows)
    model.set_params(cache=DiskCache(tmp_path / "ray.sqlite"), engine="ray", ray_options=ray_options)
    with monkeypatch.context() as patch:
        _forbid_the_model_here(patch)
        on_ray = model.rank(histories, rows)
        assert model.ranker_.scored_candidates_ == test.candidates.size
        # a local run over the Ray run's cache finds every summary and score there (same keys): no model call
        model.set_params(engine="local")
        again = model.rank(histories, rows)
    assert len(on_ray) == len(local) == len(test)
    for got, expected in zip(on_ray, local):
        np.testing.assert_array_equal(got, expected)  # exactly, float32
    assert np.ptp(np.concatenate(local)) > 0  # scores that tell candidates apart
    np.testing.assert_array_equal(target_ranks_of(on_ray, test.positive), target_ranks_of(local, test.positive))
    for got, expected in zip(again, local):
        np.testing.assert_array_equal(got, expected)


def test_rank_command_on_ray_prints_the_local_metrics(ray_options, tmp_path, monkeypatch, capsys):
    from recllm import cli

    worker = trsr_worker
    worker.serve_toy_split()
    monkeypatch.setattr("recllm.trsr.cli._split", lambda name, quiet, train=False: worker.toy_split())
    folder = worker.model_folder(tmp_path / "tiny")
    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path / "cache-local"))
    run = str(tmp_path / "run")
    assert cli.main(["trsr", "train", "--data", "ml-100k", "--model", folder, "--out", run, "--summary-tokens", "3",
                     "--item-tokens", "8", "--mode", "none", "--quiet"]) == 0
    capsys.readouterr()
    assert cli.main(["trsr", "rank", "--run", run, "--quiet"]) == 0
    local = capsys.readouterr().out
    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path / "cache-ray"))  # nothing cached: the pool does it all
    with monkeypatch.context() as patch:
        _forbid_the_model_here(patch)
        assert cli.main(["trsr", "rank", "--run", run, "--quiet", "--engine", "ray", "--ray-workers", "2"]) == 0
    on_ray = capsys.readouterr().out
    assert on_ray == local and local.count("recall@") == 3


def test_train_command_hands_the_engine_to_the_estimator(tmp_path, monkeypatch):
    """``recllm trsr train --engine ray`` builds TRSR(engine="ray", ray_options=...) (its Ray work is tested above)."""
    from recllm import cli
    from recllm.distributed.ray_jobs import RayOptions
    from recllm.trsr.pipeline import TRSR

    worker = trsr_worker
    monkeypatch.setattr("recllm.trsr.cli._split", lambda name, quiet, train=False: worker.toy_split())
    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path / "cache"))
    seen = {}

    def fit(self, split, valid=None):  # noqa: ANN001
        seen.update(engine=self.engine, ray_options=self.ray_options)
        raise RuntimeError("stop here")

    monkeypatch.setattr(TRSR, "fit", fit)
    code = cli.main(["trsr", "train", "--data", "ml-100k", "--model", worker.model_folder(tmp_path / "tiny"),
                     "--out", str(tmp_path / "run"), "--quiet", "--engine", "ray", "--ray-address", "auto",
                     "--ray-workers", "3"])
    assert code != 0 and seen == {"engine": "ray", "ray_options": RayOptions(address="auto", workers=3)}
