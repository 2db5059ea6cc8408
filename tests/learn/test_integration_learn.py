"""Real data: `recllm learn train` on MovieLens-100K, then recommend and similar from the artifact."""

import json

import pytest

from recllm.cli import main


@pytest.mark.integration
def test_train_recommend_similar_on_ml100k(shared_data, tmp_path, capsys):
    folder = tmp_path / "art"
    code = main(["learn", "train", "--data", "ml-100k", "--out", str(folder), "--item-input", "id",
                 "--item-tower", "mlp", "--catalogue-negatives", "64", "--epochs", "1", "--threads", "1", "--quiet"])
    assert code == 0
    assert json.loads((folder / "config.json").read_text())["config"]["catalogue_negatives"] == 64
    summary = json.loads(capsys.readouterr().out)
    assert 0.0 <= summary["test (mean, ci_low, ci_high)"]["ndcg@10"][0] <= 1.0
    assert main(["learn", "recommend", str(folder), "--user", "196", "-k", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 5 and "(" in lines[0]  # titles from the data set, e.g. "Star Wars (1977)"
    assert main(["learn", "similar", str(folder), "--item", "50", "-k", "3"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 4
