"""Peer imputers from the literature behind recllm's imputer interface: miceforest and GReaT.

- ``miceforest`` (:class:`MiceForestImputer`): multiple imputation by chained equations with LightGBM random
  forests and mean matching, through miceforest's own ``ImputationKernel`` (``mice`` in ``fit``,
  ``impute_new_data`` in ``transform``), seeded. Numeric columns are floats, categorical ones pandas categories.
  Text columns (too many distinct values to model, as for the classic imputers) get their most frequent value.
- ``great`` (:class:`GReaTImputer`): GReaT (Borisov et al., ICLR 2023, package ``be-great``): a causal LM fine-tuned
  on rows written as ``"age is 24, gender is M, ..."`` in a random column order, filling a row's gaps with its own
  ``impute`` (the observed cells as the prompt, sampled continuation, a retry while a numeric answer does not
  parse). The backbone is recllm's SmolLM2 (or any causal LM) saved as a Hugging Face folder (see
  :func:`great_backbone_folder`); no hub access.

Both come from the optional ``peers`` extra (``pip install 'recllm[peers]'``); without it ``fit`` says so in one
line. Observed cells are never written: the answers go through :class:`~recllm.impute.base.BaseImputer`, which
writes only the missing cells in the column's own representation. :func:`peer_versions` names the packages and
versions for report headers.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import io
import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path
from types import MethodType
from typing import Any

import numpy as np
import pandas as pd

from recllm.data.dataset import DataError
from recllm.impute.base import (CATEGORICAL, NUMERIC, TEXT, BaseImputer, ImputationReport, check_int_param,
                                 statistic_fill)
from recllm.utils import keeps_global_rng

# Imputer name -> (module to import, distributions whose versions a report names). One place for the extra's names.
PEERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "miceforest": ("miceforest", ("miceforest", "lightgbm")),
    "great": ("be_great", ("be-great",)),
}
EXTRA = "peers"
_END_OF_ROW = "<|endoftext|>"  # the end token GReaT's decoder strips (GPT-2's); SmolLM2's vocabulary has it too
_FAILED = "placeholder"  # what GReaT's text-to-table parser leaves in a column it could not read


def peer_versions() -> dict[str, str]:
    """Imputer name -> its packages and versions as a report header writes them (``"not installed"`` if absent),
    e.g. ``{"miceforest": "miceforest 6.0.5, lightgbm 4.6.0", "great": "be-great 0.0.14"}``."""
    out: dict[str, str] = {}
    for name, (_, dists) in PEERS.items():
        parts = []
        for dist in dists:
            try:
                parts.append(f"{dist} {metadata.version(dist)}")
            except metadata.PackageNotFoundError:
                parts.append(f"{dist} not installed")
        out[name] = ", ".join(parts)
    return out


def require_peer(name: str) -> Any:
    """The peer imputer's package, imported; a one-line :class:`~recllm.errors.UserInputError` when it is missing."""
    from recllm.errors import UserInputError

    module, dists = PEERS[name]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise UserInputError(
            f"the {name} imputer needs the {' and '.join(dists)} package(s), which are not installed ({exc})",
            f"imputer {name!r}", f"install recllm's optional extra: pip install 'recllm[{EXTRA}]'") from None


@contextlib.contextmanager
def _quiet(enabled: bool) -> Iterator[None]:
    """Silence a library's progress bars and chatter (stdout, stderr, warnings) unless ``enabled`` is False."""
    if not enabled:
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# ---------------------------------------------------------------------------------------------------- miceforest
MEAN_MATCH_STRATEGIES = ("auto", "normal", "fast", "shap")


class MiceForestImputer(BaseImputer):
    """miceforest's MICE (LightGBM random forests + mean matching) on the numeric and categorical columns.

    ``fit`` builds an ``ImputationKernel`` on the table (columns renamed ``c0, c1, ...``; categorical columns as
    pandas categories of their fit categories' codes, so any value type works) with a model for every column it can
    learn, and runs ``iterations`` rounds of ``mice``; ``transform`` fills the gaps with ``impute_new_data`` (same
    seed, so the same table gets the same fills). Mean matching (``mean_match_strategy="auto"``): miceforest's
    "normal" for numbers (a value drawn from the ``mean_match_candidates`` observed cells whose predictions are
    nearest), its "fast" for categories (a category drawn by the predicted probabilities; "normal" matches on
    log-odds, which are infinite where a forest is certain, and then fails). ``lightgbm_params`` go to every
    LightGBM model (miceforest's defaults: random forests of 48 trees). A column it cannot model -- a text column,
    one with fewer than ``min_observed`` observed cells (LightGBM's bagged forests on a handful of rows predicted
    NaN, on which miceforest's mean matching fails), a single observed value or category, or the only modelled
    column -- gets its statistic (mean / most frequent value), counted in ``report_.how``, with a
    note saying why.
    """

    method = "miceforest"

    def __init__(self, iterations: int = 5, mean_match_candidates: int = 5, mean_match_strategy: str = "auto",
                 min_observed: int = 10, n_jobs: int = 1, lightgbm_params: dict[str, Any] | None = None,
                 seed: int = 0, categorical: tuple[str, ...] | None = None, numeric: tuple[str, ...] | None = None,
                 text: tuple[str, ...] | None = None, max_categories: int = 50,
                 code_columns: str | Sequence[str] = "auto") -> None:
        self.iterations = iterations
        self.mean_match_candidates = mean_match_candidates
        self.mean_match_strategy = mean_match_strategy
        self.min_observed = min_observed
        self.n_jobs = n_jobs
        self.lightgbm_params = lightgbm_params
        self.seed = seed
        self.categorical = categorical
        self.numeric = numeric
        self.text = text
        self.max_categories = max_categories
        self.code_columns = code_columns

    def _encode(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The kernel's view: modelled columns renamed, numbers as floats, categories as codes of fit categories."""
        data = {}
        for col, alias in self.aliases_.items():
            info = self.columns_[col]
            if info.kind == NUMERIC:
                data[alias] = frame[col].to_numpy(dtype=float, na_value=np.nan)
            else:
                code = {value: i for i, value in enumerate(info.categories)}
                codes = [code.get(v, -1) if not pd.isna(v) else -1 for v in frame[col].array]
                data[alias] = pd.Categorical.from_codes(codes, categories=range(len(info.categories)))
        return pd.DataFrame(data, index=pd.RangeIndex(len(frame)))

    def _learnable(self, col: str) -> bool:
        return self._unlearnable_because(col) is None

    def _unlearnable_because(self, col: str) -> str | None:
        """Why miceforest cannot model column ``col`` (None: it can)."""
        info = self.columns_[col]
        if info.kind == TEXT:
            return "a text column"
        if info.n_observed < self.min_observed:
            return f"{info.n_observed} observed cell(s), fewer than min_observed={self.min_observed}"
        if info.kind == CATEGORICAL and len(info.categories) <= 1:
            return "a single observed category"
        if info.kind != CATEGORICAL and not info.low < info.high:
            return "a single observed value"
        return None

    def _fit(self, frame: pd.DataFrame) -> None:
        mf = require_peer("miceforest")
        check_int_param("MiceForestImputer", "iterations", self.iterations, 1)
        check_int_param("MiceForestImputer", "mean_match_candidates", self.mean_match_candidates, 0)
        check_int_param("MiceForestImputer", "min_observed", self.min_observed, 2)
        if self.mean_match_strategy not in MEAN_MATCH_STRATEGIES:
            raise ValueError(f"MiceForestImputer.mean_match_strategy must be one of {MEAN_MATCH_STRATEGIES}, got "
                             f"{self.mean_match_strategy!r}")
        check_int_param("MiceForestImputer", "n_jobs", self.n_jobs, 1)
        modelled = [c for c, info in self.columns_.items() if info.kind != TEXT]
        self.aliases_ = {col: f"c{i}" for i, col in enumerate(modelled)}
        targets = [c for c in modelled if self._learnable(c)] if len(modelled) > 1 else []
        self.targets_ = tuple(targets)
        self.kernel_ = None
        if not targets:
            return
        schema = {self.aliases_[t]: [self.aliases_[c] for c in modelled if c != t] for t in targets}
        # at most as many candidates as observed cells (miceforest would index past its candidate list)
        candidates = {self.aliases_[t]: min(self.mean_match_candidates, self.columns_[t].n_observed) for t in targets}
        strategy = {self.aliases_[t]: self.mean_match_strategy if self.mean_match_strategy != "auto" else
                    "normal" if self.columns_[t].kind == NUMERIC else "fast" for t in targets}
        with _quiet(True):
            kernel = mf.ImputationKernel(self._encode(frame), variable_schema=schema,
                                         mean_match_candidates=candidates, mean_match_strategy=strategy,
                                         random_state=self.seed)
            kernel.mice(self.iterations, **{**(self.lightgbm_params or {}), "num_threads": self.n_jobs})
        self.kernel_ = kernel

    def _impute(self, frame: pd.DataFrame, mask: pd.DataFrame, report: ImputationReport) -> dict[str, Any]:
        completed = None
        if self.kernel_ is not None and mask[list(self.targets_)].to_numpy().any():
            # Mean matching draws from the kernel's own random state: restart it, so the same table gets the same
            # fills on every call (a transform must not depend on the calls before it).
            self.kernel_._random_state = np.random.RandomState(self.seed)
            with _quiet(True):
                imputed = self.kernel_.impute_new_data(self._encode(frame), random_state=self.seed)
                # The last round's values: complete_data's default reads the new data's round counter, which
                # impute_new_data leaves at 0 (miceforest 6.0.5), so it would return the random initial draws.
                completed = imputed.complete_data(dataset=0, iteration=self.kernel_.iteration_count())
        out: dict[str, Any] = {}
        for col in frame.columns:
            rows = np.flatnonzero(mask[col].to_numpy())
            if not len(rows):
                continue
            info = self.columns_[col]
            if completed is None or col not in self.targets_:
                out[col] = statistic_fill(info, len(rows))
                route = "mean" if info.kind == NUMERIC else "mode"
                why = self._unlearnable_because(col) or "the only column miceforest could model (nothing to learn from)"
                report.notes.append(f"miceforest filled column {col!r} with its {route}: {why}")
            elif info.kind == NUMERIC:
                out[col] = completed[self.aliases_[col]].to_numpy(dtype=float)[rows].tolist()
                route = "miceforest"
            else:
                codes = completed[self.aliases_[col]].to_numpy()[rows]
                out[col] = [info.categories[int(c)] for c in codes]
                route = "miceforest"
            report.how[route] = report.how.get(route, 0) + len(rows)
        return out


# ---------------------------------------------------------------------------------------------------- GReaT
def _publish(tmp: Path, target: Path) -> None:
    from recllm.llm.backbone import _publish_dir

    _publish_dir(tmp, target)


def _write_backbone(model: Any, tokenizer: Any, folder: Path) -> None:
    """Save ``model`` and ``tokenizer`` into ``folder`` as a Hugging Face folder whose end (and padding) token is
    ``<|endoftext|>``, the one GReaT's decoder strips (the caller's model and tokenizer are not changed)."""
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    if hasattr(model, "peft_config"):
        raise ValueError("GReaT needs a plain causal LM, not one with a LoRA adapter; merge the adapter first")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    if _END_OF_ROW not in tok.get_vocab():  # (SmolLM2's vocabulary has it)
        raise ValueError(f"the model's vocabulary has no {_END_OF_ROW} token, which GReaT's decoder expects")
    end_id = tok.convert_tokens_to_ids(_END_OF_ROW)
    tok.eos_token = tok.pad_token = _END_OF_ROW
    tok.save_pretrained(folder)
    config = AutoConfig.from_pretrained(folder)
    config.eos_token_id = config.pad_token_id = end_id
    config.save_pretrained(folder)
    try:
        generation = GenerationConfig.from_pretrained(folder)
    except OSError:
        generation = GenerationConfig()
    generation.eos_token_id = generation.pad_token_id = end_id
    generation.save_pretrained(folder)


def _ready_for_great(folder: Path) -> bool:
    """Whether ``folder`` is already a GReaT backbone (written by :func:`great_backbone_folder`)."""
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return config.get("eos_token") == config.get("pad_token") == _END_OF_ROW and (folder / "config.json").exists()


def great_backbone_folder(model: Any = None) -> tuple[Path, bool]:
    """A Hugging Face folder GReaT can load for ``model``, and whether it is temporary (the caller removes it).

    ``None`` or a name / folder: loaded with :func:`recllm.llm.backbone.load_causal_lm` in float32 (the bundled
    SmolLM2 by default, converted from its GGUF) and saved once under the recllm cache (``models/great-...``).
    A :class:`~recllm.llm.backbone.CausalLM` (e.g. the tiny test model): saved into a temporary folder. A folder
    this function wrote (its end and padding token ``<|endoftext|>``) is used as it is.
    """
    from recllm.llm.backbone import DEFAULT_CAUSAL_LM, CausalLM, default_causal_lm_folder, load_causal_lm
    from recllm.utils import cache_dir

    if isinstance(model, CausalLM):
        tmp = Path(tempfile.mkdtemp(prefix="recllm-great-"))
        _write_backbone(model.model, model.tokenizer, tmp)
        return tmp, True
    if model is not None and not isinstance(model, (str, os.PathLike)):
        raise ValueError(f"GReaTImputer.model must be None, a model name or folder, or a CausalLM; got "
                         f"{type(model).__name__}")
    name = DEFAULT_CAUSAL_LM if model is None else str(model)
    source = default_causal_lm_folder() if name == DEFAULT_CAUSAL_LM else Path(name).expanduser()
    if _ready_for_great(source):
        return source, False
    tag = hashlib.sha256(str(source.resolve() if source.exists() else name).encode()).hexdigest()[:10]
    target = cache_dir("models") / f"great-{Path(name).name}-{tag}"
    if (target / "config.json").exists():
        return target, False
    lm = load_causal_lm(None if name == DEFAULT_CAUSAL_LM else name, device="cpu", dtype="float32")
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        _write_backbone(lm.model, lm.tokenizer, tmp)
        _publish(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target, False


def _observed_cells_dataset(great_module: Any) -> type:
    """GReaT's training dataset writing only a row's observed cells (a missing one is left out of the text, as
    GReaT's own ``impute`` writes its prompts), so every observed cell is trained on. Each row's column order is
    drawn from (seed, epoch, row), not from the process's random stream, so a fine-tune resumed from a checkpoint
    sees the rows an uninterrupted one sees (:func:`_resumable_trainer` sets the epoch)."""
    base = great_module.GReaTDataset

    class ObservedCellsDataset(base):  # type: ignore[misc, valid-type]
        order_seed, epoch = 0, 0

        def _getitem(self, key: Any, decoded: bool = True, **kwargs: Any) -> Any:
            import random

            row = self._data.fast_slice(key, 1)
            order = list(range(row.num_columns))
            random.Random(f"{self.order_seed}|{self.epoch}|{key}").shuffle(order)
            cells = [(row.column_names[i], row.columns[i].to_pylist()[0]) for i in order]
            text = ", ".join(f"{name} is {self._format_value(v)}" for name, v in cells if v is not None)
            return self.tokenizer(text, padding=True)

    return ObservedCellsDataset


def _resumable_trainer(trainer_class: type) -> type:
    """GReaT's trainer with each epoch's row order drawn from (data seed, epoch), and the epoch handed to the
    dataset's column orders (:func:`_observed_cells_dataset`) at each epoch's start: GReaT's own plain DataLoader
    draws its order from the global random state, which a resumed fine-tune does not have where the interrupted one
    did, so its resumed steps trained on other batches."""
    import torch
    from transformers import TrainerCallback

    class EpochSeededSampler(torch.utils.data.Sampler):
        def __init__(self, n: int, seed: int) -> None:
            self.n, self.seed, self.epoch = n, seed, 0

        def __len__(self) -> int:
            return self.n

        def __iter__(self) -> Iterator[int]:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            return iter(torch.randperm(self.n, generator=generator).tolist())

    class EpochToData(TrainerCallback):
        def __init__(self, trainer: Any) -> None:
            self.trainer = trainer

        def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            epoch = int(state.epoch + 1e-6) if state.epoch else 0  # a resumed epoch starts at its fraction
            sampler = getattr(self.trainer, "epoch_sampler_", None)
            if sampler is not None:
                sampler.epoch = epoch
            dataset = self.trainer.train_dataset
            if hasattr(dataset, "order_seed"):
                dataset.order_seed, dataset.epoch = sampler.seed if sampler is not None else args.seed, epoch
            return control

    class ResumableTrainer(trainer_class):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.add_callback(EpochToData(self))

        def _get_train_sampler(self, *args: Any, **kwargs: Any) -> Any:
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            self.epoch_sampler_ = EpochSeededSampler(len(self.train_dataset), int(seed))
            return self.epoch_sampler_

    return ResumableTrainer


@contextlib.contextmanager
def _great_training_data(great_module: Any) -> Iterator[None]:
    """Make ``GReaT.fit`` (which names its dataset and trainer classes at module level) build
    :func:`_observed_cells_dataset` (on complete rows it writes GReaT's own text) and train with
    :func:`_resumable_trainer`."""
    originals = {"GReaTTrainer": great_module.GReaTTrainer, "GReaTDataset": great_module.GReaTDataset}
    great_module.GReaTTrainer = _resumable_trainer(great_module.GReaTTrainer)
    great_module.GReaTDataset = _observed_cells_dataset(great_module)
    try:
        yield
    finally:
        for name, value in originals.items():
            setattr(great_module, name, value)


_MIN_NEW_TOKENS = 16  # tokens a retry prompt may still add (it re-writes a whole generated row: it can be long)


def _row_complete(text: str, columns: Sequence[str]) -> bool:
    """Whether GReaT's parser (``_convert_text_to_tabular_data``) already reads a value for every column from
    ``text``: each column named in a finished ``"<column> is <value>"`` segment (one followed by a ``","``). Text
    after that cannot change the parsed row (the parser keeps a column's first value), so generation can stop."""
    seen = set()
    for segment in text.split(",")[:-1]:  # the last segment may still be growing
        parts = segment.strip().split(" is ")
        if len(parts) > 1 and parts[0] in columns:
            seen.add(parts[0])
    return len(seen) == len(columns)


def _row_stopper(tokenizer: Any, columns: Sequence[str], convert: Any) -> Any:
    """A transformers ``StoppingCriteria`` ending a one-row generation once :func:`_row_complete` holds for the text
    GReaT would decode (``convert``: be-great's ``_convert_tokens_to_text``)."""
    import torch
    from transformers import StoppingCriteria

    class RowComplete(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            done = [_row_complete(convert([ids], tokenizer)[0], columns) for ids in input_ids]
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return RowComplete()


def _sized_great_sample(self: Any, starting_prompts: Any, temperature: float = 0.7, max_length: int = 100,
                        device: str = "auto") -> pd.DataFrame:
    """GReaT's own ``great_sample`` (one sampled continuation per prompt, decoded and parsed by be-great's own
    helpers) with two changes that leave the parsed row as it was: ``max_length`` is raised to leave room for
    :data:`_MIN_NEW_TOKENS` after the longest prompt (``impute`` retries a row from the whole row it generated
    before, which can be longer than ``max_length``, and transformers then refuses to generate), and generation
    stops once every column has a finished value (:func:`_row_complete`): a GReaT model seldom learns to stop, and
    the tokens after a complete row were most of the sampling time (measured on advertising rows)."""
    import torch

    utils = importlib.import_module("be_great.great_utils")
    prompts = [starting_prompts] if isinstance(starting_prompts, str) else list(starting_prompts)
    longest = max(len(ids) for ids in self.tokenizer(prompts)["input_ids"])
    length = max(max_length, longest + _MIN_NEW_TOKENS)
    self._resolve_device(device)
    stopper = _row_stopper(self.tokenizer, list(self.columns), utils._convert_tokens_to_text)
    generated = []
    for prompt in prompts:
        input_ids = torch.tensor([self.tokenizer(prompt)["input_ids"]], device=self.device)
        attention_mask = (input_ids != self.tokenizer.pad_token_id).long()
        with torch.no_grad():
            out = self.model.generate(input_ids=input_ids, attention_mask=attention_mask, max_length=length,
                                      do_sample=True, temperature=temperature,
                                      pad_token_id=self.tokenizer.pad_token_id, stopping_criteria=[stopper])
        generated.append(out[0])
    self.sample_calls_ = getattr(self, "sample_calls_", 0) + len(prompts)  # counted for GReaTImputer.samples_
    return utils._convert_text_to_tabular_data(utils._convert_tokens_to_text(generated, self.tokenizer),
                                               self.columns)


TRAIN_ROWS = ("observed", "complete")
FINETUNING = ("full", "lora")


class GReaTImputer(BaseImputer):
    """GReaT (``be-great``): fine-tune a causal LM on the table's rows as text, fill each incomplete row with
    GReaT's own ``impute``.

    Budget: ``epochs`` over the rows (``max_steps`` > 0 caps the optimizer steps instead), ``batch_size`` rows a
    step, ``learning_rate``; ``finetuning="full"`` (GReaT's default) or ``"lora"``. ``train_rows="observed"``
    trains on every row with its observed cells (the gaps left out of the text, as in GReaT's prompts);
    ``"complete"`` on the complete rows only (GReaT's usual setting). Filling samples at ``temperature`` and
    samples a row up to ``max_retries`` times while a numeric answer does not parse (``samples_`` of
    ``sampled_rows_`` incomplete rows in the last ``transform``, ``rows_given_up_`` of them given up on); a cell
    GReaT leaves unusable (a row given up on, an unknown category, a number that is not finite) falls back to the
    column statistic, counted in ``report_.fallbacks``; numbers outside the observed range are clipped to it
    (``report_.how["clipped"]``).
    Seeded: the same seed and table give the same fills.

    Resumable: with ``checkpoint_root`` (a folder, or ``"cache"`` for the recllm cache's ``impute/great-runs``) the
    fine-tune saves a checkpoint every ``checkpoint_steps`` optimizer steps (model, optimizer, scheduler, random
    states and data position, by transformers' Trainer; the newest one is kept, about 1.6 GB for SmolLM2-135M) in
    a folder of its own, named by a hash of the table, the backbone and every parameter that shapes the fine-tune,
    and a fit of the same table and settings resumes from it to exactly the weights of an uninterrupted fine-tune
    (each epoch's row order and each row's column order are drawn from the seed and the epoch); the folder stays (its last checkpoint is the fitted
    model) until the caller removes it. Without it (default) the fine-tune runs in a temporary folder.
    """

    method = "great"

    def __init__(self, model: Any = None, epochs: int = 1, max_steps: int = 0, batch_size: int = 8,
                 learning_rate: float = 5e-5, finetuning: str = "full", train_rows: str = "observed",
                 temperature: float = 0.7, max_retries: int = 15, device: str = "cpu", seed: int = 0,
                 show_progress: bool = False, categorical: tuple[str, ...] | None = None,
                 numeric: tuple[str, ...] | None = None, text: tuple[str, ...] | None = None,
                 max_categories: int = 50, code_columns: str | Sequence[str] = "auto",
                 checkpoint_root: str | os.PathLike[str] | None = None, checkpoint_steps: int = 20) -> None:
        self.model = model
        self.epochs = epochs
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.finetuning = finetuning
        self.train_rows = train_rows
        self.temperature = temperature
        self.max_retries = max_retries
        self.device = device
        self.seed = seed
        self.show_progress = show_progress
        self.categorical = categorical
        self.numeric = numeric
        self.text = text
        self.max_categories = max_categories
        self.code_columns = code_columns
        self.checkpoint_root = checkpoint_root
        self.checkpoint_steps = checkpoint_steps

    def _check_params(self) -> None:
        check_int_param("GReaTImputer", "epochs", self.epochs, 1)
        check_int_param("GReaTImputer", "checkpoint_steps", self.checkpoint_steps, 1)
        if self.checkpoint_root is not None and not isinstance(self.checkpoint_root, (str, os.PathLike)):
            raise ValueError(f"GReaTImputer.checkpoint_root must be None, 'cache' or a folder, got "
                             f"{self.checkpoint_root!r}")
        check_int_param("GReaTImputer", "max_steps", self.max_steps, 0)
        check_int_param("GReaTImputer", "batch_size", self.batch_size, 1)
        check_int_param("GReaTImputer", "max_retries", self.max_retries, 1)
        if not (isinstance(self.learning_rate, (int, float)) and 0 < self.learning_rate < 1):
            raise ValueError(f"GReaTImputer.learning_rate must be in (0, 1), got {self.learning_rate!r}")
        if not (isinstance(self.temperature, (int, float)) and self.temperature > 0):
            raise ValueError(f"GReaTImputer.temperature must be > 0, got {self.temperature!r}")
        if self.finetuning not in FINETUNING:
            raise ValueError(f"GReaTImputer.finetuning must be one of {FINETUNING}, got {self.finetuning!r}")
        if self.train_rows not in TRAIN_ROWS:
            raise ValueError(f"GReaTImputer.train_rows must be one of {TRAIN_ROWS}, got {self.train_rows!r}")
        if not isinstance(self.seed, (int, np.integer)) or isinstance(self.seed, bool):
            raise ValueError(f"GReaTImputer.seed must be an integer, got {self.seed!r}")

    def _names(self) -> dict[str, str]:
        """Column -> the name GReaT writes: its own, unless a ',' or ' is ' would break GReaT's parser."""
        names: dict[str, str] = {}
        for i, col in enumerate(self.columns_):
            name = " ".join(str(col).replace(",", " ").replace(" is ", " ").split()) or f"column {i}"
            names[col] = name if name not in names.values() else f"{name} ({i})"
        return names

    def _table(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The table as GReaT reads it: whole-number columns as Int64 (``age is 24``), other numbers as floats,
        categories and text as strings; GReaT's column names; a fresh 0..n-1 index."""
        data: dict[str, Any] = {}
        for col, name in self.names_.items():
            info = self.columns_[col]
            if info.kind == NUMERIC:
                values = frame[col].to_numpy(dtype=float, na_value=np.nan)
                whole = info.integral and max(abs(info.low), abs(info.high)) < 2**53
                data[name] = pd.array(values, dtype="Float64").astype("Int64") if whole else values
            else:
                data[name] = pd.Series([None if pd.isna(v) else str(v) for v in frame[col].array], dtype=object)
        return pd.DataFrame(data, index=pd.RangeIndex(len(frame)))

    @keeps_global_rng  # GReaT and transformers' Trainer seed the global generators; the caller's stay as they were
    def _fit(self, frame: pd.DataFrame) -> None:
        self._check_params()
        great_module = require_peer("great")
        great_impl = importlib.import_module("be_great.great")
        from recllm.utils import seed_everything

        self.names_ = self._names()
        table = self._table(frame)
        if self.train_rows == "complete":
            table = table[table.notna().all(axis=1)].reset_index(drop=True)
            if table.empty:
                raise DataError("GReaT with train_rows='complete': no row of the table is complete; "
                                "use train_rows='observed'")
        with _quiet(not self.show_progress):
            folder, temporary = great_backbone_folder(self.model)
        run_dir = self._run_dir(table, folder) if self.checkpoint_root is not None else None
        workdir = str(run_dir) if run_dir is not None else tempfile.mkdtemp(prefix="recllm-great-run-")
        resume = run_dir is not None and any(run_dir.glob("checkpoint-*"))
        saving = (dict(save_strategy="steps", save_steps=int(self.checkpoint_steps), save_total_limit=1)
                  if run_dir is not None else dict(save_strategy="no"))
        start = time.perf_counter()
        try:
            seed_everything(int(self.seed))
            train_args = dict(learning_rate=float(self.learning_rate), max_steps=int(self.max_steps) or -1,
                              seed=int(self.seed), data_seed=int(self.seed), **saving,
                              logging_strategy="no", use_cpu=self.device == "cpu", dataloader_num_workers=0)
            with _quiet(not self.show_progress):
                great = great_module.GReaT(str(folder), experiment_dir=workdir, epochs=int(self.epochs),
                                           batch_size=int(self.batch_size),
                                           efficient_finetuning="lora" if self.finetuning == "lora" else "",
                                           **train_args)
                with _great_training_data(great_impl):
                    # the Trainer also saves at the last step, so a finished fit resumes to its end at once
                    trainer = great.fit(table, resume_from_checkpoint=resume)
        finally:
            if run_dir is None:
                shutil.rmtree(workdir, ignore_errors=True)
            if temporary:
                shutil.rmtree(folder, ignore_errors=True)
        self.resumed_ = resume
        self.checkpoint_dir_ = run_dir
        great.great_sample = MethodType(_sized_great_sample, great)
        self.great_ = great
        self.train_steps_ = int(trainer.state.global_step)
        self.fit_seconds_ = time.perf_counter() - start
        self.max_length_ = self._generation_length(table)

    def _run_dir(self, table: pd.DataFrame, folder: Path) -> Path:
        """This fine-tune's checkpoint folder under ``checkpoint_root``: named by a hash of the table as GReaT
        reads it, the backbone, the parameters that shape the fine-tune, be-great's version and this module."""
        from recllm.impute.base import fit_code_version
        from recllm.utils import cache_dir

        model = self.model
        backbone = (model.fingerprint if hasattr(model, "fingerprint") else
                    hashlib.sha256((folder / "config.json").read_bytes()).hexdigest() + str(folder.resolve()))
        params = {k: v for k, v in self.get_params().items()
                  if k not in ("model", "show_progress", "checkpoint_root", "checkpoint_steps", "temperature",
                               "max_retries")}
        digest = hashlib.sha256(json.dumps({
            "table": pd.util.hash_pandas_object(table, index=True).to_numpy().tolist(),
            "columns": list(map(str, table.columns)), "dtypes": list(map(str, table.dtypes)),
            "backbone": backbone, "params": params, "be_great": peer_versions().get("great"),
            "code": fit_code_version()}, sort_keys=True, default=str).encode()).hexdigest()
        root = cache_dir("impute", "great-runs") if self.checkpoint_root == "cache" else Path(self.checkpoint_root)
        return root / digest[:24]

    def _generation_length(self, table: pd.DataFrame) -> int:
        """Tokens for a whole row (prompt + answers): the longest row GReaT was trained on, plus a margin.
        (GReaT trains with left padding, so its model seldom learns to stop: generation runs to this length.)"""
        tokenizer = self.great_.tokenizer
        texts = [", ".join(f"{k} is {v}" for k, v in row.items() if not pd.isna(v))
                 for row in table.to_dict("records")]
        longest = max(len(ids) for ids in tokenizer(texts)["input_ids"]) if texts else 1
        return int(longest * 1.25) + 8

    @keeps_global_rng
    def _impute(self, frame: pd.DataFrame, mask: pd.DataFrame, report: ImputationReport) -> dict[str, Any]:
        from recllm.utils import seed_everything

        incomplete = np.flatnonzero(mask.to_numpy().any(axis=1))
        table = self._table(frame.iloc[incomplete])
        seed_everything(int(self.seed))
        self.great_.sample_calls_ = 0
        with _quiet(not self.show_progress):
            try:
                filled = self.great_.impute(table, temperature=float(self.temperature), max_length=self.max_length_,
                                            max_retries=int(self.max_retries), device=self.device)
            except ValueError as exc:  # GReaT gave up on every row: it concatenates an empty list
                if "No objects to concatenate" not in str(exc):
                    raise
                filled = pd.DataFrame(columns=table.columns)
        filled = filled.reindex(pd.RangeIndex(len(incomplete)))  # a row GReaT gave up on comes back as NaN
        self.sampled_rows_, self.samples_ = len(incomplete), int(self.great_.sample_calls_)
        self.rows_given_up_ = int(filled.isna().any(axis=1).sum())
        position = {row: i for i, row in enumerate(incomplete)}
        out: dict[str, Any] = {}
        for col in frame.columns:
            rows = np.flatnonzero(mask[col].to_numpy())
            if not len(rows):
                continue
            answers = filled[self.names_[col]].to_numpy()[[position[r] for r in rows]]
            values = [self._answer(col, a, report) for a in answers]
            fallbacks = sum(v is None for v in values)
            if fallbacks:
                report.fallbacks[col] = fallbacks
                stat = statistic_fill(self.columns_[col], 1)[0]
                values = [stat if v is None else v for v in values]
            report.how["great"] = report.how.get("great", 0) + len(rows) - fallbacks
            report.how["fallback"] = report.how.get("fallback", 0) + fallbacks
            out[col] = values
        return out

    def _answer(self, col: str, answer: Any, report: ImputationReport) -> Any:
        """GReaT's answer for a cell of ``col`` as a value of the column, or None when it is unusable."""
        info = self.columns_[col]
        if answer is None or (isinstance(answer, float) and np.isnan(answer)) or answer is pd.NA:
            return None
        if info.kind == NUMERIC:
            value = float(answer)
            if not np.isfinite(value):
                return None
            if not info.low <= value <= info.high:
                report.how["clipped"] = report.how.get("clipped", 0) + 1
                value = float(np.clip(value, info.low, info.high))
            return value
        text = str(answer).strip()
        known = {str(v): v for v in info.categories}
        if text in known:
            return known[text]
        if info.kind == CATEGORICAL or text == _FAILED:
            return None
        return text
