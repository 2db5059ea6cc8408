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


@pytest.mark.parametrize("name", sorted(MODELS))
def test_clone_gives_an_equal_unfitted_model(fitted, name):
    """scikit-learn's clone failed for every model: SASRec/HSTU's get_params took no ``deep``, the others had none."""
    from sklearn.base import clone

    model = fitted[name]
    copy = clone(model)
    assert type(copy) is type(model) and copy.get_params() == model.get_params()
    assert not [k for k in vars(copy) if k.endswith("_") and not k.startswith("_")]
    assert copy.set_params() is copy and quick(name).get_params() == model.get_params()


def test_set_params_reaches_the_config_and_is_validated():
    from recllm.models import SASRec

    model = SASRec(dim=16, n_heads=2)
    assert model.set_params(dim=32, lr=0.01) is model and (model.config.dim, model.config.lr) == (32, 0.01)
    assert model.get_params(deep=False)["dim"] == 32 and "config" not in model.get_params()
    with pytest.raises(ValueError, match="dropout must be in"):
        model.set_params(dropout=1.5)
    with pytest.raises(ValueError, match="SASRec has no parameter 'dims'; its parameters: .*dim, dropout"):
        model.set_params(dims=8)


def test_learn_and_dlrm_follow_the_parameter_protocol():
    from sklearn.base import clone

    from recllm.learn import LEARN
    from recllm.learn.encoder import ContentConfig
    from recllm.models.dlrm import DLRM

    content = np.ones((3, 2), dtype=np.float32)
    learn = LEARN(content_embeddings=content, out_dim=8, content={"whiten": "none"})
    params = clone(learn).get_params()
    assert params["out_dim"] == 8 and params["content"] == ContentConfig(whiten="none")
    assert np.array_equal(params["content_embeddings"], content)
    assert learn.set_params(content={"whiten": "center"}).config.content.whiten == "center"
    dlrm = clone(DLRM(task="regression", bottom_mlp=(8,)))
    assert dlrm.get_params()["task"] == "regression" and dlrm.set_params(max_epochs=2).max_epochs == 2
    with pytest.raises(ValueError, match="DLRM has no parameter 'epochs'"):
        dlrm.set_params(epochs=2)


def test_nested_parameters_reach_a_wrapped_recommender():
    from recllm.bench.trsr.run import Reranked
    from recllm.models import ItemKNN

    model = Reranked(ItemKNN(k=5), rerank=None, k=10)
    assert model.get_params()["retriever__k"] == 5
    assert model.set_params(retriever__k=7).retriever.k == 7


@pytest.mark.parametrize("field, value, match", [
    ("lr", float("nan"), r"SeqConfig.lr must be a finite number > 0, got nan"),  # accepted, failed in AdamW
    ("lr", "1e-3", r"SeqConfig.lr must be a finite number > 0"),  # a TypeError from '<='
    ("weight_decay", float("nan"), r"SeqConfig.weight_decay must be a finite number >= 0"),
    ("time_budget", float("nan"), "time_budget must be positive seconds"),
    ("seed", "x", r"SeqConfig.seed must be an integer"),  # 'not all arguments converted' at fit
    ("device", "gpu", r"unknown device 'gpu' \(SeqConfig.device\); use 'auto', 'cpu'"),  # torch's RuntimeError
])
def test_sequence_config_refuses_nonsense_naming_the_field(field, value, match):
    from recllm.models.sasrec import SeqConfig

    with pytest.raises(ValueError, match=match):
        SeqConfig(**{field: value})


def test_dlrm_and_content_config_check_their_device():
    import pandas as pd

    from recllm.learn.encoder import ContentConfig
    from recllm.models.dlrm import DLRM
    from recllm.utils import resolve_device

    with pytest.raises(ValueError, match=r"unknown device 'gpu' \(DLRM.device\)"):
        DLRM(device="gpu").fit(pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]}), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="DLRM.*weight_decay must be >= 0|weight_decay must be >= 0"):
        DLRM(weight_decay=float("nan")).fit(pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]}), [0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"unknown device 'gpu' \(ContentConfig.device\)"):
        ContentConfig(device="gpu")
    with pytest.raises(ValueError, match=r"unknown device 'cuda:x' \(device\)"):
        resolve_device("cuda:x")
    assert resolve_device("cpu") == "cpu" and ContentConfig(device="cuda:1").device == "cuda:1"


@pytest.mark.parametrize("make", [
    lambda **kw: __import__("recllm.models.sasrec", fromlist=["SeqConfig"]).SeqConfig(**kw),
    lambda **kw: __import__("recllm.models.hstu", fromlist=["HSTUConfig"]).HSTUConfig(**kw),
    lambda **kw: __import__("recllm.llm.sft", fromlist=["SFTConfig"]).SFTConfig(**kw),
    lambda **kw: __import__("recllm.trsr.pipeline", fromlist=["TRSRConfig"]).TRSRConfig(**kw),
    lambda **kw: __import__("recllm.learn.train", fromlist=["LEARNConfig"]).LEARNConfig(**kw),
    lambda **kw: __import__("recllm.trsr.ranker", fromlist=["RankerConfig"]).RankerConfig(**kw),
    lambda **kw: __import__("recllm.distributed.ray_jobs", fromlist=["RayOptions"]).RayOptions(**kw),
])
def test_counts_refuse_a_bool_and_take_a_numpy_integer_as_an_int(make):
    field = {"SeqConfig": "batch_size", "HSTUConfig": "batch_size", "SFTConfig": "batch_size",
             "TRSRConfig": "n_negatives", "LEARNConfig": "catalogue_negatives", "RankerConfig": "score_batch_size",
             "RayOptions": "workers"}[type(make()).__name__]
    with pytest.raises(ValueError, match=field):
        make(**{field: True})
    config = make(**{field: np.int64(3)})
    assert type(getattr(config, field)) is int and getattr(config, field) == 3


def test_lora_rank_takes_a_numpy_integer_as_an_int_and_refuses_a_bool():
    from recllm.llm.sft import LoRAConfig

    assert type(LoRAConfig(r=np.int64(4)).r) is int
    with pytest.raises(ValueError, match="LoRAConfig.r"):
        LoRAConfig(r=True)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_recommend_ends_a_short_row_with_seen_items_at_minus_inf(fitted, split, name):
    # as recommend's docstring says: rectangular arrays, a seen item only after every unseen one and at -inf
    n_items = split.dataset.n_items
    history = np.arange(n_items - 2)
    top, scores = fitted[name].recommend(np.array([0]), [history], k=5, filter_seen=True)
    assert top.shape == scores.shape == (1, 5)
    unseen = ~np.isin(top[0], history)
    assert unseen[:2].all() and not unseen[2:].any() and np.isfinite(scores[0, :2]).all()
    assert np.isneginf(scores[0, 2:]).all()


@pytest.mark.parametrize("name", ["sasrec", "hstu"])
def test_fit_leaves_the_callers_random_streams_as_they_were(split, name):
    """fit seeded Python's, NumPy's and torch's global generators and left them so: a program drawing
    np.random numbers around repeated fits drew the same numbers after every fit."""
    import random

    import torch

    np.random.seed(123), random.seed(123), torch.manual_seed(123)
    expected = (np.random.random(), random.random(), torch.rand(1).item())
    np.random.seed(123), random.seed(123), torch.manual_seed(123)
    first = quick(name).fit(split)
    assert (np.random.random(), random.random(), torch.rand(1).item()) == expected
    again = quick(name).fit(split)  # and a fit's own numbers still depend on its seed only
    cases = split.eval_cases("test")
    np.testing.assert_array_equal(first.score(cases.users, cases.histories), again.score(cases.users, cases.histories))


def test_sft_leaves_the_callers_random_streams_as_they_were():
    import random

    import torch

    from recllm.llm.backbone import tiny_causal_lm
    from recllm.llm.sft import SFTConfig, sft_train

    np.random.seed(7), random.seed(7), torch.manual_seed(7)
    expected = (np.random.random(), random.random(), torch.rand(1).item())
    np.random.seed(7), random.seed(7), torch.manual_seed(7)
    sft_train(tiny_causal_lm(0), [("a prompt", " yes"), ("another prompt", " no")],
              SFTConfig(epochs=1, batch_size=2, show_progress=False, bf16=False))
    assert (np.random.random(), random.random(), torch.rand(1).item()) == expected
