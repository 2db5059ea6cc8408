"""ContentKNN: the Recommender contract with content that encodes the planted chains, and its own behaviour."""

import numpy as np
import pytest

from recllm.errors import UserInputError
from recllm.models import ContentKNN
from tests.models.contract import check_recommender, planted_sequence_split


def chain_content(split, n_chains=4, chain_len=16):
    """Item c{c}_{j}: its chain as a one-hot (x3) plus its step as a point on a quarter circle; cold items get
    their own directions. The unseen item nearest in content to a user's last item is the chain's next one."""
    names = [str(i) for i in split.dataset.items["item_id"]]
    idx = split.dataset.item_index(names)
    content = np.zeros((len(names), n_chains + 2 + 8), dtype=np.float32)
    for name, row in zip(names, idx):
        if name.startswith("cold"):
            content[row, n_chains + 2 + int(name[4:])] = 3.0
            continue
        chain, step = (int(x) for x in name[1:].split("_"))
        angle = 0.5 * np.pi * step / chain_len
        content[row, chain] = 3.0
        content[row, n_chains:n_chains + 2] = np.cos(angle), np.sin(angle)
    return content


def test_contract_with_content_that_encodes_the_chains():
    split = planted_sequence_split()
    content = chain_content(split)
    measured = check_recommender(lambda seed: ContentKNN(content_embeddings=content, last_n=1), split=split)
    assert measured["top1"] >= 0.5


def test_scores_ignore_interactions_and_follow_the_query_window():
    split = planted_sequence_split()
    content = chain_content(split)
    cases = split.eval_cases("test")
    model = ContentKNN(content_embeddings=content).fit(split)
    fewer = planted_sequence_split(n_users=60)  # other interactions, the same catalogue
    same = ContentKNN(content_embeddings=chain_content(fewer)).fit(fewer)
    order = fewer.dataset.item_index(split.dataset.items["item_id"])  # align the two catalogues
    np.testing.assert_allclose(same.score(cases.users, cases.histories)[:, order],
                               model.score(cases.users, cases.histories), atol=1e-5)
    # a cold item whose content copies a chain item scores like it, though nobody ever engaged with it
    cold = int(split.dataset.item_index(["cold0"])[0])
    twin = int(split.dataset.item_index(["c1_5"])[0])
    content = content.copy()
    content[cold] = content[twin]
    scores = ContentKNN(content_embeddings=content).fit(split).score(cases.users, cases.histories)
    np.testing.assert_allclose(scores[:, cold], scores[:, twin], atol=1e-5)
    # last_n=1: only the last history item forms the query
    hist = [np.asarray(cases.histories[0])]
    last = ContentKNN(content_embeddings=content, last_n=1).fit(split)
    np.testing.assert_allclose(last.score(cases.users[:1], hist), last.score(cases.users[:1], [hist[0][-1:]]))
    assert not np.allclose(model.score(cases.users[:1], hist), model.score(cases.users[:1], [hist[0][-1:]]))
    assert np.all(model.score(cases.users[:1], [np.empty(0, np.int64)]) == 0)  # no history: no preference


@pytest.mark.parametrize("bad, message", [
    (dict(content_embeddings=np.zeros((3, 4))), r"content_embeddings has shape \(3, 4\).*in catalogue order"),
    (dict(content_embeddings=np.full((68, 4), np.nan)), "non-finite"),
    (dict(content_embeddings=np.zeros((68, 4)), last_n=0), "last_n must be a positive integer"),
])
def test_bad_arguments_get_one_clear_line(bad, message):
    split = planted_sequence_split()
    assert split.dataset.n_items == 68
    with pytest.raises(UserInputError, match=message):
        ContentKNN(**bad).fit(split)
    with pytest.raises(RuntimeError, match="not fitted"):
        ContentKNN().score(np.array([0]), [np.array([1])])
