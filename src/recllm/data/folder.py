"""A data set from a folder of your own files, for ``--data FOLDER`` and :func:`read_folder`.

The folder holds (each as ``.csv``, UTF-8 with ``,`` between the cells, or ``.parquet``):

* ``interactions`` (required): ``user_id``, ``item_id``, ``timestamp``, and optionally ``rating`` (a number) or
  ``label`` (0/1, or true/false in parquet); other columns are kept as they are. ``timestamp`` is either integer
  unix seconds in every row, or an ISO 8601 date or date-time in every row (``2024-03-01``,
  ``2024-03-01T12:30:00+01:00``), read as UTC (a time without a zone is taken as UTC) and cut to the second, or a
  parquet timestamp column; ``info["timestamps"]`` says which. Times before 1970 or after the year 5138 are errors
  (a unix time that large is in milliseconds), and so are integers that all read as years (1900-2100) or as
  ``YYYYMMDD`` dates.
* ``items`` (optional): ``item_id`` and any text columns (title, description, ...): the item text LEARN embeds and
  LLM-TRSR prompts with, ``"column: value"`` joined over them (an empty cell adds nothing). Items that nobody
  interacted with stay in the catalogue (new items, for cold start). Without it, the catalogue is the interacted
  items (sorted), without text.
* ``users`` (optional): ``user_id`` and any text columns; without it, the interacting users (sorted).

Ids are text exactly as written (a parquet integer id as its decimal digits; a float id is refused). Nothing is
changed silently: an empty id, a duplicate catalogue id, an interaction whose item (or user) the catalogue lacks,
a timestamp of neither form, a rating that is not a number or a label other than 0/1 is an error naming the file,
column and line (a parquet file's row). Exact duplicate interactions are kept and counted in
``info["exact_duplicate_interactions"]``. A folder written by :meth:`RecDataset.save` (``dataset.json`` with the
three parquet frames) is read by :meth:`RecDataset.load`.

On the command line a ``--data`` value written as a path (``./shop``, ``~/shop``, ``data/shop``) is a data folder;
a bare name is a data set of the registry, unless no data set has that name and it exists here; a bare name that
is both (a folder ``ml-100k`` with an interactions file in the current folder) is an error asking for ``./``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recllm.data.dataset import ITEM, LABEL, RATING, TIME, USER, DataError, RecDataset, Schema, ids_in
from recllm.data.user_tables import INTEGER, TABLE_SUFFIXES, Table, read_cells

__all__ = ["FILES", "check_folder", "data_reference", "find_table", "is_data_folder", "load_if_present",
           "load_named_or_folder", "read_folder", "source_files"]

FILES = ("interactions", "items", "users")
SAVED = "dataset.json"  # with interactions/items/users.parquet: a folder written by RecDataset.save
MAX_UNIX_SECONDS = 10**11  # the year 5138: a larger unix time is in milliseconds (or smaller units)
FOLDER_TODO = "give the folder that holds interactions.csv (or .parquet), or a data set name of `recllm data list`"


# ---------------------------------------------------------------------------------------------- --data values
def _registry_name(value: str) -> bool:
    from recllm.data.loaders.registry import get_loader

    try:
        get_loader(value)
    except KeyError:
        return False
    return True


def is_data_folder(value: str) -> bool:
    """Whether a ``--data`` value names a data folder rather than a data set of the registry (see the module
    docstring); a bare name that is both is a DataError."""
    if not value.strip():
        return False
    if "/" in value or "\\" in value or value.startswith(("~", ".")):
        return True
    here = Path(value)
    if not here.exists():
        return False
    if not _registry_name(value):
        return True
    if here.is_dir() and (_is_saved(here) or any((here / f"interactions{s}").is_file() for s in TABLE_SUFFIXES)):
        raise DataError(f"{value!r} is both a data set of `recllm data list` and a data folder here", value,
                        f"write ./{value} for the folder (or run from another folder for the data set)")
    return False


def data_reference(value: str) -> str:
    """How a run records ``--data``: a data set's name as given, a data folder's absolute path (the same whatever
    folder the command ran from, as ``info["data_folder"]`` of :func:`read_folder`)."""
    return str(Path(value).expanduser().resolve()) if is_data_folder(value) else value


def check_folder(folder: Path, where: str | None = None) -> bool:
    """A one-line DataError unless ``folder`` is a data folder (cheap: reads no table); True when it is one written
    by :meth:`RecDataset.save`."""
    where = where or str(folder)
    if not folder.is_dir():
        raise DataError("is a file, not a data folder" if folder.exists() else "no such folder", where, FOLDER_TODO)
    if _is_saved(folder):
        return True
    find_table(folder, "interactions", required=True)
    return False


def _is_saved(folder: Path) -> bool:
    if not all((folder / f"{part}.parquet").is_file() for part in FILES):
        return False
    try:
        meta = json.loads((folder / SAVED).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and isinstance(meta.get("schema"), dict) and "name" in meta


def find_table(folder: Path, stem: str, required: bool = False) -> Path | None:
    """``folder/<stem>.csv`` or ``.parquet`` (``.pq``); None when absent and not ``required``; an error when both."""
    found = [folder / f"{stem}{suffix}" for suffix in TABLE_SUFFIXES if (folder / f"{stem}{suffix}").is_file()]
    if len(found) > 1:
        raise DataError(f"both {found[0].name} and {found[1].name}", str(folder), "keep one of them")
    folders = [folder / f"{stem}{suffix}" for suffix in TABLE_SUFFIXES if (folder / f"{stem}{suffix}").is_dir()]
    if not found and folders:  # e.g. a parquet data set written as a folder of parts
        raise DataError(f"{folders[0].name} is a folder, not a file", str(folders[0]),
                        f"give {stem} as one .csv or .parquet file")
    if not found and required:
        near = sorted(p.name for p in folder.iterdir() if p.stem.lower() == stem and p.suffix.lower() in TABLE_SUFFIXES
                      and p.is_file())
        raise DataError(f"no {stem}.csv or {stem}.parquet", str(folder),
                        f"rename {near[0]} to {stem}{Path(near[0]).suffix.lower()} (names are case-sensitive)" if near
                        else f"put the interactions there ({USER}, {ITEM}, {TIME}; see `recllm data info --help`)")
    return found[0] if found else None


# ---------------------------------------------------------------------------------------------- reading
def read_folder(folder: str | Path, name: str | None = None) -> RecDataset:
    """The :class:`RecDataset` of a data folder (see this module's docstring); ``name`` defaults to the folder's."""
    folder = Path(folder).expanduser()
    if check_folder(folder):
        dataset = RecDataset.load(folder)
        dataset.info["data_folder"] = str(folder.resolve())
        return dataset
    paths = {stem: find_table(folder, stem, required=stem == "interactions") for stem in FILES}
    events = read_cells(paths["interactions"], options=False)
    interactions, timestamps = _interactions(events)
    items, item_text, items_sha = _catalogue(paths["items"], ITEM, interactions, events)
    users, user_text, users_sha = _catalogue(paths["users"], USER, interactions, events)
    from recllm.data.loaders.readers import DUPLICATES, duplicate_key

    info: dict[str, object] = {
        "data_folder": str(folder.resolve()),  # where a saved model finds the data again (item titles)
        "files": {path.name: sha for path, sha in ((paths["interactions"], events.sha256), (paths["items"], items_sha),
                                                   (paths["users"], users_sha)) if path is not None},
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


def source_files(values: list[str]) -> list[Path]:
    """The files the ``--data`` values read (their sha256 identifies a benchmark's data): a data folder's tables
    (or a saved data set's files), a registry data set's declared files (:func:`recllm.data.data_files`)."""
    from recllm.data import data_files

    files: list[Path] = []
    for value in values:
        if not is_data_folder(value):
            files += data_files([value])
            continue
        folder = Path(value).expanduser()
        if _is_saved(folder):
            files += [folder / SAVED, *(folder / f"{part}.parquet" for part in FILES)]
        elif folder.is_dir():
            files += [path for stem in FILES if (path := find_table(folder, stem)) is not None]
    return files


def load_if_present(value: str) -> RecDataset | None:
    """The data a model was trained on, when it is at hand: a data folder that still exists, or a registry data set
    already on this machine (never downloaded); None otherwise."""
    if is_data_folder(value):
        return read_folder(value) if Path(value).expanduser().is_dir() else None
    from recllm.data import data_root, load

    if not _registry_name(value) or not data_root(value).is_dir():
        return None
    return load(value, download=False, show_progress=False)


# ---------------------------------------------------------------------------------------------- the files
def _lines(table: Table) -> np.ndarray:
    """Each row's file line (CSV), or its 1-based row number (parquet, named as a row)."""
    return table.lines if table.lines is not None else np.arange(len(table.frame)) + 1


def _place(table: Table, row: int) -> str:
    """``line N`` of a CSV file, ``row N`` of a parquet file."""
    return f"{'line' if table.lines is not None else 'row'} {int(_lines(table)[row])}"


def _shown(value: object) -> str:
    """A cell as the user wrote it: text quoted, a number or other value as plain Python prints it."""
    if value is None or value is pd.NA or isinstance(value, float) and np.isnan(value):
        return "an empty cell"
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()  # numpy scalars: 5, not np.int64(5)
    return repr(value) if isinstance(value, str) else str(value)


def _fail(table: Table, column: str, bad: np.ndarray, problem: str, todo: str) -> DataError:
    """The error for the first flagged row of ``column``: its place, value and how many rows are like it."""
    bad = np.asarray(bad, dtype=bool)
    row = int(np.flatnonzero(bad)[0])
    more = f" ({int(bad.sum())} rows like it)" if bad.sum() > 1 else ""
    return DataError(f"{_shown(table.frame[column].iloc[row])} {problem}{more}",
                     f"{table.path}, column {column!r}, {_place(table, row)}", todo)


def _require(table: Table, columns: tuple[str, ...], todo: str) -> None:
    missing = [c for c in columns if c not in table.frame.columns]
    if missing:
        raise DataError(f"no column {missing[0]!r} (the header has {list(table.frame.columns)})", str(table.path), todo)


def _is_text(values: pd.Series) -> bool:
    return pd.api.types.is_string_dtype(values.dtype) or values.dtype == object


def _ids(table: Table, column: str) -> pd.Series:
    """An id column as text exactly as written (a parquet integer as its decimal digits); an empty id, or a float,
    boolean or other non-text id, is an error."""
    values = table.frame[column]
    missing = values.isna().to_numpy()
    if missing.any():
        raise _fail(table, column, missing, "is not an id; every row needs one", "fill in the id or remove the row")
    if pd.api.types.is_integer_dtype(values.dtype):
        return pd.Series([str(int(v)) for v in values], dtype=object)
    if not _is_text(values):
        raise DataError(f"column {column!r} holds {values.dtype} values, not ids", str(table.path),
                        "write ids as text or integers")
    strange = ~values.map(lambda v: isinstance(v, str)).to_numpy()
    if strange.any():
        raise _fail(table, column, strange, "is not text", "write ids as text or integers")
    blank = (values.str.strip() == "").to_numpy()
    if blank.any():
        raise _fail(table, column, blank, "is not an id; every row needs one", "fill in the id or remove the row")
    return values.astype(object).reset_index(drop=True)


def _texts(table: Table, columns: list[str]) -> dict[str, pd.Series]:
    """Text columns with an empty cell as ``""``; a non-text parquet column is an error."""
    out = {}
    for column in columns:
        values = table.frame[column]
        if not _is_text(values):
            raise DataError(f"column {column!r} holds {values.dtype} values, not text", str(table.path),
                            "write it as text, or drop it")
        out[column] = values.where(values.notna(), "").astype(object).reset_index(drop=True)
    return out


BOTH_FORMS = "write every timestamp as integer unix seconds, or every one as an ISO 8601 date-time (2024-03-01T12:30:00)"


def _timestamps(table: Table) -> tuple[np.ndarray, str]:
    """``timestamp`` as int64 unix seconds, and which form the file used."""
    values = table.frame[TIME]
    missing = values.isna().to_numpy()
    if missing.any():
        raise _fail(table, TIME, missing, "is not a time; every interaction needs one", "fill it in")
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        stamps = values.dt.tz_localize("UTC") if values.dt.tz is None else values.dt.tz_convert("UTC")
        seconds = stamps.astype("datetime64[s, UTC]").astype("int64").to_numpy()
        return _in_range(table, seconds, "a date"), "parquet date-times, as UTC seconds"
    if pd.api.types.is_bool_dtype(values.dtype) or not (_is_text(values) or
                                                        pd.api.types.is_numeric_dtype(values.dtype)):
        raise DataError(f"column {TIME!r} holds {values.dtype} values, not times", str(table.path), BOTH_FORMS)
    if pd.api.types.is_float_dtype(values.dtype):
        whole = (np.floor(values.to_numpy()) == values.to_numpy()) & np.isfinite(values.to_numpy())
        if not whole.all():
            raise _fail(table, TIME, ~whole, "is not a whole number of seconds", BOTH_FORMS)
        numbers = [int(v) for v in values]
    elif pd.api.types.is_integer_dtype(values.dtype):
        numbers = [int(v) for v in values]
    else:
        text = values.map(lambda v: str(v).strip())
        integer = text.map(lambda v: bool(re.fullmatch(INTEGER, v))).to_numpy()
        if not integer[0]:
            parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
            bad = parsed.isna().to_numpy()
            if bad.any():
                problem = ("is neither integer unix seconds nor an ISO 8601 date-time" if bad[0] else
                           "is not an ISO 8601 date-time, as the first row's is")
                raise _fail(table, TIME, bad, problem, BOTH_FORMS)
            seconds = parsed.astype("datetime64[s, UTC]").astype("int64").to_numpy()
            return _in_range(table, seconds, "a date"), "ISO 8601, as UTC seconds"
        if not integer.all():
            raise _fail(table, TIME, ~integer, "is not integer unix seconds, as the first row's is", BOTH_FORMS)
        numbers = [int(v) for v in text]
    _refuse_compact_dates(table, numbers)
    return _in_range(table, np.array(numbers, dtype=object), "unix seconds"), "unix seconds"


def _in_range(table: Table, seconds: np.ndarray, form: str) -> np.ndarray:
    early, late = seconds < 0, seconds >= MAX_UNIX_SECONDS
    if early.any():
        raise _fail(table, TIME, early, "is before 1970, which recllm's times (unix seconds >= 0) cannot hold",
                    "fix the time, or drop the row")
    if late.any():
        raise _fail(table, TIME, late, "is after the year 5000" + (": milliseconds?" if form == "unix seconds" else ""),
                    "write unix seconds (divide milliseconds by 1000)" if form == "unix seconds" else "fix the time")
    return np.asarray(seconds, dtype=np.int64)


def _refuse_compact_dates(table: Table, numbers: list[int]) -> None:
    """Integers that all read as years (1900-2100) or YYYYMMDD dates are ambiguous: unix seconds of 1970's first
    hour or first four years, or dates."""
    if numbers and all(1900 <= n <= 2100 for n in numbers):
        raise _fail(table, TIME, np.ones(len(numbers), dtype=bool), "reads as a year, not unix seconds (every "
                    "timestamp does, so as seconds they would all fall in 1970's first hour)",
                    "write the dates as ISO 8601 (2019-01-01), or the times as unix seconds")
    if not numbers or not all(10_000_000 <= n <= 99_999_999 for n in numbers):
        return
    dates = pd.to_datetime(pd.Series([str(n) for n in numbers]), format="%Y%m%d", errors="coerce")
    if dates.notna().all() and dates.dt.year.between(1900, 2100).all():
        raise _fail(table, TIME, np.ones(len(numbers), dtype=bool), "reads as a YYYYMMDD date, not unix seconds "
                    "(every timestamp does)", "write the dates as ISO 8601 (2024-03-01), or the times as unix seconds")


def _numbers(table: Table, column: str) -> np.ndarray:
    values = table.frame[column]
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
    elif _is_text(values):
        numbers = pd.to_numeric(values.map(_number_text), errors="coerce").to_numpy(dtype=np.float64)
    else:
        raise DataError(f"column {column!r} holds {values.dtype} values, not numbers", str(table.path),
                        f"write {column} as numbers")
    empty = values.isna().to_numpy(dtype=bool).copy()
    if _is_text(values):  # a blank text cell is empty too
        empty |= values.map(lambda v: isinstance(v, str) and not v.strip()).to_numpy(dtype=bool)
    if empty.any():
        raise _fail(table, column, empty, "where a number is needed", f"give every row a {column}, or drop the column")
    bad = ~np.isfinite(numbers)
    if bad.any():
        comma = isinstance(values.iloc[int(np.flatnonzero(bad)[0])], str) and \
            "," in values.iloc[int(np.flatnonzero(bad)[0])]
        raise _fail(table, column, bad, "is not a number",
                    f"write {column} as plain numbers" + (" with a decimal point, not a comma" if comma else ""))
    return numbers


def _number_text(value: Any) -> Any:
    """A cell of a text or object column as pd.to_numeric reads it: text stripped, a parquet bool as 1/0."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    return value if isinstance(value, (int, float, np.integer, np.floating)) else ""


def _interactions(table: Table) -> tuple[pd.DataFrame, str]:
    _require(table, (USER, ITEM, TIME), f"name the columns {USER}, {ITEM} and {TIME} (and optionally {RATING} or "
                                        f"{LABEL})")
    frame = pd.DataFrame({USER: _ids(table, USER), ITEM: _ids(table, ITEM)})
    frame[TIME], form = _timestamps(table)
    if RATING in table.frame.columns:
        frame[RATING] = _numbers(table, RATING)
    if LABEL in table.frame.columns:
        raw = table.frame[LABEL]
        labels = (raw.astype(np.float64).to_numpy() if pd.api.types.is_bool_dtype(raw.dtype) and not raw.isna().any()
                  else _numbers(table, LABEL))
        bad = ~np.isin(labels, (0.0, 1.0))
        if bad.any():
            raise _fail(table, LABEL, bad, "is not a 0/1 label", "write 1 for a positive, 0 for a negative")
        frame[LABEL] = labels.astype(np.int64)
    for column in table.frame.columns:
        if column not in frame.columns:
            frame[column] = table.frame[column].to_numpy()
    return frame, form


def _catalogue(path: Path | None, key: str, interactions: pd.DataFrame,
               events: Table) -> tuple[pd.DataFrame, tuple[str, ...], str]:
    """The items (or users) frame, its text columns and the file's sha256: from ``path``, or the interacting ids
    (sorted, no text) when there is no such file."""
    if path is None:
        return pd.DataFrame({key: np.array(sorted(interactions[key].unique()), dtype=object)}), (), ""
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
                        f"{events.path}, {_place(events, row)}", f"add it to {path.name}, or remove those interactions")
    text_columns = [c for c in table.frame.columns if c != key]
    frame = pd.DataFrame({key: ids.to_numpy(dtype=object), **_texts(table, text_columns)})
    return frame, tuple(text_columns), table.sha256
