"""Careful readers for publisher files: every failure becomes a DataError naming file, column, line and fix.

The loaders read everything as strings first and convert columns afterwards, so that junk in a numeric
column is reported with its line number instead of silently turning into NaN.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from recllm.data.dataset import DataError, ids_in

REDOWNLOAD = "delete the file and load again to re-download it, or replace it with the publisher's original"


def read_text(path: Path, encoding: str = "utf-8") -> str:
    """Decode a whole file strictly; a bad byte is reported with its line number."""
    data = path.read_bytes()
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path}: line {line} is not valid {encoding} (byte {data[exc.start:exc.start + 1]!r} at offset "
            f"{exc.start}); the publisher's file is {encoding}: {REDOWNLOAD} (do not re-save it in another encoding)"
        ) from None
    if text.startswith("\ufeff"):
        text = text[1:]  # a byte-order mark added by an editor; harmless
    return text


def read_table(
    path: Path,
    sep: str,
    names: list[str] | None = None,
    encoding: str = "utf-8",
    header: bool = False,
    quoting: int = csv.QUOTE_MINIMAL,
) -> pd.DataFrame:
    """Read a delimited file with every cell as a string.

    ``header=True``: the file's first line names the columns and must contain ``names`` (extra columns are
    kept). ``header=False``: the file has no header and every line must have exactly ``len(names)`` fields.
    Data row ``i`` is file line ``i + 1 + header`` (blank lines aside); error messages use that number.
    """
    text = read_text(path, encoding)
    if len(sep) > 1:  # e.g. MovieLens-1M's "::"; swap in a control character so the fast C parser can run
        if "\x1f" in text:
            raise DataError(f"{path}: contains the control character 0x1F, which a {sep!r}-separated file never has")
        text = text.replace(sep, "\x1f")
    shown_sep, sep = sep, ("\x1f" if len(sep) > 1 else sep)
    if not header and names is not None and quoting == csv.QUOTE_NONE:
        _check_field_counts(path, text, sep, shown_sep, names)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)  # a line with extra fields must not shift columns
            frame = pd.read_csv(
                io.StringIO(text),
                sep=sep,
                header=0 if header else None,
                names=None if header else names,
                index_col=False,
                dtype=str,
                keep_default_na=False,
                na_filter=False,
                quoting=quoting,
                skip_blank_lines=True,
                engine="c",
            )
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; {REDOWNLOAD}") from None
    except (pd.errors.ParserError, pd.errors.ParserWarning) as exc:
        raise DataError(f"{path}: malformed line ({str(exc).strip()}); expected {len(names or [])} fields separated "
                        f"by {shown_sep!r}; {REDOWNLOAD}") from None
    if header and names is not None:
        frame.columns = [str(c).strip() for c in frame.columns]
        missing = [c for c in names if c not in frame.columns]
        if missing:
            raise DataError(
                f"{path}: missing column(s) {missing}; the header has {list(frame.columns)} but the publisher's file "
                f"has {names}. A renamed or re-exported copy will not do: {REDOWNLOAD}"
            )
    if frame.empty:
        raise DataError(f"{path}: no data rows; the file is empty or holds only a header; {REDOWNLOAD}")
    frame.attrs["header_lines"] = int(header)
    return frame


def _check_field_counts(path: Path, text: str, sep: str, shown_sep: str, names: list[str]) -> None:
    """A headerless, unquoted file must have exactly ``len(names)`` fields on every non-blank line."""
    lines = pd.Series(text.split("\n"))
    blank = lines.str.strip() == ""
    counts = lines.str.count(re.escape(sep)) + 1
    bad = (counts != len(names)) & ~blank
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{path}: line {row + 1} has {int(counts.iloc[row])} fields separated by {shown_sep!r}, expected "
            f"{len(names)} ({', '.join(names)}); {int(bad.sum())} such lines; {REDOWNLOAD}"
        )


def _line(frame: pd.DataFrame, row: int) -> int:
    return row + 1 + int(frame.attrs.get("header_lines", 0))


def row_error(path: Path, frame: pd.DataFrame, column: str, bad: pd.Series, problem: str) -> DataError:
    """A DataError for the first row flagged in ``bad``: file, column, line, value, what is wrong and the fix."""
    row = int(np.flatnonzero(bad.to_numpy())[0])
    return DataError(
        f"{path}: column {column!r}, line {_line(frame, row)}: {frame[column].iloc[row]!r} {problem} "
        f"({int(bad.sum())} such rows); fix or remove those rows, or {REDOWNLOAD}"
    )


def to_numeric(frame: pd.DataFrame, column: str, path: Path, kind: str = "float", allow_empty: bool = False) -> pd.Series:
    """Convert a string column to float64 or int64; junk is reported with its line and value.

    ``allow_empty``: an empty cell is a real missing value (NaN, float only) instead of an error.
    """
    raw = frame[column].astype(str).str.strip()
    values = pd.to_numeric(raw, errors="coerce")
    empty = raw == ""
    bad = (values.isna() & ~(empty & allow_empty)) | (values.notna() & ~np.isfinite(values.astype(np.float64)))
    if kind == "int":
        bad |= values.notna() & (values != np.floor(values))
    if bad.any():
        raise row_error(path, frame, column, bad, "is not " + ("an integer" if kind == "int" else "a number"))
    if kind == "int":
        return values.astype(np.int64)
    return values.astype(np.float64)


def check_values(frame: pd.DataFrame, column: str, path: Path, allowed: set[str]) -> None:
    """Every cell of ``column`` must be one of ``allowed`` (e.g. 0/1 flags)."""
    bad = pd.Series(~ids_in(frame[column], pd.Index(sorted(allowed))), index=frame.index)
    if bad.any():
        raise row_error(path, frame, column, bad, f"is not one of {sorted(allowed)}")


def check_nonempty(frame: pd.DataFrame, column: str, path: Path) -> None:
    """Ids and other required cells must not be empty."""
    bad = frame[column].astype(str).str.strip() == ""
    if bad.any():
        raise row_error(path, frame, column, bad, "is empty but every row needs a value")


def check_unique(frame: pd.DataFrame, column: str, path: Path) -> None:
    """Ids of a catalogue file must be unique; a duplicate is reported with both lines."""
    dup = frame[column].duplicated(keep=False)
    if dup.any():
        rows = np.flatnonzero(dup.to_numpy())
        value = frame[column].iloc[rows[0]]
        same = rows[frame[column].iloc[rows].to_numpy() == value]
        raise DataError(
            f"{path}: column {column!r} has duplicate id {value!r} on lines {_line(frame, int(same[0]))} and "
            f"{_line(frame, int(same[1]))} ({int(frame[column].duplicated().sum())} duplicates in all); remove the "
            f"duplicate rows or {REDOWNLOAD}"
        )


def check_known(frame: pd.DataFrame, column: str, path: Path, known: pd.Index | set[str], other: Path) -> None:
    """Every id in ``column`` must exist in the catalogue file ``other``."""
    bad = ~ids_in(frame[column], pd.Index(list(known)) if isinstance(known, set) else known)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: column {column!r}, line {_line(frame, row)}: id {frame[column].iloc[row]!r} is not in {other.name} "
            f"({int(bad.sum())} such rows); the two files must come from the same release: {REDOWNLOAD}"
        )


def parse_times(frame: pd.DataFrame, column: str, path: Path, fmt: str) -> pd.Series:
    """Parse a date-time column with an exact format (read as UTC) into int64 unix seconds."""
    parsed = pd.to_datetime(frame[column].str.strip(), format=fmt, errors="coerce", utc=True)
    bad = parsed.isna()
    if bad.any():
        raise row_error(path, frame, column, bad, f"does not match the publisher's time format {fmt!r} (a copy "
                        "re-saved by a spreadsheet rewrites times)")
    return (parsed.astype("datetime64[s, UTC]").astype("int64")).astype(np.int64)


def iter_json_lines(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, object)`` from a JSON Lines file, gzip-compressed when the name ends in ``.gz``."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            for number, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw.decode("utf-8"))
                except UnicodeDecodeError:
                    raise DataError(f"{path}: line {number} is not valid UTF-8; {REDOWNLOAD}") from None
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}: line {number} is not valid JSON ({exc.msg}); {REDOWNLOAD}") from None
                if not isinstance(obj, dict):
                    raise DataError(f"{path}: line {number} is a JSON {type(obj).__name__}, not an object; {REDOWNLOAD}")
                yield number, obj
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot be read as {'gzip' if path.suffix == '.gz' else 'text'} ({exc}); "
                        f"the file is truncated or corrupt: {REDOWNLOAD}") from None
