"""The table reader/writer of ``recllm impute``: cells as written, gaps only where empty, errors naming the line."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recllm.data.dataset import DataError
from recllm.impute import DeletionImputer, MeanModeImputer
from recllm.impute.table_io import CsvFormat, declare_kinds, parse_sep, read_table, write_table


def _csv(tmp_path, content: str, name: str = "t.csv", encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(content.encode(encoding))
    return path


def _error(call) -> str:
    with pytest.raises(DataError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------------------------------- cells and gaps
def test_only_an_empty_cell_is_a_gap(tmp_path):
    values = ["NA", "None", "null", "n/a", "NaN", "-", "", " "]
    path = _csv(tmp_path, "v,n\n" + "\n".join(f"{v},{i}" for i, v in enumerate(values)) + "\n")
    table = read_table(path)
    assert table.frame["v"].isna().tolist() == [False] * 6 + [True, False]
    assert table.frame["v"].dropna().tolist() == ["NA", "None", "null", "n/a", "NaN", "-", " "]
    assert table.numeric == ("n",) and table.frame["n"].tolist() == list(range(8))


def test_na_values_mark_extra_gaps(tmp_path):
    path = _csv(tmp_path, "v,n\nNA,1\nnull,NA\nx,3\n")
    table = read_table(path, CsvFormat(na_values=("NA",)))
    assert table.frame["v"].isna().tolist() == [True, False, False]
    assert table.numeric == ("n",) and np.isnan(table.frame["n"].iloc[1])


def test_column_types(tmp_path):
    content = ("int,float,zip,id,mixed,nan,code\n"
               "1,1.5,02582,1234567890123456789,1,nan,7\n"
               "2,-2e3,10001,2,x,1,8\n"
               ",.5,,3,3,2,9\n")
    table = read_table(_csv(tmp_path, content), categorical=("code",))
    assert table.numeric == ("int", "float")
    assert table.frame["float"].tolist() == [1.5, -2000.0, 0.5]
    assert table.frame["zip"].tolist()[:2] == ["02582", "10001"]
    assert table.frame["id"].tolist() == ["1234567890123456789", "2", "3"]
    assert table.frame["code"].tolist() == ["7", "8", "9"]
    notes = " ".join(table.notes)
    assert "'zip' is read as text: line 2 holds '02582' (a leading zero" in notes
    assert "'id' is read as text: line 2 holds '1234567890123456789' (an integer of more than 15 digits" in notes


def test_declared_numeric_junk_names_its_line(tmp_path):
    path = _csv(tmp_path, "a,b\n1,x\n\n2,y\n3 x,z\n")
    message = _error(lambda: read_table(path, numeric=("a",)))
    assert "'3 x'" in message and "line 5" in message and str(path) in message


def test_declared_column_must_exist(tmp_path):
    assert "'nope'" in _error(lambda: read_table(_csv(tmp_path, "a\n1\n"), categorical=("nope",)))


# ---------------------------------------------------------------------------------------------- errors
def test_duplicated_header_names_its_line(tmp_path):
    assert "line 1" in _error(lambda: read_table(_csv(tmp_path, "a,b,a\n1,2,3\n")))
    assert "line 3" in _error(lambda: read_table(_csv(tmp_path, "\n\na,b,a\n1,2,3\n")))


def test_unnamed_column_is_an_error(tmp_path):
    message = _error(lambda: read_table(_csv(tmp_path, "a,,c\n1,2,3\n")))
    assert "column 2" in message and "line 1" in message


def test_wrong_field_count_names_the_editor_line(tmp_path):
    # the quoted cell spans lines 2-3, so the short row is on line 5 of the file
    path = _csv(tmp_path, 'a,b,c\n1,"two\nlines",3\n4,5,6\n7,8\n9,10,11,12\n')
    message = _error(lambda: read_table(path))
    assert "line 5" in message and "2 field(s)" in message and "2 such lines" in message and str(path) in message


@pytest.mark.parametrize("sep, shown", [(";", "--sep ';'"), ("\t", "--sep '\\t'"), ("|", "--sep '|'")])
def test_one_column_header_on_another_separator_suggests_sep(tmp_path, sep, shown):
    path = _csv(tmp_path, f"a{sep}b{sep}c\n1{sep}2{sep}3\n")
    message = _error(lambda: read_table(path))
    assert shown in message and "line 1" in message
    assert read_table(path, CsvFormat(sep=parse_sep(shown.split("'")[1]))).frame.shape == (1, 3)


def test_a_one_column_table_is_fine(tmp_path):
    table = read_table(_csv(tmp_path, 'name\nx;y\n""\nz\n'))
    assert table.frame["name"].tolist()[0] == "x;y" and table.frame["name"].isna().tolist() == [False, True, False]


def test_broken_quoting_names_its_line(tmp_path):
    assert "line 3" in _error(lambda: read_table(_csv(tmp_path, 'a,b\n1,2\n3,"x"y\n')))
    assert "line 3" in _error(lambda: read_table(_csv(tmp_path, 'a,b\n1,2\n3,"never closed\n4,5\n')))


def test_undecodable_byte_names_its_line(tmp_path):
    path = _csv(tmp_path, "a,b\n1,x\n2,café\n", encoding="latin-1")
    message = _error(lambda: read_table(path))
    assert "line 3" in message and "--encoding" in message
    assert read_table(path, CsvFormat(encoding="latin-1")).frame["b"].tolist() == ["x", "café"]


@pytest.mark.parametrize("content, message", [("", "empty"), ("\n\n", "empty"), ("a,b\n", "no rows")])
def test_empty_tables(tmp_path, content, message):
    assert message in _error(lambda: read_table(_csv(tmp_path, content)))


def test_format_options_are_checked():
    assert parse_sep("\\t") == "\t" == parse_sep("tab")
    for bad in ("", ";;", '"'):
        assert "--sep" in _error(lambda: CsvFormat(sep=bad))
    assert "--encoding" in _error(lambda: CsvFormat(encoding="no-such-codec"))
    for codec in ("rot13", "hex", "zlib"):  # codecs, but not of text: LookupError at decode time
        assert _error(lambda: CsvFormat(encoding=codec)).startswith(f"unknown encoding {codec!r} (--encoding)")


# ---------------------------------------------------------------------------------------------- writing
def _fill(table, imputer=None):
    imputer = declare_kinds(imputer or MeanModeImputer(), table)
    return imputer.fit(table.frame).transform(table.frame)


@pytest.mark.parametrize("content", [
    'a,b\r\n1,"x"\r\n02,"y, z"\r\n',  # CRLF, needless quotes, a leading zero
    '\ufeffa;b\n1,5;"say ""hi"""\n2;NA',  # a byte-order mark, ';', no final newline
])
def test_a_table_without_gaps_is_written_back_unchanged(tmp_path, content):
    path = _csv(tmp_path, content)
    table = read_table(path, CsvFormat(sep=";" if ";" in content else ","))
    out = tmp_path / "o.csv"
    write_table(table, _fill(table), out)
    assert out.read_bytes() == path.read_bytes()


def test_filled_rows_keep_observed_cells_and_format_numbers(tmp_path):
    path = _csv(tmp_path, 'n,x,zip,s\n1,0.5,02582,"a,b"\n,,,\n4,1.5,02582,"a,b"\n2,1,00501,c\n')
    table = read_table(path)
    out = tmp_path / "o.csv"
    write_table(table, _fill(table), out)
    lines = out.read_text().splitlines()
    assert lines[:2] + lines[3:] == ['n,x,zip,s', '1,0.5,02582,"a,b"', '4,1.5,02582,"a,b"', '2,1,00501,c']
    # n: mean 7/3 (a float: no rounding); x: mean 1.0 of a decimal column written as the float it is
    assert lines[2] == f'{7 / 3!r},1.0,02582,"a,b"'


def test_integral_fill_of_an_integer_column_has_no_decimal_point(tmp_path):
    table = read_table(_csv(tmp_path, "n,m\n1,1.0\n,\n3,3.0\n"))
    out = tmp_path / "o.csv"
    write_table(table, _fill(table), out)
    assert out.read_text().splitlines()[2] == "2,2.0"


def test_deletion_writes_the_complete_rows_as_they_were(tmp_path):
    path = _csv(tmp_path, "a,b\n01,x\n,y\n3,\n04,w\n")
    table = read_table(path)
    out = tmp_path / "o.csv"
    write_table(table, _fill(table, DeletionImputer()), out)
    assert out.read_text() == "a,b\n01,x\n04,w\n"


def test_a_fill_the_encoding_cannot_write_is_an_error(tmp_path):
    table = read_table(_csv(tmp_path, "a,b\n1,x\n2,\n", encoding="latin-1"), CsvFormat(encoding="latin-1"))
    filled = table.frame.copy()
    filled.loc[1, "b"] = "→"
    assert "latin-1" in _error(lambda: write_table(table, filled, tmp_path / "o.csv"))
    assert not (tmp_path / "o.csv").exists()


def test_csv_to_parquet_types(tmp_path):
    table = read_table(_csv(tmp_path, "n,x,zip\n1,0.5,02582\n,,\n3,1.5,00501\n"))
    out = tmp_path / "o.parquet"
    write_table(table, _fill(table), out)
    back = pq.read_table(out)
    assert back.column("n").type == pa.int64() and back.column("n").to_pylist() == [1, 2, 3]
    assert back.column("x").type == pa.float64()
    assert pa.types.is_string(back.column("zip").type) or pa.types.is_large_string(back.column("zip").type)
    assert back.column("zip").to_pylist() == ["02582", "02582", "00501"]


def test_a_number_with_more_significant_digits_than_float64_keeps_its_column_as_text(tmp_path):
    """12345678901234567.0 and 0.12345678901234567890 were read as float64 (rounded) without a word."""
    content = ("x,y,z\n12345678901234567.0,0.12345678901234567890,123456789012345\n1,1.000000000000000000,0.5\n"
               ",,\n")
    table = read_table(_csv(tmp_path, content))
    assert table.numeric == ("z",) and table.frame["x"].tolist()[:2] == ["12345678901234567.0", "1"]
    notes = " ".join(table.notes)
    assert "'x' is read as text: line 2 holds '12345678901234567.0' (a number of more than 15 significant" in notes
    assert "'y' is read as text: line 2 holds '0.12345678901234567890'" in notes
    assert read_table(_csv(tmp_path, "y\n1.000000000000000000\n2.5\n")).numeric == ("y",)  # zeros: no digits lost


def test_a_number_nearer_to_zero_than_float64_holds_keeps_its_column_as_text(tmp_path):
    """1e-400 was read as 0.0 (and written so to a parquet output) without a word."""
    content = "a,b,c,d\n1e-400,1.234567e-320,1e-310,0e-400\n2,3,4,-0.0\n,,,\n"
    table = read_table(_csv(tmp_path, content))
    assert table.numeric == ("c", "d") and table.frame["a"].tolist()[:2] == ["1e-400", "2"]
    notes = " ".join(table.notes)
    assert "'a' is read as text: line 2 holds '1e-400', nearer to 0 than float64 holds (a number would be 0.0)" in notes
    assert "'b' is read as text: line 2 holds '1.234567e-320'" in notes and "1.2347e-320" in notes
    for col, cell in (("a", "'1e-400'"), ("b", "'1.234567e-320'")):
        message = _error(lambda: read_table(_csv(tmp_path, content), numeric=(col,)))
        assert f"column {col!r} is declared numeric but holds {cell}, nearer to 0" in message and "line 2" in message


def test_csv_to_parquet_integers_are_made_from_their_text(tmp_path):
    """With --numeric, 12345678901234567 was written to int64 through float64 as 12345678901234568."""
    table = read_table(_csv(tmp_path, "x,y\n12345678901234567,a\n5,b\n-0,\n1,a\n,b\n"), numeric=("x",))
    out = tmp_path / "o.parquet"
    filled = table.frame.fillna({"x": 3.0, "y": "a"})
    write_table(table, filled, out)
    back = pq.read_table(out)
    assert back.column("x").type == pa.int64()
    assert back.column("x").to_pylist() == [12345678901234567, 5, 0, 1, 3]
    filled["x"] = filled["x"].where(filled["x"] != 3.0, 2.5)  # a fill that is not whole: float64 would round it
    message = _error(lambda: write_table(table, filled, tmp_path / "p.parquet"))
    assert "'12345678901234567'" in message and "line 2" in message and ".csv" in message
    assert not (tmp_path / "p.parquet").exists()


def _parquet(tmp_path):
    arrow = pa.table({
        "i": pa.array([1, 2, 3, 4, 5], pa.int64()),
        "j": pa.array([1, None, 3, 4, 4], pa.int32()),
        "f": pa.array([1.5, None, 2.5, 3.0, 2.0], pa.float32()),
        "s": pa.array(["02582", None, "NA", "02582", "x"]),
        "d": pa.array(["x", "y", None, "x", "x"]).dictionary_encode(),
    })
    path = tmp_path / "t.parquet"
    pq.write_table(arrow, path)
    return path, arrow


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_parquet_keeps_its_schema(tmp_path, suffix):
    path, arrow = _parquet(tmp_path)
    table = read_table(path)
    assert table.frame["s"].iloc[2] == "NA" and table.numeric == ("i", "j", "f")
    filled = _fill(table)
    out = tmp_path / f"o{suffix}"
    write_table(table, filled, out)
    if suffix == ".csv":
        written = pd.read_csv(out, dtype=str, keep_default_na=False)
        assert written["s"].tolist() == ["02582", "02582", "NA", "02582", "x"]
        return
    back = pq.read_table(out)
    assert back.schema.equals(arrow.schema, check_metadata=False)
    for col in arrow.column_names:  # observed cells equal
        assert [b for a, b in zip(arrow.column(col).to_pylist(), back.column(col).to_pylist()) if a is not None] == \
            [a for a in arrow.column(col).to_pylist() if a is not None]
    assert back.column("j").to_pylist()[1] == 3  # mean 3.0 of an int32 column, as an integer
    assert back.column("d").to_pylist()[2] == "x" and back.column("s").to_pylist()[1] == "02582"


def test_parquet_na_values_and_deletion(tmp_path):
    path, arrow = _parquet(tmp_path)
    table = read_table(path, CsvFormat(na_values=("NA",)))
    assert table.frame["s"].isna().tolist() == [False, True, True, False, False]
    out = tmp_path / "o.parquet"
    write_table(table, _fill(table, DeletionImputer()), out)
    back = pq.read_table(out)
    assert back.schema.equals(arrow.schema, check_metadata=False) and back.column("i").to_pylist() == [1, 4, 5]


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_parquet_integers_beyond_float64_keep_their_digits(tmp_path, suffix):
    """An int64 column with a gap was read as float64 (9007199254740993 came back ...992); a uint64 one at the top
    of its range failed after the fill. Both are read as text, kept digit for digit, and written back as integers."""
    path = tmp_path / "big.parquet"
    big = [9007199254740993, 9007199254740995, None, 123]
    pq.write_table(pa.table({"id": pa.array(big, pa.int64()),
                             "u": pa.array([2 ** 64 - 1, 5, 7, 9], pa.uint64()),
                             "small": pa.array([1, None, 3, 4], pa.int64()),
                             "x": [1.0, None, 3.0, 4.0]}), path)
    table = read_table(path)
    assert table.numeric == ("small", "x") and any("'id' is read as text" in note for note in table.notes)
    out = tmp_path / f"o{suffix}"
    write_table(table, _fill(table), out)
    if suffix == ".csv":
        written = pd.read_csv(out, dtype=str, keep_default_na=False)
        assert written["id"].tolist()[:2] + written["id"].tolist()[3:] == ["9007199254740993", "9007199254740995",
                                                                              "123"]
        assert written["u"].tolist()[0] == "18446744073709551615"
        return
    back = pq.read_table(out)
    assert back.schema.field("id").type == pa.int64() and back.schema.field("u").type == pa.uint64()
    assert [v for v, b in zip(back.column("id").to_pylist(), big) if b is not None] == [b for b in big if b]
    assert back.column("u").to_pylist()[0] == 2 ** 64 - 1


def test_na_values_never_touch_a_parquet_number_column_read_as_text_nor_its_index(tmp_path):
    path = tmp_path / "b.parquet"
    frame = pd.DataFrame({"id": pd.array([2 ** 60, 0, -1, 5, None], dtype="Int64"), "x": [1.0, None, 3.0, 4.0, 5.0]},
                         index=pd.Index([2 ** 60, 1, 2, 3, 4], name="key"))
    pq.write_table(pa.Table.from_pandas(frame), path)
    table = read_table(path, CsvFormat(na_values=("0", "-1")))
    assert list(table.frame.columns) == ["id", "x"] and table.frame.index.name == "key"
    assert table.frame["id"].isna().tolist() == [False, False, False, False, True]
    out = tmp_path / "o.parquet"
    write_table(table, _fill(table), out)
    back = pq.read_table(out)
    assert back.schema.pandas_metadata["index_columns"] == ["key"]
    assert back.column("id").to_pylist()[:4] == [2 ** 60, 0, -1, 5]


@pytest.mark.parametrize("name", ["user", None])
def test_a_parquet_index_is_kept_in_a_csv_output(tmp_path, name):
    """Parquet to CSV dropped a stored index (the row ids): it is written as the first column(s)."""
    path = tmp_path / "idx.parquet"
    ids = pd.Index(["u1", "u2", "u3", "u4"], name=name)
    pd.DataFrame({"x": [1.0, None, 3.0, 4.0], "index": ["a", "b", None, "a"]}, index=ids).to_parquet(path)
    table = read_table(path)
    out = tmp_path / "o.csv"
    write_table(table, _fill(table), out)
    written = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(written.columns) == [name or "index_", "x", "index"]
    assert written.iloc[:, 0].tolist() == ["u1", "u2", "u3", "u4"] and written["index"].tolist() == list("abaa")
    pd.DataFrame({"x": [1.0, None, 3.0]}).to_parquet(path)  # a range index is no data: not written
    table = read_table(path)
    write_table(table, _fill(table), out)
    assert out.read_text().splitlines()[0] == "x"


def test_an_empty_string_in_a_parquet_refuses_a_csv_output(tmp_path):
    """An observed "" was written as an empty cell, which reads back as a gap."""
    from recllm.impute.table_io import check_output_fits

    path = tmp_path / "s.parquet"
    pq.write_table(pa.table({"s": ["NA", "null", "", None, "x", ""], "n": [1.0, 2.0, 3.0, None, 5.0, 6.0]}), path)
    table = read_table(path)
    check_output_fits(table, tmp_path / "o.parquet")
    message = _error(lambda: check_output_fits(table, tmp_path / "o.csv"))
    assert "column 's' holds an empty string" in message and "row 3; 2 such cells" in message
    assert ".parquet" in message and str(path) in message


def test_a_nan_value_in_a_parquet_float_column_is_refused_with_its_row(tmp_path):
    """pandas read a parquet NaN (a value, apart from a null) as a gap, and the imputer overwrote it."""
    path = tmp_path / "nan.parquet"
    pq.write_table(pa.table({"s": ["a", None, "b", "c", "d"],
                             "f": pa.array([1.5, None, 2.0, float("nan"), float("nan")], pa.float32())}), path,
                   row_group_size=2)
    message = _error(lambda: read_table(path))
    assert message.startswith("column 'f' holds NaN") and f"({path}, row 4; 2 such cells)" in message
    assert "store the gaps as nulls" in message
    pd.DataFrame({"f": [1.5, np.nan, 2.0], "s": ["a", None, "b"]}).to_parquet(path)  # pandas writes NaN as null
    table = read_table(path)
    assert table.frame["f"].isna().tolist() == [False, True, False] and table.numeric == ("f",)


def test_outputs_that_cannot_hold_a_numeric_column_are_refused_before_any_filling(tmp_path):
    """An integer beyond int64 (CSV to parquet) and a parquet decimal or bool column declared numeric failed only
    when the filled table was written."""
    import decimal

    from recllm.impute.table_io import check_output_fits

    table = read_table(_csv(tmp_path, "big,x\n12,1\n,2\n-9223372036854775809,3\n9223372036854775807,\n"),
                       numeric=("big",))
    message = _error(lambda: check_output_fits(table, tmp_path / "o.parquet", ("big",)))
    assert message.startswith("column 'big' holds '-9223372036854775809', which neither a parquet int64 column")
    assert f"({tmp_path / 't.csv'}, line 4)" in message and "write a .csv output" in message
    check_output_fits(table, tmp_path / "o.csv", ("big",))
    fits = read_table(_csv(tmp_path, "big,x\n12,1\n,2\n9223372036854775807,\n", "u.csv"), numeric=("big",))
    check_output_fits(fits, tmp_path / "o.parquet", ("big",))
    write_table(fits, _fill(fits), tmp_path / "o.parquet")
    assert pq.read_table(tmp_path / "o.parquet").column("big").to_pylist()[2] == 2 ** 63 - 1

    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"dec": pa.array([decimal.Decimal("1.50"), None, decimal.Decimal("3.00")],
                                             pa.decimal128(5, 2)),
                             "flag": [True, None, False], "x": [1.0, 2.0, None]}), path)
    table = read_table(path)
    for out in ("o.parquet", "o.csv"):
        check_output_fits(table, tmp_path / out)  # undeclared: filled with one of their own values
        message = _error(lambda: check_output_fits(table, tmp_path / out, ("dec",)))
        assert message.startswith("column 'dec' is declared numeric, but as a parquet decimal128(5, 2) column it holds "
                                  "exact decimals of 2 places") and f"({path})" in message
        assert "leave dec out of --numeric" in message
        assert "parquet bool column" in _error(lambda: check_output_fits(table, tmp_path / out, ("flag",)))
    write_table(table, _fill(table), tmp_path / "o.parquet")
    assert pq.read_table(tmp_path / "o.parquet").column("dec").to_pylist()[1] in (decimal.Decimal("1.50"),
                                                                                  decimal.Decimal("3.00"))


def test_a_long_cell_in_a_one_column_table_is_a_cell(tmp_path):
    long = "w" * 200_000
    table = read_table(_csv(tmp_path, f"description\n{long}\nshort\n"))
    assert table.frame["description"].tolist() == [long, "short"]


def test_parquet_na_values_apply_to_a_dictionary_column(tmp_path):
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"c": pa.array(["a", "?", "b", "a"]).dictionary_encode(), "s": ["?", "x", "y", "x"]}),
                   path)
    table = read_table(path, CsvFormat(na_values=("?",)))
    assert table.frame["c"].isna().tolist() == [False, True, False, False]
    assert table.frame["s"].isna().tolist() == [True, False, False, False]


@pytest.mark.parametrize("quote", ["", '"'])
def test_a_cell_longer_than_the_csv_modules_default_limit_is_a_cell(tmp_path, quote):
    """Python's csv stops at 131,072 characters: an internal error (unquoted) or a false 'never closed' (quoted)."""
    long = "word, " * 40_000 if quote else "w" * 200_000
    path = _csv(tmp_path, f"a,b\n1,{quote}{long}{quote}\n,x\n3,x\n")
    table = read_table(path)
    assert table.frame["b"].iloc[0] == long and table.frame["a"].isna().tolist() == [False, True, False]
    out = tmp_path / "o.csv"
    write_table(table, _fill(table), out)
    assert out.read_text().splitlines()[1] == f"1,{quote}{long}{quote}"


def test_a_row_with_a_gap_keeps_its_observed_cells_text_quotes_and_all(tmp_path):
    """The observed cells of a gap row were rewritten in csv's quoting: ab"c became "ab""c", "x" became x."""
    path = _csv(tmp_path, 'a,b,c,d,e\n1,ab"c,"x",,"multi\nline"\n2,y,"z",4.5,w\n3,y,"q, r",,w\n')
    table = read_table(path)
    out = tmp_path / "o.csv"
    write_table(table, _fill(table), out)
    assert out.read_text().split("\n") == ["a,b,c,d,e", '1,ab"c,"x",4.5,"multi', 'line"', '2,y,"z",4.5,w',
                                           '3,y,"q, r",4.5,w', ""]


def test_each_row_keeps_its_own_line_ending(tmp_path):
    """A file mixing CRLF and LF (a CRLF header, rows appended by a tool writing LF) came back all CRLF."""
    path = tmp_path / "mixed.csv"
    path.write_bytes(b"a,b\r\n1,x\n2,\r\n3,x\n4,y")
    table = read_table(path)
    out = tmp_path / "o.csv"
    write_table(table, _fill(table), out)
    assert out.read_bytes() == b"a,b\r\n1,x\n2,x\r\n3,x\n4,y"


def test_a_blank_line_inside_a_one_column_table_is_an_error_but_not_at_the_end(tmp_path):
    message = _error(lambda: read_table(_csv(tmp_path, "a\n1\n\n3\n\n4\n")))
    assert "line 3; 2 such lines" in message and '""' in message
    table = read_table(_csv(tmp_path, "a\n1\n\"\"\n3\n\n\n"))  # a gap written as "", blank lines after the rows
    assert table.frame["a"].isna().tolist() == [False, True, False]
    assert read_table(_csv(tmp_path, "a,b\n1,2\n\n3,\n")).frame.shape == (2, 2)  # two columns: a blank is no row


def test_a_bytes_column_fits_a_parquet_output_but_not_a_csv(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from recllm.impute.table_io import check_output_fits

    path = tmp_path / "b.parquet"
    pq.write_table(pa.table({"a": [1.0, None], "b": [b"\xff", b"x"],
                             "c": pa.array([b"ab", b"\xff"]).dictionary_encode()}), path)
    table = read_table(path)
    check_output_fits(table, tmp_path / "o.parquet")
    message = _error(lambda: check_output_fits(table, tmp_path / "o.csv"))
    assert "column 'b' holds bytes" in message and ".parquet" in message
    pq.write_table(pa.table({"a": [1.0, None], "c": pa.array([b"ab", b"\xff"]).dictionary_encode()}), path)
    assert "column 'c' holds bytes" in _error(lambda: check_output_fits(read_table(path), tmp_path / "o.csv"))


@pytest.mark.parametrize("start, what", [(b"PAR1", "a Parquet file"), (b"PK\x03\x04", "a zip archive"),
                                         (b"\x1f\x8b\x08", "gzip-compressed"), (b"SQLite format 3\x00", "SQLite"),
                                         (b"\xd0\xcf\x11\xe0", "an Office file"),
                                         (b"\x28\xb5\x2f\xfd", "zstd-compressed")])
def test_a_binary_file_named_csv_is_named_for_what_it_is(tmp_path, start, what):
    """Not 'byte ... is not valid utf-8, pass --encoding': the advice that fits the file."""
    path = tmp_path / "t.csv"
    path.write_bytes(start + bytes(range(256)) * 4 + (b"PAR1" if start == b"PAR1" else b""))
    message = _error(lambda: read_table(path))
    assert what in message and "not a CSV file" in message and "--encoding" not in message


def test_text_that_begins_like_a_binary_format_is_read_as_the_table_it_is(tmp_path):
    """Signatures are asked about only for bytes that are not text: a header beginning PAR1 (and a last cell ending
    it), a UTF-16 table whose first character is encoded 1F 8B (gzip's first bytes)."""
    table = read_table(_csv(tmp_path, "PAR1,code\n1,x\n2,PAR1"))
    assert list(table.frame.columns) == ["PAR1", "code"] and table.frame["code"].tolist() == ["x", "PAR1"]
    path = _csv(tmp_path, "\u1f8b\u03bb,b\n1,x\n2,\n", name="greek.csv", encoding="utf-16-be")
    assert path.read_bytes().startswith(b"\x1f\x8b")
    table = read_table(path, CsvFormat(encoding="utf-16-be"))
    assert list(table.frame.columns) == ["\u1f8b\u03bb", "b"]


@pytest.mark.parametrize("content, message", [
    (b"", "the file is empty"), (b"a,b\n1,x\n", "a text file (a CSV?), not a Parquet file"),
    (b"PK\x03\x04" + bytes(64), "a zip archive"), (b"SQLite format 3\x00" + bytes(64), "an SQLite database"),
    (bytes(64), "cannot read it as parquet")])
def test_a_file_named_parquet_that_is_not_one_is_named_for_what_it_is(tmp_path, content, message):
    path = tmp_path / "t.parquet"
    path.write_bytes(content)
    assert message in _error(lambda: read_table(path))


def test_a_parquet_renamed_csv_and_a_csv_renamed_parquet(tmp_path):
    import pandas as pd

    parquet = tmp_path / "t.parquet"
    pd.DataFrame({"a": [1, None, 3]}).to_parquet(parquet)
    renamed = parquet.rename(tmp_path / "t.csv")
    assert "rename it to .parquet" in _error(lambda: read_table(renamed))
    text = tmp_path / "u.parquet"
    text.write_text("a,b\n1,x\n2,é\n")
    message = _error(lambda: read_table(text))
    assert "a text file (a CSV?), not a Parquet file" in message and "rename it to .csv" in message


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_byte_order_mark_read_as_utf8_is_named_with_the_encoding_to_pass(tmp_path, encoding):
    path = _csv(tmp_path, "a,b\n1,x\n2,\n", encoding=encoding)
    message = _error(lambda: read_table(path))
    assert "this is UTF-16 text, not utf-8" in message and "--encoding utf-16" in message
    assert read_table(path, CsvFormat(encoding=encoding)).frame["b"].tolist()[0] == "x"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "UTF-16BE", "utf-32", "utf_32_le"])
def test_a_utf8_file_read_as_utf16_or_utf32_is_named_with_the_encoding_to_pass(tmp_path, encoding):
    """--encoding utf-16 on a UTF-8 file said 'byte b'\\n' is not valid utf-16', or read it as a header of CJK
    characters and said the table had no rows."""
    for content in ("id,name\n1,x\n2,\n3,y\n", "ab,cd\n1,\n3,45\n", "name,n\ncafé,1\nx,\n"):
        message = _error(lambda: read_table(_csv(tmp_path, content), CsvFormat(encoding=encoding)))
        assert message.startswith(f"this does not look like {encoding} text") and "pass --encoding utf-8" in message
    latin = _csv(tmp_path, "name,n\ncafé,1\nx,\n", encoding="latin-1")
    assert "--encoding latin-1" in _error(lambda: read_table(latin, CsvFormat(encoding=encoding)))
    wide = _csv(tmp_path, "a,b\n1,x\n2,\n", encoding=encoding)  # the encoding itself still reads
    assert read_table(wide, CsvFormat(encoding=encoding)).frame["b"].tolist()[0] == "x"


def test_utf16_with_a_byte_order_mark_read_as_utf8_is_named(tmp_path):
    path = _csv(tmp_path, "a,b\n1,x\n2,\n", encoding="utf-16")
    message = _error(lambda: read_table(path))
    assert "this is UTF-16 text, not utf-8" in message and "--encoding utf-16" in message
    assert read_table(path, CsvFormat(encoding="utf-16")).frame["b"].tolist()[0] == "x"


@pytest.mark.parametrize("compress, what", [("bz2", "bzip2-compressed"), ("lzma", "xz-compressed"),
                                            ("gzip", "gzip-compressed")])
def test_a_compressed_csv_is_named_with_the_command_that_decompresses_it(tmp_path, compress, what):
    import importlib

    path = tmp_path / "t.csv"
    path.write_bytes(importlib.import_module(compress).compress(b"a,b\n1,x\n2,\n" * 50))
    message = _error(lambda: read_table(path))
    assert what in message and "decompress it first" in message
