"""The peer imputers (miceforest, GReaT) behind recllm's imputer interface: contract, learning, seeds, errors.

GReaT runs on the tiny test model saved as a Hugging Face folder: it learns nothing in a few steps, so what it
writes is tested through its answer mapping and a stand-in for its ``impute``; the strict property tests
(tests/impute/test_properties.py) run both peers too.
"""

import importlib
import json

import numpy as np
import pandas as pd
import pytest

from recllm.errors import UserInputError
from recllm.impute.base import ImputationReport
from recllm.impute.peers import PEERS, GReaTImputer, MiceForestImputer, great_backbone_folder, peer_versions
from recllm.impute.registry import IMPUTERS, make_imputer
from tests.impute.conftest import make_table, mask_cells
from tests.impute.test_properties import assert_observed_identical, great_tiny  # noqa: F401 (a fixture)


SMALL_FORESTS = {"num_iterations": 8}  # LightGBM trees per model (miceforest's default: 48)


def great_imputer(folder, **kwargs) -> GReaTImputer:
    """A GReaT imputer that fits and fills a tiny table in seconds on the tiny test model's GReaT folder."""
    options = dict(model=str(folder), epochs=1, max_steps=2, batch_size=4, learning_rate=1e-3, max_retries=1)
    return GReaTImputer(**{**options, **kwargs})


def test_registered_under_their_names():
    assert IMPUTERS["miceforest"] is MiceForestImputer and IMPUTERS["great"] is GReaTImputer
    assert isinstance(make_imputer("great", epochs=2), GReaTImputer)  # constructing loads nothing


def test_versions_name_every_peer_package():
    versions = peer_versions()
    assert set(versions) == set(PEERS)
    for name, (_, dists) in PEERS.items():
        for dist in dists:
            assert versions[name].count(dist) == 1
            assert f"{dist} not installed" not in versions[name]  # the dev install has the extra
    assert versions["miceforest"].startswith("miceforest 6.")


@pytest.mark.parametrize("name,module", [("miceforest", "miceforest"), ("great", "be_great")])
def test_a_missing_extra_is_one_line_naming_the_fix(name, module, monkeypatch):
    real = importlib.import_module

    def refuse(target, *args, **kwargs):
        if target == module:
            raise ModuleNotFoundError(f"No module named {module!r}")
        return real(target, *args, **kwargs)

    monkeypatch.setattr(importlib, "import_module", refuse)
    frame, _ = mask_cells(make_table(12), ["age", "occupation"], 0.3)
    with pytest.raises(UserInputError) as info:
        make_imputer(name, epochs=1).fit(frame) if name == "great" else make_imputer(name).fit(frame)
    message = str(info.value)
    assert "\n" not in message and f"imputer {name!r}" in message and "pip install 'recllm[peers]'" in message


# ---------------------------------------------------------------------------------------------------- miceforest
def test_miceforest_fills_only_the_gaps_and_learns(table):
    big = make_table(100, seed=1)
    masked, mask = mask_cells(big, ["age", "occupation", "income", "gender"], 0.2, seed=1)
    given = masked.copy()
    imputer = MiceForestImputer(iterations=1, seed=0)
    out = imputer.fit(masked).transform(masked)
    pd.testing.assert_frame_equal(masked, given)
    assert not out[["age", "occupation", "income", "gender"]].isna().any().any()
    assert_observed_identical(masked, out, mask)
    assert imputer.report_.how == {"miceforest": int(mask.to_numpy().sum())}
    # occupation follows age: the forests beat the most frequent occupation on the masked cells
    rows = mask["occupation"]
    accuracy = (out.loc[rows, "occupation"] == big.loc[rows, "occupation"]).mean()
    mode_share = (big.loc[rows, "occupation"] == imputer.columns_["occupation"].mode).mean()
    assert accuracy >= mode_share + 0.2, (accuracy, mode_share)
    assert set(out.loc[rows, "occupation"]) <= set(big["occupation"])


def test_miceforest_is_seeded():
    masked, _ = mask_cells(make_table(40), ["age", "occupation", "income"], 0.3)
    first = MiceForestImputer(iterations=1, seed=3, lightgbm_params=SMALL_FORESTS).fit(masked)
    a, b = first.transform(masked), first.transform(masked)  # transform does not advance a random state
    c = MiceForestImputer(iterations=1, seed=3, lightgbm_params=SMALL_FORESTS).fit(masked).transform(masked)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, c)


def test_miceforest_fills_new_rows_and_columns_without_gaps_in_fit():
    """scikit-learn semantics: a column complete in fit may have gaps in transform; new category values are read
    as unknown, never written."""
    train = make_table(60)
    imputer = MiceForestImputer(iterations=1, lightgbm_params=SMALL_FORESTS).fit(mask_cells(train, ["income"], 0.3)[0])
    new = make_table(20, seed=5)
    new.loc[3, "occupation"] = "astronaut"
    new_masked, mask = mask_cells(new, ["age", "occupation"], 0.4, seed=2)
    out = imputer.transform(new_masked)
    assert_observed_identical(new_masked, out, mask)
    assert set(out.loc[mask["occupation"], "occupation"]) <= set(imputer.columns_["occupation"].categories)
    assert imputer.report_.how["miceforest"] == int(mask[["age", "occupation"]].to_numpy().sum())


def test_miceforest_uses_the_statistic_where_it_cannot_model():
    frame = pd.DataFrame({"x": [1.0, np.nan, 3.0, 4.0, np.nan, 2.0], "c": ["a", "a", np.nan, "a", "a", "a"],
                          "t": ["p", "q", "r", np.nan, "s", "u"]})
    imputer = MiceForestImputer(iterations=1, max_categories=3, min_observed=3).fit(frame)
    out = imputer.transform(frame)
    assert imputer.targets_ == ("x",)  # "c" has one category, "t" is text
    assert out.loc[2, "c"] == "a" and out.loc[3, "t"] == "p"
    assert imputer.report_.how == {"miceforest": 2, "mode": 2}
    assert imputer.report_.notes == ["miceforest filled column 'c' with its mode: a single observed category",
                                     "miceforest filled column 't' with its mode: a text column"]
    few = MiceForestImputer(iterations=1, max_categories=3, min_observed=5).fit(frame)
    few.transform(frame)
    assert "miceforest filled column 'x' with its mean: 4 observed cell(s), fewer than min_observed=5" in \
        few.report_.notes


def test_miceforest_checks_its_parameters():
    frame = make_table(12)
    for bad in ({"iterations": 0}, {"mean_match_candidates": -1}, {"n_jobs": 0}, {"iterations": 1.5}):
        with pytest.raises(ValueError, match=list(bad)[0]):
            MiceForestImputer(**bad).fit(frame)


# ---------------------------------------------------------------------------------------------------- GReaT
def test_great_backbone_folder_ends_rows_with_the_token_great_strips(tiny, great_tiny):
    tokenizer = json.loads((great_tiny / "tokenizer_config.json").read_text())
    assert tokenizer["eos_token"] == tokenizer["pad_token"] == "<|endoftext|>"
    generation = json.loads((great_tiny / "generation_config.json").read_text())
    assert generation["eos_token_id"] == tiny.tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert tiny.tokenizer.eos_token == "<|im_end|>"  # the caller's tokenizer is left alone
    assert great_backbone_folder(str(great_tiny)) == (great_tiny, False)  # a GReaT folder is used as it is


def test_great_trains_on_observed_cells_only(tiny):
    """A missing cell is left out of a training row's text (as in GReaT's prompts), never written as 'None'."""
    great_module = importlib.import_module("be_great.great")
    from recllm.impute.peers import _observed_cells_dataset

    dataset = _observed_cells_dataset(great_module).from_pandas(
        pd.DataFrame({"age": pd.array([24, None], dtype="Int64"), "job": ["nurse", None]}))
    dataset.set_tokenizer(tiny.tokenizer)
    texts = [tiny.tokenizer.decode(dataset._getitem(i)["input_ids"]) for i in range(2)]
    assert sorted(texts[0].split(", ")) == ["age is 24", "job is nurse"]
    assert texts[1] == ""


def test_great_fills_every_gap_keeps_observed_cells_and_is_seeded(great_tiny):
    masked, mask = mask_cells(make_table(6), ["age", "occupation", "income"], 0.3, seed=4)
    given = masked.copy()
    imputer = great_imputer(great_tiny, seed=1)
    out = imputer.fit(masked).transform(masked)
    pd.testing.assert_frame_equal(masked, given)
    assert not out.isna().any().any()
    assert_observed_identical(masked, out, mask)
    report = imputer.report_
    assert report.how["great"] + report.how["fallback"] == int(mask.to_numpy().sum())
    assert sum(report.fallbacks.values()) == report.how["fallback"]
    assert imputer.train_steps_ == 2
    assert set(out.loc[mask["occupation"], "occupation"]) <= set(masked["occupation"].dropna())
    pd.testing.assert_frame_equal(out, great_imputer(great_tiny, seed=1).fit(masked).transform(masked))


class _Answers:
    """A stand-in for a fitted GReaT: ``impute`` returns the given frame (GReaT's parsed answers)."""

    def __init__(self, answers: pd.DataFrame) -> None:
        self.answers, self.asked = answers, None

    def impute(self, table, **kwargs):
        self.asked = table
        return self.answers


def fitted_without_training(monkeypatch, frame: pd.DataFrame, answers: pd.DataFrame | None = None, **kwargs):
    """A GReaTImputer fitted on ``frame`` with GReaT's training replaced by :class:`_Answers`."""

    def fit(self, table):
        self.names_ = self._names()
        self.great_, self.max_length_ = _Answers(answers), 8

    monkeypatch.setattr(GReaTImputer, "_fit", fit)
    return GReaTImputer(**kwargs).fit(frame)


def test_great_writes_its_answers_into_the_right_cells(monkeypatch):
    """GReaT's answers (strings, as its parser returns them) become values of each column, in the right rows;
    unusable ones fall back to the statistic and are counted; numbers are clipped to the observed range."""
    frame = pd.DataFrame({
        "age": [30.0, np.nan, 50.0, np.nan, 40.0],
        "stars": pd.Series([1, 2, np.nan, 3, 2], dtype=object),
        "job": ["nurse", "cook", "cook", np.nan, "nurse"],
    })
    # rows 1, 2, 3 (the incomplete ones) are asked, in that order; GReaT gave up on row 3
    answers = pd.DataFrame({"age": [99.0, 50.0], "stars": ["2", "1"], "job": ["cook", "cook"]}, index=[0, 1])
    imputer = fitted_without_training(monkeypatch, frame, answers, max_categories=5)
    out = imputer.transform(frame)
    assert list(imputer.great_.asked["age"].isna()) == [True, False, True]
    assert out.loc[1, "age"] == 50.0  # 99 clipped to the observed maximum
    assert out.loc[2, "stars"] == 1 and type(out.loc[2, "stars"]) is int
    assert out.loc[3, "age"] == pytest.approx(40.0) and out.loc[3, "job"] == "nurse"  # mean, mode
    assert imputer.report_.how == {"great": 2, "fallback": 2, "clipped": 1}
    assert imputer.report_.fallbacks == {"age": 1, "job": 1}


def test_great_answer_mapping(monkeypatch):
    frame = pd.DataFrame({"x": [1.0, 2.0, np.nan], "flag": pd.Series([True, False, None], dtype=object),
                          "word": ["a", "b", None], "note": ["long text", "other text", None]})
    imputer = fitted_without_training(monkeypatch, frame, categorical=("flag", "word"), text=("note",))
    report = ImputationReport("great")
    assert imputer._answer("flag", "True", report) is True
    assert imputer._answer("word", " b ", report) == "b"
    assert imputer._answer("word", "c", report) is None  # not a category seen in fit
    assert imputer._answer("note", "new text", report) == "new text"  # text may be new
    assert imputer._answer("note", "placeholder", report) is None  # GReaT's parser found no answer
    assert imputer._answer("x", float("inf"), report) is None
    assert imputer._answer("x", 1.5, report) == 1.5 and report.how == {}


def test_great_column_names_its_parser_can_read(monkeypatch):
    frame = pd.DataFrame({"a, b": [1.0, np.nan], "x is y": ["p", "q"], "a b": [1.0, 2.0]})
    imputer = fitted_without_training(monkeypatch, frame)
    assert list(imputer.names_.values()) == ["a b", "x y", "a b (2)"]


def test_great_checks_its_parameters():
    frame = make_table(8)
    for bad in ({"epochs": 0}, {"max_steps": -1}, {"learning_rate": 2.0}, {"finetuning": "qlora"},
                {"train_rows": "all"}, {"temperature": 0}):
        with pytest.raises(ValueError, match=list(bad)[0]):
            GReaTImputer(**bad).fit(frame)  # checked before any model is loaded


def test_great_sampling_stops_once_its_parser_has_every_column(tiny):
    """A sample stops when every column has a finished 'name is value' segment (GReaT's parser keeps a column's
    first value, so later text changes nothing); a trailing segment may still grow, an empty value is no value."""
    from recllm.impute.peers import _row_complete, _row_stopper

    columns = ["age", "job title"]
    assert _row_complete("age is 30, job title is cook,", columns)
    assert _row_complete("job title is cook, age is 3, age is 4", columns)  # the later 'age' is ignored anyway
    assert not _row_complete("age is 30, job title is cook", columns)  # 'cook' may still become 'cookie'
    assert not _row_complete("age is 30, job title is, job", columns)
    assert not _row_complete("age is 30, title is cook,", columns)
    great_utils = importlib.import_module("be_great.great_utils")
    stop = _row_stopper(tiny.tokenizer, columns, great_utils._convert_tokens_to_text)
    for text, complete in (("age is 30, job title is cook,", True), ("age is 30, job title is cook", False)):
        ids = tiny.tokenizer([text], return_tensors="pt")["input_ids"]
        assert stop(ids, None).tolist() == [complete]


def test_great_with_a_checkpoint_root_resumes_the_same_fine_tune_and_fills_the_same(great_tiny, tmp_path):
    """A fine-tune stopped by the end of a session resumes from its newest checkpoint: the second fit of the same
    table and settings starts from the saved one, and the fills equal an uninterrupted run's; another seed gets a
    folder of its own."""
    masked, _ = mask_cells(make_table(6), ["age", "occupation", "income"], 0.3, seed=4)
    plain = great_imputer(great_tiny, seed=1).fit(masked).transform(masked)
    first = great_imputer(great_tiny, seed=1, checkpoint_root=tmp_path, checkpoint_steps=1)
    first.fit(masked)
    assert not first.resumed_ and sorted(p.name for p in first.checkpoint_dir_.iterdir()) == ["checkpoint-2"]
    second = great_imputer(great_tiny, seed=1, checkpoint_root=tmp_path, checkpoint_steps=1)
    out = second.fit(masked).transform(masked)
    assert second.resumed_ and second.checkpoint_dir_ == first.checkpoint_dir_ and second.train_steps_ == 2
    pd.testing.assert_frame_equal(out, plain)
    other = great_imputer(great_tiny, seed=2, checkpoint_root=tmp_path, checkpoint_steps=1).fit(masked)
    assert not other.resumed_ and other.checkpoint_dir_ != first.checkpoint_dir_
    with pytest.raises(ValueError, match="checkpoint_steps"):
        great_imputer(great_tiny, checkpoint_steps=0).fit(masked)


@pytest.mark.parametrize("steps, stop", [(4, 2), (9, 7)])  # 6 steps an epoch: stopped in the first, the second
def test_great_fine_tune_stopped_midway_resumes_to_the_uninterrupted_weights(great_tiny, tmp_path, monkeypatch,
                                                                             steps, stop):
    """The end of a session stops a fine-tune: the next fit resumes from the newest checkpoint and ends with exactly
    the weights of a fine-tune that was never stopped (optimizer, scheduler, random states, row order and each row's
    column order restored or drawn from the seed and epoch)."""
    import torch
    import transformers

    masked, _ = mask_cells(make_table(12), ["age", "occupation", "income"], 0.3, seed=4)
    options = dict(seed=1, max_steps=steps, batch_size=2, checkpoint_steps=1)
    plain = great_imputer(great_tiny, **{k: v for k, v in options.items() if k != "checkpoint_steps"}).fit(masked)
    original = transformers.Trainer.training_step

    def stop_midway(self, *args, **kwargs):
        if self.state.global_step == stop:
            raise KeyboardInterrupt  # the session ends
        return original(self, *args, **kwargs)

    monkeypatch.setattr(transformers.Trainer, "training_step", stop_midway)
    with pytest.raises(KeyboardInterrupt):
        great_imputer(great_tiny, checkpoint_root=tmp_path, **options).fit(masked)
    monkeypatch.setattr(transformers.Trainer, "training_step", original)
    (folder,) = tmp_path.iterdir()
    assert [p.name for p in folder.iterdir()] == [f"checkpoint-{stop}"]
    resumed = great_imputer(great_tiny, checkpoint_root=tmp_path, **options).fit(masked)
    assert resumed.resumed_ and resumed.train_steps_ == steps
    want, got = plain.great_.model.state_dict(), resumed.great_.model.state_dict()
    differ = [k for k in want if not torch.equal(want[k], got[k])]
    assert want.keys() == got.keys() and not differ, differ
