"""The LLM-TRSR benchmark behind ``recllm bench trsr``: every method on the same fixed candidates, per data set.

Protocols: (a) the paper's, the next item against 20 negatives drawn once from the catalogue with a seed (saved as
parquet under the recllm cache and reused by every method); (b) two-stage: the best retriever on validation
(item-kNN, SASRec or LEARN) ranks the whole catalogue, the LLM reranks its top 50, and a fused score (the
retriever's z-score + w * logit P(Yes), w chosen on validation users) reorders the same 50; scored by full-catalogue
HR@10 / NDCG@10. Methods: popularity, item-kNN and SASRec (``recllm.models``), the TRSR ranker with hierarchical and
recurrent summaries, the no-summary ranker (TALLRec-style), the same LLM zero-shot, and the injection-hardened
ranker. Each fine-tuned ranker trains on at least ``BenchSizes.min_candidates`` labelled candidates
(:mod:`recllm.bench.trsr.scale`). Summaries and scores are cached (``DiskCache``), SFT runs checkpoint and resume,
and every finished unit (the lr choice, each data set's part per seed, the learning curve) is stored in the run
store, so an interrupted run continues; :mod:`recllm.bench.trsr.plan` lists the units and their estimated time.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recllm.bench.runs import RunStore, data_sha256, run_key
from recllm.bench.trsr.compute import counted_compute
from recllm.bench.trsr.scale import (FUSION_WEIGHTS, LR_MODES, MIN_CANDIDATES, PAPER_EPOCHS, TrainingSize,
                                     extend_lr, lr_candidates, lr_for, optimizer_steps, pick_lr, pick_weight,
                                     training_size_of_split)
from recllm.data import Split, data_files, leave_one_out, load
from recllm.eval import SampledCandidates, evaluate_full_ranking, evaluate_sampled, from_recommender
from recllm.hardware import this_process_machine
from recllm.llm import (CausalLM, describe_precision, describe_training_precision, load_causal_lm, ranker_base,
                        resolve_dtype)
from recllm.llm.cache import DiskCache
from recllm.llm.checkpoints import RESUMABLE_FIELDS
from recllm.llm.precision import TRAINING_DTYPE, check_dtype
from recllm.llm.sft import LoRAConfig
from recllm.models import MODELS
from recllm.models.base import Recommender
from recllm.trsr.candidates import fixed_candidates, subset_rows
from recllm.trsr.pipeline import TRSR, TRSRConfig, injection_effect, precomputed_score_fn
from recllm.trsr.ranker import RankerConfig, ranker_sft_config, target_ranks_of
from recllm.trsr.segment import SegmentConfig
from recllm.trsr.summarize import SummarizerConfig
from recllm.utils import cache_dir, package_source_sha256, seed_everything

__all__ = ["BenchSizes", "DatasetSpec", "QUICK", "FULL", "DATASETS", "run_dataset", "run_benchmark", "Reranked",
           "subset_rows", "fixed_candidates", "bench_trsr_config", "train_size", "choose_lr", "learning_curve"]

KS = (3, 5, 10)
MODES = (("hierarchical", "LLM-TRSR hierarchical"), ("recurrent", "LLM-TRSR recurrent"),
         ("none", "LLM no summary (TALLRec-style)"))
HARDENED = "LLM-TRSR hierarchical, hardened (quoted + injection-trained)"
Piece = Any  # (name, compute: () -> dict fragment) -> the fragment, stored or computed (see run_dataset)


def compute_now(name: str, compute: Any) -> dict:
    """The default piece runner: compute every piece, store nothing."""
    return compute()



@dataclass(frozen=True)
class BenchSizes:
    """How big a benchmark run is.

    At most ``n_train_users`` training users give at least ``min_candidates`` labelled candidates (more targets per
    user where the data set has fewer users, and no more users than the count needs:
    :func:`recllm.bench.trsr.scale.training_size`); ``n_valid_rows``
    validation rows choose the epoch (and give the learning curve's R@5); ``n_test_rows`` test rows score the
    sampled protocol, ``n_rerank_rows`` of them the two-stage one, whose retriever and fusion weight are chosen on
    ``n_fusion_rows`` validation users; ``curve_users`` are the learning curve's training-user counts (those above
    the data set's users are left out); ``retrievers`` the two-stage retriever candidates; SASRec (a baseline and a
    retriever) and LEARN (a retriever) train for at most ``retriever_epochs`` epochs and stop after
    ``retriever_patience`` epochs without a better validation NDCG@10 (no wall-clock budget: a fit is the same on
    every CPU and under any load); ``epochs`` None keeps
    :func:`recllm.trsr.ranker.ranker_sft_config`'s; the hardened ranker is trained for the first
    ``mitigation_seeds`` seeds, the recurrent-summary ranker (an ablation) for the first ``recurrent_seeds`` (None:
    every seed); ``two_stage_modes`` are the seed-0 rankers that rerank the retriever's top ``rerank_k``.
    """

    n_train_users: int
    n_valid_rows: int
    n_test_rows: int
    n_rerank_rows: int
    summary_tokens: int
    seeds: tuple[int, ...]
    retriever_epochs: int
    speed_rows: int
    # learn's patience when the trsr campaign started; learn now stops later (learn-patience.md), and the
    # retrievers keep these until the campaign (pinned to its code) is done
    retriever_patience: int = 10
    min_candidates: int = MIN_CANDIDATES
    n_fusion_rows: int = 100
    curve_users: tuple[int, ...] = (60, 120, 250, 500, 1000)
    retrievers: tuple[str, ...] = ("itemknn", "sasrec", "learn")
    epochs: int | None = None
    rerank_k: int = 50
    gen_batch: int = 32  # generation batch cap (memory may allow fewer); one summariser chunk is 32 prompts
    mitigation_seeds: int | None = None
    recurrent_seeds: int | None = None
    two_stage_modes: tuple[str, ...] = ("hierarchical", "none")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "seeds":
                if not value or len(set(value)) != len(value):
                    raise ValueError(f"BenchSizes.seeds must be distinct integers, got {value!r}")
            elif f.name == "curve_users":
                if any(not isinstance(v, int) or v < 1 for v in value):
                    raise ValueError(f"BenchSizes.curve_users must be positive integers, got {value!r}")
            elif f.name == "two_stage_modes":
                if not value or any(v not in ("hierarchical", "recurrent", "none") for v in value):
                    raise ValueError(f"BenchSizes.two_stage_modes must name summary modes, got {value!r}")
            elif f.name == "retrievers":
                if not value or any(v not in RETRIEVERS for v in value):
                    raise ValueError(f"BenchSizes.retrievers must name some of {sorted(RETRIEVERS)}, got {value!r}")
            elif f.name in ("epochs", "mitigation_seeds", "recurrent_seeds") and value is None:
                continue
            elif not value or value < 0:
                raise ValueError(f"BenchSizes.{f.name} must be positive, got {value!r}")


def retriever_settings(name: str, sizes: BenchSizes) -> dict[str, Any]:
    """The estimator settings of SASRec (``name`` "sasrec") or LEARN's shared tower ("learn"): those of ``recllm
    bench learn`` (:func:`recllm.bench.learn.run.model_specs`: the shared sequence settings, batch 128, full-softmax
    CE for SASRec, lr 3e-3 for LEARN), with the sizes' epoch cap and early-stopping patience."""
    from recllm.learn.defaults import SEQ_SETTINGS

    settings: dict[str, Any] = {**SEQ_SETTINGS, "batch_size": 128, "patience": sizes.retriever_patience,
                                "max_epochs": sizes.retriever_epochs, "show_progress": False}
    if name == "sasrec":
        return {**settings, "loss": "ce"}
    if name == "learn":
        return {**settings, "lr": 3e-3, "item_input": "content", "item_tower": "shared"}
    raise ValueError(f"no retriever settings for {name!r}: 'sasrec' or 'learn'")


def _fit_sasrec(split: Split, seed: int, sizes: BenchSizes) -> Recommender:
    """SASRec with :func:`retriever_settings` (seeded)."""
    seed_everything(seed)
    return MODELS["sasrec"](seed=seed, **retriever_settings("sasrec", sizes)).fit(split)


def _fit_learn(split: Split, seed: int, sizes: BenchSizes, show_progress: bool) -> Recommender:
    """LEARN (shared tower) on the raw SmolLM2 content embeddings of the catalogue (cached on disk), with
    :func:`retriever_settings`."""
    from recllm.learn.encoder import content_for
    from recllm.learn.train import LEARN

    content, _ = content_for(split.dataset, show_progress)
    return LEARN(content_embeddings=content, seed=seed, **retriever_settings("learn", sizes)).fit(split)


RETRIEVERS = {"itemknn": "item-kNN", "sasrec": "SASRec", "learn": "LEARN (shared tower)"}

# development sizes: every unit runs (the lr grid too), tiny
QUICK = BenchSizes(n_train_users=4, n_valid_rows=4, n_test_rows=6, n_rerank_rows=4, summary_tokens=16,
                   seeds=(0,), retriever_epochs=2, speed_rows=2, min_candidates=4 * 21, n_fusion_rows=4,
                   curve_users=(2,), retrievers=("itemknn", "sasrec"))
# The paper's scale (about 10k labelled candidates per ranker), 3 seeds; hours on 2 cores: `--plan` estimates them.
# The recurrent-summary ranker (an ablation of the summariser) is trained on the first seed only: two SFT runs less
# per data set; the two-stage protocol reranks with the hierarchical ranker only (each ranker costs 20k scored
# candidates there). Both are listed as departures in the report; the hardened ranker keeps every seed (issue 18).
# SASRec and LEARN: at most 20 epochs (patience 10) - about 20 s an epoch each on ML-latest-small on one thread of a
# busy 2-core AMD EPYC, so minutes per fit; Amazon's epochs take under a second.
FULL = BenchSizes(n_train_users=500, n_valid_rows=100, n_test_rows=300, n_rerank_rows=300, summary_tokens=48,
                  seeds=(0, 1, 2), retriever_epochs=20, speed_rows=6, recurrent_seeds=1,
                  two_stage_modes=("hierarchical",))
# no fixed lr: chosen once on seed 0's validation from a grid that holds the paper's (recllm.bench.trsr.scale)
BENCH_LR = None
# optimizer steps between SFT checkpoints (ranker_sft_config's 100 is most of a ~240-step run: a session that ends
# mid-run would lose up to 100 steps of a multi-hour fit)
CHECKPOINT_EVERY = 10


@dataclass(frozen=True)
class DatasetSpec:
    """A benchmark data set: its loader name, item-text token budget and text columns (None: the schema's)."""

    name: str
    item_tokens: int
    columns: tuple[str, ...] | None = None


DATASETS = (
    # Amazon titles are mostly broken HTML (see SOURCE.md): publisher and category come before the description.
    DatasetSpec("amazon2018-magazine-subscriptions", 32, ("title", "publisher", "category", "description")),
    DatasetSpec("ml-latest-small", 32, None),
)
MIND = DatasetSpec("mind", 32, None)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


class Reranked(Recommender):
    """Two-stage ranking: ``retriever``'s top ``k`` unseen items reordered, placed above every other item, which
    keeps the retriever's order.

    ``weight=None`` orders the top ``k`` by ``rerank(histories, lists)`` (P(Yes), higher first); a number orders
    them by the fused score ``z + weight * logit(P(Yes))``, ``z`` the retriever's scores standardised within the
    user's top ``k`` (``weight=0`` is the retriever's own order)."""

    def __init__(self, retriever: Recommender, rerank: Any, k: int = 50, weight: float | None = None) -> None:
        self.retriever = retriever
        self.rerank = rerank
        self.k = k
        self.weight = weight

    def fit(self, split: Split) -> Reranked:  # the parts are fitted already
        self.n_items_ = self.retriever.n_items_
        return self

    def score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        base = np.asarray(self.retriever.score(users, histories), dtype=np.float64)
        top, _ = self.retriever.recommend(users, histories, k=self.k, filter_seen=True)
        llm = self.rerank(histories, [row for row in top])
        finite = np.where(np.isfinite(base), base, -np.inf)
        for row, (items, p) in enumerate(zip(top, llm)):
            ceiling = float(finite[row].max()) if np.isfinite(finite[row]).any() else 0.0
            p = np.asarray(p, dtype=np.float64)
            if self.weight is None:
                order = p  # P(Yes) in [0, 1] keeps the order
            else:
                s = base[row, items]
                z = (s - s.mean()) / (s.std() if s.std() > 0 else 1.0)
                fused = z + self.weight * _logit(p)
                order = fused - fused.min()
            base[row, items] = ceiling + 1.0 + order
        return base


class MemoRerank:
    """``rank(histories, lists)`` remembered per (history, candidate list), so several fusion weights reuse one
    LLM pass."""

    def __init__(self, rank: Any) -> None:
        self.rank = rank
        self.memo: dict[tuple, np.ndarray] = {}

    def __call__(self, histories: list[np.ndarray], lists: list[np.ndarray]) -> list[np.ndarray]:
        keys = [(tuple(map(int, h)), tuple(map(int, c))) for h, c in zip(histories, lists)]
        todo = [i for i, key in enumerate(keys) if key not in self.memo]
        if todo:
            scores = self.rank([histories[i] for i in todo], [lists[i] for i in todo])
            for i, p in zip(todo, scores):
                self.memo[keys[i]] = np.asarray(p, dtype=np.float64)
        return [self.memo[key] for key in keys]


def _method_row(method: str, result, seed: int, extra: dict | None = None) -> dict:
    return {"method": method, "seed": seed, "per_user": result.per_user, **(extra or {})}


def bench_trsr_config(mode: str, sizes: BenchSizes, spec: DatasetSpec, seed: int, *, fine_tune: bool = True,
                      guarded: bool = False, inject_fraction: float = 0.0, score_dtype: str = "auto",
                      lr: float | None = None, show_progress: bool = False, train: TrainingSize | None = None,
                      bf16: bool | str = "auto") -> TRSRConfig:
    """The benchmark's TRSR configuration for one summary mode, data set and seed (the demo uses it too).

    The SFT schedule is :func:`~recllm.trsr.ranker.ranker_sft_config`'s, overridden only by :func:`sft_overrides`
    (seed, lr when given, epochs when the sizes set them); ``train`` (from :func:`train_size`) sets the training
    users and targets per user (default: ``sizes.n_train_users``, one target each)."""
    users, targets = (train.users, train.targets_per_user) if train is not None else (sizes.n_train_users, 1)
    return TRSRConfig(
        summarizer=SummarizerConfig(mode=mode, max_new_tokens=sizes.summary_tokens, batch_size=sizes.gen_batch,
                                    segment=SegmentConfig(block_size=5, max_blocks=5, item_tokens=spec.item_tokens)),
        ranker=RankerConfig(n_recent=3, guarded=guarded, score_dtype=score_dtype),
        sft=ranker_sft_config(**sft_overrides(sizes, seed, lr, bf16), show_progress=show_progress),
        lora=LoRAConfig(r=8, alpha=16, dropout=0.05),
        fine_tune=fine_tune, max_train_users=users, targets_per_user=targets, inject_fraction=inject_fraction,
        max_valid_rows=sizes.n_valid_rows, item_text_columns=spec.columns, seed=seed)


def sft_overrides(sizes: BenchSizes, seed: int, lr: float | None, bf16: bool | str = "auto") -> dict[str, Any]:
    """What the benchmark changes in :func:`~recllm.trsr.ranker.ranker_sft_config` (printed in the report): the
    seed, a checkpoint every :data:`CHECKPOINT_EVERY` optimizer steps, the lr and epochs where given."""
    out: dict[str, Any] = {"seed": seed, "checkpoint_every": CHECKPOINT_EVERY}
    if bf16 != "auto":  # a pinned precision (--precision)
        out["bf16"] = bf16
    if lr is not None:
        out["learning_rate"] = lr
    if sizes.epochs is not None:
        out["epochs"] = sizes.epochs
    return out


def train_size(split: Split, sizes: BenchSizes) -> TrainingSize:
    """The training users and targets per user of every fine-tuned ranker on ``split`` (>= ``min_candidates``)."""
    return training_size_of_split(split, sizes.n_train_users, 20, sizes.min_candidates)


def seed_modes(sizes: BenchSizes, position: int) -> tuple[tuple[tuple[str, str], ...], bool]:
    """The summary modes ``(mode, label)`` fine-tuned for the seed at ``position`` of the benchmark's seed list,
    and whether its hardened ranker is trained (``recurrent_seeds`` / ``mitigation_seeds``: the first that many
    seeds; None: every seed)."""
    recurrent = sizes.recurrent_seeds is None or position < sizes.recurrent_seeds
    hardened = sizes.mitigation_seeds is None or position < sizes.mitigation_seeds
    return tuple(m for m in MODES if recurrent or m[0] != "recurrent"), hardened


# which runs exist and which rankers rerank: not what one SFT run does (kept out of its folder's key)
_WHICH_RUNS = ("seeds", "mitigation_seeds", "recurrent_seeds", "two_stage_modes")


def _shape(sizes: BenchSizes) -> dict[str, Any]:
    """What one run does, without which runs exist (the seed list, the mitigation / recurrent counts, the
    two-stage rankers)."""
    return {k: v for k, v in dataclasses.asdict(sizes).items() if k not in _WHICH_RUNS}


def merge_parts(parts: list[dict]) -> dict:
    """One data set's results from its per-seed parts (the first part holds the seed-independent results)."""
    merged = dict(parts[0])
    for key in ("rows", "two_stage", "injection", "throughput"):
        merged[key] = [row for part in parts for row in part.get(key, [])]
    merged["seconds"] = sum(part.get("seconds", 0.0) for part in parts)
    return merged


# what an SFT run folder's contents mean beyond its config (folders are also keyed by recllm.trsr's and recllm.data's
# source): 2 = training negatives avoid only the user's training items (recllm.trsr.pipeline.training_groups; format 1
# kept the validation and test items out too, which let a training "No" mark an evaluation candidate as a negative)
RUN_FORMAT = 2
LIBRARIES = ("torch", "transformers", "peft", "tokenizers", "numpy")


def library_versions() -> dict[str, str | None]:
    """The installed versions of the libraries a run's figures depend on (:data:`LIBRARIES`;
    :func:`recllm.bench.reporting.library_versions`)."""
    from recllm.bench.reporting import library_versions as versions_of

    return versions_of(LIBRARIES)


# Files of the packages keying an SFT folder (:func:`run_code_version`) that decide nothing a run of this benchmark
# does: the command lines, the reader of `recllm trsr train` folders, and the readers of users' own data folders
# (the benchmark reads registry data sets, whose files' sha256 is part of the key). Editing them orphans no folder.
NOT_RUN_CODE: dict[str, tuple[str, ...]] = {"recllm.trsr": ("cli.py", "run.py"),
                                            "recllm.data": ("folder.py", "user_tables.py")}


def run_code_version() -> list[str]:
    """The source hashes in an SFT folder's key: recllm.trsr (prompts, examples, the ranker's loss and epoch choice)
    and recllm.data (the split), each without its :data:`NOT_RUN_CODE` files."""
    return [package_source_sha256(p, exclude=NOT_RUN_CODE[p]) for p in ("recllm.trsr", "recllm.data")]


def _run_dir(spec: DatasetSpec, label: str, config: TRSRConfig, sizes: BenchSizes, users: np.ndarray,
             model: str, rows: str = "") -> Path:
    """A folder per distinct run, so a finished SFT run is reused and an interrupted one resumes. ``model``: the
    base model's fingerprint (name, the precision ``auto`` resolved to and recllm.llm's code), so a run begun on a
    CPU that trains in float32 is neither resumed nor reused on one that trains with bfloat16 autocast (and
    summarizes in bfloat16); the source of recllm.trsr (prompts, examples, the ranker's loss and epoch choice) and
    of recllm.data (the split), the data files' sha256, the library versions and :data:`RUN_FORMAT` are part of the
    key too, so no adapter trained by other code or on other data is reused (and none is refused as another run);
    so is ``rows``, the sha256 of the validation and test rows (:attr:`Prepared.candidates_sha`): a run's
    per-epoch validation scores, which choose the lr and give the learning curve, belong to the rows it scored."""
    # the seed list and the mitigation / recurrent counts only say which runs exist, not what one run does
    shape = _shape(sizes)
    settings = config.to_dict()
    settings["sft"] = {k: v for k, v in settings["sft"].items() if k not in RESUMABLE_FIELDS}  # e.g. --quiet
    key = DiskCache.key(config=settings, sizes=shape, prefer_users=users, model=model, rows=rows,
                        code=run_code_version(),
                        data=data_sha256(data_files([spec.name])), libraries=library_versions(),
                        format=RUN_FORMAT)[:12]
    return cache_dir("trsr", "runs", spec.name) / f"{label}-{key}"


@dataclass
class Prepared:
    """A data set as every unit of the benchmark sees it: split, fixed candidates, training size."""

    spec: DatasetSpec
    dataset: Any
    split: Split
    valid: SampledCandidates
    test: SampledCandidates
    paths: tuple[Path, Path]
    train: TrainingSize
    candidates_sha: str = ""  # of the validation and test rows used (recllm.trsr.candidates.candidates_sha256)


def prepare(spec: DatasetSpec, sizes: BenchSizes, show_progress: bool = False) -> Prepared:
    """Load ``spec``, split it (chronological leave-one-out) and take the fixed validation and test rows."""
    from recllm.trsr.candidates import candidates_sha256

    dataset = load(spec.name, show_progress=show_progress)
    split = leave_one_out(dataset)
    valid_all, valid_path = fixed_candidates(split, "valid")
    test_all, test_path = fixed_candidates(split, "test")
    valid, test = subset_rows(valid_all, sizes.n_valid_rows, 0), subset_rows(test_all, sizes.n_test_rows, 0)
    return Prepared(spec, dataset, split, valid, test, (valid_path, test_path), train_size(split, sizes),
                    candidates_sha256(valid, test))


def inputs_identity(spec: DatasetSpec, data: Prepared) -> dict[str, Any]:
    """What a stored unit read besides its settings and code: the data files' sha256, the sha256 of the validation
    and test rows it scored and the library versions (:func:`library_versions`); part of every stored key."""
    return {"data": data_sha256(data_files([spec.name])), "candidates": data.candidates_sha,
            "libraries": library_versions()}


def training_autocast(summarizer_lm: CausalLM) -> bool | str:
    """LoRA training's bfloat16 autocast: "auto" (the machine's policy) when the summarizer runs in the precision
    ``auto`` gives here, else what the summarizer's pinned precision says (``--precision float32`` on a CPU with
    fast bfloat16: no autocast), so one benchmark's runs are the same runs on every CPU."""
    if summarizer_lm.dtype == resolve_dtype("auto", summarizer_lm.device or "cpu"):
        return "auto"
    return summarizer_lm.dtype == "bfloat16"


class Fitter:
    """Fits (or reloads: each run has its own folder, :func:`_run_dir`) the benchmark's TRSR models of one data
    set."""

    def __init__(self, data: Prepared, sizes: BenchSizes, summarizer_lm: CausalLM, cache: DiskCache,
                 lr: float | Mapping[str, float] | None, show_progress: bool = False) -> None:
        self.data, self.sizes, self.summarizer_lm, self.cache = data, sizes, summarizer_lm, cache
        self.lr, self.show_progress = lr, show_progress  # one lr, or one per summary mode (scale.lr_for)

    def config(self, mode: str, seed: int, train: TrainingSize | None = None, lr: float | None = None,
               **kw: Any) -> TRSRConfig:
        # headline scores in the precision the ranker is trained and validated in (recllm.llm.precision's)
        return bench_trsr_config(mode, self.sizes, self.data.spec, seed, score_dtype=TRAINING_DTYPE,
                                 lr=lr_for(self.lr, mode) if lr is None else lr, show_progress=self.show_progress,
                                 train=train or self.data.train, bf16=self.autocast(), **kw)

    def autocast(self) -> bool | str:
        return training_autocast(self.summarizer_lm)

    def run_dir(self, label: str, config: TRSRConfig) -> Path:
        return _run_dir(self.data.spec, label, config, self.sizes, self.data.test.users,
                        self.summarizer_lm.fingerprint, self.data.candidates_sha)

    def fit(self, label: str, config: TRSRConfig) -> TRSR:
        # LoRA trains in the training precision (with autocast where it is fast)
        ranker_lm = ranker_base(self.summarizer_lm) if config.fine_tune else self.summarizer_lm
        model = TRSR(self.summarizer_lm, ranker_lm, config, cache=self.cache,
                     output_dir=self.run_dir(label, config), show_progress=self.show_progress)
        valid = self.data.valid if validates(config) else None
        return model.fit(self.data.split, valid=valid, prefer_users=self.data.test.users)


def curve_run(config: TRSRConfig) -> bool:
    """Whether a run is a point of the learning curve: seed 0, hierarchical or no-summary, unhardened."""
    return (config.seed == 0 and config.summarizer.mode in ("hierarchical", "none") and not config.ranker.guarded
            and config.inject_fraction == 0.0)


def validates(config: TRSRConfig) -> bool:
    """Whether a fine-tuned run scores the validation rows: when they choose something (the epoch, with more than one;
    the lr, on seed 0's hierarchical and no-summary runs) or feed the learning curve (:func:`curve_run`). Its
    scores are cached, so the curve reads them back instead of scoring the rows again."""
    return config.fine_tune and (config.sft.epochs > 1 or curve_run(config))


def valid_recall(model: TRSR, valid: SampledCandidates, k: int = 5) -> float:
    """Recall@k of ``model`` on the validation rows (scores cached)."""
    scores = model.rank(valid.histories, list(valid.candidates))
    return float((target_ranks_of(scores, valid.positive) <= k).mean())


def lr_piece(mode: str, lr: float) -> str:
    """The name of the lr grid's piece that trains and validates the ``mode`` ranker at ``lr`` (seed 0)."""
    return f"lr-{mode}-{lr:g}"


def choose_lr(fitter: Fitter, candidates: tuple[float, ...], mode: str = "hierarchical", log: Any = print,
              piece: Piece = compute_now) -> dict:
    """The lr of the ``mode`` ranker of a data set: the only candidate, or the best of the grid by its seed-0
    validation R@3+R@5+R@10 (its best epoch), the grid extended one lr at a time beyond an edge that validates
    best (:func:`~recllm.bench.trsr.scale.extend_lr`). Each grid run is a piece of its own (:func:`lr_piece`; the
    benchmark stores it as it finishes, so a grid longer than a session is finished by several, on any machine).
    Returns ``{"lr", "curve": {lr: score}}``."""
    if len(candidates) == 1:
        return {"lr": candidates[0], "curve": {}}
    curve: dict[float, float] = {}
    todo = list(candidates)
    while todo:
        lr = todo.pop(0)

        def grid_run(lr: float = lr) -> dict:
            model = fitter.fit(f"{mode}-seed0", fitter.config(mode, 0, lr=lr))
            scores = model.ranker_.valid_scores_
            return {"lr": lr, "valid_scores": {str(k): v for k, v in scores.items()},
                    "score": max(scores.values()) if scores else float("nan")}

        curve[lr] = float(piece(lr_piece(mode, lr), grid_run)["score"])
        log(f"[trsr] {fitter.data.spec.name}: {mode} lr {lr:g}: validation R@3+R@5+R@10 {curve[lr]:.3f}")
        further = extend_lr(curve) if not todo else None
        if further is not None:
            log(f"[trsr] {fitter.data.spec.name}: {mode}: the best lr is the edge of those tried; trying {further:g}")
            todo.append(further)
    return {"lr": pick_lr({lr: v for lr, v in curve.items() if np.isfinite(v)} or {candidates[0]: 0.0}),
            "curve": curve}


def decide_lr(fitter: Fitter, log: Any = print, piece: Piece = compute_now) -> dict:
    """The lr unit of a data set: per ranker of :data:`LR_MODES`, the grid's best (the paper's lr among them) on
    seed 0's validation (:func:`choose_lr`, one ``piece`` per grid run). ``{"lr": {mode: lr}, "curve": {mode:
    {lr: score}}, "steps", "how"}``: the recurrent and hardened rankers take the hierarchical one's lr."""
    sft = fitter.config(LR_MODES[0], 0).sft
    steps = optimizer_steps(fitter.data.train.groups, sft)
    lrs, curves = {}, {}
    for mode in LR_MODES:
        choice = choose_lr(fitter, lr_candidates(), mode, log, piece)
        lrs[mode], curves[mode] = choice["lr"], {f"{k:g}": v for k, v in choice["curve"].items()}
    how = (f"the only candidate, {steps} optimizer steps per run" if not any(curves.values()) else
           f"chosen for the hierarchical and the no-summary ranker each on its seed-0 validation, from the grid that "
           f"holds the paper's lr, extended one lr at a time beyond an edge that validated best ({steps} optimizer "
           f"steps per run, {sft.epochs} epoch(s); the paper trains {PAPER_EPOCHS}); the recurrent and hardened "
           "rankers take the hierarchical one's")
    return {"lr": lrs, "curve": curves, "steps": steps, "how": how}


def curve_points(sizes: BenchSizes, data: Prepared) -> list[int]:
    """The learning curve's training-user counts on a data set: ``curve_users`` below the benchmark's own count
    (each its own pair of SFT runs), and that count (the headline seed-0 runs, reused)."""
    return sorted({n for n in sizes.curve_users if n < data.train.users} | {data.train.users})


def learning_curve(fitter: Fitter, log: Any = print, headline: dict[str, dict] | None = None,
                   piece: Piece = compute_now) -> list[dict]:
    """Validation R@5 of the hierarchical and no-summary rankers (seed 0) against the number of training users
    (each user with the benchmark's targets per user). ``headline``: label -> the seed-0 headline run's throughput
    row (with its ``valid_recall@5``), the point at the benchmark's own size, so that run is not fitted again;
    ``piece(name, compute)`` runs (and the benchmark stores) each other point, one SFT run each."""
    data, rows = fitter.data, []
    headline = headline or {}
    for n in curve_points(fitter.sizes, data):
        size = dataclasses.replace(data.train, users=n)
        for mode, label in (MODES[0], MODES[2]):
            done = headline.get(label)
            if n == data.train.users and done is not None and "valid_recall@5" in done:
                row = {"method": label, "users": n, "groups": done["train_groups"],
                       "candidates": done["train_candidates"], "valid_recall@5": done["valid_recall@5"]}
            else:
                def point(mode: str = mode, label: str = label, n: int = n, size: TrainingSize = size) -> dict:
                    model = fitter.fit(f"{mode}-seed0", fitter.config(mode, 0, train=size))
                    return {"method": label, "users": n, "groups": model.n_train_groups_,
                            "candidates": model.n_train_candidates_,
                            "valid_recall@5": valid_recall(model, data.valid)}

                row = piece(f"curve-{mode}-{n}", point)
            rows.append(row)
            log(f"[trsr] {data.spec.name}: curve {label} {n} users: valid R@5 {row['valid_recall@5']:.3f}")
    return rows


def faster_agreement(model: TRSR, test: SampledCandidates, scores: list[np.ndarray], faster: str
                     ) -> dict | None:
    """Rank agreement of a faster scoring precision (``faster``, e.g. "auto") with the headline ``scores`` on the
    same rows: mean per-user Spearman and the share with the same top candidate; None when ``faster`` resolves to
    the headline's precision (nothing faster is offered)."""
    from scipy.stats import spearmanr

    from recllm.trsr.ranker import LLMRanker

    ranker = model.ranker_
    if resolve_dtype(faster, ranker.trained_lm_.device or "cpu") == resolve_dtype(ranker.config.score_dtype,
                                                                                    ranker.trained_lm_.device or "cpu"):
        return None
    fast = LLMRanker(ranker.trained_lm_, dataclasses.replace(ranker.config, score_dtype=faster), fine_tune=False,
                     cache=model.cache, show_progress=False).fit([], [], [])
    texts = [[model.item_texts_[int(j)] for j in row] for row in test.candidates]
    other = fast.score(model.queries(test.histories), texts)
    return {"dtype": fast.lm_.dtype,
            "spearman": float(np.mean([spearmanr(a, b)[0] for a, b in zip(scores, other)])),
            "same_top1": float(np.mean([np.argmax(a) == np.argmax(b) for a, b in zip(scores, other)]))}


def _retriever(name: str, split: Split, seed: int, sizes: BenchSizes, fitted: dict, show_progress: bool
               ) -> Recommender:
    if name in fitted:
        return fitted[name]
    if name == "learn":
        return _fit_learn(split, seed, sizes, show_progress)
    if name == "sasrec":
        return _fit_sasrec(split, seed, sizes)
    seed_everything(seed)
    return MODELS[name]().fit(split)


def run_dataset(spec: DatasetSpec, sizes: BenchSizes, summarizer_lm: CausalLM, cache: DiskCache,
                score_dtype: str = "auto", lr: float | Mapping[str, float] | None = None,
                show_progress: bool = False, log: Any = print, first_position: int = 0, data: Prepared | None = None,
                piece: Piece = compute_now) -> dict:
    """Every method on one data set; returns rows of per-user metrics plus throughput, injection and examples.

    ``first_position`` is the position of ``sizes.seeds[0]`` in the whole benchmark's seed list: the
    seed-independent methods (popularity, item-kNN, zero-shot), the two-stage protocol, the speed measurement
    and the examples run at position 0 only, the hardened and recurrent rankers as :func:`seed_modes` says. So the
    benchmark can run (and store) one seed at a time and merge the parts (:func:`merge_parts`).
    Headline scores are in the training precision; ``score_dtype`` is the faster precision compared with them
    where the machine offers one (default "auto": the machine's).

    ``piece(name, compute)`` runs each piece of the part: the baselines, the zero-shot ranker, each fine-tuned
    ranker (one SFT run with its test scoring; seed 0's hierarchical ranker also holds the speed measurement and
    the examples) and, at position 0, the two-stage protocol (``"two-stage"``: the retriever fits and the rerank
    with seed 0's rankers of ``sizes.two_stage_modes``, reloaded from their SFT folders, or fitted again, the same
    seeded runs, where this machine's cache lacks them). The benchmark's runner stores each piece as it finishes,
    so a part larger than a session is finished by several (:func:`run_benchmark`).
    """
    data = data or prepare(spec, sizes, show_progress)
    split, valid, test = data.split, data.valid, data.test
    out: dict[str, Any] = {"dataset": spec.name, "rows": [], "two_stage": [], "injection": [], "throughput": [],
                           "summary_stats": {}, "examples": [], "candidates": [str(p) for p in data.paths],
                           "n_test": len(test), "n_valid": len(valid), "summary": data.dataset.summary(),
                           "train": dataclasses.asdict(data.train), "lr": lr}
    fitter = Fitter(data, sizes, summarizer_lm, cache, lr, show_progress)

    def add(fragment: dict) -> None:
        for key, value in fragment.items():
            if isinstance(value, list) and isinstance(out.get(key), list):
                out[key].extend(value)
            else:
                out[key] = value

    # ---------------------------------------------------------------- ID baselines
    primary = first_position == 0  # this part holds the benchmark's first seed
    def baselines() -> dict:
        models: dict[str, list[tuple[int, Recommender]]] = {
            "popularity": [(sizes.seeds[0], MODELS["popularity"]().fit(split))] if primary else [],
            "itemknn": [(sizes.seeds[0], MODELS["itemknn"]().fit(split))] if primary else []}
        if "sasrec" in MODELS:
            models["sasrec"] = [(seed, _fit_sasrec(split, seed, sizes)) for seed in sizes.seeds]
        rows = []
        for name, fitted_models in models.items():
            for seed, model in fitted_models:
                res = evaluate_sampled(from_recommender(model), test, ks=KS, show_progress=False)
                rows.append(_method_row(name, res, seed))
            log(f"[trsr] {spec.name}: {name} done")
        return {"rows": rows}

    add(piece("baselines", baselines))

    # ---------------------------------------------------------------- LLM rankers
    def evaluate_llm(label: str, model: TRSR, seed: int, injection: bool) -> dict:
        summaries = model.summarize(test.histories)
        scores = model.rank(test.histories, list(test.candidates))
        res = evaluate_sampled(precomputed_score_fn(test, scores), test, ks=KS, show_progress=False)
        extra = {}
        agreement = faster_agreement(model, test, scores, score_dtype)
        if agreement is not None:
            extra["faster"] = agreement
        fragment: dict[str, Any] = {"rows": [_method_row(label, res, seed, extra)], "injection": []}
        throughput = {
            "method": label, "seed": seed, "users": len(test),
            "summary_model_s": summaries.model_seconds, "summary_prompts": summaries.prompts,
            "summary_users_per_s": summaries.users_per_second,
            "candidates": model.ranker_.scored_candidates_, "rank_model_s": model.ranker_.score_seconds_,
            "candidates_per_s": model.ranker_.scored_candidates_ / max(model.ranker_.score_seconds_, 1e-9),
            "train_s": getattr(model.ranker_, "train_seconds_", 0.0), "train_pairs": model.n_train_pairs_,
            "train_users": model.n_train_users_, "train_groups": model.n_train_groups_,
            "train_candidates": model.n_train_candidates_, "lr": model.config.sft.learning_rate,
            "valid_scores": dict(getattr(model.ranker_, "valid_scores_", {})), "machine": this_process_machine(),
            "sft_threads": sft_threads(model)}
        if model.config.fine_tune and curve_run(model.config):  # the learning curve's point at the headline size
            throughput["valid_recall@5"] = valid_recall(model, valid)
        # FLOPs counted on a few test users after the timed work (counting ranks again, so the rates are read first)
        throughput.update(counted_compute(model, test.histories, list(test.candidates)))
        fragment["throughput"] = [throughput]
        if injection:
            effect = injection_effect(model, test, scores, seed=seed)
            fragment["injection"].append({"method": label, "seed": seed, **effect.summary()})
        log(f"[trsr] {spec.name}: {label} seed {seed}: R@10 {res.per_user['recall@10'].mean():.3f}")
        return fragment

    if primary:
        add(piece("zero-shot", lambda: evaluate_llm(
            "LLM zero-shot (hierarchical prompt)",
            fitter.fit("zero-shot", fitter.config("hierarchical", 0, fine_tune=False)), 0, injection=True)))
    fitted_llm: dict[str, TRSR] = {}  # seed 0's two-stage rankers fitted in this session
    for seed_index, seed in enumerate(sizes.seeds, start=first_position):
        modes, hardened_too = seed_modes(sizes, seed_index)

        def ranker(mode: str, label: str, seed: int = seed, seed_index: int = seed_index) -> dict:
            model = fitter.fit(f"{mode}-seed{seed}", fitter.config(mode, seed))
            fragment = evaluate_llm(label, model, seed, injection=mode == "hierarchical")
            if seed_index == 0 and mode == "hierarchical":
                fragment["speed"] = prefix_speed(model, test, sizes.speed_rows)
                fragment["summary_stats"] = summary_stats(model, test)
                fragment["examples"] = examples(summarizer_lm, model, spec, sizes, test, cache, show_progress)
            if seed_index == 0 and mode in sizes.two_stage_modes:
                fitted_llm[mode] = model
            return fragment

        staged = two_stage_rankers(sizes) if primary and seed_index == 0 else []
        for mode, label in modes:
            add(piece(f"{mode}-seed{seed}", lambda mode=mode, label=label, ranker=ranker: ranker(mode, label)))
            if staged and mode == staged[-1]:  # right after its rankers, while their adapters are on this machine
                add(piece("two-stage", lambda: two_stage_piece(fitter, fitted_llm, log)))
        if primary and seed_index == 0 and not staged:  # no ranker reranks: the retrievers alone
            add(piece("two-stage", lambda: two_stage_piece(fitter, fitted_llm, log)))
        if hardened_too:
            add(piece(f"hardened-seed{seed}", lambda seed=seed: evaluate_llm(
                HARDENED, fitter.fit(f"hardened-seed{seed}", fitter.config("hierarchical", seed, guarded=True,
                                                                           inject_fraction=0.5)), seed, True)))
    out["data_files"] = data_files([spec.name])
    return out


def two_stage_rankers(sizes: BenchSizes) -> list[str]:
    """The seed-0 rankers (summary modes) the two-stage protocol reranks with: ``sizes.two_stage_modes`` among the
    modes seed 0 fine-tunes."""
    modes, _ = seed_modes(sizes, 0)
    return [m for m, _ in modes if m in sizes.two_stage_modes]


def two_stage_piece(fitter: Fitter, fitted: dict[str, TRSR], log: Any = print) -> dict:
    """The two-stage protocol as a piece of its own: the retriever fits and the rerank with seed 0's rankers of
    ``sizes.two_stage_modes``, taken from ``fitted`` (this session's) or loaded from their SFT folders by
    :meth:`Fitter.fit`, which trains a ranker again (the same seeded run) when this machine's cache lacks it (the
    plan says so: :func:`recllm.bench.trsr.plan.plan_units`). The retrievers are fitted here, not taken from the
    baselines piece, so the protocol is the same whether or not that piece was stored."""
    rankers = {m: fitted.get(m) or fitter.fit(f"{m}-seed0", fitter.config(m, 0))
               for m in two_stage_rankers(fitter.sizes)}
    rows, choice = two_stage(fitter.data, fitter.sizes, rankers, {}, fitter.show_progress, log)
    return {"two_stage": rows, "two_stage_choice": choice}


def sft_threads(model: TRSR) -> int | None:
    """The torch threads an SFT run last trained with (its folder's ``sft/config.json``), None when unknown."""
    import json

    path = Path(model.output_dir) / "sft" / "config.json" if model.output_dir is not None else None
    if path is None or not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("resolved", {}).get("torch_threads")
    except (OSError, ValueError):
        return None


def choose_weight(retriever: Recommender, rerank: Any, cases: Any, split: Split, k: int,
                  weights: tuple[float, ...] = FUSION_WEIGHTS) -> tuple[float, dict[float, float]]:
    """The fusion weight with the best NDCG@10 on ``cases`` (validation cases: the test cases are never passed
    here) and the validation NDCG@10 of every weight."""
    curve = {}
    for w in weights:
        fused = Reranked(retriever, rerank, k=k, weight=w).fit(split)
        curve[w] = float(evaluate_full_ranking(fused, cases, ks=(10,), show_progress=False).per_user["ndcg@10"].mean())
    return pick_weight(curve), curve


def fusion_rows(valid_rows: np.ndarray, n_cases: int, n: int, seed: int = 7) -> np.ndarray:
    """The validation cases that choose the fusion weight: the benchmark's validation rows first (their summaries
    are made already), topped up with a seeded sample of the other validation cases; sorted."""
    first = np.unique(np.asarray(valid_rows, dtype=np.int64))[:n]
    rest = np.setdiff1d(np.arange(n_cases), first)
    more = np.random.default_rng(seed).choice(rest, size=min(n - first.size, rest.size), replace=False)
    return np.sort(np.r_[first, more].astype(np.int64))


def two_stage(data: Prepared, sizes: BenchSizes, llm: dict[str, TRSR], fitted: dict[str, Recommender],
              show_progress: bool = False, log: Any = print) -> tuple[list[dict], dict]:
    """The two-stage protocol on seed 0's rankers of ``sizes.two_stage_modes``: the retriever with the best
    validation NDCG@10 among ``sizes.retrievers``, then per ranker the fusion weight with the best NDCG@10 on
    ``n_fusion_rows`` validation cases (no test item is looked at: the validation cases are largely the test users
    with their earlier, validation items), then on ``n_rerank_rows`` test users
    the retriever alone, the LLM rerank of its top ``rerank_k`` and the fused score. Returns the rows and the
    choices (validation figures included). The fusion users are the validation rows (:func:`fusion_rows`)."""
    split, k = data.split, sizes.rerank_k
    valid_cases = split.eval_cases("valid")
    fusion_cases = valid_cases.subset(fusion_rows(data.valid.case, len(valid_cases), sizes.n_fusion_rows))
    test_cases = split.eval_cases("test").subset(data.test.case[: sizes.n_rerank_rows])
    validation = {}
    models = {}
    for name in sizes.retrievers:
        models[name] = _retriever(name, split, 0, sizes, fitted, show_progress)
        res = evaluate_full_ranking(models[name], valid_cases, ks=(10,), show_progress=False)
        validation[name] = float(res.per_user["ndcg@10"].mean())
    best = min(validation, key=lambda n: (-validation[n], sizes.retrievers.index(n)))
    retriever = models[best]
    log(f"[trsr] {data.spec.name}: two-stage retriever {best} (validation NDCG@10 {validation[best]:.3f})")
    choice: dict[str, Any] = {"retriever": RETRIEVERS[best], "retriever_validation_ndcg@10":
                              {RETRIEVERS[n]: v for n, v in validation.items()}, "weights": {},
                              "fusion_users": len(fusion_cases), "test_users": len(test_cases), "k": k}
    base = RETRIEVERS[best]
    rows = [_method_row(f"{base} alone", evaluate_full_ranking(retriever, test_cases, ks=(10,),
                                                                show_progress=False), 0)]
    for mode, label in MODES:
        if mode not in llm or mode not in sizes.two_stage_modes:
            continue
        rerank = MemoRerank(llm[mode].rank)
        w, curve = choose_weight(retriever, rerank, fusion_cases, split, k)
        choice["weights"][label] = {"w": w, "validation_ndcg@10": curve}
        reranked = Reranked(retriever, rerank, k=k).fit(split)
        rows.append(_method_row(f"{base} top-{k} -> {label} (rerank)",
                                evaluate_full_ranking(reranked, test_cases, ks=(10,), show_progress=False), 0))
        fused = Reranked(retriever, rerank, k=k, weight=w).fit(split)
        rows.append(_method_row(f"{base} + w * logit P(Yes), {label}, w={w:g} (fused)",
                                evaluate_full_ranking(fused, test_cases, ks=(10,), show_progress=False), 0))
        log(f"[trsr] {data.spec.name}: two-stage {label}: w={w:g} on validation")
    return rows, choice


def prefix_speed(model: TRSR, test: SampledCandidates, n_rows: int) -> dict:
    """Wall time of scoring ``n_rows`` users' candidates with and without the shared-prefix KV cache."""
    hist, cands = test.histories[:n_rows], list(test.candidates[:n_rows])
    model.rank(hist[:1], cands[:1], use_cache=False)  # warm-up
    timings, results = {}, {}
    for shared in (True, False):
        start = time.perf_counter()
        results[shared] = model.rank(hist, cands, shared_prefix=shared, use_cache=False)
        timings[shared] = time.perf_counter() - start
    delta = max(float(np.max(np.abs(a - b))) for a, b in zip(results[True], results[False]))
    n = int(sum(len(c) for c in cands))
    out = {"users": len(hist), "candidates": n, "shared_s": timings[True], "full_s": timings[False],
           "speedup": timings[False] / timings[True], "max_abs_p_diff": delta, "dtype": model.ranker_.lm_.dtype,
           "machine": this_process_machine()}
    if model.ranker_.lm_ is not model.ranker_.trained_lm_:  # what the fast scoring precision changes
        from scipy.stats import spearmanr

        start = time.perf_counter()
        exact = model.rank(hist, cands, use_cache=False, reference=True)
        out["reference_s"] = time.perf_counter() - start
        out["reference_dtype"] = model.ranker_.trained_lm_.dtype
        out["reference_max_abs_p_diff"] = max(float(np.max(np.abs(a - b))) for a, b in zip(results[True], exact))
        out["reference_spearman"] = float(np.mean([spearmanr(a, b)[0] for a, b in zip(results[True], exact)]))
        same = [np.argmax(a) == np.argmax(b) for a, b in zip(results[True], exact)]
        out["reference_same_top1"] = float(np.mean(same))
    return out


def summary_stats(model: TRSR, test: SampledCandidates) -> dict:
    """How many blocks the test users' histories give (hierarchical and recurrent only differ beyond one block)."""
    from recllm.trsr.segment import segment_history

    blocks = np.array([len(segment_history(h, model.config.summarizer.segment)) for h in test.histories])
    return {"mean_blocks": float(blocks.mean()), "one_block_share": float((blocks == 1).mean()),
            "history_len_median": float(np.median([len(h) for h in test.histories]))}


def examples(summarizer_lm: CausalLM, model: TRSR, spec: DatasetSpec, sizes: BenchSizes, test: SampledCandidates,
             cache: DiskCache, show_progress: bool) -> list[dict]:
    """Two test users (the longest histories among the first rows) with both summaries, as generated."""
    from recllm.trsr.summarize import summarize_histories

    order = np.argsort([-len(h) for h in test.histories[:20]], kind="stable")[:2]
    hists = [test.histories[i] for i in order]
    rows = []
    for mode in ("hierarchical", "recurrent"):
        cfg = bench_trsr_config(mode, sizes, spec, 0).summarizer
        sums = summarize_histories(summarizer_lm, hists, model.item_texts_, cfg, cache=cache, show_progress=False)
        for j, i in enumerate(order):
            rows.append({"user_row": int(i), "mode": mode, "history_len": len(hists[j]),
                         "recent": [model.item_texts_[int(x)] for x in hists[j][-3:]], "summary": sums.texts[j]})
    return rows


def mind_available() -> bool:
    """True when a complete MIND copy (news.tsv + behaviors.tsv under ``$RECLLM_DATA/mind``) is present."""
    root = Path(os.environ.get("RECLLM_DATA", Path.home() / ".cache" / "recllm" / "data")) / "mind"
    return (root / "news.tsv").is_file() and (root / "behaviors.tsv").is_file()



def _to_json(value: Any) -> Any:
    """A data set's results as JSON-able values (arrays to lists, paths to strings, numpy scalars to numbers)."""
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)  # e.g. a torch dtype


def _store_form(part: dict) -> dict:
    """A part as stored: JSON-able and free of machine paths (data files are found again when it is read)."""
    kept = {k: v for k, v in part.items() if k != "data_files"}
    kept["candidates"] = [Path(p).name for p in part.get("candidates", [])]
    return _to_json(kept)


def _fragment_from_json(stored: Any) -> dict | None:
    """A stored part or piece with its per-user metrics as arrays again."""
    if stored is None:
        return None
    for group in ("rows", "two_stage"):
        for row in stored.get(group, []):
            row["per_user"] = {m: np.asarray(v, dtype=float) for m, v in row["per_user"].items()}
    return stored


def _from_json(stored: Any) -> dict | None:
    """Stored results back in the shape ``run_dataset`` returns (per-user metrics as arrays, data files
    located under this machine's data root)."""
    stored = _fragment_from_json(stored)
    if stored is not None:
        stored["data_files"] = data_files([stored["dataset"]])
    return stored


def stored_pieces(store: RunStore, unit: str, log: Any = print) -> Piece:
    """A piece runner (see :func:`run_dataset`) that stores each piece of ``unit`` (a part's or the curve's run
    key) in ``store`` as it finishes and reuses what is stored: a unit larger than a session is finished by
    several."""
    def run(name: str, compute: Any) -> dict:
        key = run_key(unit=unit, piece=name)
        fragment = _fragment_from_json(store.get(key))
        if fragment is None:
            t0 = time.perf_counter()
            fragment = compute()
            store.put(key, _to_json({**fragment, "seconds": time.perf_counter() - t0}))
            log(f"[trsr] piece {name} stored ({time.perf_counter() - t0:.0f} s)")
            fragment = _fragment_from_json(store.get(key))
        fragment.pop("seconds", None)
        return fragment

    return run


def chosen_lr(choice: Mapping[str, Any]) -> float | dict[str, float]:
    """The lr(s) of an lr unit (:func:`decide_lr`) or of ``--lr``: one for every ranker, or one per summary mode."""
    lr = choice["lr"]
    return {str(m): float(v) for m, v in lr.items()} if isinstance(lr, Mapping) else float(lr)


def _part_key(spec: DatasetSpec, sizes: BenchSizes, inputs: dict[str, Any], seed: int, position: int,
              lr: float | Mapping[str, float], faster: str, model: str) -> str:
    """What one stored part of a data set computes (its seed, its role in the seed list, every setting) from which
    ``inputs`` (:func:`inputs_identity`); its pieces' keys are made from it (:func:`stored_pieces`)."""
    modes, hardened = seed_modes(sizes, position)
    more: dict[str, Any] = {} if len(modes) == len(MODES) else {"modes": [m for m, _ in modes]}
    default = next(f.default for f in dataclasses.fields(BenchSizes) if f.name == "two_stage_modes")
    if position == 0 and tuple(sizes.two_stage_modes) != default:  # keys of parts stored before stay valid
        more["two_stage"] = list(sizes.two_stage_modes)
    return run_key(task="bench-trsr", **inputs, dataset=dataclasses.asdict(spec), shape=_shape(sizes),
                   seed=seed, primary=position == 0, hardened=hardened, lr=lr, faster=faster, model=model, **more)


def _unit_key(task: str, spec: DatasetSpec, sizes: BenchSizes, inputs: dict[str, Any], model: str,
              **more: Any) -> str:
    """The key of a data set's unit that is not a part (the lr choice, the learning curve)."""
    return run_key(task=task, **inputs, dataset=dataclasses.asdict(spec), shape=_shape(sizes), model=model, **more)


def check_seeds(seeds: list[int] | tuple[int, ...] | None) -> None:
    """``--seeds`` must be 0, 0 1, 0 1 2, ...: a seed's role (which rankers it trains, whether its part holds the
    seed-independent methods) follows its position in the list, and the lr choice, the learning curve, the zero-shot
    ranker and the two-stage protocol run on seed 0, so any other list would store parts under keys another
    session's list would not find. A campaign is split across sessions with ``--only DATASET`` (and stored pieces
    add up), not with ``--seeds``."""
    if seeds and list(seeds) != list(range(len(seeds))):
        from recllm.errors import UserInputError

        raise UserInputError(f"seeds {' '.join(map(str, seeds))} are not a prefix of 0 1 2 ...", "--seeds",
                             "give 0, 0 1 or 0 1 2; split a campaign across sessions with --only DATASET")


def resolve_sizes(quick: bool, seeds: list[int] | None = None) -> BenchSizes:
    """The size preset, with ``seeds`` (checked: :func:`check_seeds`) replacing its seed list."""
    check_seeds(seeds)
    sizes = QUICK if quick else FULL
    return dataclasses.replace(sizes, seeds=tuple(seeds)) if seeds else sizes


def benchmark_specs(datasets: list[str] | None, notes: list[str] | None = None) -> list[DatasetSpec]:
    """The benchmark's data sets (MIND only where a complete copy exists), restricted to ``datasets``."""
    specs = [s for s in DATASETS if datasets is None or s.name in datasets]
    if mind_available():
        if datasets is None or MIND.name in datasets:
            specs.append(MIND)
    elif notes is not None:
        notes.append("MIND: no complete copy under $RECLLM_DATA/mind, so it is not reported (the shared "
                     "mind-small-train-sample-unofficial folder is a partial third-party sample, not MIND).")
    if datasets:
        unknown = sorted(set(datasets) - {s.name for s in specs})
        if unknown:
            from recllm.errors import UserInputError

            raise UserInputError(f"unknown benchmark data set(s) {unknown}", "--datasets/--only",
                                 f"choose from {', '.join(s.name for s in DATASETS)}")
    return specs


def run_benchmark(quick: bool = False, out: Any = None, datasets: list[str] | None = None,
                  seeds: list[int] | None = None, show_progress: bool = False, score_dtype: str = "auto",
                  lr: float | None = BENCH_LR, model_name: str | None = None, command: str | None = None,
                  precision: str = "auto") -> int:
    """Run every data set, write the report at ``out`` (a checked :class:`recllm.bench.reporting.ReportTarget` or a
    path; default ``docs/results/trsr.md``, quick mode ``trsr-quick.md``).

    ``lr`` None: chosen once on seed 0's validation from a grid that holds the paper's lr
    (:mod:`recllm.bench.trsr.scale`); ``score_dtype``: the faster scoring precision compared with the headline's;
    ``precision``: the summarizer's precision and so LoRA training's autocast ("auto": the machine's; "float32"
    makes runs made on CPUs with and without fast bfloat16 the same runs, for a benchmark spread over sessions).
    Every unit, and every piece of a unit (one SFT run and its scoring), is stored as it finishes, and the
    generated summaries are carried beside the report (:mod:`recllm.bench.carried`), so an interrupted run
    continues where it stopped, on this machine or a fresh one."""
    from recllm.bench.carried import CarriedCache
    from recllm.bench.reporting import as_target
    from recllm.bench.trsr.report import METHOD_CHANGES, render
    from recllm.eval.report import write_report

    target = as_target(out, "trsr-quick.md" if quick else "trsr.md")
    check_dtype(score_dtype, "score_dtype")
    check_dtype(precision, "precision")
    if precision != "auto" and score_dtype == "auto":  # pinned: no machine-dependent second scoring either
        score_dtype = precision
    sizes = resolve_sizes(quick, seeds)
    notes: list[str] = []
    specs = benchmark_specs(datasets, notes)
    if "sasrec" not in MODELS:
        notes.append("SASRec is not registered in recllm.models: item-kNN stands in for it.")
    started = time.perf_counter()
    path = target.path
    cache = CarriedCache(path.with_suffix(".texts.jsonl"))  # the stores are read (or refused) before the model loads
    store = RunStore(path.with_suffix(".runs.jsonl"))
    summarizer = load_causal_lm(model_name, dtype=precision)
    faster = resolve_dtype(score_dtype, summarizer.device)
    prepared: dict[str, Prepared] = {}
    inputs: dict[str, dict[str, Any]] = {}
    lrs: dict[str, dict] = {}

    def data_of(spec: DatasetSpec) -> Prepared:
        if spec.name not in prepared:
            prepared[spec.name] = prepare(spec, sizes, show_progress)
        return prepared[spec.name]

    for spec in specs:  # the lr of each data set's rankers: fixed, the paper's, or chosen once on seed 0
        inputs[spec.name] = inputs_identity(spec, data_of(spec))  # the candidates used are part of every key
        if lr is not None:
            lrs[spec.name] = {"lr": lr, "curve": {}, "how": "given (--lr)"}
            continue
        key = _unit_key("bench-trsr-lr", spec, sizes, inputs[spec.name], summarizer.fingerprint)
        stored = store.get(key)
        if stored is None:
            stored = decide_lr(Fitter(data_of(spec), sizes, summarizer, cache, None, show_progress),
                               piece=stored_pieces(store, key))
            store.put(key, _to_json(stored))
        lrs[spec.name] = stored
    parts: dict[str, list[dict]] = {spec.name: [] for spec in specs}
    for position, seed in enumerate(sizes.seeds):  # seed-major: every data set's first seed comes first
        for spec in specs:
            # one part per (data set, seed), stored as soon as it is done; the key says what the part computes
            chosen = chosen_lr(lrs[spec.name])
            key = _part_key(spec, sizes, inputs[spec.name], seed, position, chosen, faster, summarizer.fingerprint)
            part = _from_json(store.get(key))
            if part is None:
                t0 = time.perf_counter()
                part = run_dataset(spec, dataclasses.replace(sizes, seeds=(seed,)), summarizer, cache,
                                   score_dtype=score_dtype, lr=chosen, show_progress=show_progress,
                                   first_position=position, data=data_of(spec),
                                   piece=stored_pieces(store, key))
                part["seconds"] = time.perf_counter() - t0
                store.put(key, _store_form(part))
                print(f"[trsr] {spec.name} seed {seed} finished in {part['seconds']:.0f} s", flush=True)
            else:
                notes.append(f"{spec.name} seed {seed}: results reused from {store.path.name} (same code, data, "
                             f"sizes and settings; measured in {part['seconds']:.0f} s by the run that made them)")
            parts[spec.name].append(part)
    curves: dict[str, list[dict]] = {}
    for spec in specs:  # after every headline part: the learning curve reuses seed 0's full-size runs
        chosen = chosen_lr(lrs[spec.name])
        key = _unit_key("bench-trsr-curve", spec, sizes, inputs[spec.name], summarizer.fingerprint, lr=chosen)
        stored = store.get(key)
        if stored is None:
            fitter = Fitter(data_of(spec), sizes, summarizer, cache, chosen, show_progress)
            headline = {t["method"]: t for t in parts[spec.name][0].get("throughput", []) if t["seed"] == 0}
            stored = learning_curve(fitter, headline=headline, piece=stored_pieces(store, key))
            store.put(key, _to_json(stored))
        curves[spec.name] = stored
    results = [merge_parts(parts[spec.name]) for spec in specs]
    for res in results:
        res["lr_choice"], res["curve"] = lrs[res["dataset"]], curves[res["dataset"]]
    notes.append(f"wall time of this run: {time.perf_counter() - started:.0f} s (cached summaries, scores and "
                 "finished SFT runs are reused, so a rerun is faster than a first run)")
    notes.append(f"precision: summaries in {describe_precision(precision, summarizer.device)}; every headline table "
                 f"is scored in the precision the ranker is trained and validated in "
                 f"({describe_precision(TRAINING_DTYPE, summarizer.device)}); "
                 + ((f"no faster scoring precision is compared: --precision pinned {precision} (a campaign spread "
                     "over CPUs with and without native bfloat16 keeps one); --score-dtype bfloat16 adds the "
                     "comparison on a CPU where it is native" if precision != "auto" else
                     "this machine offers no faster scoring precision") if faster == TRAINING_DTYPE else
                    f"the faster {describe_precision(score_dtype, summarizer.device)}'s rank agreement with it is "
                    "printed beside each table")
                 + f"; LoRA training: {describe_training_precision(training_autocast(summarizer), summarizer.device)}")
    body = render(results, sizes, summarizer.name, notes, quick)
    command = command or ("recllm bench trsr" + (" --quick" if quick else "")
               + (f" --seeds {' '.join(map(str, seeds))}" if seeds else "")
               + (f" --lr {lr:g}" if lr is not None else "")
               + (f" --datasets {' '.join(datasets)}" if datasets else "")
               + (f" --score-dtype {score_dtype}" if score_dtype != "auto" else "")
               + (f" --precision {precision}" if precision != "auto" else ""))
    files = [f for r in results for f in r["data_files"]]
    write_report(path, "LLM-TRSR: summaries + LoRA Yes/No ranker vs baselines", command, files, body,
                 seeds=list(sizes.seeds), commit=target.commit, precision=describe_precision(precision, summarizer.device),
                 method_changes=METHOD_CHANGES, overwrite=target.overwrite)
    print(f"[trsr] wrote {path}", flush=True)
    return 0
