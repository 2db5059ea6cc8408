"""The `recllm trsr` commands are wired up (parsing only; running them needs real models)."""

import json

import pytest

from recllm.cli import build_parser


def test_trsr_commands_parse():
    parser = build_parser()
    args = parser.parse_args(["trsr", "train", "--data", "ml-latest-small", "--out", "run", "--mode", "recurrent"])
    assert args.mode == "recurrent" and args.users == 200 and callable(args.func) and args.class_weight == "balanced"
    args = parser.parse_args(["trsr", "summarize", "--data", "x", "--users", "3"])
    assert args.users == 3 and args.mode == "hierarchical"
    args = parser.parse_args(["trsr", "rank", "--run", "run"])
    assert args.rows == 100


@pytest.mark.integration
def test_summarize_command_on_real_data(shared_data, tmp_path, capsys):
    from recllm.cli import main

    out = tmp_path / "s.jsonl"
    code = main(["trsr", "summarize", "--data", "amazon2018-magazine-subscriptions", "--users", "2",
                 "--summary-tokens", "8", "--threads", "1", "--quiet", "--out", str(out)])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert code == 0 and len(rows) == 2 and all(r["summary"] for r in rows)
