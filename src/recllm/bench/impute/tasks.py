"""The paper's three downstream tasks on real data, and how imputed feature tables feed a DLRM.

Missing cells are injected into the *feature tables* (the advertising users; the MovieLens-100K users and items),
never into the joined interaction table, so one masked user is missing in all of that user's ratings -- as it
happens in practice. Every imputer fills the same masked tables; the filled tables are joined onto the
interactions and a DLRM is trained on a fixed, seeded split (the same rows for every imputer):

- ``click`` (advertising): binary click prediction; precision, recall, F1, AUC.
- ``rating-class`` (ml-100k): the 1-5 rating as 5 classes; accuracy, macro-F1.
- ``rating-reg`` (ml-100k): rating regression; MAE, MSE, RMSE.

Case-wise deletion drops incomplete table rows: interactions of dropped users/items leave the *training* rows; the
validation and test rows stay (the same for every imputer) and reach the DLRM with their missing features, which it
maps to its out-of-vocabulary row / the training mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recllm.data.dataset import ITEM, LABEL, RATING, USER, RecDataset
from recllm.eval import metrics
from recllm.models.dlrm import DLRM

GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)


@dataclass(frozen=True)
class TableSpec:
    """A feature table that gets masked and imputed: which columns are what, and which are masked."""

    name: str  # e.g. "ml-100k/users"
    key: str  # the id column joining it to the interactions
    categorical: tuple[str, ...]
    numeric: tuple[str, ...]
    text: tuple[str, ...]
    masked: tuple[str, ...]
    mar_driver: str  # the fully observed column that drives MAR missingness
    context: str  # one line describing a row, for the LLM imputer's "more context" attempt
    set_valued: tuple[str, ...] = ()  # text columns holding "a|b|c" sets (scored by Jaccard)
    text_carried: tuple[str, ...] = ()  # masked columns whose value the row's text carries (a film's year, genres)

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical, *self.text]

    def imputer_kinds(self) -> dict[str, tuple[str, ...]]:
        return {"categorical": self.categorical, "numeric": self.numeric, "text": self.text}


@dataclass(frozen=True)
class TaskSpec:
    """A downstream prediction task: DLRM head, target column, feature columns and metrics."""

    name: str
    dataset: str
    head: str  # DLRM task
    target: str
    dense: tuple[str, ...]
    categorical: tuple[str, ...]
    metrics: tuple[str, ...]
    primary: str  # the metric the summary compares on
    higher_is_better: bool = True


TABLES: dict[str, list[TableSpec]] = {
    "advertising": [TableSpec(
        "advertising/users", USER, categorical=("male",),
        numeric=("daily_time_spent", "age", "area_income", "daily_internet_usage"), text=("city", "country"),
        masked=("daily_time_spent", "age", "area_income", "daily_internet_usage", "male"), mar_driver="country",
        context="A visitor of a website: minutes a day on the site, age in years, income of the area in dollars, "
                "minutes a day on the internet, male (1) or not (0), city, country.",
    )],
    "ml-100k": [
        TableSpec("ml-100k/users", USER, categorical=("gender", "occupation"), numeric=("age",), text=("zip_code",),
                  masked=("age", "gender", "occupation"), mar_driver="zip_code",
                  context="A user of the MovieLens film-rating site: age in years, gender (M or F), occupation, US zip "
                          "code."),
        TableSpec("ml-100k/items", ITEM, categorical=(), numeric=("year",), text=("title", "genres"),
                  masked=("year", "genres"), mar_driver="title", set_valued=("genres",),
                  text_carried=("year", "genres"),
                  context="A film: its title with the release year in brackets, its genres joined by |, its release "
                          "year."),
    ],
}
GENRE_COLUMNS = tuple(f"genre_{g}" for g in GENRES)
TASKS: dict[str, list[TaskSpec]] = {
    "advertising": [TaskSpec(
        "click", "advertising", "binary", LABEL,
        dense=("daily_time_spent", "age", "area_income", "daily_internet_usage"), categorical=("male", "country"),
        metrics=("precision", "recall", "f1", "auc"), primary="f1",
    )],
    "ml-100k": [
        TaskSpec("rating-class", "ml-100k", "multiclass", RATING, dense=("age", "year", *GENRE_COLUMNS),
                 categorical=(USER, ITEM, "gender", "occupation"), metrics=("accuracy", "macro_f1"),
                 primary="accuracy"),
        TaskSpec("rating-reg", "ml-100k", "regression", RATING, dense=("age", "year", *GENRE_COLUMNS),
                 categorical=(USER, ITEM, "gender", "occupation"), metrics=("mae", "mse", "rmse"), primary="rmse",
                 higher_is_better=False),
    ],
}
SPLIT_FRACTIONS = {"advertising": (0.7, 0.1), "ml-100k": (0.8, 0.1)}  # train, valid; the rest is test


def feature_table(ds: RecDataset, spec: TableSpec) -> pd.DataFrame:
    """The table's feature columns indexed by id, in the spec's column order."""
    frame = ds.users if spec.key == USER else ds.items
    out = frame.set_index(spec.key)[spec.columns].copy()
    for col in spec.numeric:
        out[col] = out[col].astype(float)
    return out


def genre_flags(genres: pd.Series) -> pd.DataFrame:
    """One 0/1 column per known genre from "A|B" strings; a missing cell gives NaN flags (unknown names ignored)."""
    flags = np.zeros((len(genres), len(GENRES)), dtype=float)
    index = {g: j for j, g in enumerate(GENRES)}
    for i, value in enumerate(genres.tolist()):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            flags[i] = np.nan
            continue
        for name in str(value).split("|"):
            j = index.get(name.strip())
            if j is not None:
                flags[i, j] = 1.0
    return pd.DataFrame(flags, index=genres.index, columns=list(GENRE_COLUMNS))


def split_rows(n: int, fractions: tuple[float, float], seed: int) -> dict[str, np.ndarray]:
    """A seeded random train / valid / test partition of ``n`` interaction rows."""
    order = np.random.default_rng(seed).permutation(n)
    n_train, n_valid = int(fractions[0] * n), int(fractions[1] * n)
    return {"train": order[:n_train], "valid": order[n_train:n_train + n_valid], "test": order[n_train + n_valid:]}


def model_inputs(ds: RecDataset, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Interactions joined with the given feature tables (name -> frame indexed by id); genres become flags."""
    joined = ds.interactions.copy()
    for name, table in tables.items():
        key = USER if name.endswith("/users") else ITEM
        extra = table.copy()
        if "genres" in extra.columns:
            extra = extra.join(genre_flags(extra["genres"]))
        joined = joined.join(extra, on=key)
    return joined


def score_task(task: TaskSpec, y_true: np.ndarray, model: DLRM, X: pd.DataFrame) -> dict[str, float]:
    """The task's metrics of ``model`` on ``X``."""
    pred = model.predict(X)
    if task.head == "binary":
        proba = model.predict_proba(X)[:, 1]
        return {"precision": metrics.precision(y_true, pred), "recall": metrics.recall(y_true, pred),
                "f1": metrics.f1(y_true, pred), "auc": metrics.auc(y_true, proba)}
    if task.head == "multiclass":
        return {"accuracy": metrics.accuracy(y_true, pred), "macro_f1": metrics.f1(y_true, pred, average="macro")}
    return metrics.regression_report(y_true, pred)


@dataclass
class DLRMSettings:
    """DLRM hyper-parameters used by the benchmark (the same for every imputer of a data set)."""

    embedding_dim: int = 16
    bottom_mlp: tuple[int, ...] = (64,)
    top_mlp: tuple[int, ...] = (64, 32)
    learning_rate: float = 2e-3
    batch_size: int = 1024
    max_epochs: int = 20
    patience: int = 2

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_epochs < 1 or self.patience < 1 or self.embedding_dim < 1:
            raise ValueError("DLRMSettings: batch_size, max_epochs, patience and embedding_dim must be >= 1")


# 700 training rows (advertising) need small batches and more epochs than 80,000 (ml-100k).
DLRM_PRESETS: dict[str, DLRMSettings] = {
    "advertising": DLRMSettings(embedding_dim=8, bottom_mlp=(32,), top_mlp=(32,), batch_size=32, max_epochs=60,
                                patience=6),
    "ml-100k": DLRMSettings(),
}


def run_task(task: TaskSpec, ds: RecDataset, tables: dict[str, pd.DataFrame], split: dict[str, np.ndarray],
             seed: int, settings: DLRMSettings, train_keep: np.ndarray | None = None) -> dict[str, float]:
    """Train a DLRM on the split's training rows (restricted to ``train_keep`` when given) and score the test rows."""
    joined = model_inputs(ds, tables)
    features = list(task.dense) + list(task.categorical)
    y = joined[task.target].to_numpy()
    if task.head == "multiclass":
        y = y.astype(int)
    train = split["train"] if train_keep is None else split["train"][train_keep[split["train"]]]
    model = DLRM(task=task.head, dense=task.dense, categorical=task.categorical, embedding_dim=settings.embedding_dim,
                 bottom_mlp=settings.bottom_mlp, top_mlp=settings.top_mlp, learning_rate=settings.learning_rate,
                 batch_size=settings.batch_size, max_epochs=settings.max_epochs, patience=settings.patience, seed=seed)
    X = joined[features]
    model.fit(X.iloc[train], y[train], X.iloc[split["valid"]], y[split["valid"]])
    out = score_task(task, y[split["test"]], model, X.iloc[split["test"]])
    out.update({"train_rows": float(len(train)), "dlrm_seconds": model.fit_seconds_, "best_epoch": model.best_epoch_})
    return out


def code_columns(spec: TableSpec, table: pd.DataFrame) -> tuple[str, ...]:
    """The masked columns of ``table`` every imputer treats as code columns (fills are observed codes), detected
    as the imputers detect them (:func:`recllm.impute.base.detect_code_columns`, ``"auto"``)."""
    from recllm.impute.base import coerce_numeric, detect_code_columns, infer_kinds

    kinds = infer_kinds(table, **spec.imputer_kinds())
    found = detect_code_columns(coerce_numeric(table, kinds), table, kinds, "auto")
    return tuple(c for c in spec.masked if c in found)


def imputation_scores(spec: TableSpec, truth: pd.DataFrame, filled: pd.DataFrame, mask: pd.DataFrame,
                      codes: tuple[str, ...] = ()) -> dict[str, float]:
    """Quality on the masked cells: RMSE (and RMSE / std) for numbers, accuracy for categories, text and code
    columns (``codes``: numeric columns whose fills are observed codes, scored by exact match), Jaccard for
    set-valued text. Cells whose true value is itself missing are skipped."""
    out: dict[str, float] = {}
    for col in spec.masked:
        rows = mask[col].to_numpy() & truth[col].notna().to_numpy()
        if not rows.any():
            continue
        true, pred = truth.loc[rows, col], filled.loc[truth.index[rows], col]
        if col in spec.numeric and col not in codes:
            rmse = metrics.rmse(true.astype(float).to_numpy(), pred.astype(float).to_numpy())
            out[f"{col}:rmse"] = rmse
            out[f"{col}:nrmse"] = rmse / float(truth[col].std())
        elif col in spec.set_valued:
            sets_true = [set(str(v).split("|")) - {""} for v in true]
            sets_pred = [set(str(v).split("|")) - {""} for v in pred]
            out[f"{col}:jaccard"] = float(np.mean([len(a & b) / max(len(a | b), 1) for a, b in zip(sets_true, sets_pred)]))
            out[f"{col}:accuracy"] = float(np.mean([a == b for a, b in zip(sets_true, sets_pred)]))
        else:
            out[f"{col}:accuracy"] = metrics.accuracy([_key(v) for v in true], [_key(v) for v in pred])
    return out


def _key(value: Any) -> str:
    """A comparable form of a category: 1, 1.0 and "1" are the same category (masking turns int columns float)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return repr(number) if np.isfinite(number) else str(value)
