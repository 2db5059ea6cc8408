"""A loaded LEARN artifact rejects k < 1 and names unknown users / items with what to do."""

import pytest

from recllm.errors import UserInputError
from recllm.learn import load, save


@pytest.fixture(scope="module")
def retriever(fitted, dataset, tmp_path_factory):
    return load(save(fitted, tmp_path_factory.mktemp("art") / "art", dataset))


@pytest.mark.parametrize("k", [0, -3, 2.5, True])
def test_k_below_one_or_not_whole_is_refused(retriever, k):
    with pytest.raises(ValueError, match="k must be a whole number of at least 1"):
        retriever.recommend("u3", k=k)
    with pytest.raises(ValueError, match="k must be"):
        retriever.similar_items("i4", k=k)
    with pytest.raises(ValueError, match="k must be"):
        retriever.recommend_for_history(["i1", "i2"], k=k)


def test_unknown_ids_are_user_input_errors_and_key_errors(retriever):
    with pytest.raises(UserInputError, match=r"user 'nobody' is not in this artifact \(\d+ users, e\.g\. .*\); "
                                             r"give a user id") as err:
        retriever.recommend("nobody")
    assert isinstance(err.value, KeyError) and not str(err.value).startswith("'")
    with pytest.raises(KeyError, match="catalogue"):
        retriever.similar_items("no-such-item")
