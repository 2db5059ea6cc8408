"""``recllm impute``: CSV / parquet in, filled table out atomically, a short report, clear errors."""

import json
import time

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
    ("a,b\n1,\n2,\n", ".csv", "'b' has no observed value"),
])
def test_bad_input_is_a_clear_error(tmp_path, capsys, content, suffix, message):
    path = tmp_path / f"bad{suffix}"
    path.write_text(content)
    out = tmp_path / "out.csv"
    assert main(["impute", str(path), "--method", "mean", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err  # the file is named, also where the estimator found the fault
    assert not out.exists()


def test_a_column_declared_two_kinds_names_the_file_and_what_to_do(tmp_path, capsys):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,\n2,x\n")
    assert main(["impute", str(path), "--method", "mean", "--categorical", "a", "--numeric", "a",
                 "--out", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert "declared both categorical and numeric" in err and str(path) in err and "one kind only" in err


def test_junk_in_a_declared_numeric_column_names_its_line(tmp_path, capsys):
    content = "age,name\n1,x\n2,y\nabc,z\n4,w\n5,v\n6,u\n7,t\n8,s\n9,r\n10,\n"
    code, path, out = _impute_csv(tmp_path, content, "--numeric", "age")
    err = capsys.readouterr().err
    assert code == 2 and "'abc'" in err and "line 4" in err and not out.exists()
    code, path, out = _impute_csv(tmp_path, content)  # undeclared: the column is text, and a note says why
    assert code == 0 and "column 'age' is read as text: line 4 holds 'abc'" in capsys.readouterr().out


def test_an_infinite_value_is_named_by_its_row_or_line_in_the_file(tmp_path, capsys):
    """A parquet inf was named by its pandas index label (row 4 for the 5th row)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "p.parquet"
    pq.write_table(pa.table({"f": [1.5, None, 2.0, 3.0, float("inf"), -float("inf")]}), path)
    out = tmp_path / "o.parquet"
    assert main(["impute", str(path), "--method", "mean", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"column 'f' holds an infinite value ({path}, row 5; 2 such cells)" in err and not out.exists()
    for cell in ("inf", "-1e400"):
        code, path, out = _impute_csv(tmp_path, f"a,b\n1,x\n2,\n{cell},y\n", "--numeric", "a")
        err = capsys.readouterr().err
        assert code == 2 and f"holds {cell!r} ({path}, line 4)" in err and not out.exists()


def test_an_output_that_cannot_hold_a_declared_numeric_column_is_refused_before_the_fit(tmp_path, capsys,
                                                                                         monkeypatch):
    import decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    from recllm.impute import MeanModeImputer

    def never(*args, **kwargs):
        raise AssertionError("the imputer was fitted")

    monkeypatch.setattr(MeanModeImputer, "fit", never)
    path = tmp_path / "t.csv"
    path.write_text("id,big\n1,12345678901234567890\n2,\n3,4\n")
    code = main(["impute", str(path), "--method", "mean", "--numeric", "big", "--out", str(tmp_path / "o.parquet")])
    err = capsys.readouterr().err
    assert code == 2 and "holds '12345678901234567890', which neither a parquet int64" in err, err
    assert f"({path}, line 2)" in err and not (tmp_path / "o.parquet").exists()
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"dec": pa.array([decimal.Decimal("1.50"), None, decimal.Decimal("3.00")],
                                             pa.decimal128(5, 2)), "x": [1.0, 2.0, None]}), path)
    for out in ("o.parquet", "o.csv"):
        assert main(["impute", str(path), "--method", "mean", "--numeric", "dec", "--out", str(tmp_path / out)]) == 2
        err = capsys.readouterr().err
        assert "column 'dec' is declared numeric, but as a parquet decimal128(5, 2) column" in err and str(path) in err
        assert not (tmp_path / out).exists()


def test_na_values_are_taken_exactly_as_written(tmp_path, capsys):
    """' NA' declares the text with its space: the bare NA nobody declared stays (it was filled: the marker was
    stripped); spaces around a marker are named on stderr."""
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,NA\n2, NA\n3,x\n4,x\n")
    out = tmp_path / "o.csv"
    assert main(["impute", str(path), "--method", "mean", "--na-values", " NA", "--out", str(out)]) == 0
    assert out.read_text().splitlines() == ["a,b", "1,NA", "2,x", "3,x", "4,x"]
    assert "gap marker ' NA' taken as written" in capsys.readouterr().err
    out.unlink()
    assert main(["impute", str(path), "--method", "mean", "--na-values", "NA,?", "--out", str(out)]) == 0
    assert out.read_text().splitlines() == ["a,b", "1,x", "2, NA", "3,x", "4,x"]
    assert main(["impute", str(path), "--method", "mean", "--na-values", ",", "--out", str(tmp_path / "p.csv")]) == 2
    assert "names no marker" in capsys.readouterr().err and not (tmp_path / "p.csv").exists()


def test_na_value_takes_one_marker_whole_commas_included(tmp_path, capsys):
    """--na-value gives a marker --na-values cannot (one holding a comma), and adds to --na-values."""
    path = tmp_path / "t.csv"
    path.write_text('a,b\n1,"n,a"\n2,?\n3,x\n4,x\n5,NA\n')
    out = tmp_path / "o.csv"
    assert main(["impute", str(path), "--method", "mean", "--na-value", "n,a", "--na-values", "?",
                 "--out", str(out)]) == 0
    assert out.read_text().splitlines() == ["a,b", "1,x", "2,x", "3,x", "4,x", "5,NA"]
    assert main(["impute", str(path), "--method", "mean", "--na-value", "", "--out", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err
    assert "--na-value '' is the empty cell" in err and not (tmp_path / "p.csv").exists()
    assert main(["impute", str(path), "--method", "mean", "--na-values", ",", "--out", str(tmp_path / "p.csv")]) == 2
    assert "--na-value ','" in capsys.readouterr().err
    for option in ("--na-value=--", "--na-values=--"):  # argparse hands a lone '--' over as an empty list
        assert main(["impute", str(path), "--method", "mean", option, "--out", str(tmp_path / "p.csv")]) == 2
        err = capsys.readouterr().err
        assert "reached recllm empty" in err and "--na-values=--," in err and not (tmp_path / "p.csv").exists()


def test_a_device_as_the_table_is_named_as_such(tmp_path, capsys):
    link = tmp_path / "x.csv"
    link.symlink_to("/dev/null")
    assert main(["impute", str(link), "--method", "mean", "--out", str(tmp_path / "o.csv")]) == 2
    assert "not a regular file" in capsys.readouterr().err


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


# ------------------------------------------------------------------ the table is read as written (issue 13)
def _cells(path, sep=",", encoding="utf-8"):
    """Every cell of a CSV file as text, header included (the csv module: no type guessing)."""
    import csv

    with open(path, newline="", encoding=encoding) as f:
        return [row for row in csv.reader(f, delimiter=sep) if row]


def _impute_csv(tmp_path, content, *args, method="mean", name="t.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(content.encode(encoding))
    out = tmp_path / ("o" + path.suffix)
    code = main(["impute", str(path), "--method", method, "--out", str(out), *args])
    return code, path, out


NA_LIKE = ["NA", "None", "null", "n/a", "NaN", "nan", "-", "NULL"]


def test_na_like_strings_are_values_not_gaps(tmp_path, capsys):
    rows = [f"{v},{i}" for i, v in enumerate(NA_LIKE * 2)] + ["x,", ",3"]  # one real gap in each column
    code, path, out = _impute_csv(tmp_path, "name,n\n" + "\n".join(rows) + "\n")
    assert code == 0, capsys.readouterr().err
    got, sent = _cells(out), _cells(path)
    assert [r[0] for r in got[1:-1]] == [r[0] for r in sent[1:-1]]  # every NA-like string kept as written
    assert got[-2][1] != "" and got[-1][0] in NA_LIKE  # only the two empty cells were filled
    assert "2 cells filled" in capsys.readouterr().out


def test_na_values_option_marks_extra_gaps(tmp_path, capsys):
    code, path, out = _impute_csv(tmp_path, "a,b\n1,x\nNA,y\n3,?\n5,x\n", "--na-values", "NA, ?")
    assert code == 0, capsys.readouterr().err
    got = _cells(out)
    assert [r[0] for r in got] == ["a", "1", "3", "3", "5"]  # NA -> the mean of 1, 3, 5
    assert [r[1] for r in got] == ["b", "x", "y", "x", "x"]  # ? -> the mode
    assert "2 cells filled" in capsys.readouterr().out


@pytest.mark.parametrize("declared", [[], ["--categorical", "zip"]])
def test_leading_zeros_are_kept(tmp_path, capsys, declared):
    content = "zip,n\n02582,1\n00501,2\n,3\n02582,4\n10001,5\n"
    code, path, out = _impute_csv(tmp_path, content, *declared)
    assert code == 0, capsys.readouterr().err
    got = [r[0] for r in _cells(out)]
    assert got[:3] + got[4:] == ["zip", "02582", "00501", "02582", "10001"]
    assert got[3] == "02582"  # filled with the most frequent code, as text


def test_long_integer_ids_are_kept(tmp_path, capsys):
    content = "id,n\n1234567890123456789,1\n9007199254740993,2\n,3\n"
    code, path, out = _impute_csv(tmp_path, content)
    assert code == 0, capsys.readouterr().err
    assert [r[0] for r in _cells(out)][1:3] == ["1234567890123456789", "9007199254740993"]


def test_a_column_name_with_spaces_or_a_comma_can_be_named_as_the_note_says(tmp_path, capsys):
    """A header 'x, y' gives a column ' y', which --numeric ' y' could not name (the name was stripped), and the
    note's advice '--numeric  y' did not work in a shell."""
    content = 'x, y,"a,b"\n1,02,5\n2,3,6\n,4,\n4,5,8\n'
    code, path, out = _impute_csv(tmp_path, content)
    assert code == 0, capsys.readouterr().err
    assert "pass --numeric ' y' to read numbers" in capsys.readouterr().out
    code, path, out = _impute_csv(tmp_path, content, "--numeric", " y", "--categorical", "a,b", "--overwrite")
    assert code == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    assert "' y' is read as text" not in text and "a,b (categorical)" in text
    code, path, out = _impute_csv(tmp_path, content, "--numeric", "x, y", "--overwrite")  # a list: exact names first
    assert code == 0, capsys.readouterr().err
    assert "x (numeric)" in capsys.readouterr().out


def test_duplicated_header_is_an_error_naming_line_1(tmp_path, capsys):
    code, path, out = _impute_csv(tmp_path, "a,b,a\n1,2,3\n,5,6\n")
    err = capsys.readouterr().err
    assert code == 2 and "'a'" in err and "line 1" in err and str(path) in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


def test_short_line_is_an_error_naming_its_line(tmp_path, capsys):
    code, path, out = _impute_csv(tmp_path, "a,b,c\n1,2,3\n4,5\n7,,9\n")
    err = capsys.readouterr().err
    assert code == 2 and "line 3" in err and "2 field" in err and str(path) in err and not out.exists()


def test_long_line_is_an_error_naming_its_line(tmp_path, capsys):
    code, path, out = _impute_csv(tmp_path, "a,b\n1,2\n3,\n4,5,6\n")
    err = capsys.readouterr().err
    assert code == 2 and "line 4" in err and "3 field" in err and not out.exists()


@pytest.mark.parametrize("sep, shown", [(";", "--sep ';'"), ("\t", "--sep '\\t'")])
def test_other_separator_is_an_error_suggesting_sep(tmp_path, capsys, sep, shown):
    content = sep.join("abc") + "\n" + sep.join(["1", "", "x"]) + "\n" + sep.join(["2", "3", "y"]) + "\n"
    code, path, out = _impute_csv(tmp_path, content)
    err = capsys.readouterr().err
    assert code == 2 and shown in err and "line 1" in err and not out.exists()


def test_sep_option_reads_and_writes_that_separator(tmp_path, capsys):
    code, path, out = _impute_csv(tmp_path, "a;b\n1,5;x\n;y\n2,5;x\n", "--sep", ";")
    assert code == 0, capsys.readouterr().err
    assert _cells(out, sep=";") == [["a", "b"], ["1,5", "x"], ["1,5", "y"], ["2,5", "x"]]  # '1,5' is text here


def test_latin1_file_needs_its_encoding(tmp_path, capsys):
    content = "name,n\ncafé,1\nSão Paulo,\nMünchen,3\n"
    code, path, out = _impute_csv(tmp_path, content, encoding="latin-1")
    err = capsys.readouterr().err
    assert code == 2 and "line 2" in err and "--encoding" in err and len(err.strip().splitlines()) == 1
    code, path, out = _impute_csv(tmp_path, content, "--encoding", "latin-1", encoding="latin-1")
    assert code == 0, capsys.readouterr().err
    got = _cells(out, encoding="latin-1")
    assert [r[0] for r in got] == ["name", "café", "São Paulo", "München"] and got[2][1] == "2"


def test_output_keeps_every_observed_cell_as_text(tmp_path, capsys):
    masked, mask = mask_cells(make_table(n=30), ["age", "occupation", "income"], 0.2)
    path = tmp_path / "t.csv"
    masked.to_csv(path, index=False)
    for method in ("mean", "mice"):
        out = tmp_path / f"{method}.csv"
        assert main(["impute", str(path), "--method", method, "--out", str(out)]) == 0, capsys.readouterr().err
        sent, got = _cells(path), _cells(out)
        assert len(got) == len(sent) and got[0] == sent[0]
        for row_in, row_out in zip(sent[1:], got[1:]):
            assert all(a == b for a, b in zip(row_in, row_out) if a != "")
            assert all(b != "" for b in row_out)


def test_a_table_without_gaps_round_trips_byte_for_byte(tmp_path, capsys):
    content = ('id,zip,price,name,when\r\n007,02582,1.50,"Smith, J.",2024-01-02\r\n'
               '8,10001,2.0e3,"say ""hi""",2024-01-03\r\n9,00501,-0.0,"two\nlines","x"\r\n'
               '10,10001,3,NA,  2024-01-04 \r\n')
    code, path, out = _impute_csv(tmp_path, content)
    assert code == 0, capsys.readouterr().err
    assert out.read_bytes() == path.read_bytes()
    # with a gap: the other rows are still their original bytes, the gap row keeps its observed cells' text
    code, path, out = _impute_csv(tmp_path, content + '11,,4,"x",\r\n', "--overwrite")
    assert code == 0, capsys.readouterr().err
    got = out.read_bytes().decode()
    assert got.startswith(content) and got[len(content):] == '11,10001,4,"x",2024-01-02\r\n'  # the modes


# ------------------------------------------------------------------ output paths and arguments, checked before any work
@pytest.mark.parametrize("out, extra, message", [
    ("o.txt", [], "unsupported output file type"),
    ("folder.csv", [], "is a folder"),
    ("exists.csv", [], "already exists"),
    ("t.csv", ["--overwrite"], "--out is the input table"),
    ("o.csv", ["--report", "r.txt"], "unsupported output file type"),
    ("o.csv", ["--report", "exists.csv"], "unsupported output file type"),
    ("o.csv", ["--sep", ";;"], "--sep"),
    ("o.csv", ["--encoding", "klingon"], "--encoding"),
    ("o.csv", ["--encoding", "rot13"], "unknown encoding 'rot13' (--encoding)"),  # a codec, but not of text
    ("o.csv", ["--encoding", "hex"], "unknown encoding 'hex' (--encoding)"),
    ("o.csv", ["--examples", "0"], "--examples"),
    ("o.csv", ["--epochs", "0"], "--epochs"),
    ("o.csv", ["--lr", "2"], "learning_rate"),
    ("o.csv", ["--model", "./no/such/folder"], "--model"),
])
def test_arguments_are_checked_before_the_model_loads(tmp_path, capsys, monkeypatch, out, extra, message):
    from recllm.impute.llm import LLMImputer

    def never(*args, **kwargs):
        raise AssertionError("the model was reached")

    monkeypatch.setattr(LLMImputer, "fit", never)
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,x\n,y\n")
    (tmp_path / "folder.csv").mkdir()
    (tmp_path / "exists.csv").write_text("keep me")
    start = time.perf_counter()
    code = main(["impute", str(path), "--method", "llm", "--out", str(tmp_path / out), *extra])
    seconds = time.perf_counter() - start
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert seconds < 1.0
    assert (tmp_path / "exists.csv").read_text() == "keep me" and path.read_text() == "a,b\n1,x\n,y\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exists.csv", "folder.csv", "t.csv"]  # nothing created


def test_overwrite_replaces_an_existing_output(tmp_path, capsys):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,x\n,y\n3,x\n")
    out, report = tmp_path / "o.csv", tmp_path / "r.json"
    out.write_text("old")
    report.write_text("old")
    args = ["impute", str(path), "--method", "mean", "--out", str(out), "--report", str(report)]
    assert main(args) == 2 and "already exists" in capsys.readouterr().err and out.read_text() == "old"
    assert main([*args, "--overwrite"]) == 0
    assert out.read_text() == "a,b\n1,x\n2,y\n3,x\n" and json.loads(report.read_text())["cells_filled"] == 1


def test_an_output_file_that_appears_while_imputing_is_not_replaced(tmp_path, capsys, monkeypatch):
    """--out was free when the command started; a file written there meanwhile (another job, the user) is kept
    and the result is set beside it, not over it."""
    from recllm.impute.classic import MeanModeImputer

    path, out = tmp_path / "t.csv", tmp_path / "o.csv"
    path.write_text("a,b\n1,x\n,y\n3,x\n")
    transform = MeanModeImputer.transform

    def transform_then_appear(self, frame):
        out.write_text("someone else's")
        return transform(self, frame)

    monkeypatch.setattr(MeanModeImputer, "transform", transform_then_appear)
    assert main(["impute", str(path), "--method", "mean", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "a file appeared at o.csv" in err and "o.csv.new" in err and len(err.strip().splitlines()) == 1
    assert out.read_text() == "someone else's" and (tmp_path / "o.csv.new").read_text() == "a,b\n1,x\n2,y\n3,x\n"


@pytest.mark.parametrize("report, words", [
    ("r.json", "choose a new --report file, or pass --overwrite"),  # exists
    ("t.csv/r.json", "give --report a path inside a folder"),
])
def test_a_report_path_mistake_names_report_not_out(tmp_path, capsys, report, words):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,x\n,y\n")
    (tmp_path / "r.json").write_text("keep me")
    assert main(["impute", str(path), "--out", str(tmp_path / "o.csv"), "--report", str(tmp_path / report)]) == 2
    err = capsys.readouterr().err
    assert words in err and "--out" not in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "t.csv"]
    assert (tmp_path / "r.json").read_text() == "keep me"


def _fills(tmp_path, path, method, seed, name):
    out = tmp_path / f"{name}.csv"
    assert main(["impute", str(path), "--method", method, "--seed", str(seed), "--out", str(out), "--quiet"]) == 0
    return pd.read_csv(out)


def test_miceforest_takes_the_seed(tmp_path):
    pytest.importorskip("miceforest")
    masked, _ = mask_cells(make_table(n=30), ["age", "occupation", "income"], 0.3)
    path = tmp_path / "table.csv"
    masked.to_csv(path, index=False)
    a, b = _fills(tmp_path, path, "miceforest", 3, "a"), _fills(tmp_path, path, "miceforest", 3, "b")
    pd.testing.assert_frame_equal(a, b)
    assert not _fills(tmp_path, path, "miceforest", 0, "c").equals(a)  # the seed reaches miceforest


def test_great_takes_the_seed(tmp_path, monkeypatch):
    from recllm.impute.base import statistic_fill
    from recllm.impute.peers import GReaTImputer

    seeds = []

    def fit(self, frame):  # GReaT's training and sampling replaced: only the seed it would use is recorded
        seeds.append(self.seed)
        self.names_ = self._names()
        self.great_, self.max_length_ = None, 8

    monkeypatch.setattr(GReaTImputer, "_fit", fit)
    monkeypatch.setattr(GReaTImputer, "_impute", lambda self, frame, mask, report: {
        c: statistic_fill(self.columns_[c], int(mask[c].sum())) for c in frame.columns if mask[c].any()})
    masked, _ = mask_cells(make_table(n=12), ["age"], 0.3)
    path = tmp_path / "table.csv"
    masked.to_csv(path, index=False)
    out = tmp_path / "o.csv"
    assert main(["impute", str(path), "--method", "great", "--seed", "7", "--out", str(out), "--quiet"]) == 0
    assert seeds == [7]
