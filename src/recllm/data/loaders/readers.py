"""Careful readers for publisher files: every failure becomes a DataError naming file, column, line and fix.

The loaders read everything as strings first and convert columns afterwards, so that junk in a numeric
column is reported with its line number instead of silently turning into NaN. Line numbers are 1-based file
lines, as a text editor shows them.

Checks every loader shares (one place, here):

- a cut file: a line with fewer fields than the format has, or a last line without its line break whose last
  field is shorter than every other value of that column (a download or copy cut inside the last field);
- :func:`check_interactions`: empty ids, negative timestamps, ratings outside the publisher's documented scale,
  labels other than 0/1 are errors; exact duplicate interactions (same user, item, timestamp and rating/label)
  are **kept**, as in the publisher's file and as RecBole does by default (``rm_dup_inter: None``), counted in
  ``info["exact_duplicate_interactions"]`` and reported by one warning line naming the file on every load.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recllm.data.dataset import ITEM, LABEL, RATING, TIME, USER, DataError, ids_in

REDOWNLOAD = "delete the file and load again to re-download it, or replace it with the publisher's original"
CUT = "the file was cut off (an interrupted download or copy)"


class LineNumbers:
    """The 1-based file line of every data row of a parsed frame, kept in ``frame.attrs["lines"]``.

    pandas deep-copies ``attrs`` on most operations; this wrapper makes that copy free (it is immutable)."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray) -> None:
        self.array = np.asarray(array, dtype=np.int64)

    def __deepcopy__(self, memo: dict) -> "LineNumbers":
        return self


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
    A line with too few or too many fields is an error (naming it as cut off when it is the last line and the
    file lacks its final line break), and so is a last line cut inside its last field (:func:`_check_last_field`).
    ``frame_lines(frame)`` gives each row's 1-based file line (blank lines counted) for error messages.
    """
    text = read_text(path, encoding)
    if len(sep) > 1:  # e.g. MovieLens-1M's "::"; swap in a control character so the fast C parser can run
        if "\x1f" in text:
            raise DataError(f"{path}: contains the control character 0x1F, which a {sep!r}-separated file never has")
        text = text.replace(sep, "\x1f")
    shown_sep, sep = sep, ("\x1f" if len(sep) > 1 else sep)
    counts, starts = _records(text, sep, quoting)
    if len(counts) > int(header):
        expected = int(counts[0]) if header else len(names) if names is not None else int(counts.max())
        fields = "as many as the header line" if header else ", ".join(names or [])
        _check_field_counts(path, text, counts[int(header):], starts[int(header):], expected, shown_sep, fields)
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
    lines = starts[int(header):]
    frame.attrs["lines"] = LineNumbers(lines if len(lines) == len(frame) else np.arange(len(frame)) + 1 + header)
    _check_last_field(path, text, frame)
    return frame


def _records(text: str, sep: str, quoting: int) -> tuple[np.ndarray, np.ndarray]:
    """Field count and first file line (1-based) of every non-blank record, the header included.

    Unquoted files: one record per line. Files with quotes are read with the csv module, which knows that a
    quoted separator is no field boundary (and a quoted line break no record boundary)."""
    if quoting == csv.QUOTE_NONE or '"' not in text:
        lines = text.split("\n")
        keep = np.fromiter((bool(line.strip()) for line in lines), dtype=bool, count=len(lines))
        counts = np.fromiter((line.count(sep) + 1 for line in lines), dtype=np.int64, count=len(lines))
        return counts[keep], np.flatnonzero(keep) + 1
    counts, starts = [], []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, quoting=quoting)
    before = 0
    for record in reader:
        if record:  # a blank line gives [], and pandas skips it too
            counts.append(len(record))
            starts.append(before + 1)
        before = reader.line_num
    return np.asarray(counts, dtype=np.int64), np.asarray(starts, dtype=np.int64)


def _cut_note(text: str, line: int) -> str:
    """Why a short last line is short: the file ends without a line break there."""
    last = len(text.rstrip("\n").split("\n"))
    return f"; it is the last line and the file ends without a line break: {CUT}" if (
        line == last and not text.endswith("\n")) else ""


def _check_last_field(path: Path, text: str, frame: pd.DataFrame) -> None:
    """A last line without its line break must not be cut inside its last field: that field may not be shorter
    than every other value of its column (a heuristic: a cut that keeps such a length goes unseen)."""
    if text.endswith("\n") or len(frame) < 2:
        return
    column = frame.columns[-1]
    lengths = frame[column].astype(str).str.strip().str.len()
    if lengths.iloc[-1] < lengths.iloc[:-1].min():
        line = int(frame_lines(frame)[-1])
        raise DataError(f"{path}: line {line} (the last) ends without a line break and its last field "
                        f"{frame[column].iloc[-1]!r} is shorter than every other value of column {column!r}: {CUT}; "
                        f"restore the file from the publisher's archive ({REDOWNLOAD})")


def _check_field_counts(path: Path, text: str, counts: np.ndarray, starts: np.ndarray, expected: int,
                        shown_sep: str, fields: str) -> None:
    """Every data record has exactly ``expected`` fields; the first that does not is reported with its line."""
    bad = counts != expected
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        line = int(starts[row])
        raise DataError(
            f"{path}: line {line} has {int(counts[row])} fields separated by {shown_sep!r}, expected "
            f"{expected} ({fields}); {int(bad.sum())} such lines{_cut_note(text, line)}; {REDOWNLOAD}"
        )


def frame_lines(frame: pd.DataFrame) -> np.ndarray:
    """The 1-based file line of every row of a frame returned by :func:`read_table`."""
    lines = frame.attrs.get("lines")
    if isinstance(lines, LineNumbers) and len(lines.array) == len(frame):
        return lines.array
    return np.arange(len(frame)) + 1 + int(frame.attrs.get("header_lines", 0))


def _line(frame: pd.DataFrame, row: int) -> int:
    return int(frame_lines(frame)[row])


def flagged_error(path: Path, column: str, values: pd.Series | np.ndarray, lines: np.ndarray, bad: np.ndarray,
                  problem: str) -> DataError:
    """A DataError for the first flagged row: file, column, line, value, what is wrong, how many, and the fix."""
    bad = np.asarray(bad, dtype=bool)
    row = int(np.flatnonzero(bad)[0])
    value = np.asarray(values, dtype=object)[row]
    shown = f"{value:g}" if isinstance(value, (float, np.floating)) else repr(value)
    return DataError(
        f"{path}: column {column!r}, line {int(lines[row])}: {shown} {problem} ({int(bad.sum())} such rows); "
        f"fix or remove those rows, or {REDOWNLOAD}"
    )


def row_error(path: Path, frame: pd.DataFrame, column: str, bad: pd.Series, problem: str) -> DataError:
    """A DataError for the first row flagged in ``bad``: file, column, line, value, what is wrong and the fix."""
    return flagged_error(path, column, frame[column].astype(object), frame_lines(frame), np.asarray(bad), problem)


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


@dataclass(frozen=True)
class Scale:
    """The publisher's documented rating values: ``low`` to ``high`` in steps of ``step`` (None: any value)."""

    low: float
    high: float
    step: float | None = None

    def __post_init__(self) -> None:
        if not self.low <= self.high or (self.step is not None and self.step <= 0):
            raise ValueError(f"a rating scale needs low <= high and a positive step, got {self}")

    def contains(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        ok = (values >= self.low) & (values <= self.high)
        if self.step is not None:
            steps = (values - self.low) / self.step
            ok &= np.isclose(steps, np.round(steps))
        return ok

    def __str__(self) -> str:
        return f"{self.low:g} to {self.high:g}" + (f" in steps of {self.step:g}" if self.step is not None else "")


def check_times(path: Path, column: str, values: pd.Series | np.ndarray, lines: np.ndarray) -> None:
    """Timestamps are unix seconds >= 0; a negative one is reported with its line."""
    bad = np.asarray(values) < 0
    if bad.any():
        raise flagged_error(path, column, values, lines, bad,
                            "is a negative timestamp (before 1970); timestamps are unix seconds >= 0")


DUPLICATES = "exact_duplicate_interactions"  # info key: rows equal to an earlier row on every key column


def duplicate_key(interactions: pd.DataFrame) -> list[str]:
    """The columns that make two interactions the same event: user, item, timestamp, and rating/label if any."""
    return [c for c in (USER, ITEM, TIME, RATING, LABEL) if c in interactions.columns]


def check_interactions(interactions: pd.DataFrame, path: Path, lines: np.ndarray, rating: Scale | None = None,
                       names: dict[str, str] | None = None) -> dict[str, Any]:
    """The checks every loader's interactions get; returns what to add to the data set's ``info``.

    ``interactions`` is the typed frame (``user_id``, ``item_id``, ``timestamp`` and ``rating``/``label`` when
    present), ``lines`` the file line of each row in ``path``, ``rating`` the documented scale, ``names`` the
    file's own name of a column for messages (e.g. ``{"rating": "overall"}``). Errors (DataError naming file,
    column and line): an empty id, a negative timestamp, a rating off the scale, a label other than 0/1.
    Exact duplicates (equal on :func:`duplicate_key`) are kept and counted: RecBole also keeps them by default
    (``rm_dup_inter: None``) and the publishers' row counts include them.
    """
    names = names or {}
    lines = np.asarray(lines)

    def fail(column: str, bad: np.ndarray, problem: str) -> DataError:
        return flagged_error(path, names.get(column, column), interactions[column].astype(object), lines, bad, problem)

    for column in (USER, ITEM):
        values = interactions[column]
        bad = (values.isna() | (values.astype(str).str.strip() == "")).to_numpy()
        if bad.any():
            raise fail(column, bad, "is an empty id but every interaction needs a user and an item")
    check_times(path, names.get(TIME, TIME), interactions[TIME], lines)
    if rating is not None and RATING in interactions.columns:
        bad = ~rating.contains(interactions[RATING].to_numpy())
        if bad.any():
            raise fail(RATING, bad, f"is outside the publisher's rating scale ({rating})")
    if LABEL in interactions.columns:
        bad = ~np.isin(interactions[LABEL].to_numpy(), (0, 1))
        if bad.any():
            raise fail(LABEL, bad, "is not a 0/1 label")
    key = duplicate_key(interactions)
    repeated = interactions.duplicated(key, keep="first").to_numpy()
    info: dict[str, Any] = {DUPLICATES: int(repeated.sum())}
    if repeated.any():
        row = int(np.flatnonzero(repeated)[0])
        same = interactions[key].iloc[row]
        first = int(np.flatnonzero((interactions[key] == same).all(axis=1).to_numpy())[0])
        info["exact_duplicate_example"] = {"file": path.name, "lines": [int(lines[first]), int(lines[row])],
                                           "key": key}
    return info


def duplicates_warning(info: dict[str, Any], source: str) -> str | None:
    """The one-line warning for the exact duplicates recorded by :func:`check_interactions` (None: there are none)."""
    count, example = info.get(DUPLICATES, 0), info.get("exact_duplicate_example")
    if not count or not isinstance(example, dict):
        return None
    path = Path(source) / str(example.get("file", ""))
    lines = " and ".join(str(n) for n in example.get("lines", []))
    return (f"{path}: {count} exact duplicate interaction rows (same user, item, timestamp and rating/label; the "
            f"first on lines {lines}); kept as in the publisher's file, as RecBole does by default; drop them with "
            f"dataset.interactions.drop_duplicates({list(example.get('key', []))}) if they are errors for your use")


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
