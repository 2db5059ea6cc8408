"""LLMImputer trains on every observed cell and chooses its epoch on held-out observed cells (tiny test llama)."""

import copy
import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from recllm.impute.llm import DEFAULT_SFT, LLMImputer
from recllm.impute.serialize import format_value
from recllm.llm.sft import LoRAConfig, SFTConfig

from .conftest import make_table, mask_cells

SFT = SFTConfig(epochs=3, batch_size=8, learning_rate=1e-2, checkpoint_every=0, show_progress=False, bf16=False)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path / "cache"))


def imputer(lm, **kwargs):
    params = dict(model=lm, sft=SFT, cache=False, dtype="float32", max_categories=10)
    params.update(kwargs)
    return LLMImputer(**params)


class _Stop(Exception):
    pass


def trained_on(imp, frame, monkeypatch) -> tuple[list[str], int]:
    """The training texts ``imp.fit(frame)`` would train on (every epoch), without training; and the epochs."""
    seen = {}

    def capture(lm, examples, config, *args):
        seen["texts"] = []
        for epoch in range(config.epochs):
            batch = examples(epoch) if callable(examples) else examples
            seen["texts"] += ["".join(t for t, _ in ex) if isinstance(ex, list) else "".join(ex) for ex in batch]
        seen["epochs"] = config.epochs
        raise _Stop

    monkeypatch.setattr(imp, "_fine_tune", capture)
    with pytest.raises(_Stop):
        imp.fit(frame)
    return seen["texts"], seen["epochs"]


def test_defaults_live_in_one_config_and_are_checked():
    imp = LLMImputer(seed=4)
    assert imp.training == "whole-row" and imp.max_train_examples is None and imp.max_epochs is None
    assert imp._sft_config() == dataclasses.replace(DEFAULT_SFT, seed=4)
    assert DEFAULT_SFT.epochs == 3
    assert LLMImputer(max_epochs=5)._sft_config().epochs == 5
    for bad, match in (({"validation_fraction": 1.0}, "validation_fraction"), ({"max_epochs": 0}, "max_epochs"),
                       ({"max_validation_cells": 0}, "max_validation_cells")):
        with pytest.raises(ValueError, match=match):
            LLMImputer(**bad)._check_params()


def test_default_whole_row_trains_on_every_observed_cell(tiny, monkeypatch):
    table = make_table(n=40)
    masked, _ = mask_cells(table, ["age", "occupation"], 0.25)
    imp = imputer(tiny, sft=None, validation_fraction=0)  # the defaults: whole-row, no cap, 3 epochs
    texts, epochs = trained_on(imp, masked, monkeypatch)
    assert epochs == 3 and len(texts) == 3 * len(masked)  # every row, every epoch
    observed = int(masked.notna().to_numpy().sum())
    assert sum(t.count(":") for t in texts[:len(masked)]) == observed  # one "column: value" line per observed cell
    assert imp.whole_row_examples(masked)(0) and observed > 150

    held = imputer(tiny, sft=None).holdout_cells(masked)
    n_held = int(held.to_numpy().sum())
    candidates = int(masked[["age", "occupation"]].notna().to_numpy().sum())  # the columns with gaps
    assert n_held == round(0.05 * candidates) > 0 and held[["age", "occupation"]].to_numpy().sum() == n_held
    texts, _ = trained_on(imputer(tiny, sft=None), masked, monkeypatch)
    assert sum(t.count(":") for t in texts[:len(masked)]) == observed - n_held


def test_holdout_is_seeded_capped_and_drawn_from_the_columns_to_fill(tiny):
    table = make_table(n=60)
    masked, _ = mask_cells(table, ["income"], 0.2)
    held = imputer(tiny, validation_fraction=0.5, seed=1).holdout_cells(masked)
    assert held.columns.tolist() == masked.columns.tolist() and held["income"].sum() == held.to_numpy().sum()
    assert not (held & masked.isna()).to_numpy().any()  # only observed cells
    assert held.equals(imputer(tiny, validation_fraction=0.5, seed=1).holdout_cells(masked))
    assert not held.equals(imputer(tiny, validation_fraction=0.5, seed=2).holdout_cells(masked))
    assert imputer(tiny, validation_fraction=0.5, max_validation_cells=7).holdout_cells(masked).to_numpy().sum() == 7
    assert imputer(tiny, validation_fraction=0).holdout_cells(masked).to_numpy().sum() == 0
    complete = imputer(tiny, validation_fraction=0.1).holdout_cells(table)  # no gaps: any learned column
    assert complete.to_numpy().sum() == round(0.1 * table.size) and complete.sum().gt(0).sum() > 1


@pytest.mark.parametrize("training", ["whole-row", "per-cell"])
def test_held_out_cells_never_reach_the_training_text(tiny, monkeypatch, training):
    truth = make_table(n=16).astype({"occupation": object, "note": object})
    masked, _ = mask_cells(truth, ["age", "occupation", "note"], 0.2)
    imp = imputer(tiny, training=training, validation_fraction=0.3)
    held = imp.holdout_cells(masked)
    sentinels = []
    for k, (row, col) in enumerate(zip(*np.nonzero(held.to_numpy()))):
        column = masked.columns[col]
        value = 9000 + 7 * k + 0.25 if column == "age" else f"zzsentinel{k}"
        masked.iloc[row, col] = value
        sentinels.append(format_value(value))
    assert imp.holdout_cells(masked).equals(held) and len(sentinels) >= 3
    texts, epochs = trained_on(imp, masked, monkeypatch)
    assert epochs == 3 and texts
    assert not [s for s in sentinels if any(s in t for t in texts)]
    # the check can fail: without the hold-out the same cells are trained on
    texts, _ = trained_on(imputer(tiny, training=training, validation_fraction=0), masked, monkeypatch)
    assert all(any(s in t for t in texts) for s in sentinels)


def _lora_weights(lm):
    from peft import get_peft_model_state_dict

    return {k: v.detach().clone() for k, v in get_peft_model_state_dict(lm.model).items()}


@pytest.mark.parametrize("scores, chosen, trained, on_disk", [([0.2, 0.5, 0.4], 2, 3, False),
                                                               ([0.5, 0.3, 0.9], 1, 2, True),
                                                               ([0.1, 0.2, 0.3], 3, 3, False),
                                                               ([0.4, 0.4, 0.1], 1, 3, True)])
def test_the_kept_adapter_is_the_best_validation_epoch(tiny, scores, chosen, trained, on_disk, tmp_path):
    """Fake validation scores: the best epoch's adapter comes back (kept in memory, or in a checkpointed run folder);
    training stops at the first epoch worse than the best (ties go on and keep the earlier epoch)."""
    imp = imputer(tiny, validation_fraction=0)
    table = make_table(n=8)
    examples = imp.whole_row_examples(table, end=tiny.tokenizer.eos_token)
    snapshots = []

    def validate(lm):
        snapshots.append(_lora_weights(lm))
        return scores[len(snapshots) - 1], {}

    output_dir = tmp_path / "run" if on_disk else None
    lm = dataclasses.replace(tiny, model=copy.deepcopy(tiny.model))
    tuned, record = imp._fine_tune(lm, examples, SFT, LoRAConfig(), output_dir, validate)
    assert (record["chosen_epoch"], record["epochs_trained"]) == (chosen, trained) == (chosen, len(snapshots))
    assert record["stopped_early"] == (trained < 3)
    assert [p["score"] for p in record["curve"]] == scores[:trained]
    kept = _lora_weights(tuned)
    best = snapshots[chosen - 1]
    assert kept.keys() == best.keys() and all(torch.equal(kept[k], best[k]) for k in kept)
    assert any(not torch.equal(kept[k], snapshots[0][k]) for k in kept) == (chosen != 1)


def test_fit_records_the_choice_and_reuses_it_from_the_cache(tiny, monkeypatch, tmp_path):
    from recllm.llm.cache import DiskCache

    table = make_table(n=20)
    masked, mask = mask_cells(table, ["occupation", "age"], 0.25)
    fake = iter([0.5, 0.25])
    monkeypatch.setattr(LLMImputer, "_validation_score",
                        lambda self, lm, *a: (next(fake), {"occupation": {"cells": 1, "score": 0.0}}))
    cache = DiskCache(tmp_path / "answers.sqlite")
    imp = imputer(tiny, validation_fraction=0.2, cache=cache).fit(masked)
    report = imp.fit_report_
    assert (report["chosen_epoch"], report["epochs_trained"], report["stopped_early"]) == (1, 2, True)
    held = imp.holdout_cells(masked)
    assert report["validation_curve"] == [0.5, 0.25] and report["validation_cells"] == held.to_numpy().sum() > 0
    assert imp.validation_["cells"] == {c: int(n) for c, n in imp.holdout_cells(masked).sum().items() if n}
    out = imp.transform(masked)
    assert not out.isna().any().any()
    assert any("epoch 1 of 2 trained (at most 3) chosen on" in note for note in imp.report_.notes)
    again = imputer(tiny, validation_fraction=0.2, cache=cache).fit(masked)  # no more fake scores: not retrained
    assert again.fit_report_["adapter_reused"] and again.fit_report_["chosen_epoch"] == 1
    pd.testing.assert_frame_equal(again.transform(masked), out)


def test_validation_fills_the_held_out_cells_and_scores_them(tiny):
    table = make_table(n=16)
    masked, _ = mask_cells(table, ["age", "occupation"], 0.2)
    imp = imputer(tiny, sft=dataclasses.replace(SFT, epochs=2), validation_fraction=0.25).fit(masked)
    held = imp.holdout_cells(masked)
    curve = imp.validation_["curve"]
    assert 1 <= len(curve) <= 2 and imp.fit_report_["chosen_epoch"] in (1, 2)
    for point in curve:
        assert set(point["columns"]) == {"age", "occupation"}
        assert point["columns"]["occupation"]["cells"] == held["occupation"].sum()
        assert 0 <= point["columns"]["occupation"]["accuracy"] <= 1 and point["columns"]["age"]["nmae"] >= 0
        assert point["score"] == pytest.approx(np.mean([c["score"] for c in point["columns"].values()]))


def test_the_epoch_is_chosen_with_one_decoding_whatever_the_numeric_decoding(tiny, monkeypatch):
    """Validation fills the held-out numbers with VALIDATION_DECODING, so the epoch choice (and the adapter) do not
    depend on numeric_decoding; transform still fills with the imputer's own decoding."""
    from recllm.impute.llm import VALIDATION_DECODING

    seen = []
    real = LLMImputer._impute

    def spy(self, frame, mask, report):
        seen.append((report.method, self.numeric_decoding))
        return real(self, frame, mask, report)

    monkeypatch.setattr(LLMImputer, "_impute", spy)
    masked, _ = mask_cells(make_table(n=16), ["age", "occupation"], 0.2)
    imp = imputer(tiny, sft=dataclasses.replace(SFT, epochs=2), validation_fraction=0.25,
                  numeric_decoding="expected-grid", numeric_candidates=4).fit(masked)
    assert {d for m, d in seen if m == "validation"} == {VALIDATION_DECODING} == {"generate"}
    assert imp.numeric_decoding == "expected-grid"
    imp.transform(masked)
    assert seen[-1][1] == "expected-grid" and imp.report_.how.get("llm-expected", 0) > 0


def test_the_numeric_decodings_share_one_cached_adapter_and_its_original_fit_record(tiny, tmp_path):
    """One fine-tune serves every numeric decoding: a second decoding loads the first one's adapter, and reports the
    fine-tune's own seconds, CPU and threads from the fit record (not its load time)."""
    import torch

    from recllm.hardware import cpu_model
    from recllm.llm.cache import DiskCache

    masked, _ = mask_cells(make_table(n=16), ["age", "occupation"], 0.25)
    cache = DiskCache(tmp_path / "answers.sqlite")
    first = imputer(tiny, sft=dataclasses.replace(SFT, epochs=2), validation_fraction=0.25, cache=cache).fit(masked)
    report = first.fit_report_
    assert not report["adapter_reused"] and 0 < report["fit_seconds"] <= report["seconds"]
    assert (report["fit_cpu"], report["fit_threads"]) == (cpu_model(), torch.get_num_threads())
    for decoding in ("expected", "expected-grid"):
        other = imputer(tiny, sft=dataclasses.replace(SFT, epochs=2), validation_fraction=0.25, cache=cache,
                        numeric_decoding=decoding).fit(masked)
        assert other.fit_report_["adapter_reused"] and other.fingerprint_ == first.fingerprint_
        assert other.fit_report_["fit_seconds"] == report["fit_seconds"]
        assert other.fit_report_["chosen_epoch"] == report["chosen_epoch"]
