"""Every registered model passes the Recommender contract with its small fast config (FAST_CONFIGS)."""

import pytest

from recllm.models import MODELS
from recllm.models.base import Recommender
from tests.models.contract import FAST_CONFIGS, check_recommender


@pytest.mark.parametrize("name", sorted(MODELS))
def test_registered_model_passes_contract(name):
    cls = MODELS[name]
    assert issubclass(cls, Recommender), f"MODELS[{name!r}] is not a Recommender subclass"
    if name not in FAST_CONFIGS:
        pytest.fail(f"model {name!r} is registered but has no fast contract config: add one line for it to "
                    "FAST_CONFIGS in tests/models/contract.py")
    spec = FAST_CONFIGS[name]
    check_recommender(spec.factory(cls), pattern=spec.pattern, min_top1=spec.min_top1)


def test_fast_configs_name_registered_models():
    assert set(FAST_CONFIGS) <= set(MODELS), f"stale entries: {set(FAST_CONFIGS) - set(MODELS)}"
