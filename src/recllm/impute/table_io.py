"""The table ``recllm impute`` fills, read exactly as written and written back the same way.

Reading a CSV file
    * The bytes are decoded strictly with ``encoding`` (default utf-8); an undecodable byte is an error naming its
      line. A UTF-8 byte-order mark is set aside and written back.
    * Every cell is read as text (the csv module: ``"`` quotes, ``""`` inside quotes is a quote). The first non-blank
      line is the header; blank lines are skipped, except between the rows of a one-column table, where a blank
      line could be a missing cell: that is an error naming the line (write an empty cell as ``""``).
    * Only an empty cell is a gap. ``NA``, ``None``, ``null``, ``n/a``, ``NaN``, ``-`` are values and are kept;
      ``na_values`` lists further strings (compared exactly) that mark a gap.
    * Errors name the file and the line (1-based, as an editor shows it) and what to do: an empty or duplicated
      column name, a line with more or fewer fields than the header, a one-field header that splits into several
      columns on another separator (``a;b;c`` read with ``,``: pass ``--sep ';'``), broken quoting.

Column types, decided after reading
    * A column named in ``categorical`` or ``text`` stays text.
    * A column named in ``numeric`` is numeric; a non-empty cell that is not a number is an error naming its line.
    * Any other column is numeric only if every non-empty cell is a decimal number (``12``, ``-3.5``, ``1e6``,
      spaces around it allowed; not ``inf``, ``nan`` or ``1,000``) AND no cell has a leading zero (``02582``,
      ``-007``, ``00.5``) AND no cell is an integer of more than 15 digits (beyond float64's exact range, e.g. an
      id). Everything else stays text and is imputed as categories (or free text); a column that is text only
      because of a few such cells gets a note saying so and how to change it.
    * The imputer sees numeric columns as float64 and text columns as the strings of the file (NaN for a gap).

Writing
    * CSV from a CSV: a row without a gap is written as its original line(s), byte for byte; a row with a gap is
      written with its observed cells as read and the filled cells formatted (a number in a column of integers
      without ``.0``, other numbers as the shortest exact decimal). Same separator, encoding, byte-order mark and
      line ending (that of the header line). Skipped blank lines are not written.
    * Parquet from a parquet file keeps the input's arrow schema (a filled cell of an integer column is rounded to
      the nearest integer). Parquet from a CSV: numeric columns as float64 (int64 when every value is a whole
      number and every observed cell was written as an integer), text columns as strings.
    * ``na_values`` also applies to the string columns of a parquet file.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gc
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recllm.data.dataset import DataError

TABLE_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
OUTPUT_SUFFIXES = (".csv", ".parquet")
SEPARATORS = (",", ";", "\t", "|")  # tried on a one-field header to suggest --sep
MAX_EXACT_DIGITS = 15
_NUMBER = r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*"
_LEADING_ZERO = r"\s*[+-]?0\d.*"
_LONG_INTEGER = r"\s*[+-]?\d{%d,}\s*" % (MAX_EXACT_DIGITS + 1)
_INTEGER = r"\s*[+-]?\d+\s*"


def parse_sep(text: str) -> str:
    """The one-character separator ``--sep`` names (``\\t`` or ``tab`` for a tab)."""
    sep = {"\\t": "\t", "tab": "\t"}.get(text, text)
    if len(sep) != 1 or sep in "\"\r\n":
        raise DataError(f"the separator must be one character other than a quote or a newline, got {text!r}",
                        "--sep", "pass e.g. --sep ';' or --sep '\\t'")
    return sep


def _shown(sep: str) -> str:
    return "--sep '\\t'" if sep == "\t" else f"--sep '{sep}'"


@dataclass(frozen=True)
class CsvFormat:
    """How a CSV file is written: separator, encoding, and the extra strings that mark a gap."""

    sep: str = ","
    encoding: str = "utf-8"
    na_values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "sep", parse_sep(self.sep))
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise DataError(f"unknown encoding {self.encoding!r}", "--encoding",
                            "pass a Python codec name such as utf-8, latin-1 or cp1252") from None
        object.__setattr__(self, "na_values", tuple(self.na_values))


@dataclass
class Table:
    """A table as read: ``frame`` for the imputer, and what is needed to write it back as it was written."""

    path: Path
    frame: pd.DataFrame  # numeric columns float64, text columns str; NaN is a gap
    numeric: tuple[str, ...]  # the columns read as numbers
    notes: list[str] = field(default_factory=list)
    fmt: CsvFormat | None = None  # this field and the next ones: CSV input only
    cells: pd.DataFrame | None = None  # every cell's text as in the file
    records: list[str] | None = None  # each data row's original text, without its line ending
    lines: np.ndarray | None = None  # each data row's 1-based line in the file
    header: str = ""
    newline: str = "\n"
    final_newline: bool = True
    bom: bool = False
    schema: Any = None  # parquet only: the input's pyarrow schema

    @property
    def text_columns(self) -> tuple[str, ...]:
        return tuple(c for c in self.frame.columns if c not in self.numeric)


def table_kind(path: Path, role: str = "input") -> str:
    """``csv`` or ``parquet`` by suffix; anything else is an error."""
    kind = TABLE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"unknown table format {path.suffix!r}", str(path), "use a .csv or .parquet file"
                        if role == "input" else "name the output .csv or .parquet")
    return kind


def read_table(path: str | Path, fmt: CsvFormat | None = None, categorical: tuple[str, ...] = (),
               numeric: tuple[str, ...] = (), text: tuple[str, ...] = ()) -> Table:
    """Read a CSV or parquet table by the rules of this module's docstring."""
    path, fmt = Path(path), fmt or CsvFormat()
    kind = table_kind(path)
    if not path.is_file():
        raise DataError("no such file", str(path), "check the path")
    if kind == "parquet":
        table = _read_parquet(path, fmt)
    else:
        with _no_gc():
            table = _read_csv(path, fmt)
    if table.frame.empty:
        raise DataError("the table has a header but no rows", str(path), "there is nothing to fill")
    for col in (*categorical, *numeric, *text):
        if col not in table.frame.columns:
            raise DataError(f"column {col!r} was named in --categorical/--numeric/--text but the table has no such "
                            f"column", str(path), f"use one of {list(table.frame.columns)}")
    if table.cells is not None:
        _type_columns(table, set(categorical) | set(text), set(numeric))
    return table


def declare_kinds(imputer: Any, table: Table, categorical: tuple[str, ...] = (), numeric: tuple[str, ...] = (),
                  text: tuple[str, ...] = ()) -> Any:
    """Tell ``imputer`` the column kinds: those declared, and every text column the reader found as categorical
    (or text when it has more than the imputer's ``max_categories`` distinct values), so that a column of codes
    like ``02582`` is never taken for numbers. Returns ``imputer``."""
    declared = {"categorical": list(categorical), "numeric": list(numeric), "text": list(text)}
    named = {c for cols in declared.values() for c in cols}
    for col in table.text_columns:
        if col not in named:
            many = table.frame[col].nunique() > imputer.max_categories
            declared["text" if many else "categorical"].append(col)
    return imputer.set_params(**{k: tuple(v) or None for k, v in declared.items()})


# ---------------------------------------------------------------------------------------------- CSV reading
def _decode(path: Path, fmt: CsvFormat) -> tuple[str, bool]:
    data = path.read_bytes()
    try:
        text = data.decode(fmt.encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"byte {data[exc.start:exc.start + 1]!r} is not valid {fmt.encoding}", f"{path}, line {line}",
                        "pass the file's encoding, e.g. --encoding latin-1 or --encoding cp1252") from None
    bom = text.startswith("\ufeff")
    text = text[1:] if bom else text
    if not text.strip():
        raise DataError("the file is empty", str(path), "there is no table to fill")
    return text, bom


@contextlib.contextmanager
def _no_gc():
    """Cyclic garbage collection paused: parsing makes many small objects, and each collection would walk every
    object of the process (torch's included), making a 100k-line file several times slower to read."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _records(path: Path, text: str, sep: str) -> tuple[list[tuple[int, list[str], str, str]], list[int]]:
    """(first line, fields, raw text without its line ending, that ending) of every non-blank record, and the
    line numbers of the blank lines."""
    lines = io.StringIO(text, newline="").readlines()  # split on \n, \r\n or \r only, endings kept
    reader = csv.reader(lines, delimiter=sep, quotechar='"', doublequote=True, strict=True)
    if '"' not in text:  # no quoting: one record per line (the common case, read at C speed)
        spans = [(k, k + 1, fields) for k, fields in enumerate(reader)]
    else:
        spans, done = [], 0
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                if "expected after" in str(exc):
                    what, line = "text after a closing quote", reader.line_num
                    hint = 'quote the whole field and double the quotes inside it ("")'
                else:  # the end of the file or the field-size limit reached inside a quoted field
                    what, line = f"a quoted field that starts here is never closed ({exc})", done + 1
                    hint = 'close the quote (a quote inside a quoted field is doubled: "")'
                raise DataError(f"malformed CSV: {what}", f"{path}, line {line}", hint) from None
            spans.append((done, reader.line_num, fields))
            done = reader.line_num
    records, blanks = [], []
    for start, stop, fields in spans:
        if fields:
            last = lines[stop - 1]
            body = last.rstrip("\r\n")  # a physical line ends with at most one line ending
            raw = body if stop == start + 1 else "".join(lines[start:stop - 1]) + body
            records.append((start + 1, fields, raw, last[len(body):]))
        else:
            blanks.append(start + 1)
    return records, blanks


def _check_header(path: Path, names: list[str], line: int, sep: str, first_row: list[str] | None) -> None:
    for i, name in enumerate(names):
        if name == "":
            raise DataError(f"column {i + 1} of the header has no name", f"{path}, line {line}", "name every column")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DataError(f"column {name!r} appears more than once in the header", f"{path}, line {line}",
                            "rename the duplicates")
        seen.add(name)
    if len(names) == 1:
        for other in SEPARATORS:
            if other == sep:
                continue
            parts = next(csv.reader([names[0]], delimiter=other))
            row_parts = next(csv.reader([first_row[0]], delimiter=other)) if first_row and len(first_row) == 1 else []
            if len(parts) > 1 and (first_row is None or len(first_row) != 1 or len(row_parts) == len(parts)):
                raise DataError(f"the header {names[0]!r} looks like {len(parts)} columns separated by {other!r}, "
                                f"read as one column with separator {sep!r}", f"{path}, line {line}",
                                f"pass {_shown(other)}")


def _read_csv(path: Path, fmt: CsvFormat) -> Table:
    text, bom = _decode(path, fmt)
    records, blanks = _records(path, text, fmt.sep)
    header_line, names, header_raw, newline = records[0]
    inside = [b for b in blanks if header_line < b < records[-1][0]]
    if len(names) == 1 and inside:  # in one column a blank line may be a gap: never drop it silently
        more = f"; {len(inside)} such lines" if len(inside) > 1 else ""
        raise DataError("a blank line between the rows of a one-column table: a missing cell or a stray line?",
                        f"{path}, line {inside[0]}{more}",
                        'write a missing cell as "" (an empty quoted cell), or delete the blank line')
    rows, raws, lines = [], [], []
    bad: list[tuple[int, int]] = []
    for line, fields, raw, _ in records[1:]:
        if not rows and not bad:
            _check_header(path, names, header_line, fmt.sep, fields)
        if len(fields) != len(names):
            bad.append((line, len(fields)))
            continue
        rows.append(fields)
        raws.append(raw)
        lines.append(line)
    if not rows and not bad:
        _check_header(path, names, header_line, fmt.sep, None)
    if bad:
        line, n = bad[0]
        more = f"; {len(bad)} such lines" if len(bad) > 1 else ""
        raise DataError(f"a line has {n} field(s) but the header has {len(names)}",
                        f"{path}, line {line}{more}",
                        f"give every line {len(names)} fields separated by {fmt.sep!r} (quote a cell that contains "
                        f"{fmt.sep!r}), or pass the right --sep")
    cells = pd.DataFrame(rows, columns=names, dtype=object) if rows else pd.DataFrame(columns=names, dtype=object)
    gap = cells.eq("") | cells.isin(list(fmt.na_values)) if rows else cells.astype(bool)
    frame = pd.DataFrame({c: pd.Series(cells[c].where(~gap[c]), dtype="str") for c in names})
    return Table(path, frame, (), fmt=fmt, cells=cells, records=raws, lines=np.asarray(lines, dtype=int),
                 header=header_raw, newline=newline or "\n", final_newline=text.endswith(("\n", "\r")), bom=bom)


def _matches(values: np.ndarray, pattern: str) -> np.ndarray:
    """Which strings of ``values`` match ``pattern`` whole (RE2 through pyarrow: fast, ASCII digits only)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    found = pc.match_substring_regex(pa.array(values, pa.string()), f"^(?:{pattern})$")
    return found.to_numpy(zero_copy_only=False).astype(bool)


def _type_columns(table: Table, as_text: set[str], as_numeric: set[str]) -> None:
    """Turn the columns that are numbers into float64, by the module docstring's rules; note near misses."""
    numeric = []
    for col in table.frame.columns:
        if col in as_text:
            continue
        present = table.frame[col].notna().to_numpy()
        observed, where = table.frame[col].to_numpy(dtype=object)[present], table.lines[present]
        values = np.full(len(observed), np.nan)
        parses = _matches(observed, _NUMBER)
        values[parses] = observed[parses].astype(float)
        bad = np.flatnonzero(~(parses & np.isfinite(values)))
        if col in as_numeric:
            if len(bad):
                i = bad[0]
                raise DataError(f"column {col!r} is declared numeric but holds {observed[i]!r}",
                                f"{table.path}, line {where[i]}",
                                f"fix or blank the cell, pass --na-values if it marks a gap, or drop {col} from "
                                "--numeric")
        elif len(observed) == 0 or len(bad):
            if len(observed) and len(bad) <= 0.1 * len(observed):
                i = bad[0]
                table.notes.append(f"column {col!r} is read as text: line {where[i]} holds {observed[i]!r}, not a "
                                   f"number (pass --na-values if it marks a gap, or --numeric {col} to be told of "
                                   "each such cell)")
            continue
        else:
            odd = np.flatnonzero(_matches(observed, _LEADING_ZERO) | _matches(observed, _LONG_INTEGER))
            if len(odd):
                i = odd[0]
                why = "a leading zero" if observed[i].strip().lstrip("+-").startswith("0") else \
                    f"an integer of more than {MAX_EXACT_DIGITS} digits"
                table.notes.append(f"column {col!r} is read as text: line {where[i]} holds {observed[i]!r} "
                                   f"({why}, which a number would lose); pass --numeric {col} to read numbers")
                continue
        column = np.full(len(present), np.nan)
        column[present] = values
        table.frame[col] = column
        numeric.append(col)
    table.numeric = tuple(numeric)


# ---------------------------------------------------------------------------------------------- parquet reading
def _read_parquet(path: Path, fmt: CsvFormat) -> Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        arrow = pq.read_table(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read it as parquet ({exc})", str(path), "check that it is a parquet file") from None
    for column in arrow.schema:
        if pa.types.is_nested(column.type) or pa.types.is_dictionary(column.type) and \
                pa.types.is_nested(column.type.value_type):
            raise DataError(f"column {column.name!r} holds {column.type} values (lists, structs or maps), which "
                            "recllm impute cannot fill", str(path),
                            "drop the column or flatten it into plain columns first")
    frame = arrow.to_pandas()
    if fmt.na_values:
        for col in frame.columns:
            if pd.api.types.is_string_dtype(frame[col].dtype) or frame[col].dtype == object:
                frame[col] = frame[col].mask(frame[col].isin(list(fmt.na_values)))
    numeric = tuple(c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c].dtype)
                    and not pd.api.types.is_bool_dtype(frame[c].dtype))
    return Table(path, frame, numeric, schema=arrow.schema)


# ---------------------------------------------------------------------------------------------- writing
def _integer_columns(table: Table) -> set[str]:
    """Numeric columns of a CSV whose observed cells are all written as integers."""
    present = {c: table.frame[c].notna().to_numpy() for c in table.numeric}
    return {c for c in table.numeric if present[c].any()
            and _matches(table.cells[c].to_numpy(dtype=object)[present[c]], _INTEGER).all()}


def _format(value: Any, integer: bool) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, (float, np.floating)) and not isinstance(value, bool):
        value = float(value)
        return str(int(value)) if integer and value.is_integer() else repr(value)
    return str(value)


def _csv_text(table: Table, filled: pd.DataFrame) -> str:
    """The CSV text of ``filled``: untouched rows as their original text, filled cells formatted."""
    gaps = table.frame.isna().to_numpy()
    has_gap = gaps.any(axis=1)
    integers = _integer_columns(table)
    cells = table.cells.to_numpy(dtype=object)
    columns = list(table.frame.columns)
    values = [filled[c].to_numpy(dtype=object) for c in columns]
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=table.fmt.sep, quotechar='"', lineterminator="\r\n",
                        quoting=csv.QUOTE_MINIMAL)  # "\r\n": a cell holding either character is quoted
    out = [table.header]
    for k, i in enumerate(table.frame.index.get_indexer(filled.index)):
        if not has_gap[i]:
            out.append(table.records[i])
            continue
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([_format(values[j][k], c in integers) if gaps[i, j] else cells[i, j]
                         for j, c in enumerate(columns)])
        out.append(buffer.getvalue()[:-2])
    return ("\ufeff" if table.bom else "") + table.newline.join(out) + (table.newline if table.final_newline else "")


def _arrow(table: Table, filled: pd.DataFrame):
    """``filled`` as a pyarrow table: the input's schema for a parquet input, typed columns for a CSV input."""
    import pyarrow as pa

    frame = filled.copy()
    if table.schema is not None:
        for col in frame.columns:
            if pa.types.is_integer(table.schema.field(col).type) and pd.api.types.is_float_dtype(frame[col].dtype):
                frame[col] = frame[col].round()
        index = (table.schema.pandas_metadata or {}).get("index_columns", [])
        keep_index = any(isinstance(i, str) for i in index)  # an index stored as columns, not a range
        if not keep_index:
            frame = frame.reset_index(drop=True)
        try:
            return pa.Table.from_pandas(frame, schema=table.schema, preserve_index=keep_index, safe=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise DataError(f"the filled table does not fit the input's schema ({exc})", str(table.path),
                            "write a .csv instead, or declare the column's kind") from None
    frame = frame.reset_index(drop=True)
    if table.cells is not None:
        for col in _integer_columns(table):
            values = frame[col].to_numpy(dtype=float, na_value=np.nan)
            if np.isfinite(values).all() and np.all(values == np.round(values)):
                frame[col] = values.astype("int64")
    return pa.Table.from_pandas(frame, preserve_index=False)


def check_output_fits(table: Table, path: str | Path) -> None:
    """A DataError, before any filling, when the output format cannot hold a column of ``table`` as read: a
    parquet binary column in a CSV would be written as Python's ``b'...'`` text."""
    if table.schema is None or table_kind(Path(path), role="output") != "csv":
        return
    import pyarrow as pa

    for column in table.schema:
        kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
            raise DataError(f"column {column.name!r} holds bytes, which a CSV cannot hold as they are", str(path),
                            "write a .parquet output, or decode the column to text first")


def write_table(table: Table, filled: pd.DataFrame, path: str | Path) -> None:
    """Write ``filled`` (the imputer's output for ``table.frame``) to ``path`` (.csv or .parquet), atomically."""
    import pyarrow.parquet as pq

    from recllm.utils import atomic_path

    path = Path(path)
    kind = table_kind(path, role="output")
    if kind == "csv" and table.cells is not None:
        text = _csv_text(table, filled)
        try:
            data = text.encode(table.fmt.encoding)
        except UnicodeEncodeError as exc:
            raise DataError(f"a filled cell holds {text[exc.start:exc.end]!r}, which {table.fmt.encoding} cannot "
                            "write", str(path), "write a .parquet file instead") from None
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
        return
    arrow = _arrow(table, filled)
    with atomic_path(path) as tmp:
        if kind == "csv":
            arrow.to_pandas().to_csv(tmp, index=False)
        else:
            pq.write_table(arrow, tmp)
