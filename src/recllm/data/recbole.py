"""RecBole atomic files: export a RecDataset to ``<name>.inter/.item/.user`` and import them back.

Atomic files are tab-separated with a ``field:type`` header (RecBole's format). Types used here:
``token`` (ids and categorical columns), ``float`` (numbers, timestamps, ratings, labels) and ``token_seq``
(text: space-separated tokens, as RecBole stores titles; ``|``-joined lists such as ``genres`` become
space-separated tokens). Tabs and line breaks inside text become spaces (the format has no escaping).
A ``<name>.recllm.json`` beside the files keeps the schema and pandas dtypes so the import is exact; RecBole
ignores it, and without it the import infers the schema from the field types.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from recllm.data.dataset import ITEM, LABEL, RATING, TIME, USER, DataError, RecDataset, Schema
from recllm.utils import atomic_path, write_json_atomic

PARTS = {"interactions": "inter", "items": "item", "users": "user"}
LIST_COLUMNS = {"genres": "|"}
FLOAT_STANDARD = (TIME, RATING, LABEL)


def _field_types(frame: pd.DataFrame, part: str, schema: Schema, list_columns: dict[str, str]) -> dict[str, str]:
    prefix = {"items": "item", "users": "user"}.get(part)
    text = set(getattr(schema, f"{prefix}_text")) if prefix else set()
    categorical = set(getattr(schema, f"{prefix}_categorical")) if prefix else set()
    types = {}
    for col in frame.columns:
        series = frame[col]
        if col in (USER, ITEM) or col in categorical:
            types[col] = "token"
        elif col in text or col in list_columns:
            types[col] = "token_seq"
        elif col in FLOAT_STANDARD or (pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)):
            types[col] = "float"
        else:  # an undeclared string column: text when a value has a space or is "" (text's missing), else a token
            values = series.dropna().astype(str)
            text_like = values.str.contains(" ", regex=False).any() or (values == "").any()
            types[col] = "token_seq" if text_like else "token"
    return types


def _cell_text(series: pd.Series, kind: str, sep: str | None) -> pd.Series:
    """One column as atomic-file text: exact shortest float repr, integers without ``.0``, NaN as empty."""
    if kind == "float":
        values = series.astype(np.float64).to_numpy()
        out = np.full(len(values), "", dtype=object)
        finite = np.isfinite(values)
        integral = finite & (np.floor(values) == values) & (np.abs(values) < 2**53)
        out[integral] = values[integral].astype(np.int64).astype(str)
        rest = finite & ~integral
        out[rest] = [repr(float(v)) for v in values[rest]]
        return pd.Series(out, index=series.index, dtype=object)
    text = series.astype(object).where(series.notna(), "").astype(str)
    text = text.str.replace(r"[\t\r\n]", " ", regex=True)
    if kind == "token_seq" and sep is not None:
        text = text.map(lambda v: " ".join(t.strip().replace(" ", "_") for t in v.split(sep) if t.strip()))
    return text


def export_atomic(
    dataset: RecDataset, folder: str | Path, name: str | None = None, list_columns: dict[str, str] | None = None
) -> dict[str, Path]:
    """Write ``<name>.inter``, ``.item``, ``.user`` (and the ``.recllm.json`` sidecar) into ``folder``."""
    name = name or dataset.name
    list_columns = LIST_COLUMNS if list_columns is None else list_columns
    folder = Path(folder)
    written: dict[str, Path] = {}
    dtypes: dict[str, dict[str, str]] = {}
    for part, suffix in PARTS.items():
        frame = getattr(dataset, part)
        types = _field_types(frame, part, dataset.schema, list_columns)
        out = pd.DataFrame({
            f"{col}:{kind}": _cell_text(frame[col], kind, list_columns.get(col)) for col, kind in types.items()
        })
        path = folder / f"{name}.{suffix}"
        with atomic_path(path) as tmp:
            out.to_csv(tmp, sep="\t", index=False, quoting=csv.QUOTE_NONE, escapechar=None, lineterminator="\n")
        written[part] = path
        dtypes[part] = {col: str(frame[col].dtype) for col in frame.columns}
    sidecar = folder / f"{name}.recllm.json"
    write_json_atomic(sidecar, {"name": dataset.name, "schema": asdict(dataset.schema), "dtypes": dtypes,
                                "list_columns": list_columns, "source": dataset.source, "info": dataset.info})
    written["sidecar"] = sidecar
    return written


def _read_atomic(path: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    try:
        raw = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, na_filter=False,
                          quoting=csv.QUOTE_NONE, index_col=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: not a RecBole atomic file ({exc}); write it with export_atomic") from None
    types: dict[str, str] = {}
    for header in raw.columns:
        col, _, kind = str(header).rpartition(":")
        if not col or kind not in ("token", "float", "token_seq"):
            raise DataError(f"{path}: header field {header!r} is not 'name:type' with type token, float or "
                            f"token_seq; fix the header line")
        types[col] = kind
    raw.columns = list(types)
    return raw, types


def _convert(raw: pd.Series, kind: str, dtype: str | None, sep: str | None, path: Path) -> pd.Series:
    if kind == "float":
        values = pd.to_numeric(raw.replace("", np.nan), errors="coerce")
        bad = values.isna() & (raw != "")
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{path}: column {raw.name!r}, line {row + 2}: {raw.iloc[row]!r} is not a number")
        values = values.astype(np.float64)
    elif kind == "token_seq":
        values = raw.map(lambda v: sep.join(v.split(" ")) if sep is not None and v else v)
    else:
        values = raw.where(raw != "", np.nan)
    if dtype is not None:
        if dtype.startswith("int") and values.isna().any():
            dtype = "float64"
        if dtype in ("object", "str", "string") or dtype.startswith("int") or dtype.startswith("float"):
            values = values.astype(dtype)
        elif dtype == "bool":
            values = values.astype(np.float64).astype(bool)
    return values


def import_atomic(folder: str | Path, name: str) -> RecDataset:
    """Read ``<name>.inter`` (required), ``.item`` and ``.user`` from ``folder`` back into a RecDataset.

    Without ``.item``/``.user`` the catalogue and users are the ids seen in ``.inter``.
    """
    folder = Path(folder)
    inter_path = folder / f"{name}.inter"
    if not inter_path.is_file():
        raise DataError(f"{inter_path} not found; a RecBole data set needs at least {name}.inter in {folder}")
    sidecar = folder / f"{name}.recllm.json"
    meta = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    list_columns = meta.get("list_columns", LIST_COLUMNS)
    frames: dict[str, pd.DataFrame] = {}
    kinds: dict[str, dict[str, str]] = {}
    for part, suffix in PARTS.items():
        path = folder / f"{name}.{suffix}"
        if not path.is_file():
            continue
        raw, types = _read_atomic(path)
        dtypes = meta.get("dtypes", {}).get(part, {})
        frames[part] = pd.DataFrame({
            col: _convert(raw[col], kind, dtypes.get(col), list_columns.get(col), path) for col, kind in types.items()
        })
        kinds[part] = types
    inter = frames["interactions"]
    if TIME not in inter.columns:
        inter[TIME] = np.arange(len(inter), dtype=np.int64)  # RecBole allows no timestamp; keep file order
    elif not meta:
        inter[TIME] = inter[TIME].astype(np.int64)
    if LABEL in inter.columns and not meta:
        inter[LABEL] = inter[LABEL].astype(np.int64)
    frames.setdefault("items", pd.DataFrame({ITEM: pd.unique(inter[ITEM])}))
    frames.setdefault("users", pd.DataFrame({USER: pd.unique(inter[USER])}))
    if meta:
        schema = Schema(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["schema"].items()})
    else:
        schema = _infer_schema(kinds, inter)
    return RecDataset(meta.get("name", name), inter, frames["items"], frames["users"], schema,
                      source=meta.get("source", str(folder)), info=meta.get("info", {}))


def _infer_schema(kinds: dict[str, dict[str, str]], inter: pd.DataFrame) -> Schema:
    roles: dict[str, tuple[str, ...]] = {}
    for part, prefix in (("items", "item"), ("users", "user")):
        types = {c: k for c, k in kinds.get(part, {}).items() if c not in (USER, ITEM)}
        roles[f"{prefix}_text"] = tuple(c for c, k in types.items() if k == "token_seq")
        roles[f"{prefix}_categorical"] = tuple(c for c, k in types.items() if k == "token")
        roles[f"{prefix}_numeric"] = tuple(c for c, k in types.items() if k == "float")
    return Schema(has_rating=RATING in inter.columns, has_label=LABEL in inter.columns, **roles)
