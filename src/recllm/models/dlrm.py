"""DLRM (Naumov et al., 2019) for tabular click / rating prediction, with a scikit-learn-like interface.

Dense features go through a bottom MLP to a ``embedding_dim`` vector; each categorical feature has its own
embedding table; the pairwise dot products of all these vectors (upper triangle) are concatenated with the bottom
output and fed to a top MLP whose head depends on the task: one logit (``binary``), one logit per class
(``multiclass``) or one value (``regression``). Preprocessing is fitted on the training rows only: dense features
are standardised (a missing dense value becomes the training mean, i.e. 0), and every categorical column gets a
vocabulary of its training values; row 0 of each table is shared by unseen and missing values (out-of-vocabulary).
Training uses Adam with early stopping on the validation loss; the same seed gives the same model.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from recllm.data.dataset import DataError
from recllm.models.base import Params
from recllm.utils import check_device, is_integer, resolve_device

TASKS = ("binary", "multiclass", "regression")


def _mlp(sizes: list[int], last_activation: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2 or last_activation:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class DLRMNet(nn.Module):
    """The network: bottom MLP, embedding tables, dot-product interaction, top MLP."""

    def __init__(self, n_dense: int, cardinalities: list[int], embedding_dim: int, bottom_mlp: tuple[int, ...],
                 top_mlp: tuple[int, ...], n_outputs: int) -> None:
        super().__init__()
        self.bottom = _mlp([n_dense, *bottom_mlp, embedding_dim], last_activation=True) if n_dense else None
        self.embeddings = nn.ModuleList(nn.Embedding(c, embedding_dim) for c in cardinalities)
        for table in self.embeddings:
            nn.init.normal_(table.weight, std=0.05)
        n_vectors = len(cardinalities) + (1 if n_dense else 0)
        if n_vectors == 0:
            raise ValueError("DLRM needs at least one dense or categorical feature")
        n_pairs = n_vectors * (n_vectors - 1) // 2
        self.register_buffer("_pairs", torch.triu_indices(n_vectors, n_vectors, offset=1), persistent=False)
        top_in = n_pairs + (embedding_dim if n_dense else 0) + (embedding_dim if n_vectors == 1 and not n_dense else 0)
        self.top = _mlp([top_in, *top_mlp, n_outputs], last_activation=False)

    def forward(self, dense: torch.Tensor, cats: torch.Tensor) -> torch.Tensor:
        vectors = [table(cats[:, j]) for j, table in enumerate(self.embeddings)]
        parts = []
        if self.bottom is not None:
            bottom = self.bottom(dense)
            vectors.insert(0, bottom)
            parts.append(bottom)
        stacked = torch.stack(vectors, dim=1)  # (batch, n_vectors, dim)
        if stacked.shape[1] > 1:
            dots = torch.bmm(stacked, stacked.transpose(1, 2))
            parts.append(dots[:, self._pairs[0], self._pairs[1]])
        elif self.bottom is None:
            parts.append(stacked[:, 0])
        return self.top(torch.cat(parts, dim=1))


def _dense_values(X: pd.DataFrame, col: str) -> np.ndarray:
    """Dense feature ``col`` of ``X`` as float64, NaN for a gap; a value that is not a finite number is a DataError
    naming the column and row (an infinity would make every prediction NaN, text would become a silent gap)."""
    values = pd.to_numeric(X[col], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    bad = (np.isnan(values) & X[col].notna().to_numpy()) | np.isinf(values)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        label, value = (v.item() if isinstance(v, np.generic) else v for v in (X.index[row], X[col].iloc[row]))
        raise DataError(f"dense feature {col!r} row {label!r} holds {value!r}, not a finite number",
                        None, "fix or blank those cells, or declare the column categorical")
    return values


class DLRM(Params):
    """DLRM with ``fit(X, y, X_valid=None, y_valid=None)``, ``predict`` and ``predict_proba`` on DataFrames.

    ``dense`` / ``categorical`` name the feature columns (default: numeric dtypes are dense, the rest categorical).
    Without an explicit validation set, ``valid_fraction`` of the training rows (seeded) is held out for early
    stopping. Regression targets are standardised for training and predictions are clipped to the training range.
    """

    def __init__(self, task: str = "binary", dense: tuple[str, ...] | None = None,
                 categorical: tuple[str, ...] | None = None, embedding_dim: int = 16,
                 bottom_mlp: tuple[int, ...] = (64,), top_mlp: tuple[int, ...] = (64, 32),
                 learning_rate: float = 1e-3, weight_decay: float = 0.0, batch_size: int = 512, max_epochs: int = 30,
                 patience: int = 3, valid_fraction: float = 0.1, seed: int = 0, device: str = "auto",
                 show_progress: bool = False) -> None:
        self.task = task
        self.dense = dense
        self.categorical = categorical
        self.embedding_dim = embedding_dim
        self.bottom_mlp = bottom_mlp
        self.top_mlp = top_mlp
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.valid_fraction = valid_fraction
        self.seed = seed
        self.device = device
        self.show_progress = show_progress

    # ------------------------------------------------------------------ checks and preprocessing
    def _check_params(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {self.task!r}")
        for name in ("embedding_dim", "batch_size", "max_epochs", "patience"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:  # True is not a count
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("bottom_mlp", "top_mlp"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, (tuple, list)) or not all(
                    is_integer(width) and width >= 1 for width in value):
                raise ValueError(f"{name} must be a tuple of positive layer widths such as (64, 32), got {value!r}")
        if not 0.0 < self.valid_fraction < 1.0:
            raise ValueError(f"valid_fraction must be in (0, 1), got {self.valid_fraction!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        check_device(self.device, "DLRM.device")

    def _columns(self, X: pd.DataFrame) -> tuple[list[str], list[str]]:
        if self.dense is None and self.categorical is None:
            dense = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c]) and not pd.api.types.is_bool_dtype(X[c])]
            return dense, [c for c in X.columns if c not in dense]
        dense, cats = list(self.dense or ()), list(self.categorical or ())
        missing = [c for c in dense + cats if c not in X.columns]
        if missing:
            raise DataError(f"DLRM feature column(s) {missing} are not in the table; it has {list(X.columns)}")
        return dense, cats

    def _encode(self, X: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"DLRM takes a pandas DataFrame, got {type(X).__name__}")
        missing = [c for c in self.dense_ + self.categorical_ if c not in X.columns]
        if missing:
            raise DataError(f"the table lacks DLRM feature column(s) {missing} seen in fit")
        dense = np.zeros((len(X), len(self.dense_)), dtype=np.float32)
        for j, col in enumerate(self.dense_):
            values = _dense_values(X, col)
            mean, std = self.scaler_[col]
            dense[:, j] = np.nan_to_num((values - mean) / std, nan=0.0)
        cats = np.zeros((len(X), len(self.categorical_)), dtype=np.int64)
        for j, col in enumerate(self.categorical_):
            keys = X[col].astype(object).where(X[col].notna(), None).map(lambda v: None if v is None else str(v))
            cats[:, j] = keys.map(self.vocab_[col]).fillna(0).to_numpy(dtype=np.int64)
        return torch.from_numpy(dense), torch.from_numpy(cats)

    def _fit_preprocessing(self, X: pd.DataFrame, y: Any) -> np.ndarray:
        self.dense_, self.categorical_ = self._columns(X)
        self.scaler_ = {}
        for col in self.dense_:
            values = _dense_values(X, col)
            observed = values[~np.isnan(values)]
            mean = float(observed.mean()) if observed.size else 0.0
            std = float(observed.std()) if observed.size > 1 else 1.0
            self.scaler_[col] = (mean, std if std > 0 else 1.0)
        self.vocab_ = {}
        for col in self.categorical_:
            keys = [str(v) for v in pd.unique(X[col].dropna())]
            self.vocab_[col] = {k: i + 1 for i, k in enumerate(sorted(keys))}  # 0: unseen or missing
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(X):
            raise ValueError(f"y must be 1-d with one value per row of X ({len(X)}), got shape {y.shape}")
        if pd.isna(y).any():
            raise DataError("y has missing values; drop those rows before fitting")
        if self.task == "regression":
            y = y.astype(float)
            if not np.isfinite(y).all():
                raise DataError(f"y holds an infinite value at row {int(np.flatnonzero(~np.isfinite(y))[0])}",
                                None, "use finite targets or drop those rows")
            self.y_mean_, self.y_std_ = float(y.mean()), float(y.std()) or 1.0
            self.y_range_ = (float(y.min()), float(y.max()))
        else:
            self.classes_ = np.unique(y)
            if self.task == "binary" and len(self.classes_) != 2:
                raise DataError(f"binary task needs exactly two classes in y, got {self.classes_.tolist()}")
            if len(self.classes_) < 2:
                raise DataError(f"classification needs at least two classes in y, got {self.classes_.tolist()}")
        return y

    def _target(self, y: np.ndarray) -> torch.Tensor:
        if self.task == "regression":
            return torch.tensor((np.asarray(y, dtype=float) - self.y_mean_) / self.y_std_, dtype=torch.float32)
        codes = np.searchsorted(self.classes_, y)
        unknown = (codes >= len(self.classes_)) | (self.classes_[np.minimum(codes, len(self.classes_) - 1)] != y)
        if unknown.any():
            raise DataError(f"label {np.asarray(y)[unknown][0]!r} was not seen in the training labels")
        return torch.tensor(codes, dtype=torch.float32 if self.task == "binary" else torch.long)

    def _loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.task == "binary":
            return nn.functional.binary_cross_entropy_with_logits(out[:, 0], target)
        if self.task == "multiclass":
            return nn.functional.cross_entropy(out, target)
        return nn.functional.mse_loss(out[:, 0], target)

    # ------------------------------------------------------------------ training
    def fit(self, X: pd.DataFrame, y: Any, X_valid: pd.DataFrame | None = None, y_valid: Any = None) -> "DLRM":
        """Train with early stopping on (X_valid, y_valid), or on a seeded hold-out of X when none is given."""
        from tqdm.auto import tqdm

        self._check_params()
        if not isinstance(X, pd.DataFrame) or X.empty:
            raise DataError("DLRM.fit needs a non-empty pandas DataFrame of features")
        start = time.perf_counter()
        if X_valid is None:
            rng = np.random.default_rng(self.seed)
            order = rng.permutation(len(X))
            n_valid = max(1, int(round(self.valid_fraction * len(X))))
            if len(X) - n_valid < 1:
                raise DataError("too few rows to hold out a validation set; pass X_valid")
            X_valid, y_valid = X.iloc[order[:n_valid]], np.asarray(y)[order[:n_valid]]
            X, y = X.iloc[order[n_valid:]], np.asarray(y)[order[n_valid:]]
        y = self._fit_preprocessing(X, y)
        device = resolve_device(self.device)
        dense, cats = (t.to(device) for t in self._encode(X))
        target = self._target(y).to(device)
        v_dense, v_cats = (t.to(device) for t in self._encode(X_valid))
        v_target = self._target(np.asarray(y_valid)).to(device)
        n_out = 1 if self.task != "multiclass" else len(self.classes_)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            net = DLRMNet(len(self.dense_), [len(v) + 1 for v in self.vocab_.values()], self.embedding_dim,
                          tuple(self.bottom_mlp), tuple(self.top_mlp), n_out).to(device)
        optimizer = torch.optim.Adam(net.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        generator = torch.Generator().manual_seed(self.seed)
        best, best_state, bad_epochs = float("inf"), None, 0
        self.history_: list[dict[str, float]] = []
        bar = tqdm(range(self.max_epochs), disable=not self.show_progress, desc="dlrm", unit="epoch")
        for epoch in bar:
            net.train()
            order = torch.randperm(len(target), generator=generator).to(device)
            total = 0.0
            for i in range(0, len(order), self.batch_size):
                idx = order[i:i + self.batch_size]
                loss = self._loss(net(dense[idx], cats[idx]), target[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(idx)
            valid = self._eval_loss(net, v_dense, v_cats, v_target)
            self.history_.append({"epoch": epoch, "train_loss": total / len(order), "valid_loss": valid})
            bar.set_postfix(valid=f"{valid:.4f}")
            if valid < best - 1e-6:
                best, best_state, bad_epochs = valid, copy.deepcopy(net.state_dict()), 0
                self.best_epoch_ = epoch
            else:
                bad_epochs += 1
                if bad_epochs >= self.patience:
                    break
        net.load_state_dict(best_state)
        self.net_ = net.eval()
        self.device_ = device
        self.best_valid_loss_ = best
        self.n_train_rows_ = len(X)
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def _eval_loss(self, net: DLRMNet, dense: torch.Tensor, cats: torch.Tensor, target: torch.Tensor) -> float:
        net.eval()
        with torch.no_grad():
            total = 0.0
            for i in range(0, len(target), 4096):
                total += float(self._loss(net(dense[i:i + 4096], cats[i:i + 4096]), target[i:i + 4096])) * len(
                    target[i:i + 4096])
        return total / len(target)

    # ------------------------------------------------------------------ prediction
    def _raw(self, X: pd.DataFrame) -> torch.Tensor:
        if not hasattr(self, "net_"):
            raise RuntimeError("this DLRM is not fitted yet; call fit first")
        dense, cats = (t.to(self.device_) for t in self._encode(X))
        with torch.no_grad():
            return torch.cat([self.net_(dense[i:i + 4096], cats[i:i + 4096]) for i in range(0, len(dense), 4096)]
                             ) if len(dense) else torch.zeros((0, 1))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Class probabilities, shape (n, n_classes), columns in ``classes_`` order."""
        if self.task == "regression":
            raise AttributeError("predict_proba is for classification tasks; this DLRM does regression")
        out = self._raw(X)
        if self.task == "binary":
            p = torch.sigmoid(out[:, 0]).cpu().numpy()
            return np.stack([1 - p, p], axis=1)
        return torch.softmax(out, dim=1).cpu().numpy()

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Labels (classification) or values clipped to the training target range (regression)."""
        if not hasattr(self, "net_"):
            raise RuntimeError("this DLRM is not fitted yet; call fit first")
        if self.task == "regression":
            values = self._raw(X)[:, 0].cpu().numpy().astype(float) * self.y_std_ + self.y_mean_
            return np.clip(values, *self.y_range_)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


# CTR / rating models are not Recommenders (they score given rows, not whole catalogues): their own registry.
TABULAR_MODELS: dict[str, type[DLRM]] = {"dlrm": DLRM}
