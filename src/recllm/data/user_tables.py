"""A user's own table (CSV or parquet) read exactly as written: every CSV cell as its text, with its line.

Used by ``recllm impute`` (:mod:`recllm.impute.table_io` types the columns and writes the table back) and by the
data-folder reader (:mod:`recllm.data.folder`). The rules:

* The bytes are decoded strictly with ``encoding`` (default utf-8); an undecodable byte is an error naming its
  line. A UTF-8 byte-order mark is set aside (``Table.bom``).
* Every cell is read as text (the csv module: ``"`` quotes, ``""`` inside quotes is a quote). The first non-blank
  line is the header; blank lines are skipped, except between the rows of a one-column table, where a blank line
  could be a missing cell: that is an error naming the line (write an empty cell as ``""``).
* Only an empty cell is a gap. ``NA``, ``None``, ``null``, ``n/a``, ``NaN``, ``-`` are values and are kept;
  ``na_values`` lists further strings (compared exactly) that mark a gap.
* Errors name the file and the line (1-based, as an editor shows it) and what to do: an empty or duplicated
  column name, a line with more or fewer fields than the header, a one-field header that splits into several
  columns on another separator (``a;b;c`` read with ``,``), broken quoting.
* A parquet file is read with pyarrow as typed; list, struct and map columns are refused, naming the column, and so
  is a NaN in a float column (a value in parquet, apart from a gap, which is a null), naming its row.

``options=True`` (the default) words the advice for a command that takes ``--sep`` and ``--encoding``; with
``options=False`` it says how to save the file instead.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gc
import hashlib
import io
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recllm.data.dataset import DataError

TABLE_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
INTEGER = r"\s*[+-]?\d+\s*"  # a cell that is an integer (spaces around it allowed)
SEPARATORS = (",", ";", "\t", "|")  # tried on a one-field header to suggest the right separator


def parse_sep(text: str) -> str:
    """The one-character separator ``--sep`` names (``\\t`` or ``tab`` for a tab)."""
    sep = {"\\t": "\t", "tab": "\t"}.get(text, text)
    if len(sep) != 1 or sep in "\"\r\n":
        raise DataError(f"the separator must be one character other than a quote or a newline, got {text!r}",
                        "--sep", "pass e.g. --sep ';' or --sep '\\t'")
    return sep


def _shown(sep: str) -> str:
    return "--sep '\\t'" if sep == "\t" else f"--sep '{sep}'"


def _sep_advice(sep: str, options: bool) -> str:
    """How to give a file's separator ``sep``: the option, or how to save the file for a reader without one."""
    return f"pass {_shown(sep)}" if options else f"save the file with ',' between the cells (it uses {sep!r})"


@dataclass(frozen=True)
class CsvFormat:
    """How a CSV file is written: separator, encoding, and the extra strings that mark a gap."""

    sep: str = ","
    encoding: str = "utf-8"
    na_values: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "sep", parse_sep(self.sep))
        try:
            text = codecs.lookup(self.encoding)._is_text_encoding  # rot13, hex, zlib ... are not
        except LookupError:
            text = False
        if not text:
            raise DataError(f"unknown encoding {self.encoding!r}", "--encoding",
                            "pass a Python codec name such as utf-8, latin-1 or cp1252")
        object.__setattr__(self, "na_values", tuple(self.na_values))


@dataclass
class Table:
    """A table as read: ``frame`` for the caller, and what is needed to write it back as it was written."""

    path: Path
    frame: pd.DataFrame  # CSV: every column str (NaN is a gap); parquet: as pyarrow typed it
    numeric: tuple[str, ...]  # the columns read as numbers
    notes: list[str] = field(default_factory=list)
    fmt: CsvFormat | None = None  # this field and the next ones: CSV input only
    cells: pd.DataFrame | None = None  # every cell's text as in the file
    records: list[str] | None = None  # each data row's original text, without its line ending
    endings: list[str] | None = None  # each data row's own line ending ("" for a last line without one)
    lines: np.ndarray | None = None  # each data row's 1-based line in the file
    header: str = ""
    newline: str = "\n"
    final_newline: bool = True
    bom: bool = False
    schema: Any = None  # parquet only: the input's pyarrow schema
    sha256: str = ""  # of the bytes that were parsed

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


def read_cells(path: str | Path, fmt: CsvFormat | None = None, options: bool = True) -> Table:
    """Read a CSV file's cells as text (or a parquet file as typed) by the rules of this module's docstring; the
    caller types the columns. An empty file and a header without rows are errors."""
    path, fmt = Path(path), fmt or CsvFormat()
    kind = table_kind(path)
    if path.is_dir():
        raise DataError("is a folder, not a table", str(path), "give a .csv or .parquet file")
    if not path.is_file():
        raise DataError("no such file", str(path), "check the path")
    data = path.read_bytes()
    if kind == "parquet":
        table = _read_parquet(path, data, fmt)
    else:
        with _no_gc():
            table = _read_csv(path, data, fmt, options)
    table.sha256 = hashlib.sha256(data).hexdigest()
    if table.frame.empty:
        raise DataError("the table has a header but no rows", str(path), "add its rows")
    return table


# ---------------------------------------------------------------------------------------------- CSV reading
# the first bytes of files that are not text tables, and what to do with each
_BINARY_SIGNATURES = (
    (b"PAR1", "a Parquet file", "rename it to .parquet"),
    (b"PK\x03\x04", "a zip archive (an .xlsx or .ods workbook is one)", "export the sheet as CSV, or unzip it"),
    (b"\x1f\x8b", "gzip-compressed", "decompress it first (gunzip)"),
    (b"BZh", "bzip2-compressed", "decompress it first (bunzip2)"),
    (b"\xfd7zXZ\x00", "xz-compressed", "decompress it first (unxz)"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed", "decompress it first (unzstd)"),
    (b"\xd0\xcf\x11\xe0", "an Office file (.xls or .doc) or an encrypted workbook",
     "export the sheet as CSV, unencrypted"),
    (b"SQLite format 3\x00", "an SQLite database", "export the table as CSV"),
)


def _sniff_binary(data: bytes) -> tuple[str, str] | None:
    """``(what it is, what to do)`` when ``data`` begins like a known binary format, else None. Ask only about bytes
    that are not text (they do not decode, or hold a NUL): a UTF-16 table's first character may be 1F 8B."""
    for signature, what, advice in _BINARY_SIGNATURES:
        if data.startswith(signature):
            return what, advice
    return None


def _looks_like_utf16(data: bytes) -> bool:
    """Whether ``data`` (its first 4 KiB) has a NUL in at least 90% of its even or of its odd bytes: ASCII-range text
    in UTF-16, read as a one-byte encoding."""
    sample = data[:4096]
    halves = (sample[0::2], sample[1::2])
    return len(sample) >= 4 and any(half.count(0) >= 0.9 * len(half) for half in halves)


def _looks_like_text(data: bytes) -> bool:
    """Whether ``data`` is non-empty UTF-8 without NUL bytes (its first 64 KiB; a character cut there counts)."""
    sample = data[:65536]
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        return False
    return bool(sample) and b"\x00" not in sample


def _refuse_non_text(path: Path, data: bytes, fmt: CsvFormat, options: bool) -> None:
    """A DataError for bytes that did not read as text in ``fmt.encoding`` (they failed to decode, or decoded with a
    NUL) when they are a known binary format or UTF-16 text; otherwise nothing."""
    binary = _sniff_binary(data)
    if binary is not None:
        raise DataError(f"this is {binary[0]}, not a CSV file", str(path), binary[1])
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or _looks_like_utf16(data):
        raise DataError(f"this is UTF-16 text, not {fmt.encoding}", str(path),
                        "pass --encoding utf-16 (utf-16-le or utf-16-be without a byte-order mark)" if options else
                        "save the file as UTF-8")


def _refuse_not_wide(path: Path, data: bytes, fmt: CsvFormat, options: bool) -> None:
    """A DataError when ``fmt.encoding`` is UTF-16 or UTF-32 but ``data`` cannot be a table in it: no byte-order
    mark, and no NUL byte in its first 64 KiB (each line break and ASCII character holds one in those encodings)."""
    name = codecs.lookup(fmt.encoding).name
    if not name.startswith(("utf-16", "utf-32")) or not data or data.startswith((b"\xff\xfe", b"\xfe\xff")) \
            or b"\x00" in data[:65536]:
        return
    right = "--encoding utf-8 (it reads as UTF-8)" if _looks_like_text(data) else \
        "the file's encoding, e.g. --encoding latin-1 or --encoding cp1252"
    raise DataError(f"this does not look like {fmt.encoding} text: no byte-order mark, and no NUL byte, which its "
                    "line breaks would hold", str(path), f"pass {right}" if options else f"save the file as {name}")


def _decode(path: Path, data: bytes, fmt: CsvFormat, options: bool) -> tuple[str, bool]:
    _refuse_not_wide(path, data, fmt, options)
    try:
        text = data.decode(fmt.encoding)
    except UnicodeDecodeError as exc:
        _refuse_non_text(path, data, fmt, options)
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"byte {data[exc.start:exc.start + 1]!r} is not valid {fmt.encoding}", f"{path}, line {line}",
                        "pass the file's encoding, e.g. --encoding latin-1 or --encoding cp1252" if options else
                        f"save the file as {fmt.encoding}") from None
    if "\x00" in text:  # latin-1 decodes any byte: a NUL says binary, or UTF-16
        _refuse_non_text(path, data, fmt, options)
    bom = text.startswith("\ufeff")
    text = text[1:] if bom else text
    if not text.strip():
        raise DataError("the file is empty", str(path), "give a table with a header line and rows")
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


@contextlib.contextmanager
def _any_field_size():
    """The csv module's field-size limit (131,072 characters by default) lifted while a table is read: a long
    description is a cell like any other."""
    before = csv.field_size_limit()
    csv.field_size_limit(min(sys.maxsize, 2 ** 31 - 1))
    try:
        yield
    finally:
        csv.field_size_limit(before)


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
                else:  # the end of the file reached inside a quoted field
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


def _check_header(path: Path, names: list[str], line: int, sep: str, first_row: list[str] | None,
                  options: bool) -> None:
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
                                _sep_advice(other, options))


def _read_csv(path: Path, data: bytes, fmt: CsvFormat, options: bool) -> Table:
    with _any_field_size():
        return _read_csv_text(path, data, fmt, options)


def _read_csv_text(path: Path, data: bytes, fmt: CsvFormat, options: bool) -> Table:
    text, bom = _decode(path, data, fmt, options)
    records, blanks = _records(path, text, fmt.sep)
    header_line, names, header_raw, newline = records[0]
    inside = [b for b in blanks if header_line < b < records[-1][0]]
    if len(names) == 1 and inside:  # in one column a blank line may be a gap: never drop it silently
        more = f"; {len(inside)} such lines" if len(inside) > 1 else ""
        raise DataError("a blank line between the rows of a one-column table: a missing cell or a stray line?",
                        f"{path}, line {inside[0]}{more}",
                        'write a missing cell as "" (an empty quoted cell), or delete the blank line')
    rows, raws, lines, endings = [], [], [], []
    bad: list[tuple[int, int]] = []
    for line, fields, raw, ending in records[1:]:
        if not rows and not bad:
            _check_header(path, names, header_line, fmt.sep, fields, options)
        if len(fields) != len(names):
            bad.append((line, len(fields)))
            continue
        rows.append(fields)
        raws.append(raw)
        lines.append(line)
        endings.append(ending)
    if not rows and not bad:
        _check_header(path, names, header_line, fmt.sep, None, options)
    if bad:
        line, n = bad[0]
        more = f"; {len(bad)} such lines" if len(bad) > 1 else ""
        raise DataError(f"a line has {n} field(s) but the header has {len(names)}",
                        f"{path}, line {line}{more}",
                        f"give every line {len(names)} fields separated by {fmt.sep!r} (quote a cell that contains "
                        f"{fmt.sep!r})" + (", or pass the right --sep" if options else ""))
    cells = pd.DataFrame(rows, columns=names, dtype=object) if rows else pd.DataFrame(columns=names, dtype=object)
    gap = cells.eq("") | cells.isin(list(fmt.na_values)) if rows else cells.astype(bool)
    frame = pd.DataFrame({c: pd.Series(cells[c].where(~gap[c]), dtype="str") for c in names})
    return Table(path, frame, (), fmt=fmt, cells=cells, records=raws, endings=endings,
                 lines=np.asarray(lines, dtype=int),
                 header=header_raw, newline=newline or "\n", final_newline=text.endswith(("\n", "\r")), bom=bom)


# ---------------------------------------------------------------------------------------------- parquet reading
def _read_parquet(path: Path, data: bytes, fmt: CsvFormat) -> Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    def unreadable(exc: BaseException) -> DataError:
        if not data:
            return DataError("the file is empty", str(path), "give a parquet file with rows")
        binary = _sniff_binary(data)
        if binary is not None and binary[0] != "a Parquet file":
            return DataError(f"this is {binary[0]}, not a Parquet file", str(path), binary[1])
        if binary is None and _looks_like_text(data):
            return DataError("this is a text file (a CSV?), not a Parquet file", str(path),
                             "rename it to .csv if it is one")
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return DataError(f"cannot read it as parquet ({first})", str(path), "check that it is a parquet file")

    try:
        names = pq.read_schema(pa.BufferReader(data)).names
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise unreadable(exc) from None
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise DataError(f"column {twice[0]!r} appears more than once", str(path), "rename the duplicates")
    try:
        arrow = pq.read_table(pa.BufferReader(data))
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise unreadable(exc) from None
    for column in arrow.schema:
        if pa.types.is_nested(column.type) or pa.types.is_dictionary(column.type) and \
                pa.types.is_nested(column.type.value_type):
            raise DataError(f"column {column.name!r} holds {column.type} values (lists, structs or maps), which are "
                            "not table cells", str(path), "drop the column or flatten it into plain columns first")
    _refuse_nan_values(path, arrow)
    frame = arrow.to_pandas()
    notes = []
    # na_values mark gaps in the file's text columns only (string or dictionary in the file's own schema)
    texts = [c.name for c in arrow.schema if c.name in frame.columns and
             (pa.types.is_string(c.type) or pa.types.is_large_string(c.type) or pa.types.is_dictionary(c.type))]
    for column in arrow.schema:  # integers float64 cannot hold exactly (pandas makes a column with gaps float64)
        if column.name not in frame.columns:  # a pandas index stored as a column: the frame's index, not a cell
            continue
        if pa.types.is_integer(column.type) and _beyond_float(arrow.column(column.name)):
            frame[column.name] = pd.Series(arrow.column(column.name).cast(pa.string()).to_pylist(), dtype=object,
                                           index=frame.index)
            notes.append(f"column {column.name!r} is read as text: it holds integers beyond 2^53, which a number "
                         "column (float64) would change; they are kept as written")
    if fmt.na_values:
        for col in texts:
            frame[col] = frame[col].mask(frame[col].isin(list(fmt.na_values)))
    numeric = tuple(c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c].dtype)
                    and not pd.api.types.is_bool_dtype(frame[c].dtype))
    return Table(path, frame, numeric, notes=notes, schema=arrow.schema)


def _refuse_nan_values(path: Path, arrow: Any) -> None:
    """A DataError for a NaN in a float column of the arrow table ``arrow``: parquet keeps a NaN value apart from a
    gap (null), and pandas would make it a gap that an imputer fills. pandas writes its NaN gaps as nulls."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for name in arrow.column_names:
        values = arrow.column(name)
        if pa.types.is_dictionary(values.type):
            values = values.cast(values.type.value_type)
        if not pa.types.is_floating(values.type):
            continue
        nan = pc.is_nan(values)  # null where the cell is a gap
        count = pc.sum(nan).as_py() or 0
        if count:
            more = f"; {count} such cells" if count > 1 else ""
            raise DataError(f"column {name!r} holds NaN, a value in parquet (a gap is a null), which would be read as "
                            "a gap and filled", f"{path}, row {pc.index(nan, True).as_py() + 1}{more}",
                            f"store the gaps as nulls (e.g. pyarrow.compute.if_else(pyarrow.compute.is_nan(col), None, "
                            "col)), or replace the NaN by a number")


def _beyond_float(values: Any) -> bool:
    """Whether an arrow integer column holds a value float64 cannot represent exactly (|v| > 2^53)."""
    import pyarrow.compute as pc

    if values.null_count == len(values):
        return False
    low, high = pc.min_max(values).values()
    return high.as_py() > 2 ** 53 or low.as_py() < -(2 ** 53)
