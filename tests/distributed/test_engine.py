"""The engine argument: checked, and a missing extra gives one line naming it."""

import importlib.util

import pytest

from recllm.distributed import check_engine
from recllm.errors import UserInputError


def test_unknown_engine_is_refused():
    with pytest.raises(UserInputError, match="unknown engine 'spark'.*local, ray"):
        check_engine("spark")


def test_ray_engine_without_the_extra_names_it(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("ray") else real(name, *a))
    with pytest.raises(UserInputError, match=r"pip install 'recllm\[distributed\]'"):
        check_engine("ray", "--engine")


def test_embed_texts_checks_the_engine():
    from recllm.llm import embed_texts

    with pytest.raises(UserInputError, match="unknown engine"):
        embed_texts(object(), ["a"], engine="dask")


def test_learn_train_engine_ray_without_the_extra_is_one_line(monkeypatch, capsys, tmp_path):
    from recllm import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("ray") else real(name, *a))
    code = cli.main(["learn", "train", "--data", "ml-100k", "--out", str(tmp_path / "art"), "--engine", "ray"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "recllm[distributed]" in err and "--engine" in err


def test_trsr_summarize_engine_ray_without_the_extra_is_one_line(monkeypatch, capsys):
    from recllm import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("ray") else real(name, *a))
    code = cli.main(["trsr", "summarize", "--data", "ml-100k", "--users", "2", "--engine", "ray"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "recllm[distributed]" in err and "--engine" in err


def test_summarize_histories_checks_the_engine():
    from recllm.llm.backbone import tiny_causal_lm
    from recllm.trsr.summarize import summarize_histories

    with pytest.raises(UserInputError, match="unknown engine 'spark'"):
        summarize_histories(tiny_causal_lm(0), [[0]], ["an item"], engine="spark")


def test_trsr_train_engine_ray_without_the_extra_is_one_line(monkeypatch, capsys, tmp_path):
    from recllm import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("ray") else real(name, *a))
    code = cli.main(["trsr", "train", "--data", "ml-100k", "--out", str(tmp_path / "run"), "--engine", "ray"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "recllm[distributed]" in err and "--engine" in err
    assert not (tmp_path / "run").exists()


def test_trsr_engine_must_be_known():
    from recllm.llm.backbone import tiny_causal_lm
    from recllm.trsr.pipeline import TRSR

    model = TRSR(tiny_causal_lm(0), tiny_causal_lm(1), engine="spark")
    model.item_texts_ = ["an item"]
    with pytest.raises(UserInputError, match="unknown engine 'spark'.*TRSR.engine"):
        model.summarize([[0]])


def test_trsr_params_include_the_engine():
    from recllm.trsr.pipeline import TRSR

    model = TRSR(None, None)
    assert model.get_params()["engine"] == "local" and model.get_params()["ray_options"] is None
    assert model.set_params(engine="ray").engine == "ray"
    with pytest.raises(ValueError, match="no parameter 'engines'"):
        model.set_params(engines="ray")
