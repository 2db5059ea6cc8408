"""A data set from a folder of your own files, for ``--data FOLDER`` and :func:`read_folder`.

The folder holds (each as ``.csv``, UTF-8 with ``,`` between the cells, or ``.parquet``):

* ``interactions`` (required): ``user_id``, ``item_id``, ``timestamp``, and optionally ``rating`` (a number) or
  ``label`` (0/1); other columns are kept as they are. ``timestamp`` is either integer unix seconds in every row,
  or an ISO 8601 date or date-time in every row (``2024-03-01``, ``2024-03-01T12:30:00+01:00``), read as UTC
  (a time without a zone is taken as UTC) and cut to the second; ``info["timestamps"]`` says which.
* ``items`` (optional): ``item_id`` and any text columns (title, description, ...): the item text LEARN embeds and
  LLM-TRSR prompts with, ``"column: value"`` joined over them (an empty cell adds nothing). Items that nobody
  interacted with stay in the catalogue (new items, for cold start). Without it, the catalogue is the interacted
  items (sorted), without text.
* ``users`` (optional): ``user_id`` and any text columns; without it, the interacting users (sorted).

Ids are text exactly as written (a parquet integer id as its decimal digits). Nothing is changed silently: an
empty id, a duplicate catalogue id, an interaction whose item (or user) the catalogue lacks, a timestamp that is
neither form (or a unix time in milliseconds), a rating that is not a number or a label other than 0/1 is an
error naming the file, column and line. Exact duplicate interactions are kept and counted in
``info["exact_duplicate_interactions"]``. A folder written by :meth:`RecDataset.save` (it has ``dataset.json``)
is read by :meth:`RecDataset.load`.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd

from recllm.data.dataset import ITEM, LABEL, RATING, TIME, USER, DataError, RecDataset, Schema, ids_in
from recllm.data.user_tables import TABLE_SUFFIXES, Table, read_cells

__all__ = ["FILES", "find_table", "is_data_folder", "load_named_or_folder", "read_folder"]

FILES = ("interactions", "items", "users")
SAVED = "dataset.json"  # the marker of a folder written by RecDataset.save
MAX_UNIX_SECONDS = 10**11  # the year 5138: a larger unix time is in milliseconds (or smaller units)
_INTEGER = re.compile(r"[+-]?\d+")


def is_data_folder(value: str) -> bool:
    """Whether a ``--data`` value names a data folder rather than a data set of the registry: it is written as a
    path (``./shop``, ``~/shop``, ``data/shop``), or it is a folder that is not a registry name."""
    if not value.strip():
        return False
    if "/" in value or "\\" in value or value.startswith(("~", ".")):
        return True
    if not Path(value).is_dir():
        return False
    from recllm.data.loaders.registry import get_loader

    try:
        get_loader(value)
    except KeyError:
        return True
    return False


def find_table(folder: Path, stem: str, required: bool = False) -> Path | None:
    """``folder/<stem>.csv`` or ``.parquet`` (``.pq``); None when absent and not ``required``; an error when both."""
    found = [folder / f"{stem}{suffix}" for suffix in TABLE_SUFFIXES if (folder / f"{stem}{suffix}").is_file()]
    if len(found) > 1:
        raise DataError(f"both {found[0].name} and {found[1].name}", str(folder), "keep one of them")
    if not found and required:
        raise DataError(f"no {stem}.csv or {stem}.parquet", str(folder),
                        f"put the interactions there ({USER}, {ITEM}, {TIME}; see `recllm data info --help`) or "
                        "name a data set of `recllm data list`")
    return found[0] if found else None


def read_folder(folder: str | Path, name: str | None = None) -> RecDataset:
    """The :class:`RecDataset` of a data folder (see this module's docstring); ``name`` defaults to the folder's."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError("no such folder" if not folder.exists() else "is a file, not a folder", str(folder),
                        "give the folder that holds interactions.csv (or .parquet)")
    if (folder / SAVED).is_file():
        return RecDataset.load(folder)
    paths = {stem: find_table(folder, stem, required=stem == "interactions") for stem in FILES}
    events = read_cells(paths["interactions"], options=False)
    interactions, timestamps = _interactions(events)
    items, item_text = _catalogue(paths["items"], ITEM, interactions, events)
    users, user_text = _catalogue(paths["users"], USER, interactions, events)
    from recllm.data.loaders.readers import DUPLICATES, duplicate_key

    info: dict[str, object] = {
        "data_folder": str(folder.resolve()),  # where a saved model finds the data again (item titles)
        "files": {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in paths.values() if path},
        "timestamps": timestamps,
        DUPLICATES: int(interactions.duplicated(duplicate_key(interactions)).sum()),
    }
    schema = Schema(item_text=item_text, user_text=user_text, has_rating=RATING in interactions.columns,
                    has_label=LABEL in interactions.columns)
    return RecDataset(name or folder.resolve().name, interactions, items, users, schema, source=str(folder), info=info)


def load_named_or_folder(value: str, show_progress: bool = True) -> RecDataset:
    """``--data``: a data folder (:func:`read_folder`) or a data set of the registry (:func:`recllm.data.load`)."""
    if is_data_folder(value):
        return read_folder(value)
    from recllm.data import load

    return load(value, show_progress=show_progress)


# ---------------------------------------------------------------------------------------------- the files
def _lines(table: Table) -> np.ndarray:
    """Each row's file line (CSV), or its 1-based row number (parquet, named as a row)."""
    return table.lines if table.lines is not None else np.arange(len(table.frame)) + 1


def _place(table: Table, row: int) -> str:
    """``line N`` of a CSV file, ``row N`` of a parquet file."""
    return f"{'line' if table.lines is not None else 'row'} {int(_lines(table)[row])}"


def _where(table: Table, column: str, row: int) -> str:
    return f"{table.path}, column {column!r}, {_place(table, row)}"


def _fail(table: Table, column: str, bad: np.ndarray, problem: str, todo: str) -> DataError:
    """The error for the first flagged row of ``column``: its place, value and how many rows are like it."""
    bad = np.asarray(bad, dtype=bool)
    row = int(np.flatnonzero(bad)[0])
    value = table.frame[column].iloc[row]
    shown = "an empty cell" if value is None or (isinstance(value, float) and np.isnan(value)) else repr(value)
    more = f" ({int(bad.sum())} rows like it)" if bad.sum() > 1 else ""
    return DataError(f"{shown} {problem}{more}", _where(table, column, row), todo)


def _require(table: Table, columns: tuple[str, ...], todo: str) -> None:
    missing = [c for c in columns if c not in table.frame.columns]
    if missing:
        raise DataError(f"no column {missing[0]!r} (the header has {list(table.frame.columns)})", str(table.path), todo)


def _ids(table: Table, column: str) -> pd.Series:
    """An id column as text exactly as written; an empty id, or a parquet id that is neither text nor integer, is
    an error."""
    values = table.frame[column]
    if pd.api.types.is_integer_dtype(values.dtype):
        return values.astype("int64").astype(str).astype(object)
    if not (pd.api.types.is_string_dtype(values.dtype) or values.dtype == object):
        raise DataError(f"column {column!r} holds {values.dtype} values", str(table.path),
                        "write ids as text or integers")
    bad = values.isna().to_numpy() | (values.astype(str).str.strip() == "").to_numpy()
    if bad.any():
        raise _fail(table, column, bad, "is not an id; every row needs one", "fill in the id or remove the row")
    strange = ~values.map(lambda v: isinstance(v, str)).to_numpy()
    if strange.any():
        raise _fail(table, column, strange, "is not text", "write ids as text or integers")
    return values.astype(object)


def _texts(table: Table, columns: list[str]) -> dict[str, pd.Series]:
    """Text columns with an empty cell as ``""``; a non-text parquet column is an error."""
    out = {}
    for column in columns:
        values = table.frame[column]
        if not (pd.api.types.is_string_dtype(values.dtype) or values.dtype == object):
            raise DataError(f"column {column!r} holds {values.dtype} values, not text", str(table.path),
                            "write it as text, or drop it")
        out[column] = values.where(values.notna(), "").astype(object)
    return out


def _timestamps(table: Table) -> tuple[np.ndarray, str]:
    """``timestamp`` as int64 unix seconds, and which form the file used."""
    values = table.frame[TIME]
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        stamps = values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")
        missing = stamps.isna().to_numpy()
        if missing.any():
            raise _fail(table, TIME, missing, "is not a time; every interaction needs one", "fill it in")
        return stamps.astype("datetime64[s, UTC]").astype("int64").to_numpy(), "parquet timestamps, as UTC seconds"
    if pd.api.types.is_integer_dtype(values.dtype):
        seconds, form = values.to_numpy(dtype=np.int64), "unix seconds"
    else:
        text = values.astype(object).where(values.notna(), "").map(lambda v: str(v).strip())
        integer = text.map(lambda v: bool(_INTEGER.fullmatch(v))).to_numpy()
        both = "write every timestamp as integer unix seconds, or every one as an ISO 8601 date-time " \
               "(2024-03-01T12:30:00)"
        if integer[0]:
            if not integer.all():
                raise _fail(table, TIME, ~integer, "is not integer unix seconds, as the first row's is", both)
            seconds, form = text.astype(np.int64).to_numpy(), "unix seconds"
        else:
            parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
            bad = parsed.isna().to_numpy()
            if bad.any():
                problem = ("is neither integer unix seconds nor an ISO 8601 date-time" if bad[0] else
                           "is not an ISO 8601 date-time, as the first row's is")
                raise _fail(table, TIME, bad, problem, both)
            return parsed.astype("datetime64[s, UTC]").astype("int64").to_numpy(), "ISO 8601, as UTC seconds"
    if (seconds < 0).any():
        raise _fail(table, TIME, seconds < 0, "is before 1970; timestamps are unix seconds >= 0", "fix the time")
    if (seconds >= MAX_UNIX_SECONDS).any():
        raise _fail(table, TIME, seconds >= MAX_UNIX_SECONDS, "is after the year 5000 as unix seconds: milliseconds?",
                    "write unix seconds (divide milliseconds by 1000)")
    return seconds, form


def _numbers(table: Table, column: str) -> np.ndarray:
    values = table.frame[column]
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        numbers = pd.to_numeric(values.astype(object).where(values.notna(), "").map(lambda v: str(v).strip()),
                                errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(numbers)
    if bad.any():
        raise _fail(table, column, bad, "is not a number", f"give every row a {column}, or drop the column")
    return numbers


def _interactions(table: Table) -> tuple[pd.DataFrame, str]:
    _require(table, (USER, ITEM, TIME), f"name the columns {USER}, {ITEM} and {TIME} (and optionally {RATING} or "
                                        f"{LABEL})")
    frame = pd.DataFrame({USER: _ids(table, USER), ITEM: _ids(table, ITEM)})
    frame[TIME], form = _timestamps(table)
    if RATING in table.frame.columns:
        frame[RATING] = _numbers(table, RATING)
    if LABEL in table.frame.columns:
        labels = _numbers(table, LABEL)
        bad = ~np.isin(labels, (0.0, 1.0))
        if bad.any():
            raise _fail(table, LABEL, bad, "is not a 0/1 label", "write 1 for a positive, 0 for a negative")
        frame[LABEL] = labels.astype(np.int64)
    for column in table.frame.columns:
        if column not in frame.columns:
            frame[column] = table.frame[column].to_numpy()
    return frame, form


def _catalogue(path: Path | None, key: str, interactions: pd.DataFrame,
               events: Table) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """The items (or users) frame and its text columns: from ``path``, or the interacting ids when absent."""
    if path is None:
        return pd.DataFrame({key: np.array(sorted(interactions[key].unique()), dtype=object)}), ()
    table = read_cells(path, options=False)
    _require(table, (key,), f"name the id column {key}")
    ids = _ids(table, key)
    repeated = ids.duplicated(keep=False).to_numpy()
    if repeated.any():
        first = np.flatnonzero(repeated)[0]
        again = np.flatnonzero(repeated & (ids == ids.iloc[first]).to_numpy())[1]
        raise DataError(f"{key} {ids.iloc[first]!r} is listed twice", f"{path}, {_place(table, first)} and "
                        f"{_place(table, again)}", "keep one row per id")
    unknown = ~ids_in(interactions[key], pd.Index(ids))
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0])
        more = f" ({int(unknown.sum())} rows like it)" if unknown.sum() > 1 else ""
        raise DataError(f"{key} {interactions[key].iloc[row]!r} is not in {path.name}{more}",
                        f"{events.path}, {_place(events, row)}",
                        f"add it to {path.name}, or remove those interactions")
    text_columns = [c for c in table.frame.columns if c != key]
    frame = pd.DataFrame({key: ids.to_numpy(dtype=object), **_texts(table, text_columns)})
    return frame, tuple(text_columns)
