"""RecDataset: interactions, items and users as pandas frames with a declared schema."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recllm.errors import UserInputError

USER = "user_id"
ITEM = "item_id"
TIME = "timestamp"
RATING = "rating"
LABEL = "label"


class DataError(UserInputError):
    """Bad input data; the message names the file, column or row and says what to do."""


def ids_in(values: pd.Series | np.ndarray, known: pd.Series | pd.Index | np.ndarray) -> np.ndarray:
    """Boolean array: which ``values`` occur in ``known`` (a hash lookup; ``Series.isin`` on Arrow strings is slow)."""
    index = pd.Index(known)
    if not index.is_unique:
        index = index.unique()
    return index.get_indexer(pd.Index(values)) >= 0


def _refuse_non_strings(values: pd.Series, where: str, what: str, todo: str, gaps: bool = False) -> None:
    """A DataError naming the first row of ``values`` that is not a string (a number, bytes; None or NaN too unless
    ``gaps``): ids and text are strings, and a value of another type would be dropped or changed without a word
    further on (``gaps``: a text column's missing value means no text, as ``""`` does)."""
    if isinstance(values.dtype, pd.StringDtype) and (gaps or not values.isna().any()):
        return  # a string column (its gaps allowed, or none): every value is a str
    cells = values.to_numpy(dtype=object)
    missing = pd.isna(cells) if gaps else np.zeros(len(cells), dtype=bool)
    bad = np.flatnonzero([not isinstance(v, str) and not m for v, m in zip(cells, missing)])
    if len(bad):
        row = int(bad[0])
        more = f" ({len(bad)} such rows)" if len(bad) > 1 else ""
        raise DataError(f"{where} holds {cells[row]!r} at row {row}{more}: its {what} must be strings; {todo}")


@dataclass(frozen=True)
class Schema:
    """What each column of a RecDataset means.

    Interactions always have ``user_id`` and ``item_id`` (strings) and ``timestamp`` (int64 seconds);
    ``rating`` (float) and ``label`` (int) are optional. The tuples name feature columns of the
    ``items`` and ``users`` frames by role.

    Missing values: a text column holds ``""`` when the source has no text for that row (text columns are
    always strings); categorical and numeric columns hold NaN. Loaders never invent a value.
    """

    has_rating: bool = False
    has_label: bool = False
    item_text: tuple[str, ...] = ()
    item_categorical: tuple[str, ...] = ()
    item_numeric: tuple[str, ...] = ()
    user_text: tuple[str, ...] = ()
    user_categorical: tuple[str, ...] = ()
    user_numeric: tuple[str, ...] = ()


@dataclass
class RecDataset:
    """A recommendation data set: ``interactions`` joined to ``items`` (and ``users``) by id.

    Ids are strings. ``items`` lists the whole catalogue (every interacted item plus items never
    interacted with); its row order defines the item index used by models (0..n_items-1).
    ``users`` likewise defines the user index. ``info`` holds what the loader counted on the way (items
    without metadata, source file hashes, ...); it is JSON-able and saved with the data set.
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame
    schema: Schema = field(default_factory=Schema)
    source: str = ""
    info: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()
        self._item_pos = pd.Index(self.items[ITEM])
        self._user_pos = pd.Index(self.users[USER])

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Check the declared schema; raise DataError naming the frame and column otherwise."""
        where = f"data set {self.name!r}"
        for frame_name, frame, cols in (
            ("interactions", self.interactions, [USER, ITEM, TIME]),
            ("items", self.items, [ITEM]),
            ("users", self.users, [USER]),
        ):
            missing = [c for c in cols if c not in frame.columns]
            if missing:
                raise DataError(f"{where}: {frame_name} frame lacks column(s) {missing}; it has {list(frame.columns)}")
        if self.interactions.empty:
            raise DataError(f"{where}: no interactions; check the source files ({self.source or 'unknown'})")
        for frame_name, frame, col in (("items", self.items, ITEM), ("users", self.users, USER)):
            dup = frame[col][frame[col].duplicated()]
            if len(dup):
                raise DataError(f"{where}: {frame_name} has duplicate {col} values, e.g. {dup.iloc[0]!r}; deduplicate them")
        for frame_name, col in (("interactions", USER), ("interactions", ITEM), ("items", ITEM), ("users", USER)):
            _refuse_non_strings(getattr(self, frame_name)[col], f"{where}: {frame_name}.{col}", "ids",
                                "convert them with .astype(str)")
        if not pd.api.types.is_integer_dtype(self.interactions[TIME]):
            raise DataError(f"{where}: interactions.{TIME} must be integer unix seconds, got {self.interactions[TIME].dtype}")
        for col, frame_name, frame, key in (
            (ITEM, "items", self.items, ITEM),
            (USER, "users", self.users, USER),
        ):
            unknown = ~ids_in(self.interactions[col], frame[key])
            if unknown.any():
                row = int(np.flatnonzero(unknown)[0])
                raise DataError(
                    f"{where}: interaction row {row} has {col}={self.interactions[col].iloc[row]!r} "
                    f"which is not in the {frame_name} frame ({int(unknown.sum())} rows like it)"
                )
        declared = (
            [("items", c) for c in self.schema.item_text + self.schema.item_categorical + self.schema.item_numeric]
            + [("users", c) for c in self.schema.user_text + self.schema.user_categorical + self.schema.user_numeric]
        )
        for frame_name, col in declared:
            if col not in getattr(self, frame_name).columns:
                raise DataError(f"{where}: schema declares {frame_name}.{col} but the frame has no such column")
        text_todo = 'write numbers as text (e.g. .astype(str)) and "" where a row has no text'
        for frame_name, col in [("items", c) for c in self.schema.item_text] + \
                [("users", c) for c in self.schema.user_text]:
            _refuse_non_strings(getattr(self, frame_name)[col], f"{where}: {frame_name}.{col}", "text", text_todo,
                                gaps=True)
        if self.schema.has_rating and RATING not in self.interactions.columns:
            raise DataError(f"{where}: schema says ratings exist but interactions has no {RATING!r} column")
        if self.schema.has_label and LABEL not in self.interactions.columns:
            raise DataError(f"{where}: schema says labels exist but interactions has no {LABEL!r} column")

    # ------------------------------------------------------------------ indexing
    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_users(self) -> int:
        return len(self.users)

    def item_index(self, item_ids: pd.Series | np.ndarray | list[str]) -> np.ndarray:
        """Positions of ``item_ids`` in the catalogue (the model-side item index)."""
        pos = self._item_pos.get_indexer(pd.Index(item_ids))
        if (pos < 0).any():
            bad = np.asarray(item_ids)[pos < 0][0]
            raise KeyError(f"item {bad!r} is not in the catalogue of {self.name!r}")
        return pos.astype(np.int64)

    def user_index(self, user_ids: pd.Series | np.ndarray | list[str]) -> np.ndarray:
        """Positions of ``user_ids`` in the users frame (the model-side user index)."""
        pos = self._user_pos.get_indexer(pd.Index(user_ids))
        if (pos < 0).any():
            bad = np.asarray(user_ids)[pos < 0][0]
            raise KeyError(f"user {bad!r} is not in the users of {self.name!r}")
        return pos.astype(np.int64)

    def item_texts(self, columns: tuple[str, ...] | None = None, sep: str = "; ") -> list[str]:
        """One text per catalogue item, ``"column: value"`` joined over the text columns, in index order."""
        cols = columns if columns is not None else self.schema.item_text
        if not cols:
            raise DataError(f"data set {self.name!r} declares no item text columns")
        unknown = [c for c in cols if c not in self.items.columns]
        if unknown:
            raise DataError(f"item text column(s) {unknown} are not columns of data set {self.name!r}'s items; "
                            f"it has {list(self.items.columns)}")
        parts: list[list[str]] = [[] for _ in range(len(self.items))]
        for c in cols:
            values = self.items[c].to_numpy(dtype=object)
            for i, v in enumerate(values):
                if isinstance(v, str) and v.strip():
                    parts[i].append(f"{c}: {v}")
        return [sep.join(p) for p in parts]

    def to_table(self) -> pd.DataFrame:
        """Interactions joined with user and item feature columns: one flat row per interaction."""
        user_cols = [USER, *self.schema.user_categorical, *self.schema.user_numeric]
        item_cols = [ITEM, *self.schema.item_categorical, *self.schema.item_numeric]
        table = self.interactions.merge(self.users[user_cols], on=USER, how="left")
        return table.merge(self.items[item_cols], on=ITEM, how="left")

    def summary(self) -> dict[str, object]:
        """Counts and spans for ``recllm data info``."""
        ts = self.interactions[TIME]
        out: dict[str, object] = {
            "name": self.name,
            "interactions": len(self.interactions),
            "users": self.n_users,
            "items": self.n_items,
            "interacted_users": int(self.interactions[USER].nunique()),
            "interacted_items": int(self.interactions[ITEM].nunique()),
            "first": pd.to_datetime(ts.min(), unit="s", utc=True).isoformat(),
            "last": pd.to_datetime(ts.max(), unit="s", utc=True).isoformat(),
        }
        if self.schema.has_rating:
            out["rating_mean"] = round(float(self.interactions[RATING].mean()), 4)
        if self.schema.has_label:
            out["label_mean"] = round(float(self.interactions[LABEL].mean()), 4)
        return out

    # ------------------------------------------------------------------ persistence
    def save(self, folder: str | Path) -> None:
        """Write the three frames as parquet plus the schema as JSON (each file atomically)."""
        from dataclasses import asdict

        from recllm.utils import atomic_path, write_json_atomic

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for part in ("interactions", "items", "users"):
            with atomic_path(folder / f"{part}.parquet") as tmp:
                getattr(self, part).to_parquet(tmp, index=False)
        write_json_atomic(
            folder / "dataset.json",
            {"name": self.name, "source": self.source, "schema": asdict(self.schema), "info": self.info},
        )

    @classmethod
    def load(cls, folder: str | Path) -> "RecDataset":
        """Read a folder written by :meth:`save`."""
        import json

        folder = Path(folder)
        meta = json.loads((folder / "dataset.json").read_text())
        schema = Schema(**{k: tuple(v) if isinstance(v, list) else v for k, v in meta["schema"].items()})
        frames = {p: pd.read_parquet(folder / f"{p}.parquet") for p in ("interactions", "items", "users")}
        return cls(name=meta["name"], schema=schema, source=meta.get("source", ""), info=meta.get("info", {}), **frames)
