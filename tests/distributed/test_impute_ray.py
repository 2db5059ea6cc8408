"""LLMImputer(engine="ray"): the fills of a fitted imputer on 2 Ray workers equal the local fills (float32), under the
local path's answer-cache keys: either engine reads what the other cached and sends nothing to the model again."""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("ray.data")

pytestmark = pytest.mark.distributed


def test_ray_fills_equal_local_fills_and_share_the_cache(tmp_path, monkeypatch):
    import ray
    import torch

    from recllm.distributed import ray_jobs
    from recllm.distributed.ray_jobs import RayOptions
    from recllm.impute.llm import LLMImputer
    from recllm.llm.backbone import tiny_causal_lm
    from recllm.llm.cache import DiskCache
    from recllm.llm.sft import SFTConfig

    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path / "cache"))
    torch.set_num_threads(1)  # like each worker: reductions over other thread counts may differ in the last bit
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"colour": rng.choice(["red", "green", "blue"], 24),
                          "age": rng.integers(20, 60, 24).astype(float)})
    masked = table.copy()
    masked.loc[[1, 5, 9, 14], "colour"] = np.nan
    masked.loc[[2, 7, 11, 19], "age"] = np.nan
    sft = SFTConfig(epochs=1, batch_size=8, learning_rate=1e-3, checkpoint_every=0, show_progress=False)
    imp = LLMImputer(model=tiny_causal_lm(0), sft=sft, max_train_examples=16, cache=False, dtype="float32",
                     validation_fraction=0.0, code_columns=()).fit(masked)
    local = imp.transform(masked)  # no answer cache

    def not_here(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("the driver ran the model, or an answer was not found in the cache")

    def no_pool(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("work went to the Ray pool although every answer was cached")

    # the driver may neither score nor generate (the workers' processes keep the real functions)
    monkeypatch.setattr(importlib.import_module("recllm.llm.scoring"), "score_continuations", not_here)
    monkeypatch.setattr(importlib.import_module("recllm.llm.generate"), "_generate_batch", not_here)
    try:
        imp.cache_ = DiskCache(tmp_path / "ray-first.sqlite")  # the fitted imputer's answer cache
        imp.set_params(engine="ray", ray_options=RayOptions(workers=2))
        on_ray = imp.transform(masked)
        assert imp.report_.how["llm-score"] == 4 and imp.report_.how.get("llm-generate", 0) + \
            imp.report_.how.get("fallback", 0) == 4
        imp.set_params(engine="local")
        local_after_ray = imp.transform(masked)  # every score and generation found in the cache: no model call
        assert imp.report_.how["cache_hits"] == 8
    finally:
        ray.shutdown()
    pd.testing.assert_frame_equal(on_ray, local)
    pd.testing.assert_frame_equal(local_after_ray, local)

    monkeypatch.undo()
    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path / "cache"))
    imp.cache_ = DiskCache(tmp_path / "local-first.sqlite")
    pd.testing.assert_frame_equal(imp.transform(masked), local)  # the local run fills this cache
    monkeypatch.setattr(ray_jobs, "_run", no_pool)
    monkeypatch.setattr(importlib.import_module("recllm.llm.scoring"), "score_continuations", not_here)
    monkeypatch.setattr(importlib.import_module("recllm.llm.generate"), "_generate_batch", not_here)
    imp.set_params(engine="ray")
    pd.testing.assert_frame_equal(imp.transform(masked), local)  # nothing left for Ray: the local answers are read
    assert imp.report_.how["cache_hits"] == 8  # the Ray route counts the answers it found as the local one does
