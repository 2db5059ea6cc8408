"""LLMImputer on the tiny test llama: routes, fallbacks, caching, bad input, and the observed-cells contract."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings

from recllm.data.dataset import DataError
from recllm.impute.llm import LLMImputer
from recllm.llm.cache import DiskCache
from recllm.llm.sft import SFTConfig

from .conftest import make_table, mask_cells
from .test_properties import check_contract, masked_tables

SFT = SFTConfig(epochs=1, batch_size=8, learning_rate=1e-3, checkpoint_every=0, show_progress=False)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path / "cache"))


def imputer(lm, **kwargs):
    params = dict(model=lm, sft=SFT, max_train_examples=24, cache=False, dtype="float32", max_categories=10)
    params.update(kwargs)
    return LLMImputer(**params)


def test_fills_with_valid_values_and_reports_routes(tiny):
    table = make_table(n=30)
    masked, mask = mask_cells(table, ["age", "occupation", "income", "note"], 0.25)
    imp = imputer(tiny).fit(masked)
    out = imp.transform(masked)
    assert not out.isna().any().any()
    assert set(out.loc[mask["occupation"], "occupation"]) <= set(imp.columns_["occupation"].categories)
    assert out["age"].between(masked["age"].min(), masked["age"].max()).all()
    report = imp.report_
    assert report.n_filled == int(mask.to_numpy().sum())
    assert report.how["llm-score"] == mask["occupation"].sum()
    assert report.how["llm-generate"] + report.how.get("fallback", 0) == mask[["age", "income", "note"]].sum().sum()
    assert sum(report.fallbacks.values()) == report.how.get("fallback", 0)
    assert imp.fit_report_["examples"] == 24 and imp.fit_report_["adapter_dir"] is None


def test_callers_model_is_not_modified(tiny):
    before = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    imputer(tiny).fit(make_table(n=12))
    after = tiny.model.state_dict()
    assert type(tiny.model).__name__ == "LlamaForCausalLM" and set(before) == set(after)
    assert all(np.array_equal(before[k].numpy(), after[k].numpy()) for k in before)


def test_unparsable_numbers_fall_back_and_are_counted(tiny, monkeypatch):
    table = make_table(n=20)
    masked, mask = mask_cells(table, ["age", "note"], 0.3)
    imp = imputer(tiny).fit(masked)
    monkeypatch.setattr(imp, "_generate", lambda prompts, limit, allowed, report, shape=None: ["\n"] * len(prompts))
    out = imp.transform(masked)
    assert (out.loc[mask["age"], "age"] == imp.columns_["age"].mean).all()
    assert (out.loc[mask["note"], "note"] == imp.columns_["note"].mode).all()
    assert imp.report_.fallbacks == {"age": int(mask["age"].sum()), "note": int(mask["note"].sum())}


def test_numeric_generation_is_constrained_to_digits(tiny):
    from recllm.impute.llm import _numeric_token_ids

    allowed = _numeric_token_ids(tiny.tokenizer)
    texts = [tiny.tokenizer.decode([t]) for t in allowed]
    assert " " in texts and "7" in texts and "." in texts and " -" in texts
    assert all(set(t.strip()) <= set("0123456789.-") for t in texts)
    assert "a" not in texts and " is" not in texts


def test_numbers_keep_the_shape_of_the_observed_ones(tiny):
    """Untrained, the tiny model writes numbers of any length (clipped into range); shaped, it writes them with the
    observed number of digits and decimals, inside the observed range, so none needs clipping."""
    from recllm.impute.serialize import format_value
    from recllm.llm.number_shape import NumberShape

    table = make_table(n=30)
    masked, mask = mask_cells(table, ["age", "income"], 0.3)
    free = imputer(tiny, numeric_shape=False).fit(masked)
    free.transform(masked)
    shaped = imputer(tiny).fit(masked)
    out = shaped.transform(masked)
    assert free.report_.how.get("clipped", 0) > 0
    assert shaped.report_.how.get("clipped", 0) == 0
    for col in ("age", "income"):
        shape = NumberShape.of(format_value(v) for v in masked[col].dropna())
        assert shaped.number_shapes_[col] == shape
        assert all(shape.accepts(format_value(v)) for v in out.loc[mask[col], col]), col


def test_expected_value_decoding_is_the_probability_weighted_mean_of_the_grid(tiny, monkeypatch):
    from recllm.llm.scoring import score_continuations
    from recllm.impute.serialize import cell_answer

    table = make_table(n=30)
    masked, mask = mask_cells(table, ["age", "income"], 0.25)
    imp = imputer(tiny, numeric_decoding="expected", numeric_candidates=5).fit(masked)
    out = imp.transform(masked)
    assert imp.report_.how["llm-expected"] == mask[["age", "income"]].sum().sum()
    assert "llm-generate" not in imp.report_.how and "fallback" not in imp.report_.how
    grid = imp.numeric_grid_["income"]
    assert len(grid) == 5 and set(grid) <= set(masked["income"].dropna())
    filled = out.loc[mask["income"], "income"]
    assert filled.between(masked["income"].min(), masked["income"].max()).all()
    pd.testing.assert_frame_equal(out[~mask], masked[~mask])  # observed cells untouched

    # the candidates are the grid plus the model's own greedy answer (none when it cannot be parsed)
    row = int(np.flatnonzero(mask["income"].to_numpy())[0])
    prompt = imp._prompts(masked, "income", np.array([row]))[0]
    assert 12.3 not in grid and masked["income"].min() < 12.3 < masked["income"].max()
    for answer, options in ((" 12.3", np.sort(np.append(grid, 12.3))), ("\n", grid)):
        monkeypatch.setattr(imp, "_generate", lambda prompts, *a, text=answer: [text] * len(prompts))
        out = imp.transform(masked)
        scores = score_continuations(imp.lm_, prompt, [cell_answer(v) + imp.eos_text_ for v in options])
        weights = np.exp(scores - scores.max())
        assert out["income"].iloc[row] == pytest.approx(float(weights @ options / weights.sum()), rel=1e-9)

    # "expected-grid" never generates: the grid alone, whatever the model would write
    grid_only = imputer(tiny, numeric_decoding="expected-grid", numeric_candidates=5).fit(masked)
    monkeypatch.setattr(grid_only, "_generate", lambda *a: pytest.fail("expected-grid generated"))
    assert grid_only.transform(masked)["income"].iloc[row] == pytest.approx(out["income"].iloc[row], rel=1e-9)


def test_numeric_candidates_are_observed_quantiles():
    from recllm.impute.llm import numeric_candidates

    values = pd.Series([5.0, 1.0, None, 3.0, 3.0])
    assert numeric_candidates(values, 8).tolist() == [1.0, 3.0, 5.0]  # few distinct values: all of them
    many = pd.Series(np.arange(1000, dtype=float))
    grid = numeric_candidates(many, 4)
    assert grid.tolist() == [124.0, 374.0, 624.0, 874.0]
    with pytest.raises(ValueError, match="numeric_decoding"):
        imputer(None, numeric_decoding="mean")._check_params()
    with pytest.raises(ValueError, match="numeric_candidates"):
        imputer(None, numeric_candidates=1)._check_params()


def test_training_examples(tiny):
    frame = pd.DataFrame({"age": [30.0, np.nan, 51.0], "job": ["cook", "pilot", None], "city": ["Oslo", "Rome", "Lima"]})
    examples = imputer(tiny, max_train_examples=None).training_examples(frame)
    assert ("job is cook, city is Oslo, age is", " 30") in examples
    assert ("age is 51, city is Lima, job is", " cook") not in examples  # the job of row 3 is missing
    assert len(examples) == 7
    complete = imputer(tiny, train_on="complete_rows", max_train_examples=None).training_examples(frame)
    assert len(complete) == 3 and all("Oslo" in p or a == " Oslo" for p, a in complete)
    targeted = imputer(tiny, target_columns=("job",), max_train_examples=None).training_examples(frame)
    assert [a for _, a in targeted] == [" cook", " pilot"]
    shuffled = imputer(tiny, column_order="random", max_train_examples=None, seed=1).training_examples(frame)
    assert shuffled == imputer(tiny, column_order="random", max_train_examples=None, seed=1).training_examples(frame)
    assert sorted(a for _, a in shuffled) == sorted(a for _, a in examples)
    reordered = imputer(tiny, column_order=["city", "job", "age"], max_train_examples=None).training_examples(frame)
    assert reordered[0] == ("city is Oslo, job is cook, age is", " 30")


def test_bad_input(tiny):
    no_complete = pd.DataFrame({"a": [1.0, np.nan, 3.0], "b": [None, "x", None]})
    with pytest.raises(DataError, match="no row of the table is complete"):
        imputer(tiny, train_on="complete_rows").fit(no_complete)
    with pytest.raises(DataError, match="'b' has no observed value"):
        imputer(tiny).fit(pd.DataFrame({"a": [1.0, 2.0], "b": [None, None]}))
    with pytest.raises(DataError, match="empty"):
        imputer(tiny).fit(pd.DataFrame({"a": pd.Series([], dtype=float)}))
    junk = pd.DataFrame({"n": ["1", "2", "3", "x", "5", "6", "7", "8", "9", "10"]})
    with pytest.raises(DataError, match=r"'n'.*row 3.*'x'"):
        imputer(tiny).fit(junk)
    with pytest.raises(ValueError, match="train_on"):
        imputer(tiny, train_on="everything").fit(no_complete)
    with pytest.raises(ValueError, match="column_order"):
        imputer(tiny, column_order=["a"]).fit(no_complete)
    with pytest.raises(DataError, match="target_columns"):
        imputer(tiny, target_columns=("zzz",)).fit(no_complete)
    with pytest.raises(TypeError, match="model must be"):
        LLMImputer(model=42, cache=False).fit(no_complete)


def test_category_unseen_in_training_is_context_only(tiny):
    table = make_table(n=20)
    masked, mask = mask_cells(table, ["occupation"], 0.3)
    imp = imputer(tiny).fit(masked)
    new = masked.copy()
    new.loc[~mask["occupation"], "gender"] = "X"  # a gender never seen in fit, only as context
    out = imp.transform(new)
    assert (out.loc[~mask["occupation"], "gender"] == "X").all()
    assert set(out.loc[mask["occupation"], "occupation"]) <= set(imp.columns_["occupation"].categories)


def test_cache_reuses_adapter_and_answers(tiny, tmp_path):
    table = make_table(n=20)
    masked, _ = mask_cells(table, ["age", "occupation"], 0.3)
    cache = DiskCache(tmp_path / "answers.sqlite")
    first = imputer(tiny, cache=cache).fit(masked)
    out1 = first.transform(masked)
    assert first.fit_report_["adapter_reused"] is False
    second = imputer(tiny, cache=cache).fit(masked)
    out2 = second.transform(masked)
    assert second.fit_report_["adapter_reused"] is True
    how = second.report_.how  # every answer, scored or generated, came from the cache and is counted so
    assert how["llm-generate"] > 0 and how["cache_hits"] == how["llm-score"] + how["llm-generate"] + how.get("fallback", 0)
    pd.testing.assert_frame_equal(out1, out2)


def test_an_adapter_trained_by_other_imputer_code_is_not_reused(tiny, tmp_path, monkeypatch):
    """The adapter and answer cache keys hold recllm.impute's source hash (through the fingerprint, recllm.llm's)."""
    import recllm.utils

    table = make_table(n=20)
    masked, _ = mask_cells(table, ["occupation"], 0.3)
    cache = DiskCache(tmp_path / "answers.sqlite")
    first = imputer(tiny, cache=cache, max_train_examples=8).fit(masked)
    first.transform(masked)  # its answers cached
    real = recllm.utils.package_source_sha256
    monkeypatch.setattr(recllm.utils, "package_source_sha256",
                        lambda package, **kw: "0" * 64 if package == "recllm.impute" else real(package, **kw))
    edited = imputer(tiny, cache=cache, max_train_examples=8).fit(masked)
    assert edited.fit_report_["adapter_reused"] is False
    assert edited.fit_report_["adapter_dir"] != first.fit_report_["adapter_dir"]
    first.transform(masked)  # the same adapter, other imputer code: its cached answers are not reused either
    assert first.report_.how.get("cache_hits", 0) == 0
    monkeypatch.setattr(recllm.utils, "package_source_sha256", real)
    again = imputer(tiny, cache=cache, max_train_examples=8).fit(masked)
    assert again.fit_report_["adapter_reused"] is True
    first.transform(masked)
    assert first.report_.how["cache_hits"] == first.report_.how["llm-score"] > 0
    assert again.fit_report_["adapter_dir"] == first.fit_report_["adapter_dir"]


def test_only_rank_0_writes_the_fit_record(tiny, tmp_path, monkeypatch):
    """Under torchrun every rank fine-tunes the same adapter; only rank 0 writes its fit record (the others would
    write the same file at the same time). RANK without WORLD_SIZE: no process group, just the rank test."""
    from pathlib import Path

    from recllm.impute.llm import FIT_RECORD

    table = make_table(n=12)
    masked, _ = mask_cells(table, ["occupation"], 0.3)
    monkeypatch.setenv("RANK", "1")
    other = imputer(tiny, cache=DiskCache(tmp_path / "answers.sqlite"), max_train_examples=8).fit(masked)
    folder = other.fit_report_["adapter_dir"]
    assert folder is not None and not (Path(folder) / FIT_RECORD).exists()
    monkeypatch.setenv("RANK", "0")
    main = imputer(tiny, cache=DiskCache(tmp_path / "answers.sqlite"), max_train_examples=8).fit(masked)
    assert main.fit_report_["adapter_dir"] == folder and (Path(folder) / FIT_RECORD).exists()


def test_fine_tuning_learns_a_skewed_column(tiny):
    rng = np.random.default_rng(0)
    n = 60
    frame = pd.DataFrame({"x": rng.integers(0, 9, n).astype(float), "answer": np.where(rng.random(n) < 0.9, "yes", "no")})
    masked, mask = mask_cells(frame, ["answer"], 0.3, seed=1)
    sft = SFTConfig(epochs=3, batch_size=8, learning_rate=5e-3, checkpoint_every=0, show_progress=False)
    out = imputer(tiny, sft=sft, max_train_examples=None, target_columns=("answer",)).fit(masked).transform(masked)
    assert (out.loc[mask["answer"], "answer"] == "yes").mean() >= 0.8


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=masked_tables())
def test_observed_cells_never_change(tiny, data):
    masked, mask = data
    check_contract(imputer(tiny, max_train_examples=4, numeric_max_new_tokens=3, text_max_new_tokens=3), masked, mask)
