"""LEARN: towers, variants, cold items, determinism and validation on tiny synthetic data."""

import numpy as np
import pytest
import torch
from learn_synthetic import TINY, cyclic_content, cyclic_dataset, with_unengaged_items

from recllm.data.split import cold_start_split, leave_one_out
from recllm.errors import UserInputError
from recllm.eval.ranking import evaluate_full_ranking
from recllm.learn import LEARN, LEARNConfig
from recllm.learn.model import LEARNNet


def hr(model, split, k=5):
    return evaluate_full_ranking(model, split.eval_cases("test"), ks=(k,), show_progress=False).mean()[f"hr@{k}"]


def test_shared_item_tower_is_user_tower_on_one_item(content):
    torch.manual_seed(0)
    net = LEARNNet(torch.from_numpy(content), 30, dim=16, out_dim=8, max_len=6, dropout=0.0).eval()
    ids = torch.tensor([3, 7])
    as_users = net(ids[:, None] + 1)[:, -1]
    torch.testing.assert_close(net.items(ids), as_users)
    assert torch.allclose(net.items(ids).norm(dim=-1), torch.ones(2))


def test_user_tower_is_causal(content):
    torch.manual_seed(0)
    net = LEARNNet(torch.from_numpy(content), 30, dim=16, out_dim=8, max_len=6, dropout=0.0).eval()
    seq = torch.tensor([[0, 2, 3, 4, 5, 6]])
    changed = seq.clone()
    changed[0, -1] = 20
    torch.testing.assert_close(net(seq)[:, :-1], net(changed)[:, :-1])


def test_learns_loo(fitted, loo):
    assert hr(fitted, loo) >= 0.8  # chance: about 5 / 21 candidates
    assert fitted.item_vectors_.shape == (30, 16)
    assert len(fitted.history_) >= fitted.best_epoch_ >= 1


@pytest.mark.parametrize("variant", [dict(item_tower="mlp"), dict(item_input="content+id"), dict(item_input="id")])
def test_variants_train(loo, content, variant):
    model = LEARN(content_embeddings=content, **{**TINY, "max_epochs": 3, **variant}).fit(loo)
    scores = model.score(np.array([0]), [np.array([1, 2, 3])])
    assert scores.shape == (1, 30) and np.isfinite(scores).all()


def test_cold_items_get_content_scores():
    cold = cold_start_split(cyclic_dataset(n_items=60, length=8))
    model = LEARN(content_embeddings=cyclic_content(60), **TINY).fit(cold)
    test_items = np.unique(cold.dataset.item_index(cold.test["item_id"]))
    cases = cold.eval_cases("test")
    scores = model.score(cases.users, cases.histories)[:, test_items]
    assert np.isfinite(scores).all() and scores.std() > 1e-3
    id_only = LEARN(item_input="id", **TINY).fit(cold)
    assert hr(model, cold, 10) > hr(id_only, cold, 10) + 0.3


def test_same_seed_same_model(loo, content):
    a = LEARN(content_embeddings=content, **{**TINY, "max_epochs": 2}).fit(loo)
    b = LEARN(content_embeddings=content, **{**TINY, "max_epochs": 2}).fit(loo)
    np.testing.assert_array_equal(a.item_vectors_, b.item_vectors_)


def test_validation():
    with pytest.raises(ValueError, match="item_tower"):
        LEARNConfig(item_tower="deep")
    with pytest.raises(ValueError, match="item_input"):
        LEARN(item_input="text")
    with pytest.raises(ValueError, match="alpha"):
        LEARN(alpha=20.0, beta=10.0)
    with pytest.raises(ValueError, match="loss"):
        LEARN(loss="ce")


@pytest.mark.parametrize(
    "kwargs, field",
    [(dict(dense_weight=float("nan")), "dense_weight"), (dict(temperature="0.2"), "temperature"),
     (dict(horizon="3"), "horizon"), (dict(horizon=True), "horizon"), (dict(content={"foo": 1}), "content"),
     (dict(content="smollm2"), "content"), (dict(content={"max_length": 1.5}), "max_length")],
)
def test_learn_config_names_the_bad_field(kwargs, field):
    """A NaN weight was accepted; a string horizon and an unknown content field failed with a bare TypeError."""
    with pytest.raises(ValueError, match=rf"Config\.{field}"):
        LEARNConfig(**kwargs)
    assert LEARNConfig(horizon=np.int64(3), content={"max_length": 64}).content.max_length == 64
    with pytest.raises(ValueError, match=rf"Config\.{field}"):
        LEARN(**kwargs)
    assert LEARN(content={"max_length": 64}).config.content.max_length == 64


def test_bad_content_shape(loo):
    with pytest.raises(ValueError, match="catalogue order"):
        LEARN(content_embeddings=np.zeros((5, 4)), **TINY).fit(loo)


@pytest.mark.parametrize("whiten", ["whiten", "none"])
def test_non_finite_content_is_refused_naming_the_row(loo, content, whiten):
    """NaN content failed in numpy's eigh (whitening) or, unwhitened, trained a model whose every score was NaN."""
    bad = content.copy()
    bad[4, 2] = np.nan
    with pytest.raises(UserInputError, match=r"content_embeddings holds NaN or infinite values \(item row 4\)"):
        LEARN(content_embeddings=bad, **{**TINY, "max_epochs": 1, "content": {"whiten": whiten}}).fit(loo)


def _unengaged_share(model, split, n_engaged: int, k: int = 5) -> float:
    cases = split.eval_cases("test")
    top = np.argsort(-model.score(cases.users, cases.histories), axis=1)[:, :k]
    return float((top >= n_engaged).mean())


def test_catalogue_negatives_push_down_items_nobody_engages_with():
    data, content = with_unengaged_items()
    split = leave_one_out(data)
    settings = {**TINY, "batch_size": 16}
    in_batch = LEARN(content_embeddings=content, **settings).fit(split)
    mixed = LEARN(content_embeddings=content, catalogue_negatives=32, **settings).fit(split)
    assert _unengaged_share(in_batch, split, 30) > 0.2  # in-batch candidates never include them
    assert _unengaged_share(mixed, split, 30) < 0.05
    assert hr(mixed, split) >= 0.8


def test_catalogue_negatives_validation():
    with pytest.raises(ValueError, match="catalogue_negatives"):
        LEARNConfig(catalogue_negatives=-1)


def test_the_new_items_of_a_cold_start_split_take_no_part_in_the_whitening():
    """LEARN's and content-kNN's whitening statistics come from the items the split lets a model know: changing
    the held-out new items' vectors changes no other item's whitened vector."""
    from recllm.models import ContentKNN

    cold = cold_start_split(cyclic_dataset(n_items=60, length=8))
    new = np.setdiff1d(np.arange(cold.dataset.n_items), cold.known_items())
    assert len(new) and len(cold.known_items())
    content = cyclic_content(60)
    other = content.copy()
    other[new] = np.random.default_rng(0).normal(size=(len(new), content.shape[1])) * 50
    known = cold.known_items()
    a = LEARN(content_embeddings=content, **TINY)._content(cold).numpy()
    b = LEARN(content_embeddings=other, **TINY)._content(cold).numpy()
    np.testing.assert_allclose(a[known], b[known], rtol=1e-5, atol=1e-5)
    ka = ContentKNN(content_embeddings=content).fit(cold).item_vectors_
    kb = ContentKNN(content_embeddings=other).fit(cold).item_vectors_
    np.testing.assert_allclose(ka[known], kb[known], rtol=1e-5, atol=1e-5)


def test_held_out_new_items_are_never_negatives_nor_softmax_classes():
    """On a cold-start split the ID models and LEARN draw negatives from the known items only and SASRec-CE's softmax
    has no class for a held-out new item; where every item is known the draws are torch.randint's."""
    from recllm.models import SASRec

    cold = cold_start_split(cyclic_dataset(n_items=60, length=8))
    future = set(np.setdiff1d(np.arange(cold.dataset.n_items), cold.known_items()).tolist())
    model = SASRec(max_epochs=1, dim=8, n_layers=1, n_heads=1, max_len=8, loss="bce", seed=0,
                   show_progress=False).fit(cold)
    drawn = model.draw_items((5000,), torch.Generator().manual_seed(0))
    assert future and not future & set(drawn.tolist())
    assert model.future_items_ is not None and set(torch.nonzero(model.future_items_)[:, 0].tolist()) == future
    loo = leave_one_out(cyclic_dataset(n_items=60, length=8))
    full = SASRec(max_epochs=1, dim=8, n_layers=1, n_heads=1, max_len=8, seed=0, show_progress=False).fit(loo)
    assert full.future_items_ is None
    assert torch.equal(full.draw_items((50,), torch.Generator().manual_seed(3)),
                       torch.randint(0, loo.dataset.n_items, (50,), generator=torch.Generator().manual_seed(3)))


@pytest.mark.parametrize("negatives", [0, 5])
def test_the_training_loss_is_next_item_plus_dense_info_nce_over_the_batch(loo, content, negatives):
    """LEARN trains on the blocked loss; on a batch it must equal the reference form: info_nce_pairs over the
    similarity / temperature of every query row against the batch's candidates (next-item pairs' mean plus
    dense_weight x the dense pairs' mean), a window's own items never its negatives."""
    from recllm.learn.losses import dense_action_pairs, info_nce_pairs, negative_logsumexp
    from recllm.learn.train import _membership

    model = LEARN(content_embeddings=content, **{**TINY, "max_epochs": 1, "dropout": 0.0},
                  catalogue_negatives=negatives, seed=0).fit(loo)
    rows = torch.from_numpy(model._training_rows(loo)[:6])
    got = model._batch_loss(rows, torch.Generator().manual_seed(1))
    cfg, net, gen = model.config, model.net_, torch.Generator().manual_seed(1)
    inp = rows[:, :-1]
    hidden, mask = net(inp), inp > 0
    query_of = torch.full(inp.shape, -1, dtype=torch.long)
    query_of[mask] = torch.arange(int(mask.sum()))
    next_targets = rows[:, 1:][mask] - 1
    b, i, j = dense_action_pairs(rows, cfg.n_history, cfg.n_future, cfg.horizon, cfg.alpha, cfg.beta, gen)
    dense_queries, dense_targets = query_of[b, i], rows[b, j] - 1
    sampled = model.draw_items((negatives,), gen) if negatives else next_targets[:0]
    unique, inverse = torch.unique(torch.cat([next_targets, dense_targets, sampled]), return_inverse=True)
    logits = net.similarity(hidden[mask], net.items(unique)) / cfg.temperature
    own = ~_membership(rows, unique)[torch.nonzero(mask, as_tuple=True)[0]]
    lse = negative_logsumexp(logits, own)
    n = len(next_targets)
    want = info_nce_pairs(logits, own, torch.arange(n), inverse[:n], lse) + cfg.dense_weight * info_nce_pairs(
        logits, own, dense_queries, inverse[n:n + len(dense_targets)], lse)
    assert len(dense_targets) and float(got) == pytest.approx(float(want), rel=1e-5)
