"""The public API of every registered model, as a scikit-learn / RecBole user calls it: bad histories are one
clear error, never a torch IndexError or a silently different answer."""

import numpy as np
import pytest

from recllm.models import MODELS
from tests.models.contract import FAST_CONFIGS, planted_sequence_split

QUICK = {"max_epochs": 1, "patience": 1}


@pytest.fixture(scope="module")
def split():
    return planted_sequence_split(n_users=40)


def quick(name):
    spec = FAST_CONFIGS[name]
    params = {**spec.params, **QUICK} if spec.seeded else dict(spec.params)
    return MODELS[name](**params)


@pytest.fixture(scope="module")
def fitted(split):
    return {name: quick(name).fit(split) for name in sorted(MODELS)}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("history, match", [
    ([10**6], "outside"),  # past the catalogue: SASRec/HSTU failed in torch with "index out of range in self"
    ([-1], "outside"),  # SASRec/HSTU read it as padding, Popularity ignored it: silently another answer
    ([1.5], "float64 values"),  # cut to item 1 without a word
])
def test_a_bad_history_is_one_clear_error(fitted, name, history, match):
    with pytest.raises(ValueError, match=match):
        fitted[name].score(np.array([0]), [np.array(history)])
    with pytest.raises(ValueError, match=match):
        fitted[name].recommend(np.array([0]), [np.array(history)], k=3)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_one_history_per_user(fitted, name):
    with pytest.raises(ValueError, match="got 2 users but 1 histories"):
        fitted[name].score(np.array([0, 1]), [np.array([1])])
    assert fitted[name].score(np.array([0]), [np.array([], dtype=np.int64)]).shape == (1, fitted[name].n_items_)
