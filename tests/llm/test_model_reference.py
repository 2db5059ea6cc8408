"""A --model that looks like a path but does not exist is a clear UserInputError, never a hub request."""

import pytest

from recllm.errors import UserInputError
from recllm.llm.backbone import check_model_reference, load_causal_lm, load_text_encoder


@pytest.mark.parametrize("name", ["./missing", "~/no/such/model", "/abs/missing", "models/a/b", "../up", "bad name"])
def test_path_like_names_that_do_not_exist(name):
    with pytest.raises(UserInputError, match="no such model folder"):
        check_model_reference(name, "--model")


def test_files_folders_and_offline_ids(tmp_path, monkeypatch):
    assert check_model_reference(str(tmp_path)) == str(tmp_path)
    (tmp_path / "weights.gguf").write_text("x")
    with pytest.raises(UserInputError, match="is a file"):
        check_model_reference(str(tmp_path / "weights.gguf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(UserInputError, match="HF_HUB_OFFLINE"):
        check_model_reference("someone/not-cached-model")
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert check_model_reference("someone/any-model") == "someone/any-model"  # online: the hub decides


def test_loaders_check_before_loading():
    with pytest.raises(UserInputError, match="no such model folder"):
        load_causal_lm("./no-such-model")
    with pytest.raises(UserInputError, match="no such model folder"):
        load_text_encoder("./no-such-encoder")
