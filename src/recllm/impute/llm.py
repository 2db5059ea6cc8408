"""LLMImputer: fill table cells with a LoRA-fine-tuned causal language model (after arXiv 2407.10078).

Each row is written as text ("age is 34, occupation is engineer, ..."). ``fit`` builds one training example per
observed cell -- prompt = the row's other observed cells + ``"<column> is"``, answer = the value -- and LoRA-tunes
the model with the loss on the answer tokens (``train_on="complete_rows"`` keeps the paper's variant: examples
from complete rows only). ``transform`` fills each missing cell from the same prompt:

- categorical: every category seen in ``fit`` is scored as a continuation (value + EOS) with the shared-prefix KV
  cache (one prefix pass per cell); the most likely one wins, so the answer is always a valid category;
- numeric: greedy generation restricted to digit, ``.``, ``-`` and space tokens and (``numeric_shape``, the
  default) to the shape and range of the column's observed numbers -- sign, number of integer digits, decimals,
  [min, max] -- so an under-trained model cannot write an income of 61833.9 as " 618"; parsed (and, without the
  shape, clipped to the observed range). Greedy decoding picks the likeliest digit at each place (a mode, digit
  by digit), while RMSE rewards the mean, so two alternatives score candidates like categories and fill the
  probability-weighted mean: ``numeric_decoding="expected-grid"`` over ``numeric_candidates`` observed values of
  the column (its quantiles; no generation), ``"expected"`` over those plus the greedy answer (a model sure of
  its answer, such as a film's year, keeps it);
- text: greedy generation restricted to the tokens of the column's observed values (one line, at most as long
  as the longest observed value).

A numeric or text answer that cannot be used falls back to the column statistic (mean / most frequent value);
every fallback is counted in ``report_``. With a cache (the default), the trained adapter is kept under the recllm
cache (keyed by base model, examples and configs) and every answer in a ``DiskCache``, so a rerun costs seconds.

``training="whole-row"`` (the default) learns many cells per pass (after GReaT, Borisov et al., ICLR 2023): one
sequence per row, its observed cells as ``"column: value"`` lines in a fresh seeded random column order every epoch,
the loss on every value (and the EOS that ends it) but not on the column names, so a row with n observed cells
teaches n cells at once and the model learns to condition on any subset. A missing cell is then asked for after the
row's observed lines (in the fixed inference order) as ``"<column>:"``; the fill routes above are unchanged.
``training="per-cell"`` keeps the paper's one example per observed cell.

Every observed cell is learned (``max_train_examples=None``). When more than one epoch is allowed, the number of
epochs is chosen on held-out observed cells: a seeded ``validation_fraction`` of the observed cells of the columns to
be filled (those with gaps in the fitted table; all learned columns when none has one), at most
``max_validation_cells``, is left out of training; after each epoch the model fills them through the fill routes
above (numbers always by :data:`VALIDATION_DECODING`, so the epoch choice and the adapter are the same for every
``numeric_decoding``, which only changes how ``transform`` fills) and they are scored (accuracy for categorical,
text and code columns; 1 - MAE / the column's mean absolute deviation from its median for numeric ones; the mean
over columns). Training runs up to ``max_epochs`` and stops at the first epoch that scores worse than the best; the
best epoch's adapter is kept (``fit_report_["chosen_epoch"]``, ``validation_``). A code column (a few whole-number
codes, :mod:`recllm.impute.base`) is filled by scoring its codes like categories. The fit record kept with a
cached adapter holds the original fine-tune's seconds, CPU and threads (``fit_report_["fit_seconds"]``,
``"fit_cpu"``, ``"fit_threads"``), also when the adapter is reused.

The fine-tuning defaults live in :data:`DEFAULT_SFT` (read by the imputation benchmark too).
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from recllm.data.dataset import DataError
from recllm.impute.base import CATEGORICAL, NUMERIC, BaseImputer, ImputationReport, fit_code_version
from recllm.impute.serialize import (LINES_TEMPLATE_VERSION, TEMPLATE_VERSION, cell_answer, cell_prompt,
                                     format_value, is_missing, lines_prompt, parse_number, row_segments)
from recllm.llm.number_shape import NumberShape
from recllm.llm.sft import LoRAConfig, SFTConfig

# The imputer's fine-tuning defaults (the one place; the benchmark reads them): ``epochs`` is the most epochs trained
# when validation chooses the epoch; ``seed`` and ``show_progress`` are replaced by the imputer's own. A checkpoint
# every 25 steps (200 rows, minutes on a CPU) lets a fine-tune of a whole table (hours) resume where it stopped.
DEFAULT_SFT = SFTConfig(epochs=3, learning_rate=5e-4, batch_size=8, max_length=256, checkpoint_every=25,
                        show_progress=False)
VALIDATION_FRACTION = 0.05  # share of the observed cells held out to choose the epoch
MAX_VALIDATION_CELLS = 256
VALIDATION_DECODING = "generate"  # the numeric decoding the held-out cells are filled with, whatever numeric_decoding
FIT_RECORD = "imputer_fit.json"  # in a cached adapter folder: the finished fit's epoch choice (its presence = done)
TRAIN_ON = ("observed", "complete_rows")
TRAININGS = ("per-cell", "whole-row")
NUMERIC_DECODINGS = ("generate", "expected", "expected-grid")
COLUMN_ORDERS = ("table", "reversed", "random")
_NUMBER_CHARS = set("0123456789.-")


@lru_cache(maxsize=8)
def _numeric_token_ids(tokenizer: Any) -> tuple[int, ...]:
    """Ids of tokens made only of digits, '.' and '-', optionally after one leading space (and the bare space)."""
    ids = []
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    texts = [tokenizer.convert_tokens_to_string([t]) if t is not None else "" for t in tokens]
    for token_id, text in enumerate(texts):
        body = text[1:] if text.startswith(" ") else text
        if text and (body == "" or set(body) <= _NUMBER_CHARS) and " " not in body:
            ids.append(token_id)
    return tuple(ids)


def numeric_candidates(values: pd.Series, n: int) -> np.ndarray:
    """Up to ``n`` observed values of a numeric column, spread over its distribution (its quantiles, each an
    actual observed value so its text has the column's shape); every distinct value when there are at most ``n``."""
    observed = np.asarray(values.dropna(), dtype=np.float64)
    distinct = np.unique(observed)
    if len(distinct) <= n:
        return distinct
    levels = (np.arange(n) + 0.5) / n
    return np.unique(np.quantile(observed, levels, method="inverted_cdf"))


def fit_machine(seconds: float) -> dict[str, Any]:
    """What a fit record keeps of the fine-tune that made it: its seconds (model load and training), the CPU model
    and the torch threads of the machine that ran it (a reused adapter reports these, never its load time)."""
    from recllm.hardware import this_process_machine

    return {"fit_seconds": round(float(seconds), 3), **this_process_machine()}


def _spread(values: np.ndarray) -> float:
    """The mean absolute deviation from the median (the MAE of always answering the median); 1 if it is 0."""
    spread = float(np.mean(np.abs(values - np.median(values)))) if len(values) else 0.0
    return spread if spread > 0 else 1.0


def _first_value(text: str, observed: tuple[Any, ...]) -> str | None:
    """A generated text cell: its first line, cut at the row separator unless the column's values contain it."""
    from recllm.impute.serialize import SEPARATOR

    line = text.strip().split("\n", 1)[0]
    if not any(SEPARATOR in str(v) for v in observed):
        line = line.split(SEPARATOR, 1)[0]
    return " ".join(line.split()) or None


class LLMImputer(BaseImputer):
    """Fill missing cells with a causal LM fine-tuned (LoRA) on the table's own rows serialised as text.

    ``model``: None (the bundled SmolLM2-135M-Instruct), a model id / folder, or a loaded ``CausalLM`` (copied
    before fine-tuning, so the caller's model stays clean). ``column_order``: "table", "reversed", "random" (each
    training prompt lists the other cells in a seeded random order; inference uses table order) or an explicit
    list of all columns. ``max_train_examples`` caps the fine-tuning set (seeded sample). ``target_columns`` limits
    which columns are learned as answers (default: all; a column not learned can still be filled, less well).
    ``context`` is an optional first line of every prompt (e.g. what the table describes). ``dtype`` is the
    inference precision ("auto": the machine's, :mod:`recllm.llm.precision`); training uses the training precision
    with the autocast of ``sft.bf16``. ``text_vocabulary``: generate text cells only from tokens seen in
    the column (default True).
    ``numeric_shape``: generate numbers only in the shape of the column's observed ones (default True; see
    :mod:`recllm.llm.number_shape`). ``numeric_decoding``: "generate" (default), "expected" (the weighted mean
    over the greedy answer and ``numeric_candidates`` quantiles of the column's observed values) or
    "expected-grid" (over the quantiles only); see the module docstring.
    ``cache``: True (default cache), False, or a ``DiskCache``.
    ``training``: "whole-row" (default: one example per row, every value a target, a fresh random column order
    each epoch; ``max_train_examples`` then caps rows and ``column_order`` sets the inference order only) or
    "per-cell" (one example per observed cell); see the module docstring.
    ``validation_fraction`` (0 disables), ``max_validation_cells``: the held-out observed cells that choose the epoch;
    ``max_epochs``: the most epochs (None: ``sft.epochs``, 3 by default, :data:`DEFAULT_SFT`).
    ``code_columns``: "auto", column names or () (see :mod:`recllm.impute.base`).
    ``engine``: "local" or "ray": the fills' scoring and generation on a Ray actor pool (``ray_options``: a
    :class:`recllm.distributed.ray_jobs.RayOptions`), same fills and the same answer cache as the local path.
    """

    method = "llm"

    def __init__(self, model: Any = None, train_on: str = "observed", training: str = "whole-row",
                 lora: LoRAConfig | None = None,
                 sft: SFTConfig | None = None, column_order: str | Sequence[str] = "table",
                 max_train_examples: int | None = None, target_columns: tuple[str, ...] | None = None,
                 context: str = "", dtype: str = "auto", device: str = "auto", batch_size: int = 16,
                 numeric_max_new_tokens: int | None = None, text_max_new_tokens: int = 48,
                 text_vocabulary: bool = True, numeric_shape: bool = True, numeric_decoding: str = "generate",
                 numeric_candidates: int = 32, cache: Any = True,
                 seed: int = 0, show_progress: bool = False, categorical: tuple[str, ...] | None = None,
                 numeric: tuple[str, ...] | None = None, text: tuple[str, ...] | None = None,
                 max_categories: int = 50, validation_fraction: float = VALIDATION_FRACTION,
                 max_validation_cells: int = MAX_VALIDATION_CELLS, max_epochs: int | None = None,
                 code_columns: str | Sequence[str] = "auto", engine: str = "local", ray_options: Any = None) -> None:
        self.model = model
        self.train_on = train_on
        self.training = training
        self.lora = lora
        self.sft = sft
        self.column_order = column_order
        self.max_train_examples = max_train_examples
        self.target_columns = target_columns
        self.context = context
        self.dtype = dtype
        self.device = device
        self.batch_size = batch_size
        self.numeric_max_new_tokens = numeric_max_new_tokens
        self.text_max_new_tokens = text_max_new_tokens
        self.text_vocabulary = text_vocabulary
        self.numeric_shape = numeric_shape
        self.numeric_decoding = numeric_decoding
        self.numeric_candidates = numeric_candidates
        self.cache = cache
        self.seed = seed
        self.show_progress = show_progress
        self.categorical = categorical
        self.numeric = numeric
        self.text = text
        self.max_categories = max_categories
        self.validation_fraction = validation_fraction
        self.max_validation_cells = max_validation_cells
        self.max_epochs = max_epochs
        self.code_columns = code_columns
        self.engine = engine
        self.ray_options = ray_options

    # ------------------------------------------------------------------ configuration
    def _check_params(self) -> None:
        from recllm.llm.precision import check_dtype

        check_dtype(self.dtype, "LLMImputer.dtype")
        if self.engine != "local":
            from recllm.distributed import check_engine

            check_engine(self.engine, "LLMImputer.engine")
        if self.train_on not in TRAIN_ON:
            raise ValueError(f"train_on must be one of {TRAIN_ON}, got {self.train_on!r}")
        if self.training not in TRAININGS:
            raise ValueError(f"training must be one of {TRAININGS}, got {self.training!r}")
        if self.max_train_examples is not None and self.max_train_examples < 1:
            raise ValueError(f"max_train_examples must be >= 1 or None, got {self.max_train_examples!r}")
        if self.batch_size < 1 or self.text_max_new_tokens < 1:
            raise ValueError("batch_size and text_max_new_tokens must be >= 1")
        if self.numeric_max_new_tokens is not None and self.numeric_max_new_tokens < 1:
            raise ValueError(f"numeric_max_new_tokens must be >= 1 or None, got {self.numeric_max_new_tokens!r}")
        if self.numeric_decoding not in NUMERIC_DECODINGS:
            raise ValueError(f"numeric_decoding must be one of {NUMERIC_DECODINGS}, got {self.numeric_decoding!r}")
        if self.numeric_candidates < 2:
            raise ValueError(f"numeric_candidates must be >= 2, got {self.numeric_candidates!r}")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in [0, 1) (0: no validation), got {self.validation_fraction!r}")
        if self.max_validation_cells < 1:
            raise ValueError(f"max_validation_cells must be >= 1, got {self.max_validation_cells!r}")
        if self.max_epochs is not None and (not isinstance(self.max_epochs, int) or self.max_epochs < 1):
            raise ValueError(f"max_epochs must be a positive integer or None, got {self.max_epochs!r}")

    def _order(self, columns: list[str]) -> list[str]:
        order = self.column_order
        if isinstance(order, str):
            if order not in COLUMN_ORDERS:
                raise ValueError(f"column_order must be one of {COLUMN_ORDERS} or a list of the columns, got {order!r}")
            return list(reversed(columns)) if order == "reversed" else list(columns)
        order = list(order)
        if sorted(order) != sorted(columns):
            raise ValueError(f"column_order must list every column exactly once; got {order}, the table has {columns}")
        return order

    def _sft_config(self) -> SFTConfig:
        """``sft`` (or :data:`DEFAULT_SFT` with the imputer's seed) with ``max_epochs`` epochs; show_progress=True
        shows the fine-tune's bar too."""
        if self.sft is not None:
            config = dataclasses.replace(self.sft, show_progress=self.sft.show_progress or self.show_progress)
        else:
            config = dataclasses.replace(DEFAULT_SFT, seed=self.seed, show_progress=self.show_progress)
        return config if self.max_epochs is None else dataclasses.replace(config, epochs=self.max_epochs)

    def _disk_cache(self) -> Any:
        if self.cache is True:
            from recllm.llm.cache import DiskCache

            return DiskCache()
        return None if self.cache is None or self.cache is False else self.cache  # (an empty DiskCache is falsy)

    def _load_model(self) -> Any:
        from recllm.llm.backbone import CausalLM, load_trainable_lm, trainable_copy

        if self.model is None or isinstance(self.model, str):
            return load_trainable_lm(self.model, device=self.device)
        if isinstance(self.model, CausalLM):  # a copy in the training precision: LoRA is injected into it
            return trainable_copy(self.model)
        raise TypeError(f"model must be None, a model name/folder or a CausalLM, got {type(self.model).__name__}")

    def _inference_model(self, merged: Any, dtype: str) -> Any:
        """The merged weights in a freshly allocated model of ``dtype``.

        Measured on this CPU: the model object that went through training ran inference 1.5-2x slower than a fresh
        one holding the very same weights, so the weights are copied into a new model.
        """
        from recllm.llm.precision import torch_dtype

        if self.model is None or isinstance(self.model, str):
            from recllm.llm.backbone import load_causal_lm

            fresh = load_causal_lm(self.model, device=self.device, dtype=dtype).model
        else:
            fresh = copy.deepcopy(self.model.model).to(torch_dtype(dtype))
        fresh.load_state_dict(merged.state_dict())
        del merged
        return fresh.eval()

    # ------------------------------------------------------------------ training data
    def _learnable(self, frame: pd.DataFrame) -> tuple[list[str], pd.DataFrame]:
        """The learned (target) columns and the rows training may read (``train_on``)."""
        targets = list(self.target_columns) if self.target_columns is not None else list(frame.columns)
        unknown = [c for c in targets if c not in frame.columns]
        if unknown:
            raise DataError(f"target_columns {unknown} are not in the table; it has {list(frame.columns)}")
        rows = frame
        if self.train_on == "complete_rows":
            rows = frame[frame.notna().all(axis=1)]
            if rows.empty:
                raise DataError(
                    "train_on='complete_rows' needs at least one complete row, and no row of the table is complete; "
                    "use train_on='observed' (learns from every observed cell)"
                )
        return targets, rows

    def training_examples(self, frame: pd.DataFrame) -> list[tuple[str, str]]:
        """The (prompt, answer) pairs ``fit`` trains on: one per observed cell of the learned columns."""
        targets, rows = self._learnable(frame)
        rng = np.random.default_rng(self.seed)
        order = self._order(list(frame.columns))
        records = rows.to_dict(orient="records")
        cells = [(i, col) for i, record in enumerate(records) for col in targets if not pd.isna(record[col])]
        if self.max_train_examples is not None and len(cells) > self.max_train_examples:
            keep = np.sort(rng.choice(len(cells), size=self.max_train_examples, replace=False))
            cells = [cells[k] for k in keep]
        examples = []
        for i, col in cells:
            columns = order
            if self.column_order == "random":
                columns = [order[k] for k in rng.permutation(len(order))]
            examples.append((cell_prompt(records[i], col, columns, self.context), cell_answer(records[i][col])))
        if not examples:
            raise DataError("no observed cell to learn from in the target columns")
        return examples

    def whole_row_examples(self, frame: pd.DataFrame, end: str = "") -> Callable[[int], list[list[tuple[str, bool]]]]:
        """``examples_for_epoch(epoch)``: the segment examples of ``training="whole-row"``, one per row with an
        observed cell in a learned column (a seeded sample of ``max_train_examples`` rows when set), its observed
        cells as ``"column: value"`` lines in a random order drawn from ``(seed, epoch)``; the learned columns'
        values (+ ``end``, the EOS text ``fit`` passes) are the targets. Missing cells are never written."""
        targets, rows = self._learnable(frame)
        records = [r for r in rows.to_dict(orient="records") if any(not is_missing(r[c]) for c in targets)]
        if not records:
            raise DataError("no observed cell to learn from in the target columns")
        if self.max_train_examples is not None and len(records) > self.max_train_examples:
            rng = np.random.default_rng(self.seed)
            keep = np.sort(rng.choice(len(records), size=self.max_train_examples, replace=False))
            records = [records[k] for k in keep]
        columns, learned = list(frame.columns), set(targets)

        def examples_for_epoch(epoch: int) -> list[list[tuple[str, bool]]]:
            rng = np.random.default_rng([self.seed, epoch])
            return [row_segments(r, [columns[k] for k in rng.permutation(len(columns))], learned, end, self.context)
                    for r in records]

        return examples_for_epoch

    # ------------------------------------------------------------------ validation
    def holdout_cells(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The observed cells held out of training to choose the epoch (a boolean frame like ``frame``): a seeded
        ``validation_fraction`` (at most ``max_validation_cells``) of the observed cells of the learned columns that
        have gaps in ``frame`` (of every learned column when none has); none when that rounds to 0."""
        targets, _ = self._learnable(frame)
        gaps = [c for c in targets if frame[c].isna().any()] or targets
        held = pd.DataFrame(False, index=frame.index, columns=frame.columns)
        cells = [(i, j) for j, col in enumerate(frame.columns) if col in gaps
                 for i in np.flatnonzero(frame[col].notna().to_numpy())]
        n = min(self.max_validation_cells, int(round(self.validation_fraction * len(cells))))
        if n < 1:
            return held
        keep = np.random.default_rng([self.seed, 7]).choice(len(cells), size=n, replace=False)
        values = np.zeros(held.shape, dtype=bool)
        for k in keep:
            values[cells[k]] = True
        return pd.DataFrame(values, index=frame.index, columns=frame.columns)

    def _validation_score(self, lm: Any, frame: pd.DataFrame, held: pd.DataFrame, truth: pd.DataFrame
                          ) -> tuple[float, dict[str, dict[str, float]]]:
        """Fill the held-out cells of ``frame`` (where they are blank) with ``lm`` and score them against ``truth``:
        per column accuracy (categorical, text, code columns) or 1 - normalised MAE (numeric); the mean over
        columns."""
        saved = self.__dict__.get("lm_"), self.__dict__.get("cache_"), self.numeric_decoding
        # the fill routes, with the model being trained, no answer cache and the one validation decoding (so the
        # epoch choice, and the adapter, do not depend on numeric_decoding)
        self.lm_, self.cache_, self.numeric_decoding = lm, None, VALIDATION_DECODING
        try:
            values = self._impute(frame, held, ImputationReport(method="validation"))
        finally:
            self.lm_, self.cache_, self.numeric_decoding = saved
        columns: dict[str, dict[str, float]] = {}
        for col, filled in values.items():
            rows = np.flatnonzero(held[col].to_numpy())
            true = truth[col].iloc[rows].tolist()
            if self.columns_[col].kind == NUMERIC and col not in self.code_columns_:
                error = np.abs(np.asarray(filled, dtype=float) - np.asarray(true, dtype=float)).mean()
                nmae = float(error / _spread(frame[col].dropna().to_numpy(dtype=float)))
                columns[col] = {"cells": len(rows), "nmae": nmae, "score": 1.0 - nmae}
            else:
                accuracy = float(np.mean([format_value(a) == format_value(b) for a, b in zip(filled, true)]))
                columns[col] = {"cells": len(rows), "accuracy": accuracy, "score": accuracy}
        return float(np.mean([c["score"] for c in columns.values()])), columns

    def _fine_tune(self, lm: Any, examples: Any, config: SFTConfig, lora: LoRAConfig, output_dir: Any,
                   validate: Callable[[Any], tuple[float, dict[str, Any]]] | None) -> tuple[Any, dict[str, Any]]:
        """``sft_train`` for up to ``config.epochs`` epochs; with ``validate``, stopped at the first epoch scoring
        worse than the best and returned with the best epoch's adapter. Also returns the record of the choice."""
        from recllm.llm.checkpoints import checkpoints
        from recllm.llm.sft import SFTProgress, load_sft_state, sft_train

        if validate is None:
            tuned = sft_train(lm, examples, config, lora, output_dir=output_dir)
            return tuned, {"chosen_epoch": config.epochs, "epochs_trained": config.epochs, "stopped_early": False,
                           "curve": []}
        curve: dict[int, dict[str, Any]] = {}
        if output_dir is not None and checkpoints(output_dir):  # a resumed run: the epochs scored before
            for epoch, score in load_sft_state(output_dir).get("epoch_scores", {}).items():
                curve[int(epoch)] = {"epoch": int(epoch) + 1, "score": float(score)}
        best: dict[str, Any] = {"epoch": None, "score": -np.inf}
        for epoch in sorted(curve):
            if curve[epoch]["score"] > best["score"]:
                best.update(epoch=epoch, score=curve[epoch]["score"])

        def eval_fn(tuned: Any, epoch: int) -> float:
            score, columns = validate(tuned)
            curve[epoch] = {"epoch": epoch + 1, "score": score, "columns": columns}
            if score > best["score"]:  # (ties keep the earlier epoch, as sft_train does)
                best.update(epoch=epoch, score=score)
            return score

        def worse_than_the_best(progress: SFTProgress) -> bool:  # (sft_train asks after every step but the last)
            return progress.eval_score is not None and progress.eval_score < best["score"]

        # sft_train returns the best epoch's adapter, also when it stops early (and when a rerun finds it stopped)
        tuned = sft_train(lm, examples, config, lora, output_dir=output_dir, eval_fn=eval_fn,
                          should_stop=worse_than_the_best)
        trained = max(curve) + 1
        record = {"chosen_epoch": int(best["epoch"]) + 1, "epochs_trained": trained,
                  "stopped_early": trained < config.epochs, "curve": [curve[e] for e in sorted(curve)]}
        return tuned, record

    # ------------------------------------------------------------------ fit
    def _fit(self, frame: pd.DataFrame) -> None:
        from recllm.llm.precision import resolve_dtype
        from recllm.llm.sft import load_adapter
        from recllm.distributed.ddp import is_main_process
        from recllm.utils import cache_dir, write_json_atomic

        self._check_params()
        self.order_ = self._order(list(frame.columns))
        self.number_shapes_ = {col: NumberShape.of(format_value(v) for v in frame[col].dropna())
                               for col, info in self.columns_.items() if info.kind == NUMERIC}
        self.numeric_grid_ = {col: numeric_candidates(frame[col], self.numeric_candidates)
                              for col, info in self.columns_.items() if info.kind == NUMERIC}
        config, lora = self._sft_config(), self.lora or LoRAConfig()
        held = self.holdout_cells(frame)
        if config.epochs == 1:  # one epoch: no epoch to choose, so every observed cell is trained on
            held.loc[:, :] = False
        train = frame.mask(held) if held.to_numpy().any() else frame  # held-out cells are never trained on
        whole_row = self.training == "whole-row"
        # built once before the model loads, so bad input fails fast
        examples: Any = self.whole_row_examples(train) if whole_row else self.training_examples(train)
        start = time.perf_counter()
        lm = self._load_model()
        self.eos_text_ = lm.tokenizer.eos_token or ""
        hashed, template = examples, TEMPLATE_VERSION
        if whole_row:  # each epoch's rows, written once: hashed for the cache key, then trained on
            for_epoch = self.whole_row_examples(train, end=self.eos_text_)
            hashed, template = [for_epoch(epoch) for epoch in range(config.epochs)], LINES_TEMPLATE_VERSION
            examples = hashed.__getitem__
        validate = None
        if held.to_numpy().any():
            def validate(tuned: Any) -> tuple[float, dict[str, Any]]:
                return self._validation_score(tuned, train, held, frame)
        self.cache_ = self._disk_cache()
        output_dir = None
        if self.cache_ is not None:
            # the numeric decoding is not part of the key: validation fills with VALIDATION_DECODING, so the
            # decodings share one adapter (numeric_shape shapes that decoding, so it is)
            selection = {"held_out": np.flatnonzero(held.to_numpy().ravel()).tolist(),
                         "numeric": [VALIDATION_DECODING, self.numeric_shape],
                         "codes": {c: list(code.codes) for c, code in self.code_columns_.items()}}
            # the base fingerprint carries recllm.llm's code; recllm.impute's decides the examples and the epoch
            key = self.cache_.key(task="impute-adapter", template=template, base=lm.fingerprint, examples=hashed,
                                  sft=dataclasses.replace(config, show_progress=False), lora=lora, selection=selection,
                                  code=fit_code_version())
            output_dir = cache_dir("impute", "adapters") / key[:32]
        reused = output_dir is not None and (output_dir / FIT_RECORD).exists()
        if reused:
            import json

            tuned = load_adapter(lm, output_dir)
            record = json.loads((output_dir / FIT_RECORD).read_text(encoding="utf-8"))
        else:
            tuned, record = self._fine_tune(lm, examples, config, lora, output_dir, validate)
            record = {**record, **fit_machine(time.perf_counter() - start)}
            if output_dir is not None and is_main_process():  # under torchrun: rank 0 writes, as sft_train does
                write_json_atomic(output_dir / FIT_RECORD, record)
        # Merge the adapter for inference (plain linear layers are faster); the name keeps the adapter's hash so
        # cache keys still tell fine-tunes apart.
        adapter = tuned.fingerprint.rsplit("adapter=", 1)[-1]
        dtype = resolve_dtype(self.dtype, tuned.device)
        merged = self._inference_model(tuned.model.merge_and_unload(), dtype)
        tuned = dataclasses.replace(tuned, model=merged, name=f"{lm.name}+lora-{adapter}", dtype=dtype)
        self.lm_ = tuned
        self.fingerprint_ = tuned.fingerprint
        self.validation_ = {"cells": {c: int(n) for c, n in held.sum().items() if n}, **record}
        if whole_row:
            n_examples, cells = len(hashed[0]), sum(target for pieces in hashed[0] for _, target in pieces)
            n_tokens = sum(len(text) for pieces in hashed[0] for text, _ in pieces)
        else:
            n_examples, cells, n_tokens = len(examples), len(examples), sum(len(p) + len(a) for p, a in examples)
        self.fit_report_ = {
            "examples": n_examples, "train_on": self.train_on, "characters": n_tokens, "training": self.training,
            "cells_per_epoch": cells, "epochs": config.epochs, "epochs_trained": record["epochs_trained"],
            "chosen_epoch": record["chosen_epoch"], "stopped_early": record["stopped_early"],
            "validation_cells": int(held.to_numpy().sum()),
            "validation_curve": [round(point["score"], 4) for point in record["curve"]],
            "seconds": round(time.perf_counter() - start, 3), "adapter_reused": bool(reused),
            "fit_seconds": record.get("fit_seconds"), "fit_cpu": record.get("cpu"),
            "fit_threads": record.get("threads"),
            "adapter_dir": str(output_dir) if output_dir is not None else None, "inference_dtype": dtype,
        }

    # ------------------------------------------------------------------ transform
    def _prompts(self, frame: pd.DataFrame, col: str, rows: np.ndarray) -> list[str]:
        records = frame.iloc[rows].to_dict(orient="records")
        if self.training == "whole-row":  # the layout it was trained on: observed lines, then "<col>:"
            return [lines_prompt(r, col, self.order_, self.context, self.eos_text_) for r in records]
        return [cell_prompt(r, col, self.order_, self.context) for r in records]

    def _score_cells(self, prompts: list[str], answers: Sequence[Sequence[Any]], task: str,
                     reduce: Callable[[np.ndarray, Sequence[Any]], Any], report: ImputationReport) -> list[Any]:
        """``reduce(log-probs, answers[i])`` for each prompt, the log-probs being those of each of its answers as a
        continuation (+ EOS); one shared-prefix pass per distinct (prompt, answers), results cached under ``task``."""
        from recllm.llm.scoring import score_continuations
        from tqdm.auto import tqdm

        conts = [tuple(cell_answer(a) + self.eos_text_ for a in options) for options in answers]
        cells = list(dict.fromkeys(zip(prompts, conts)))
        keys = {}
        done: dict[tuple[str, tuple[str, ...]], Any] = {}
        if self.cache_ is not None:
            code = fit_code_version()  # the answers cached are recllm.impute's reductions
            keys = {cell: self.cache_.key(task=task, template=TEMPLATE_VERSION, model=self.fingerprint_, code=code,
                                          prefix=cell[0], continuations=list(cell[1])) for cell in cells}
            found = self.cache_.get_many(list(keys.values()))
            done = {cell: found[k] for cell, k in keys.items() if k in found}
            report.how["cache_hits"] = report.how.get("cache_hits", 0) + sum(c in done for c in zip(prompts, conts))
        options_of = dict(zip(zip(prompts, conts), answers))
        todo = [cell for cell in cells if cell not in done]
        pending: dict[str, Any] = {}
        scored = None
        if self.engine == "ray" and todo:  # every cell on the actor pool at once, same per-cell calls
            from recllm.distributed.ray_jobs import score_continuations_ray

            scored = dict(zip(todo, score_continuations_ray(self.lm_, [(c[0], list(c[1])) for c in todo],
                                                            batch_size=64, show_progress=self.show_progress,
                                                            options=self.ray_options)))
        for cell in tqdm(todo, desc="scoring cells", unit="cell", disable=not self.show_progress or bool(scored)):
            scores = scored[cell] if scored else score_continuations(self.lm_, cell[0], list(cell[1]), batch_size=64)
            done[cell] = reduce(scores, options_of[cell])
            if self.cache_ is not None:
                pending[keys[cell]] = done[cell]
                if len(pending) >= 64:
                    self.cache_.put_many(pending)
                    pending = {}
        if pending:
            self.cache_.put_many(pending)
        return [done[cell] for cell in zip(prompts, conts)]

    def _score_categorical(self, prompts: list[str], categories: tuple[Any, ...],
                           report: ImputationReport) -> list[Any]:
        """The likeliest category of each cell."""
        best = self._score_cells(prompts, [categories] * len(prompts), "impute-score",
                                 lambda scores, _: int(np.argmax(scores)), report)
        return [categories[int(i)] for i in best]

    def _expected_numbers(self, prompts: list[str], greedy: list[float | None], grid: np.ndarray,
                          report: ImputationReport) -> list[float]:
        """Each cell's mean over the column's quantile ``grid`` plus the model's own greedy answer (if any), weighted
        by the model's probability of each: a confident model keeps its answer, an unsure one moves to the mean."""
        def mean(scores: np.ndarray, values: Sequence[float]) -> float:
            weights = np.exp(scores - scores.max())
            return float(weights @ np.asarray(values, dtype=np.float64) / weights.sum())

        options = [tuple(grid) if g is None or g in grid else tuple(np.sort(np.append(grid, g))) for g in greedy]
        return [float(v) for v in self._score_cells(prompts, options, "impute-expected", mean, report)]

    def _text_vocabulary(self, values: tuple[Any, ...]) -> tuple[list[int] | None, int]:
        """The token ids of the column's observed values (as answers), and the longest answer in tokens.

        Text cells are generated from the vocabulary of the column -- the way numbers are generated from digits --
        so a short fine-tune cannot wander into the next column ("..., genre is ...") or into prose.
        """
        tokenizer = self.lm_.tokenizer
        ids = tokenizer([cell_answer(v) for v in values], add_special_tokens=False)["input_ids"]
        longest = max(len(i) for i in ids)
        if not self.text_vocabulary:
            return None, longest
        return sorted({t for row in ids for t in row}), longest

    def _generate(self, prompts: list[str], max_new_tokens: int, allowed: Sequence[int] | None,
                  report: ImputationReport, number_shape: NumberShape | None = None) -> list[str]:
        from recllm.llm.generate import generate

        def count_hits(n: int) -> None:  # answers found in the cache are counted, as the scoring routes count theirs
            if n:
                report.how["cache_hits"] = report.how.get("cache_hits", 0) + n

        if self.engine == "ray":
            from recllm.distributed.ray_jobs import generate_ray

            return generate_ray(self.lm_, prompts, max_new_tokens=max_new_tokens, batch_size=self.batch_size,
                                allowed_token_ids=allowed, number_shape=number_shape, cache=self.cache_,
                                show_progress=self.show_progress, options=self.ray_options, on_cache_hits=count_hits)
        return generate(self.lm_, prompts, max_new_tokens=max_new_tokens, batch_size=self.batch_size,
                        allowed_token_ids=allowed, cache=self.cache_, show_progress=self.show_progress,
                        number_shape=number_shape, on_cache_hits=count_hits)

    def _impute(self, frame: pd.DataFrame, mask: pd.DataFrame, report: ImputationReport) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for col, info in self.columns_.items():
            rows = np.flatnonzero(mask[col].to_numpy())
            if not len(rows):
                continue
            prompts = self._prompts(frame, col, rows)
            if info.kind == CATEGORICAL or col in self.code_columns_:  # a code column: its codes, as categories
                options = self.code_columns_[col].codes if col in self.code_columns_ else info.categories
                out[col] = self._score_categorical(prompts, options, report)
                report.how["llm-score"] = report.how.get("llm-score", 0) + len(rows)
                continue
            if info.kind == NUMERIC and self.numeric_decoding == "expected-grid":
                out[col] = self._expected_numbers(prompts, [None] * len(prompts), self.numeric_grid_[col], report)
                report.how["llm-expected"] = report.how.get("llm-expected", 0) + len(rows)
                continue
            if info.kind == NUMERIC:
                width = max(len(format_value(v)) for v in (info.low, info.high, info.mean))
                limit = self.numeric_max_new_tokens or width + 3
                shape = self.number_shapes_.get(col) if self.numeric_shape else None
                texts = self._generate(prompts, limit, _numeric_token_ids(self.lm_.tokenizer), report, shape)
                values = [parse_number(t) for t in texts]
                clipped = sum(v is not None and not info.low <= v <= info.high for v in values)
                if clipped:  # a wrong number of digits shows up here: worth seeing in the report
                    report.how["clipped"] = report.how.get("clipped", 0) + clipped
                filled = [float(np.clip(v, info.low, info.high)) if v is not None else None for v in values]
                if self.numeric_decoding == "expected":
                    out[col] = self._expected_numbers(prompts, filled, self.numeric_grid_[col], report)
                    report.how["llm-expected"] = report.how.get("llm-expected", 0) + len(rows)
                    continue
            else:
                allowed, longest = self._text_vocabulary(info.categories)
                texts = self._generate(prompts, min(self.text_max_new_tokens, longest + 2), allowed, report)
                filled = [_first_value(t, info.categories) for t in texts]
            fallbacks = sum(v is None for v in filled)
            stat = info.mean if info.kind == NUMERIC else info.mode
            out[col] = [stat if v is None else v for v in filled]
            report.how["llm-generate"] = report.how.get("llm-generate", 0) + len(rows) - fallbacks
            if fallbacks:
                report.how["fallback"] = report.how.get("fallback", 0) + fallbacks
                report.fallbacks[col] = fallbacks
        return out

    def transform(self, X: Any) -> Any:
        """Fill every missing cell (see the module docstring); ``report_`` counts routes, fallbacks and cells/s."""
        out = super().transform(X)
        report = self.report_
        report.notes.append(f"training={self.training}")
        fit = self.fit_report_
        if fit["validation_cells"]:
            curve = ", ".join(f"{v:.3f}" for v in fit["validation_curve"])
            report.notes.append(f"epoch {fit['chosen_epoch']} of {fit['epochs_trained']} trained (at most "
                                f"{fit['epochs']}) chosen on {fit['validation_cells']} held-out observed cells; "
                                f"validation score by epoch: {curve}")
        else:
            report.notes.append(f"{fit['epochs']} epoch(s) trained on every observed cell (no held-out cells: one "
                                "epoch, validation_fraction=0, or too few cells)")
        if report.n_filled and report.seconds > 0:
            report.notes.append(f"{report.n_filled / report.seconds:.1f} cells/s")
        return out
