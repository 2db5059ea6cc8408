"""The table ``recllm impute`` fills, read exactly as written and written back the same way.

Reading
    * By :mod:`recllm.data.user_tables`: every CSV cell as its text, only an empty cell (or one of ``na_values``)
      a gap, errors naming the file and line; a parquet file as typed.

Column types, decided after reading
    * A column named in ``categorical`` or ``text`` stays text.
    * A column named in ``numeric`` is numeric; a non-empty cell that is not a number, or is a number nearer to 0
      than float64 holds (``1e-400`` would be 0.0), is an error naming its line.
    * Any other column is numeric only if every non-empty cell is a decimal number (``12``, ``-3.5``, ``1e6``,
      spaces around it allowed; not ``inf``, ``nan`` or ``1,000``) AND no cell has a leading zero (``02582``,
      ``-007``, ``00.5``) AND no cell is an integer of more than 15 digits (beyond float64's exact range, e.g. an
      id) or a number of more than 15 significant digits (``0.12345678901234567``) AND no cell is a number nearer to
      0 than float64 holds (``1e-400``, or a subnormal that loses digits). Everything else stays text and
      is imputed as categories (or free text); a column that is text only because of a few such cells gets a note
      saying so and how to change it.
    * The imputer sees numeric columns as float64 and text columns as the strings of the file (NaN for a gap).

Writing
    * CSV from a CSV: a row without a gap is written as its original line(s), byte for byte; a row with a gap is
      written with its observed cells as their text in the file (quotes as written) and the filled cells formatted
      (a number in a column of integers without ``.0``, other numbers as the shortest exact decimal; quoted only
      when it holds the separator, a quote or a line break). Same separator, encoding, byte-order mark and line
      endings (each row its own; the header line's for a last row that had none). Skipped blank lines are not
      written.
    * Parquet from a parquet file keeps the input's arrow schema (a filled cell of an integer column is rounded to
      the nearest integer); a decimal or bool column declared numeric is refused before any work (its fills are
      floats). Parquet from a CSV: numeric columns as float64 (int64 when every value is a whole
      number and every observed cell was written as an integer; then made from each observed cell's text, exact
      beyond 2^53; an integer beyond int64 is refused before any work), text columns as strings.
    * CSV from a parquet file: the filled table as pandas writes it, its stored index (not a range) as the first
      column(s). A text column holding an empty string is refused before any work (an empty cell is a gap).
    * ``na_values`` also applies to the string and dictionary columns of a parquet file. A parquet integer column
      holding a value beyond 2^53 is read as text (float64 would change it) and written back as integers.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recllm.data.dataset import DataError
from recllm.data.user_tables import (INTEGER, SEPARATORS, TABLE_SUFFIXES, CsvFormat, Table, parse_sep,
                                       read_cells, table_kind)

__all__ = ["OUTPUT_SUFFIXES", "SEPARATORS", "TABLE_SUFFIXES", "CsvFormat", "Table", "check_output_fits", "declare_kinds",
           "option_columns", "parse_sep", "read_cells", "read_table", "table_kind", "type_table", "write_table"]

OUTPUT_SUFFIXES = (".csv", ".parquet")
MAX_EXACT_DIGITS = 15
_NUMBER = r"\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\s*"
_LEADING_ZERO = r"\s*[+-]?0\d.*"
_LONG_INTEGER = r"\s*[+-]?\d{%d,}\s*" % (MAX_EXACT_DIGITS + 1)
# a number (as _NUMBER matched it) with more significant digits than float64 keeps: from its first non-zero digit to
# its last, at least MAX_EXACT_DIGITS + 1 of them
_LONG_NUMBER = r"\s*[+-]?[0.]*[1-9](?:\.?\d){%d}[\d.]*[1-9][\d.]*(?:[eE][+-]?\d+)?\s*" % (MAX_EXACT_DIGITS - 1)
_NONZERO = r"\s*[+-]?[0.]*[1-9].*"  # a number (as _NUMBER matched it) whose digits before any exponent are not all 0


def read_table(path: str | Path, fmt: CsvFormat | None = None, categorical: tuple[str, ...] = (),
               numeric: tuple[str, ...] = (), text: tuple[str, ...] = (), options: bool = True) -> Table:
    """Read a CSV or parquet table by the rules of this module's docstring; ``options=False`` for a command without
    ``--sep`` and ``--encoding`` (a mistake's advice then says how to save the file)."""
    return type_table(read_cells(path, fmt, options), categorical, numeric, text)


def type_table(table: Table, categorical: tuple[str, ...] = (), numeric: tuple[str, ...] = (),
               text: tuple[str, ...] = ()) -> Table:
    """Type the columns of ``table`` (as :func:`read_cells` read it) by this module's rules; returns ``table``."""
    for col in (*categorical, *numeric, *text):
        if col not in table.frame.columns:
            raise DataError(f"column {col!r} was named in --categorical/--numeric/--text but the table has no such "
                            f"column", str(table.path), f"use one of {list(table.frame.columns)}")
    if table.cells is not None:
        _type_columns(table, set(categorical) | set(text), set(numeric))
    else:
        _refuse_infinite(table)
    return table


def _refuse_infinite(table: Table) -> None:
    """A DataError naming the file's 1-based row of the first infinite value in a number column of a parquet
    ``table`` (an imputer would name its pandas index label); a CSV's ``inf`` is text, refused under --numeric."""
    for col in table.numeric:
        infinite = np.flatnonzero(np.isinf(table.frame[col].to_numpy(dtype=float, na_value=np.nan)))
        if len(infinite):
            more = f"; {len(infinite)} such cells" if len(infinite) > 1 else ""
            raise DataError(f"column {col!r} holds an infinite value", f"{table.path}, row {infinite[0] + 1}{more}",
                            "use a finite number, or a null for a gap")


def option_columns(text: str | None, columns: Any) -> tuple[str, ...]:
    """The columns a comma-separated option (``--numeric a,b``) names among ``columns``: the whole text when it is
    a column's name, else each comma-separated name, taken exactly when it is a column's name (spaces included) and
    without the spaces around it otherwise."""
    if not text:
        return ()
    names = set(map(str, columns))
    if text in names:
        return (text,)
    return tuple(name if name in names else name.strip() for name in text.split(",") if name.strip())


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


def _matches(values: np.ndarray, pattern: str) -> np.ndarray:
    """Which strings of ``values`` match ``pattern`` whole (RE2 through pyarrow: fast, ASCII digits only)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    found = pc.match_substring_regex(pa.array(values, pa.string()), f"^(?:{pattern})$")
    return found.to_numpy(zero_copy_only=False).astype(bool)


def _too_small(observed: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Which number cells of ``observed`` (read as ``values``) are nearer to 0 than float64 holds: a non-zero number
    read as 0, or a subnormal whose shortest float64 text is another number (``1.234567e-320`` is ``1.23457e-320``)."""
    from decimal import Decimal

    small = np.flatnonzero(np.abs(values) < np.finfo(float).tiny)  # NaN (not a number) is not
    out = np.zeros(len(values), dtype=bool)
    zero = small[values[small] == 0]
    out[zero] = _matches(observed[zero], _NONZERO)
    for i in small[values[small] != 0]:
        out[i] = Decimal(observed[i].strip()) != Decimal(repr(float(values[i])))
    return out


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
        small = _too_small(observed, values)
        if col in as_numeric:
            if len(bad):
                i = bad[0]
                raise DataError(f"column {col!r} is declared numeric but holds {observed[i]!r}",
                                f"{table.path}, line {where[i]}",
                                f"fix or blank the cell, pass --na-values if it marks a gap, or drop {col} from "
                                "--numeric")
            if small.any():
                i = np.flatnonzero(small)[0]
                raise DataError(f"column {col!r} is declared numeric but holds {observed[i]!r}, nearer to 0 than "
                                f"float64 holds (it would be {float(values[i])!r})", f"{table.path}, line {where[i]}",
                                f"write a number float64 holds (e.g. 0), or drop {col} from --numeric (it is then "
                                "kept as text)")
        elif len(observed) == 0 or len(bad):
            if len(observed) and len(bad) <= 0.1 * len(observed):
                i = bad[0]
                table.notes.append(f"column {col!r} is read as text: line {where[i]} holds {observed[i]!r}, not a "
                                   f"number (pass --na-values if it marks a gap, or --numeric {shlex.quote(col)} to be "
                                   "told of each such cell)")
            continue
        else:
            zero, long = _matches(observed, _LEADING_ZERO), _matches(observed, _LONG_INTEGER)
            odd = np.flatnonzero(zero | long | _matches(observed, _LONG_NUMBER) | small)
            if len(odd):
                i = odd[0]
                if small[i]:  # --numeric refuses it: say how to make it a number
                    table.notes.append(f"column {col!r} is read as text: line {where[i]} holds {observed[i]!r}, nearer "
                                       f"to 0 than float64 holds (a number would be {float(values[i])!r}); write it "
                                       "as a number float64 holds (e.g. 0) to read the column as numbers")
                    continue
                why = "a leading zero" if zero[i] else f"an integer of more than {MAX_EXACT_DIGITS} digits" \
                    if long[i] else f"a number of more than {MAX_EXACT_DIGITS} significant digits"
                table.notes.append(f"column {col!r} is read as text: line {where[i]} holds {observed[i]!r} "
                                   f"({why}, which a number would lose); pass --numeric {shlex.quote(col)} to read "
                                   "numbers")
                continue
        column = np.full(len(present), np.nan)
        column[present] = values
        table.frame[col] = column
        numeric.append(col)
    table.numeric = tuple(numeric)


# ---------------------------------------------------------------------------------------------- writing
def _integer_columns(table: Table) -> set[str]:
    """Numeric columns of a CSV whose observed cells are all written as integers."""
    present = {c: table.frame[c].notna().to_numpy() for c in table.numeric}
    return {c for c in table.numeric if present[c].any()
            and _matches(table.cells[c].to_numpy(dtype=object)[present[c]], INTEGER).all()}


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
    columns = list(table.frame.columns)
    values = [filled[c].to_numpy(dtype=object) for c in columns]
    own = table.endings or [table.newline] * len(table.records)
    out, ends = [table.header], [table.newline]
    for k, i in enumerate(table.frame.index.get_indexer(filled.index)):
        ends.append(own[i] or table.newline)  # each row keeps its own line ending
        if not has_gap[i]:
            out.append(table.records[i])
            continue
        # observed cells as their text in the file, quotes and all (the reader kept only rows of len(columns)
        # fields, and _raw_fields splits a record where the csv module does)
        raw = _raw_fields(table.records[i], table.fmt.sep)
        filled_text = [_format(values[j][k], c in integers) if gaps[i, j] else "" for j, c in enumerate(columns)]
        out.append(table.fmt.sep.join(_quoted(filled_text[j], table.fmt.sep) if filled_text[j] else raw[j]
                                      for j in range(len(columns))))
    body = "".join(text + end for text, end in zip(out[:-1], ends[:-1])) + out[-1]
    return ("\ufeff" if table.bom else "") + body + (ends[-1] if table.final_newline else "")


def _raw_fields(record: str, sep: str) -> list[str]:
    """A record's fields as their text in the file (quotes kept), split where the csv module splits them: at ``sep``
    outside a quoted field, a field being quoted only when it starts with a quote."""
    fields, start, quoted, i = [], 0, False, 0
    while i < len(record):
        char = record[i]
        if quoted:
            if char == '"':
                if record[i + 1:i + 2] == '"':
                    i += 2
                    continue
                quoted = False
        elif char == '"' and i == start:
            quoted = True
        elif char == sep:
            fields.append(record[start:i])
            start = i + 1
        i += 1
    fields.append(record[start:])
    return fields


def _quoted(text: str, sep: str) -> str:
    """A filled cell as CSV text: quoted (inner quotes doubled) only when it holds the separator, a quote or a line
    break."""
    if any(ch in text for ch in (sep, '"', "\r", "\n")):
        return '"' + text.replace('"', '""') + '"'
    return text


def _arrow(table: Table, filled: pd.DataFrame):
    """``filled`` as a pyarrow table: the input's schema for a parquet input, typed columns for a CSV input."""
    import pyarrow as pa

    frame = filled.copy()
    if table.schema is not None:
        for col in frame.columns:
            if pa.types.is_integer(table.schema.field(col).type) and pd.api.types.is_float_dtype(frame[col].dtype):
                frame[col] = frame[col].round()
            elif pa.types.is_integer(table.schema.field(col).type) and frame[col].dtype == object:
                frame[col] = _exact_integers(frame[col], col, table.path)  # read as text: beyond float64
        index = (table.schema.pandas_metadata or {}).get("index_columns", [])
        keep_index = any(isinstance(i, str) for i in index)  # an index stored as columns, not a range
        if not keep_index:
            frame = frame.reset_index(drop=True)
        try:
            return pa.Table.from_pandas(frame, schema=table.schema, preserve_index=keep_index, safe=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise DataError(f"the filled table does not fit the input's schema ({exc})", str(table.path),
                            "write a .csv instead, or declare the column's kind") from None
    if table.cells is not None:
        rows = table.frame.index.get_indexer(frame.index)
        for col in _integer_columns(table):
            frame[col] = _integer_column(table, col, rows, frame[col])
    return pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)


def _integer_column(table: Table, col: str, rows: np.ndarray, filled: pd.Series) -> np.ndarray:
    """Column ``col`` of a CSV whose observed cells are all integers, for a parquet output: int64 made from each
    observed cell's text (float64 would round one beyond 2^53) and from the filled whole numbers; float64 when a fill
    is not a whole number. A DataError when neither holds every observed integer exactly."""
    observed = table.frame[col].notna().to_numpy()[rows]
    texts = table.cells[col].to_numpy(dtype=object)[rows]
    values = filled.to_numpy(dtype=float, na_value=np.nan)
    numbers = [int(text) if seen else None for text, seen in zip(texts, observed)]
    if np.isfinite(values).all() and np.all(values == np.round(values)):
        whole = [n if n is not None else int(v) for n, v in zip(numbers, values)]
        if all(-2 ** 63 <= n < 2 ** 63 for n in whole):
            return np.array(whole, dtype=np.int64)
    beyond = [i for i, n in enumerate(numbers) if n is not None and abs(n) > 2 ** 53]
    if beyond:
        raise _inexact_integer(table, col, rows[beyond[0]], "(with this column's fills) ")
    return values


def _inexact_integer(table: Table, col: str, row: int, fills: str = "") -> DataError:
    """The error for row ``row`` (0-based) of CSV column ``col``: an integer a parquet output cannot hold exactly."""
    return DataError(f"column {col!r} holds {table.cells[col].iloc[row]!r}, which neither a parquet int64 column "
                     f"{fills}nor a float64 one holds exactly", f"{table.path}, line {table.lines[row]}",
                     f"write a .csv output, or drop {col} from --numeric (it is then kept as text)")


def _exact_integers(values: pd.Series, column: str, path: Path) -> pd.Series:
    """A text column read from a parquet integer column (its values beyond float64) as Python ints again."""
    out = []
    for value in values.to_numpy(dtype=object):
        if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
            out.append(None)
            continue
        try:
            out.append(int(str(value).strip()))
        except ValueError:
            raise DataError(f"column {column!r} is an integer column, but a filled cell is {value!r}", str(path),
                            f"write a .csv instead, or fill {column!r} with another method") from None
    return pd.Series(out, index=values.index, dtype=object)


def check_output_fits(table: Table, path: str | Path, numeric: tuple[str, ...] = ()) -> None:
    """A DataError, before any filling, when the output ``path`` cannot hold a column of ``table`` as typed
    (``numeric``: the columns declared numeric). A parquet output of a CSV: an integer beyond int64 (a float64 would
    change it). Either output of a parquet file: a decimal or bool column declared numeric (its fills are floats). A
    CSV output of a parquet file: a binary column would be written as Python's ``b'...'`` text, an empty string as an
    empty cell (a gap)."""
    output = table_kind(Path(path), role="output")
    if table.cells is not None and output == "parquet":
        for col in sorted(_integer_columns(table), key=list(table.frame.columns).index):
            values = table.frame[col].to_numpy()
            for row in np.flatnonzero(np.abs(values) >= 2.0 ** 63):  # only these can be beyond int64
                if not -2 ** 63 <= int(table.cells[col].iloc[row]) < 2 ** 63:
                    raise _inexact_integer(table, col, row)
    if table.schema is None:
        return
    import pyarrow as pa

    for col in numeric:
        kind_of = table.schema.field(col).type
        if pa.types.is_decimal(kind_of) or pa.types.is_boolean(kind_of):
            holds = f"exact decimals of {kind_of.scale} places" if pa.types.is_decimal(kind_of) else "True or False"
            raise DataError(f"column {col!r} is declared numeric, but as a parquet {kind_of} column it holds {holds}, "
                            "not the float a numeric fill is", str(table.path),
                            f"leave {col} out of --numeric (it is then filled with one of its own values), or store it "
                            "as float64 first (e.g. with pyarrow.compute.cast)")
    if output != "csv":
        return
    for column in table.schema:
        kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
        if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
            raise DataError(f"column {column.name!r} holds bytes, which a CSV cannot hold as they are", str(path),
                            "write a .parquet output, or decode the column to text first")
    for col in table.text_columns:  # an empty string: a CSV cell that every reader (recllm's too) takes for a gap
        empty = np.flatnonzero(table.frame[col].astype(object).eq("").to_numpy())
        if len(empty):
            more = f"; {len(empty)} such cells" if len(empty) > 1 else ""
            raise DataError(f"column {col!r} holds an empty string, which a CSV output cannot tell from a gap",
                            f"{table.path}, row {empty[0] + 1}{more}",
                            f"write a .parquet output instead of {path}, or replace the empty strings first")


def write_table(table: Table, filled: pd.DataFrame, path: str | Path, replace: bool = True) -> None:
    """Write ``filled`` (the imputer's output for ``table.frame``) to ``path`` (.csv or .parquet), atomically
    (``replace=False``: never over a file that appeared there meanwhile, :func:`recllm.utils.atomic_path`)."""
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
        with atomic_path(path, replace) as tmp:
            tmp.write_bytes(data)
        return
    arrow = _arrow(table, filled)
    with atomic_path(path, replace) as tmp:
        if kind == "csv":  # a parquet input: its stored index (e.g. the row ids) as the first columns
            frame = arrow.to_pandas()
            stored = bool((arrow.schema.pandas_metadata or {}).get("index_columns")) and \
                not isinstance(frame.index, pd.RangeIndex)
            frame.to_csv(tmp, index=stored, index_label=_index_labels(frame) if stored else None)
        else:
            pq.write_table(arrow, tmp)


def _index_labels(frame: pd.DataFrame) -> list[str]:
    """The CSV header names of ``frame``'s index levels: their names, ``index`` (``index_1`` ...) for an unnamed
    one, never the name of a column."""
    taken, labels = set(map(str, frame.columns)), []
    for k, name in enumerate(frame.index.names):
        label = str(name) if name is not None else "index" if k == 0 else f"index_{k}"
        while label in taken:
            label = f"{label}_"
        taken.add(label)
        labels.append(label)
    return labels
