"""Code columns: a numeric column of a few whole-number codes gets only observed codes written into its gaps, by every
registered imputer; detected automatically, overridable, recorded in ``report_``."""

import numpy as np
import pandas as pd
import pytest

from recllm.data.dataset import DataError
from recllm.impute.base import MAX_CODES, CodeColumn, detect_code_columns
from recllm.impute.registry import IMPUTERS
from recllm.llm.sft import SFTConfig

TINY_SFT = SFTConfig(epochs=1, batch_size=8, learning_rate=1e-3, checkpoint_every=0, show_progress=False, bf16=False)


def coded_table(n: int = 40, seed: int = 0) -> pd.DataFrame:
    """``rating``: codes 1, 2, 4, 5 (never 3); ``band``: codes 10..60 step 10 (Int64, with gaps); ``x`` drives both."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, n)
    rating = np.select([x < -0.7, x < 0, x < 0.7], [1.0, 2.0, 4.0], 5.0)
    band = (np.clip(np.round(x * 2 + 3), 1, 6) * 10).astype(int)
    frame = pd.DataFrame({"x": x.round(3), "rating": rating, "band": pd.array(band, dtype="Int64"),
                          "job": rng.choice(["a", "b"], n)})
    gaps = rng.random((n, 2)) < 0.25
    frame.loc[gaps[:, 0], "rating"] = np.nan
    frame.loc[gaps[:, 1], "band"] = pd.NA
    return frame


def make(name: str, request, **kwargs):
    """A registered imputer configured to fit in seconds (the LLM ones on the session's tiny test model)."""
    if name == "llm":
        return IMPUTERS["llm"](model=request.getfixturevalue("tiny"), sft=TINY_SFT, cache=False, dtype="float32",
                               max_train_examples=8, numeric_max_new_tokens=3, **kwargs)
    if name == "great":  # (the peer in recllm.impute.peers; as tests/impute/test_peers.py makes it fast)
        return IMPUTERS["great"](model=request.getfixturevalue("tiny"), epochs=1, max_steps=2, batch_size=4,
                                 learning_rate=1e-3, max_retries=1, **kwargs)
    return IMPUTERS[name](**({"max_iter": 2} if name == "mice" else {}), **kwargs)


def test_detection_rule():
    rng = np.random.default_rng(1)
    n = 60
    frame = pd.DataFrame({
        "stars": rng.integers(1, 6, n).astype(float),  # 5 whole numbers: codes
        "many": rng.permutation(np.arange(n) % (MAX_CODES + 1)).astype(float),  # 21 distinct: not codes
        "measure": rng.normal(0, 1, n),  # not whole numbers
        "few_rows": np.r_[np.arange(10), [np.nan] * (n - 10)],  # 10 distinct in 10 cells: measurements
        "flag": rng.integers(0, 2, n).astype(float),  # two values: categorical, not numeric
        "day": pd.to_datetime("2020-01-01") + pd.to_timedelta(rng.integers(0, 3, n), unit="D"),  # dates: never
        "word": rng.choice(["p", "q"], n),
    })
    frame.loc[[0, 5], "stars"] = np.nan
    imp = IMPUTERS["mean"]().fit(frame)
    assert set(imp.code_columns_) == {"stars"}
    code = imp.code_columns_["stars"]
    assert code.codes == (1.0, 2.0, 3.0, 4.0, 5.0)
    assert code.reason.startswith("auto: 5 distinct whole numbers (1..5) in 58 observed cells")
    exactly = frame.assign(many=frame["many"] % MAX_CODES)  # 20 distinct: codes
    assert set(IMPUTERS["mean"]().fit(exactly).code_columns_) == {"stars", "many"}


def test_override_none_and_bad_names():
    frame = coded_table()
    assert set(IMPUTERS["mean"]().fit(frame).code_columns_) == {"rating", "band"}
    assert IMPUTERS["mean"](code_columns=()).fit(frame).code_columns_ == {}
    declared = IMPUTERS["mean"](code_columns=["x"]).fit(frame).code_columns_
    assert set(declared) == {"x"} and declared["x"].codes == tuple(np.unique(frame["x"]))
    assert declared["x"].reason.startswith("declared in code_columns")
    with pytest.raises(DataError, match=r"^code_columns names 'zzz', which is not a column of the table; it has") as err:
        IMPUTERS["mean"](code_columns=["zzz"]).fit(frame)
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match="'job', a categorical column"):
        IMPUTERS["knn"](code_columns=["job"]).fit(frame)
    with pytest.raises(ValueError, match="code_columns must be 'auto', a list"):
        IMPUTERS["mean"](code_columns="rating").fit(frame)


def test_snap_goes_to_the_nearest_code():
    code = CodeColumn((1.0, 2.0, 4.0, 5.0), "test")
    assert code.snap([0.2, 1.4, 2.9, 3.0, 3.1, 4.6, 9.0]) == [1.0, 1.0, 2.0, 2.0, 4.0, 5.0, 5.0]


@pytest.mark.parametrize("name", sorted(IMPUTERS))
def test_every_imputer_writes_only_observed_codes(name, request):
    frame = coded_table()
    given = frame.copy()
    imputer = make(name, request)
    out = imputer.fit(frame).transform(frame)
    pd.testing.assert_frame_equal(frame, given)
    report = imputer.report_
    assert set(report.code_columns) == {"rating", "band"} and report.code_columns["rating"].startswith("auto:")
    assert report.as_dict()["code_columns"] == report.code_columns
    if not imputer.fills_cells:
        return
    for col in ("rating", "band"):
        filled = out.loc[given[col].isna(), col]
        assert len(filled) and set(filled.astype(float)) <= set(given[col].dropna().astype(float)), (col, filled)
    assert out["band"].dtype == given["band"].dtype  # the column's own representation still
    observed = given.notna()
    for col in given.columns:
        assert out.loc[observed[col], col].equals(given.loc[observed[col], col])


def test_estimates_between_codes_are_snapped_and_counted():
    frame = coded_table()
    plain = IMPUTERS["mean"](code_columns=()).fit(frame).transform(frame)
    mean = frame["rating"].mean()
    assert mean not in (1, 2, 4, 5) and (plain.loc[frame["rating"].isna(), "rating"] == mean).all()
    imp = IMPUTERS["mean"]().fit(frame)
    out = imp.transform(frame)
    nearest = min((1.0, 2.0, 4.0, 5.0), key=lambda c: abs(c - mean))
    assert (out.loc[frame["rating"].isna(), "rating"] == nearest).all()
    assert imp.report_.how["snapped"] >= int(frame["rating"].isna().sum())


def test_llm_scores_the_codes_as_categories(tiny):
    frame = coded_table(n=24)
    imp = IMPUTERS["llm"](model=tiny, sft=TINY_SFT, cache=False, dtype="float32", max_train_examples=8)
    imp.fit(frame).transform(frame)
    gaps = int(frame[["rating", "band"]].isna().to_numpy().sum())
    assert imp.report_.how["llm-score"] == gaps and "snapped" not in imp.report_.how
    assert "llm-generate" not in imp.report_.how  # x has no gaps; job is categorical


def test_detect_code_columns_is_usable_alone():
    frame = pd.DataFrame({"r": [1.0, 2.0, 2.0, 1.0, np.nan]})
    kinds = {"r": "numeric"}
    assert detect_code_columns(frame, frame, kinds)["r"].codes == (1.0, 2.0)
    assert detect_code_columns(frame, frame, kinds, ()) == {}
