"""The `recllm learn` commands on a saved artifact."""

import pytest

from recllm.cli import build_parser, main
from recllm.learn import save


def test_commands_registered():
    parser = build_parser()
    args = parser.parse_args(["learn", "train", "--data", "ml-100k", "--out", "x"])
    assert args.item_tower == "shared" and args.index == "exact" and callable(args.func)
    with pytest.raises(SystemExit):
        parser.parse_args(["learn", "train", "--data", "ml-100k", "--out", "x", "--item-tower", "deep"])


def test_recommend_and_similar_print_items(fitted, dataset, tmp_path, capsys):
    folder = save(fitted, tmp_path / "art", dataset)
    assert main(["learn", "recommend", str(folder), "--user", "u3", "-k", "3"]) == 0
    lines = [l for l in capsys.readouterr().out.splitlines() if l.strip()]
    assert len(lines) == 3 and lines[0].split()[0] == "1"
    seen = set(dataset.interactions.query("user_id == 'u3'")["item_id"])
    assert not {l.split()[1] for l in lines} & seen
    # a new user given by their items: the same ranking as the stored user with that history
    history = [str(i) for i in dataset.interactions.query("user_id == 'u3'").sort_values("timestamp")["item_id"]]
    assert main(["learn", "recommend", str(folder), "--history", *history, "-k", "3"]) == 0
    assert [l for l in capsys.readouterr().out.splitlines() if l.strip()] == lines
    assert main(["learn", "similar", str(folder), "--item", "i4", "-k", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("items most similar to i4") and len(out) == 3
