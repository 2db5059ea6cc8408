"""``sft_train(should_stop=...)``: a hook asks the trainer to stop; it stops cleanly after that step, checkpoints
as usual, records that it stopped early, and a rerun finds the run finished."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from recllm.llm.sft import LoRAConfig, SFTConfig, SFTProgress, load_adapter, load_sft_state, sft_train
from tests.llm.test_sft import EXAMPLES, FAST, base, fresh, lora_state  # noqa: F401 (fixtures)

CONFIG = SFTConfig(epochs=3, learning_rate=1e-2, batch_size=2, checkpoint_every=0, **FAST)  # 2 steps an epoch


def test_a_hook_that_asks_at_step_3_ends_training_there(fresh, tmp_path):
    seen: list[SFTProgress] = []

    def should_stop(progress: SFTProgress) -> bool:
        seen.append(progress)
        return progress.step == 3

    out = tmp_path / "run"
    tuned = sft_train(fresh(), EXAMPLES, CONFIG, LoRAConfig(), output_dir=out,
                      eval_fn=lambda lm, epoch: float(epoch), should_stop=should_stop)
    assert [p.step for p in seen] == [1, 2, 3] and all(p.total_steps == 6 for p in seen)
    assert [(p.epoch, p.epoch_end, p.eval_score) for p in seen] == [(0, False, None), (0, True, 0.0),
                                                                    (1, False, None)]
    state = load_sft_state(out)
    assert (state["step"], state["stopped_early"], state["done"]) == (3, True, True)
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]
    events = [json.loads(x) for x in (out / "training_log.jsonl").read_text().splitlines()]
    assert [e for e in events if e.get("event") == "stopped_early"] == [
        {"event": "stopped_early", "step": 3, "epoch": 1}]
    # the same weights as three steps of a run paused there (stop_after_steps)
    paused = sft_train(fresh(), EXAMPLES, CONFIG, LoRAConfig(), output_dir=tmp_path / "paused",
                       eval_fn=lambda lm, epoch: float(epoch), stop_after_steps=3)
    assert load_sft_state(tmp_path / "paused")["stopped_early"] is False
    # ... except that a run stopped for good returns its best epoch's adapter, like a finished run
    best, step_three = lora_state(tuned), lora_state(paused)
    assert any(not torch.equal(best[k], step_three[k]) for k in best)
    kept = lora_state(load_adapter(fresh(), out / "best"))
    assert kept.keys() == best.keys() and all(torch.equal(kept[k], best[k]) for k in best)
    # a rerun finds the run finished: it trains nothing more and returns the same adapter
    again = sft_train(fresh(), EXAMPLES, CONFIG, LoRAConfig(), output_dir=out, eval_fn=lambda lm, epoch: float(epoch),
                      should_stop=lambda p: pytest.fail("trained again"))
    assert all(torch.equal(v, best[k]) for k, v in lora_state(again).items())


def test_stopping_without_a_run_folder_returns_the_trained_adapter(fresh):
    steps = []
    tuned = sft_train(fresh(), EXAMPLES, CONFIG, LoRAConfig(),
                      should_stop=lambda p: steps.append(p.step) or p.step == 2)
    assert steps == [1, 2]
    paused = sft_train(fresh(), EXAMPLES, CONFIG, LoRAConfig(), stop_after_steps=2)
    a, b = lora_state(tuned), lora_state(paused)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_hook_asking_at_the_last_step_is_a_normal_finish(fresh, tmp_path):
    one_epoch = dataclasses.replace(CONFIG, epochs=1)
    sft_train(fresh(), EXAMPLES, one_epoch, LoRAConfig(), output_dir=tmp_path, should_stop=lambda p: p.step == 2)
    state = load_sft_state(tmp_path)
    assert (state["step"], state["stopped_early"], state["done"]) == (2, False, True)
