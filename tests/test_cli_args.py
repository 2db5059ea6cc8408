"""Shared command-line checks (recllm.cli_args): what they accept as well as what they refuse."""

from __future__ import annotations

import argparse

import pytest

from recllm.cli_args import (check_model, check_ray_address, max_threads, non_negative_float, port_number,
                              thread_count)
from recllm.errors import UserInputError


def test_a_model_folder_needs_a_config_or_an_adapter_config(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserInputError, match="without config.json"):
        check_model(str(tmp_path / "empty"))
    for name in ("config.json", "adapter_config.json"):  # a model, or a LoRA adapter folder (transformers loads both)
        folder = tmp_path / name.split(".")[0]
        folder.mkdir()
        (folder / name).write_text('{"model_type": "llama"}' if name == "config.json" else "{}")
        (folder / "model.safetensors").write_bytes(b"")
        assert check_model(str(folder)) == str(folder)
    assert check_model(None) is None


@pytest.mark.parametrize("config, weights, words", [
    ('{"best_epoch": 2, "config": {}}', True, "names no model_type"),  # a LEARN artifact's config.json
    ('["llama"]', True, "names no model_type"),
    ('{"model_type": "llama"', True, "cannot be read as JSON"),  # cut short
    ('{"model_type": "llama"}', False, "holds no model weights"),  # a download cut before the weights
])
def test_a_model_folder_transformers_cannot_load_is_one_line_before_any_load(tmp_path, config, weights, words):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(config)
    if weights:
        (folder / "model.safetensors").write_bytes(b"")
    with pytest.raises(UserInputError, match=words) as raised:
        check_model(str(folder), "--model")
    assert raised.value.where == "--model"
    shards = tmp_path / "sharded"  # sharded weights count as weights
    shards.mkdir()
    (shards / "config.json").write_text('{"model_type": "llama"}')
    (shards / "model-00001-of-00002.safetensors").write_bytes(b"")
    assert check_model(str(shards)) == str(shards)


def test_ray_addresses_ray_accepts_pass_and_others_are_named(monkeypatch):
    for address in (None, "", "auto", "local"):
        check_ray_address(address)  # nothing to reach: Ray finds or starts the cluster
    for address in ("bogus", "ray://host", "anyscale://cluster", "host:port", "127.0.0.1:\u00b2"):
        with pytest.raises(UserInputError, match="not a Ray address"):
            check_ray_address(address)
    import socket

    reached = []
    monkeypatch.setattr(socket, "create_connection", lambda where, timeout: reached.append(where) or socket.socket())
    for address in ("10.0.0.5:6379", "ray://head:10001", "[::1]:6379"):
        check_ray_address(address)
    assert reached == [("10.0.0.5", 6379), ("head", 10001), ("::1", 6379)]


def test_thread_counts_stop_short_of_what_no_machine_can_start():
    """--threads 99999 used to load the model and end on 'internal error: MemoryError' when OpenMP started them."""
    assert thread_count("0") == 0 and thread_count(str(max_threads())) == max_threads() and max_threads() >= 64
    for bad, words in (("99999", "far more threads"), ("-1", "negative"), ("x", "not a whole number")):
        with pytest.raises(argparse.ArgumentTypeError, match=words):
            thread_count(bad)


def test_numbers():
    assert port_number("8000") == 8000 and non_negative_float("0") == 0.0
    for bad in ("0", "65536", "x"):
        with pytest.raises(argparse.ArgumentTypeError):
            port_number(bad)
    for bad in ("nan", "-1", "inf"):
        with pytest.raises(argparse.ArgumentTypeError):
            non_negative_float(bad)


def test_a_file_whose_name_starts_with_a_dash_is_named_when_argparse_takes_it_for_an_option(tmp_path, monkeypatch,
                                                                                           capsys):
    from recllm.cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "-dash.csv").write_text("a,b\n1,\n2,x\n")
    assert main(["impute", "-dash.csv", "--out", "o.csv"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'-dash.csv' was read as an option" in err and "./-dash.csv" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["-dash.csv"]
    assert main(["impute", "-nothing.csv", "--out", "o.csv"]) == 2  # no such file: argparse's own message
    assert "read as an option" not in capsys.readouterr().err
    # after --, it was read as the table: another error gets no hint about it
    assert main(["impute", "--method", "bogus", "--out", "o.csv", "--", "-dash.csv"]) == 2
    assert "read as an option" not in capsys.readouterr().err
    (tmp_path / "-data").mkdir()
    assert main(["data", "info", "-data"]) == 2
    assert "'-data' was read as an option, and it is a folder" in capsys.readouterr().err


def test_whole_numbers_are_ascii_digits_only():
    """--seed 1_000 was read as 1000 and --k ٣ as 3 (Python's int syntax), not refused."""
    from recllm.cli_args import positive_int, seed_arg

    assert seed_arg("1000") == 1000 and seed_arg(" 7 ") == 7 and positive_int("+3") == 3
    for bad in ("1_000", "\u0663", "1e3", "0x10", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="not a whole number"):
            seed_arg(bad)
