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


def test_train_on_a_data_folder_and_recommend_with_its_titles(shop_folder, tmp_path, capsys):
    """`--data FOLDER`: the user's own interactions.csv and items.csv; the artifact finds the titles again."""
    before = {p.name: p.read_bytes() for p in shop_folder.iterdir()}
    art = tmp_path / "art"
    assert main(["learn", "train", "--data", str(shop_folder), "--item-input", "id", "--out", str(art), "--epochs",
                 "1", "--dim", "8", "--quiet"]) == 0
    assert '"data": "' + str(shop_folder) in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in shop_folder.iterdir()} == before  # the user's files are only read
    assert main(["learn", "recommend", str(art), "--history", "sku1", "sku2", "-k", "3"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 3 and all("Mug model" in line for line in lines)
