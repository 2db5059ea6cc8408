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


def test_summarize_writes_out_under_the_home_folder_where_it_was_checked(tmp_path, monkeypatch, capsys):
    """--out '~/sum.jsonl' was checked with ~ expanded but written to ./~/sum.jsonl (a folder named ~). The model
    and the summariser are stand-ins: only where the lines go is under test."""
    import recllm.llm
    import recllm.trsr.pipeline
    import recllm.trsr.summarize
    from recllm.cli import main
    from recllm.trsr.summarize import Summaries

    data = tmp_path / "lf"
    data.mkdir()
    (data / "interactions.csv").write_text("user_id,item_id,timestamp\n" + "".join(
        f"u{u},i{(u + k) % 6},{1700000000 + 10 * u + k}\n" for u in range(4) for k in range(5)))
    (data / "items.csv").write_text("item_id,title\n" + "".join(f"i{i},Item {i}\n" for i in range(6)))
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(recllm.llm, "load_causal_lm", lambda *a, **k: type("LM", (), {"tokenizer": None})())
    monkeypatch.setattr(recllm.trsr.pipeline, "dataset_item_texts", lambda *a, **k: [])
    monkeypatch.setattr(recllm.trsr.summarize, "summarize_histories",
                        lambda lm, histories, *a, **k: Summaries(["likes items"] * len(histories), [], 1, 1, 1.0, 1.0))
    assert main(["trsr", "summarize", "--data", str(data), "--users", "1", "--quiet", "--out", "~/sum.jsonl"]) == 0
    assert json.loads((home / "sum.jsonl").read_text())["summary"] == "likes items"
    assert not (tmp_path / "~").exists()
