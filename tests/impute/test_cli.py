"""``recllm impute``: CSV / parquet in, filled table out atomically, a short report, clear errors."""

import json

import numpy as np
import pandas as pd
import pytest

from recllm.cli import main

from .conftest import make_table, mask_cells


@pytest.fixture
def csv_table(tmp_path):
    masked, mask = mask_cells(make_table(n=40), ["age", "occupation"], 0.2)
    path = tmp_path / "table.csv"
    masked.to_csv(path, index=False)
    return path, masked, mask


@pytest.mark.parametrize("method", ["mean", "mice", "knn", "zero"])
def test_fills_csv_to_parquet(csv_table, tmp_path, capsys, method):
    path, masked, mask = csv_table
    out = tmp_path / "filled.parquet"
    report = tmp_path / "report.json"
    assert main(["impute", str(path), "--method", method, "--out", str(out), "--report", str(report)]) == 0
    filled = pd.read_parquet(out)
    assert filled.shape == masked.shape and not filled.isna().any().any()
    text = capsys.readouterr().out
    assert f"{int(mask.to_numpy().sum())} cells filled by {method}" in text and "occupation (categorical)" in text
    assert json.loads(report.read_text())["cells_filled"] == int(mask.to_numpy().sum())
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left behind


def test_deletion_reports_dropped_rows(csv_table, tmp_path, capsys):
    path, masked, mask = csv_table
    out = tmp_path / "kept.csv"
    assert main(["impute", str(path), "--method", "deletion", "--out", str(out)]) == 0
    assert len(pd.read_csv(out)) == int((~mask.any(axis=1)).sum())
    assert "dropped" in capsys.readouterr().out


def test_declared_kinds(tmp_path):
    path = tmp_path / "t.csv"
    pd.DataFrame({"code": [1, 2, 2, np.nan, 1, 3], "x": [1.0, 2, 3, 4, 5, 6]}).to_csv(path, index=False)
    out = tmp_path / "o.csv"
    assert main(["impute", str(path), "--method", "mean", "--categorical", "code", "--out", str(out)]) == 0
    assert pd.read_csv(out)["code"].tolist() == [1, 2, 2, 1, 1, 3]  # the mode, not the mean 1.8


@pytest.mark.parametrize("content, suffix, message", [
    ("", ".csv", "the file is empty"),
    ("a,b\n", ".csv", "no rows"),
    ("a,b\n1,2\n", ".txt", "unknown table format"),
    ("age,name\n1,x\n2,y\nabc,z\n4,w\n5,v\n6,u\n7,t\n8,s\n9,r\n10,q\n", ".csv", "row 2 holds 'abc'"),
    ("a,b\n1,\n2,\n", ".csv", "'b' has no observed value"),
])
def test_bad_input_is_a_clear_error(tmp_path, capsys, content, suffix, message):
    path = tmp_path / f"bad{suffix}"
    path.write_text(content)
    out = tmp_path / "out.csv"
    assert main(["impute", str(path), "--method", "mean", "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_missing_file(tmp_path, capsys):
    assert main(["impute", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o.csv")]) == 2
    assert "no such file" in capsys.readouterr().err


@pytest.mark.parametrize("numbers", ["generate", "expected", "expected-grid"])
def test_llm_method_with_a_model_folder(tmp_path, capsys, monkeypatch, tiny, numbers):
    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path / "cache"))
    lm = tiny
    folder = tmp_path / "tiny"
    lm.model.save_pretrained(folder)
    lm.tokenizer.save_pretrained(folder)
    masked, mask = mask_cells(make_table(n=16), ["age", "gender"], 0.25)
    path = tmp_path / "t.parquet"
    masked.to_parquet(path)
    out = tmp_path / "o.parquet"
    code = main(["impute", str(path), "--method", "llm", "--model", str(folder), "--examples", "8", "--out", str(out),
                 "--quiet", "--threads", "1", "--numbers", numbers])
    assert code == 0
    filled = pd.read_parquet(out)
    assert not filled[["age", "gender"]].isna().any().any()
    assert set(filled.loc[mask["gender"], "gender"]) <= {"M", "F"}
    printed = capsys.readouterr().out
    assert "llm-score" in printed and ("llm-expected" in printed) == (numbers != "generate")
