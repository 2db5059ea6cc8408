"""LLMImputer(engine="ray"): the fills of a fitted imputer on 2 Ray workers equal the local fills (float32)."""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("ray.data")

pytestmark = pytest.mark.distributed


def test_ray_fills_equal_local_fills(tmp_path, monkeypatch):
    import ray
    import torch

    from recllm.distributed.ray_jobs import RayOptions
    from recllm.impute.llm import LLMImputer
    from recllm.llm.backbone import tiny_causal_lm
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
    local = imp.transform(masked)
    def not_here(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("the driver ran the model: the ray engine was not used")

    # the workers' processes keep theirs (recllm.llm.generate the module, not the function recllm.llm exports)
    monkeypatch.setattr(importlib.import_module("recllm.llm.scoring"), "score_continuations", not_here)
    monkeypatch.setattr(importlib.import_module("recllm.llm.generate"), "generate", not_here)
    try:
        imp.set_params(engine="ray", ray_options=RayOptions(workers=2))
        on_ray = imp.transform(masked)
    finally:
        ray.shutdown()
    pd.testing.assert_frame_equal(on_ray, local)
    assert imp.report_.how["llm-score"] == 4 and imp.report_.how.get("llm-generate", 0) + \
        imp.report_.how.get("fallback", 0) == 4
