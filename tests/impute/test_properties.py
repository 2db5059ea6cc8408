"""The contract every imputer keeps: observed cells are never changed, and every gap is filled (hypothesis)."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recllm.data.dataset import DataError
from recllm.impute.registry import IMPUTERS

CLASSIC = [name for name in sorted(IMPUTERS) if name != "llm"]
FAST = {"mice": {"max_iter": 2}}  # the property does not depend on the number of rounds


@st.composite
def masked_tables(draw):
    """A random mixed-type table (numbers, whole numbers, categories, flags, text) and a random mask."""
    n = draw(st.integers(2, 12))
    floats = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False, width=64)
    columns = {
        "num": draw(st.lists(floats, min_size=n, max_size=n)),
        "whole": draw(st.lists(st.integers(-100, 100), min_size=n, max_size=n)),
        "cat": draw(st.lists(st.sampled_from(["a", "b", "c d", "é"]), min_size=n, max_size=n)),
        "flag": draw(st.lists(st.sampled_from([0, 1]), min_size=n, max_size=n)),
        "text": draw(st.lists(st.text(min_size=0, max_size=8), min_size=n, max_size=n)),
    }
    frame = pd.DataFrame(columns)
    frame["whole"] = frame["whole"].astype(float)
    frame["flag"] = frame["flag"].astype(float)
    mask = np.array(draw(st.lists(st.lists(st.booleans(), min_size=5, max_size=5), min_size=n, max_size=n)))
    return frame.mask(mask), pd.DataFrame(mask, columns=frame.columns)


def check_contract(imputer, masked: pd.DataFrame, mask: pd.DataFrame) -> None:
    all_missing = mask.all(axis=0).any()
    no_complete_row = not (~mask).all(axis=1).any()
    if all_missing or (not imputer.fills_cells and no_complete_row):
        with pytest.raises(DataError):
            imputer.fit(masked)
        return
    out = imputer.fit(masked).transform(masked)
    assert set(out.index) <= set(masked.index) and list(out.columns) == list(masked.columns)
    if imputer.fills_cells:
        assert list(out.index) == list(masked.index)
    else:
        assert list(out.index) == list(masked.index[~mask.any(axis=1)])
    assert not out.isna().any().any()
    for col in masked.columns:
        observed = ~mask.loc[out.index, col]
        before = masked.loc[out.index[observed], col].tolist()
        after = out.loc[out.index[observed], col].tolist()
        assert after == before, f"{type(imputer).__name__} changed observed cells of {col!r}"


@pytest.mark.parametrize("name", CLASSIC)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=masked_tables())
def test_observed_cells_never_change(name, data):
    masked, mask = data
    check_contract(IMPUTERS[name](**FAST.get(name, {})), masked, mask)
