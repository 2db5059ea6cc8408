"""LLM-TRSR end to end on a :class:`~recllm.data.split.Split`: item text, summaries, training pairs, the ranker.

``TRSR(summarizer_lm, ranker_lm, config).fit(split)`` renders every item's text to the token budget, summarises the
training users' histories, builds one training group per case (the target and ``n_negatives`` seeded negatives
behind the case's shared prompt, :func:`training_groups`), and fine-tunes the ranker on the groups, choosing the
epoch by validation R@3+R@5+R@10 on fixed sampled candidates. ``score_fn()`` plugs the
fitted system into :func:`recllm.eval.sampled.evaluate_sampled`; :meth:`TRSR.rank` reranks arbitrary candidate lists.

Two language models are passed, as the paper summarises with a different, larger LLM than it ranks with; one
model may play both parts (the ranker's LoRA adapter is trained on a copy, so the summariser stays the base model).

``engine="ray"`` moves the LLM batch work to a Ray actor pool (the summaries, and the candidate scoring of
:meth:`TRSR.rank`) with the local path's prompts, batches and cache keys, so the scores are the local ones. Under
``torchrun`` the summaries are made once, by rank 0, into the shared cache; the other ranks wait and read them.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recllm.data.split import Split
from recllm.errors import UserInputError
from recllm.eval.ranking import row_target_ranks
from recllm.eval.sampled import SampledCandidates, ScoreFn
from recllm.llm.backbone import CausalLM
from recllm.llm.cache import DiskCache
from recllm.llm.sft import LoRAConfig, SFTConfig
from recllm.trsr import prompts
from recllm.trsr.ranker import (LLMRanker, RankerConfig, RankQuery, answer_token_ids, candidate_parts,
                                 check_class_weight, ranker_sft_config)
from recllm.trsr.segment import render_item_texts
from recllm.trsr.summarize import Summaries, SummarizerConfig, summarize_histories
from recllm.utils import check_flag, is_finite_number, is_integer

__all__ = ["TRSRConfig", "TRSR", "TrainingCases", "training_cases", "TrainingGroups", "training_groups",
           "dataset_item_texts", "inject", "InjectionEffect", "injection_effect", "precomputed_score_fn"]


@dataclass
class TRSRConfig:
    """Everything that defines one LLM-TRSR run (the resolved config is written beside the run's outputs).

    ``max_train_users`` users (seeded sample) each give ``targets_per_user`` training cases (their last train items,
    each with the history before it); each case is one training group: the target and ``n_negatives`` negatives
    (the protocol's 20) drawn, seeded and without repeats, from the items anyone interacted with in training, outside
    the user's training items (what is known when training; keeping out their validation and test items too would
    tell the ranker which unseen items are *not* a user's future). With ``hard_negatives`` (a fitted retriever with
    ``recommend(users, histories, k, filter_seen)``, or a callable ``(users, histories, k) -> item index rows``),
    ``round(hard_fraction * n_negatives)`` of a group's negatives are drawn uniformly from its top ``hard_pool`` for
    the case's history (outside the user's training items), the rest at random as above (all random when the top
    list runs short).
    ``inject_fraction`` of the training candidates, each independently and the true item as often as a negative,
    carry a prompt-injection sentence (keeping their own answer), the training half of the injection mitigation: the
    sentence says nothing about the answer, so the ranker learns to ignore it rather than to answer "No" to any text
    that carries one (which would also push down a true item that does). ``max_valid_rows`` validation rows pick the best epoch.
    ``class_weight`` weighs the training labels (:class:`~recllm.trsr.ranker.LLMRanker`: "balanced" gives a
    group's positive as much weight as its negatives together; None weighs every label alike).
    ``fine_tune=False`` gives the zero-shot ranker. ``sft`` defaults to
    :func:`~recllm.trsr.ranker.ranker_sft_config` (its ``batch_size`` counts groups).
    """

    summarizer: SummarizerConfig = field(default_factory=SummarizerConfig)
    ranker: RankerConfig = field(default_factory=RankerConfig)
    sft: SFTConfig = field(default_factory=ranker_sft_config)
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    fine_tune: bool = True
    max_train_users: int | None = None
    targets_per_user: int = 1
    n_negatives: int = 20
    class_weight: str | None = "balanced"
    hard_negatives: Any = field(default=None, compare=False, repr=False)
    hard_fraction: float = 0.5
    hard_pool: int = 50
    inject_fraction: float = 0.0
    max_valid_rows: int | None = 100
    item_text_columns: tuple[str, ...] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name, kind in (("summarizer", SummarizerConfig), ("ranker", RankerConfig), ("sft", SFTConfig),
                           ("lora", LoRAConfig)):
            if not isinstance(getattr(self, name), kind):
                got = type(getattr(self, name)).__name__
                raise ValueError(f"TRSRConfig.{name} must be a {kind.__name__}, got {got}")
        check_class_weight(self.class_weight, "TRSRConfig.class_weight")
        for name in ("max_train_users", "max_valid_rows"):
            value = getattr(self, name)
            if value is not None and (not is_integer(value) or value < 1):
                raise ValueError(f"TRSRConfig.{name} must be a positive integer or None, got {value!r}")
        for name in ("targets_per_user", "n_negatives", "hard_pool"):
            value = getattr(self, name)
            if not is_integer(value) or value < 1:
                raise ValueError(f"TRSRConfig.{name} must be a positive integer, got {value!r}")
            setattr(self, name, int(value))  # a NumPy integer as a plain int (the config is written as JSON)
        if not (self.hard_negatives is None or hasattr(self.hard_negatives, "recommend")
                or callable(self.hard_negatives)):
            raise ValueError("TRSRConfig.hard_negatives must be None, a fitted retriever (with recommend) or a "
                             f"callable (users, histories, k) -> item rows, got {type(self.hard_negatives).__name__}")
        if isinstance(self.hard_fraction, bool) or not (isinstance(self.hard_fraction, (int, float))
                                                        and 0.0 <= self.hard_fraction <= 1.0):
            raise ValueError(f"TRSRConfig.hard_fraction must be in [0, 1], got {self.hard_fraction!r}")
        if not (is_finite_number(self.inject_fraction) and 0.0 <= self.inject_fraction <= 1.0):
            raise ValueError(f"TRSRConfig.inject_fraction must be in [0, 1], got {self.inject_fraction!r}")
        check_flag(self.fine_tune, "TRSRConfig.fine_tune")
        if not is_integer(self.seed):
            raise ValueError(f"TRSRConfig.seed must be an integer, got {self.seed!r}")
        if isinstance(self.item_text_columns, str):  # one column name, not its letters (as LoRAConfig's modules)
            self.item_text_columns = (self.item_text_columns,)
        if self.item_text_columns is not None:
            self.item_text_columns = tuple(self.item_text_columns)
            if not self.item_text_columns or not all(isinstance(c, str) and c for c in self.item_text_columns):
                raise ValueError("TRSRConfig.item_text_columns must be None or non-empty column names, got "
                                 f"{self.item_text_columns!r}")

    @property
    def use_summary(self) -> bool:
        return self.summarizer.mode != "none"

    def to_dict(self) -> dict:
        """The config as plain data (``hard_negatives`` as its type name, or None)."""
        out = dataclasses.asdict(dataclasses.replace(self, hard_negatives=None))
        out["hard_negatives"] = None if self.hard_negatives is None else type(self.hard_negatives).__name__
        return out


@dataclass
class TrainingCases:
    """Training positives: user index, history before the target (oldest first), target item."""

    users: np.ndarray
    histories: list[np.ndarray]
    targets: np.ndarray

    def __len__(self) -> int:
        return len(self.users)


def training_cases(split: Split, max_users: int | None = None, targets_per_user: int = 1,
                   seed: int = 0, prefer_users: Sequence[int] | None = None) -> TrainingCases:
    """Positives from the train part of ``split``: each sampled user's last ``targets_per_user`` train items, each
    with the items before it as history (users with fewer than two train items are skipped).

    ``prefer_users`` (user indices) are taken first, e.g. the evaluation users, whose older summary blocks are then
    shared between training and evaluation; the rest of ``max_users`` is a seeded sample of the other users.
    """
    sequences = split.sequences("train")
    eligible = np.asarray(sorted(u for u, s in sequences.items() if len(s) >= 2), dtype=np.int64)
    if eligible.size == 0:
        raise ValueError(f"split {split.name!r} of {split.dataset.name!r} has no user with two or more train "
                         "interactions: nothing to train the ranker on")
    if max_users is not None and eligible.size > max_users:
        rng = np.random.default_rng(seed)
        first = np.intersect1d(eligible, np.asarray(prefer_users if prefer_users is not None else [], dtype=np.int64))
        if first.size >= max_users:
            eligible = np.sort(rng.choice(first, size=max_users, replace=False))
        else:
            rest = np.setdiff1d(eligible, first)
            eligible = np.sort(np.r_[first, rng.choice(rest, size=max_users - first.size, replace=False)])
    users, histories, targets = [], [], []
    for u in eligible.tolist():
        seq = sequences[u]
        for back in range(1, min(targets_per_user, len(seq) - 1) + 1):
            users.append(u)
            histories.append(seq[: len(seq) - back])
            targets.append(int(seq[len(seq) - back]))
    return TrainingCases(np.asarray(users, dtype=np.int64), histories, np.asarray(targets, dtype=np.int64))


def dataset_item_texts(dataset, tokenizer, max_tokens: int, columns: tuple[str, ...] | None = None) -> list[str]:
    """Every catalogue item's text (``dataset.item_texts``), cleaned and cut to ``max_tokens`` tokens."""
    texts = dataset.item_texts(columns) if columns is not None else dataset.item_texts()
    return render_item_texts(texts, tokenizer, max_tokens)


def inject(text: str, injection: str = prompts.INJECTION) -> str:
    """``text`` with an injected instruction appended (the attack of the prompt-injection test)."""
    return f"{text} {injection}".strip()


def _draw_negatives(rng: np.random.Generator, pool: np.ndarray, pool_set: set[int], excluded: set[int], n: int,
                    where: str) -> list[int]:
    """``n`` different items of ``pool`` (whose set is ``pool_set``) outside ``excluded``, uniformly, in draw
    order."""
    free = len(pool_set) - len(pool_set & excluded)
    if free < n:
        raise UserInputError(f"only {free} items are left to draw {n} negatives from", where,
                             "lower TRSRConfig.n_negatives")
    out: list[int] = []
    taken = set(excluded)
    while len(out) < n:
        item = int(pool[rng.integers(0, pool.size)])
        if item not in taken:
            taken.add(item)
            out.append(item)
    return out


def _hard_candidates(source: Any, users: np.ndarray, histories: Sequence[np.ndarray], k: int, n_items: int,
                     chunk: int = 256) -> list[np.ndarray]:
    """The top-``k`` items of ``source`` (a retriever with ``recommend`` or a callable) per case, in chunks."""
    out: list[np.ndarray] = []
    for start in range(0, len(users), chunk):
        u, h = users[start:start + chunk], list(histories[start:start + chunk])
        if hasattr(source, "recommend"):
            rows = source.recommend(u, h, k=k, filter_seen=True)[0]
        else:
            rows = source(u, h, k)
        if len(rows) != len(u):
            raise UserInputError(f"hard_negatives returned {len(rows)} rows for {len(u)} cases",
                                 "TRSRConfig.hard_negatives", "return one row of item indices per case")
        rows = [np.asarray(row, dtype=np.int64).ravel()[:k] for row in rows]
        if any(row.size and (row.min() < 0 or row.max() >= n_items) for row in rows):
            raise UserInputError(f"hard_negatives returned an item index outside 0..{n_items - 1}",
                                 "TRSRConfig.hard_negatives", "return item indices of the split's data set")
        out += rows
    return out


@dataclass
class TrainingGroups:
    """The ranker's training groups, one per training case: ``candidates[i]`` holds case i's target (column 0) and
    its negatives (item indices); ``injected[i, j]`` whether candidate j's text carries the training injection
    ``prompts.TRAIN_INJECTIONS[phrase[i, j]]`` (-1: none; the target as often as a negative); ``n_hard[i]`` how many of case i's
    negatives came from ``hard_negatives``."""

    cases: TrainingCases
    candidates: np.ndarray
    injected: np.ndarray
    phrase: np.ndarray
    n_hard: np.ndarray

    def __len__(self) -> int:
        return len(self.cases)

    @property
    def n_candidates(self) -> int:
        """Labelled candidates over all groups."""
        return int(self.candidates.size)

    def labels(self) -> np.ndarray:
        """0/1 label per candidate (1 for the target in column 0)."""
        out = np.zeros(self.candidates.shape, dtype=np.int64)
        out[:, 0] = 1
        return out


def training_groups(split: Split, config: TRSRConfig, prefer_users: Sequence[int] | None = None) -> TrainingGroups:
    """The seeded training groups of ``config`` on ``split`` (cases from :func:`training_cases`; negatives, hard
    negatives and injections as :class:`TRSRConfig` describes; each drawn from its own seeded stream, so switching
    injections on changes no negative)."""
    cases = training_cases(split, config.max_train_users, config.targets_per_user, config.seed, prefer_users)
    known = split.sequences("train")
    # a user's negatives avoid their training items only, what a deployed ranker knows when it trains: keeping their
    # validation and test items out too would let a "No" in training mark an evaluation candidate as a negative
    # while the target never gets one (on Amazon, a quarter of a test row's negatives were labelled "No" for the same
    # user in training, the target never), so a ranker could win by elimination
    # negatives come from the items seen in training, not from catalogue entries no one ever chose (Amazon's
    # metadata lists ~15x more items than its reviews touch): those would teach the ranker nothing useful
    pool = np.unique(np.concatenate([np.asarray(seq, dtype=np.int64) for seq in known.values()]))
    pool_set = set(pool.tolist())
    n_neg = config.n_negatives
    n_hard = round(config.hard_fraction * n_neg) if config.hard_negatives is not None else 0
    tops = (_hard_candidates(config.hard_negatives, cases.users, cases.histories, config.hard_pool,
                             split.dataset.n_items) if n_hard else None)
    user_ids = split.dataset.users["user_id"].to_numpy()
    rng_random, rng_hard = np.random.default_rng([config.seed, 1]), np.random.default_rng([config.seed, 5])
    candidates = np.empty((len(cases), 1 + n_neg), dtype=np.int64)
    hard_counts = np.zeros(len(cases), dtype=np.int64)
    for i, (user, target) in enumerate(zip(cases.users, cases.targets)):
        seen = set(known[int(user)].tolist()) | {int(target)}  # the target is a train item: already in
        chosen: list[int] = []
        if tops is not None:
            top = [int(j) for j in dict.fromkeys(tops[i].tolist()) if int(j) not in seen]
            if top:
                picks = rng_hard.choice(len(top), size=min(n_hard, len(top)), replace=False)
                chosen = [top[j] for j in sorted(picks.tolist())]
        hard_counts[i] = len(chosen)
        chosen += _draw_negatives(rng_random, pool, pool_set, seen | set(chosen), n_neg - len(chosen),
                                  f"training user {user_ids[int(user)]}")
        candidates[i] = [int(target)] + chosen
    injected = np.zeros(candidates.shape, dtype=bool)
    phrase = np.full(candidates.shape, -1, dtype=np.int64)
    if config.inject_fraction:
        rng_inject = np.random.default_rng([config.seed, 4])
        injected[:] = rng_inject.random(candidates.shape) < config.inject_fraction  # labels too: see TRSRConfig
        phrase[injected] = rng_inject.integers(len(prompts.TRAIN_INJECTIONS), size=int(injected.sum()))
    return TrainingGroups(cases, candidates, injected, phrase, hard_counts)


class TRSR:
    """LLM-TRSR: summarise each user's long history with ``summarizer_lm``, rank candidates with ``ranker_lm``.

    After :meth:`fit`: ``item_texts_`` (rendered, by item index), ``ranker_`` (the fitted :class:`LLMRanker`),
    ``train_groups_`` (:class:`TrainingGroups`), ``train_summaries_`` (:class:`Summaries` of the training
    histories), ``n_train_users_``, ``n_train_groups_`` and ``n_train_candidates_`` (labelled candidates;
    ``n_train_pairs_`` is the same count under its former name).

    ``engine``: "local" (this process) or "ray": the summaries and :meth:`rank`'s candidate scoring run on a Ray
    actor pool (``ray_options``: a :class:`recllm.distributed.ray_jobs.RayOptions`; the ``distributed`` extra),
    with the same cache keys and scores; the fine-tune and its per-epoch validation stay in this process (under
    ``torchrun`` the fine-tune is data-parallel). ``set_params(engine=...)`` on a fitted model switches where
    ranking runs.
    """

    def __init__(self, summarizer_lm: CausalLM, ranker_lm: CausalLM, config: TRSRConfig | None = None,
                 cache: DiskCache | None = None, output_dir: str | Path | None = None,
                 show_progress: bool = True, engine: str = "local", ray_options: Any = None) -> None:
        self.summarizer_lm = summarizer_lm
        self.ranker_lm = ranker_lm
        self.config = config
        self.cache = cache
        self.output_dir = output_dir
        self.show_progress = show_progress
        self.engine = engine
        self.ray_options = ray_options

    _PARAMS = ("summarizer_lm", "ranker_lm", "config", "cache", "output_dir", "show_progress", "engine",
               "ray_options")

    def get_params(self, deep: bool = False) -> dict[str, Any]:
        """The constructor parameters (scikit-learn semantics)."""
        return {name: getattr(self, name) for name in self._PARAMS}

    def set_params(self, **params: Any) -> TRSR:
        """Set constructor parameters (scikit-learn semantics); an unknown name is a ValueError."""
        for name, value in params.items():
            if name not in self._PARAMS:
                raise ValueError(f"TRSR has no parameter {name!r}; its parameters: {', '.join(self._PARAMS)}")
            setattr(self, name, value)
        return self

    def _engine(self) -> str:
        """The checked ``engine`` (a missing Ray extra is one line naming it)."""
        if self.engine != "local":
            from recllm.distributed import check_engine

            check_engine(self.engine, "TRSR.engine")
        return self.engine

    @property
    def _config(self) -> TRSRConfig:
        return self.config if self.config is not None else TRSRConfig()

    # ------------------------------------------------------------------------------------------ building blocks
    def summarize(self, histories: Sequence[np.ndarray]) -> Summaries:
        """Summaries of ``histories`` (cached; mode ``none`` gives ``None`` for each). Under ``torchrun`` rank 0
        makes them into the cache while the other ranks wait, then read them (:func:`main_process_first`)."""
        from recllm.distributed.ddp import main_process_first

        self._check_fitted_texts()
        engine = self._engine()
        with main_process_first() as first:
            return summarize_histories(self.summarizer_lm, histories, self.item_texts_, self._config.summarizer,
                                       cache=self.cache, show_progress=self.show_progress and first,
                                       engine=engine, ray_options=self.ray_options)

    def queries(self, histories: Sequence[np.ndarray], summaries: Summaries | None = None) -> list[RankQuery]:
        """The user side of each ranker prompt: summary (if the mode has one) and the recent item texts."""
        summaries = summaries if summaries is not None else self.summarize(histories)
        n_recent = self._config.ranker.n_recent
        out = []
        for hist, summary in zip(histories, summaries.texts):
            recent = [self.item_texts_[int(i)] for i in np.asarray(hist)[-n_recent:]] if n_recent else []
            out.append(RankQuery(summary if self._config.use_summary else None, tuple(recent)))
        return out

    def _check_fitted_texts(self) -> None:
        if not hasattr(self, "item_texts_"):
            raise RuntimeError("TRSR is not fitted: call fit(split) first")

    # ------------------------------------------------------------------------------------------ training
    def fit(self, split: Split, valid: SampledCandidates | None = None,
            prefer_users: Sequence[int] | None = None) -> TRSR:
        """Summarise, build the training groups (:func:`training_groups`) and fine-tune the ranker on them (or just
        wrap it, when zero-shot).

        ``prefer_users`` are trained on first when ``max_train_users`` limits the training users (see
        :func:`training_cases`)."""
        cfg = self._config
        dataset = split.dataset
        self.item_texts_ = dataset_item_texts(dataset, self.summarizer_lm.tokenizer,
                                              cfg.summarizer.segment.item_tokens, cfg.item_text_columns)
        ranker = LLMRanker(self.ranker_lm, cfg.ranker, sft=cfg.sft, lora=cfg.lora, fine_tune=cfg.fine_tune,
                           output_dir=None if self.output_dir is None else Path(self.output_dir) / "sft",
                           cache=self.cache, show_progress=self.show_progress, class_weight=cfg.class_weight)
        if not cfg.fine_tune:
            self.ranker_ = ranker.fit([], [], [])
            self.n_train_users_ = self.n_train_groups_ = self.n_train_candidates_ = self.n_train_pairs_ = 0
            return self
        groups = training_groups(split, cfg, prefer_users)
        self.train_groups_ = groups
        self.train_summaries_ = self.summarize(groups.cases.histories)
        queries = self.queries(groups.cases.histories, self.train_summaries_)
        valid_set = self._valid_set(valid, cfg) if valid is not None else None
        self.ranker_ = ranker.fit(queries, self.group_texts(groups), groups.labels().tolist(), valid=valid_set)
        self.n_train_users_ = int(np.unique(groups.cases.users).size)
        self.n_train_groups_ = len(groups)
        self.n_train_candidates_ = self.n_train_pairs_ = groups.n_candidates
        return self

    def group_texts(self, groups: TrainingGroups) -> list[list[str]]:
        """Each group's candidate texts, injected candidates with their training injection appended."""
        self._check_fitted_texts()
        out = []
        for row, flags, phrases in zip(groups.candidates, groups.injected, groups.phrase):
            out.append([inject(self.item_texts_[int(j)], prompts.TRAIN_INJECTIONS[int(p)]) if flag
                        else self.item_texts_[int(j)] for j, flag, p in zip(row, flags, phrases)])
        return out

    def _valid_set(self, valid: SampledCandidates, cfg: TRSRConfig):
        rows = np.arange(len(valid))
        if cfg.max_valid_rows is not None and rows.size > cfg.max_valid_rows:
            rows = np.sort(np.random.default_rng([cfg.seed, 2]).choice(rows, cfg.max_valid_rows, replace=False))
        histories = [valid.histories[i] for i in rows]
        queries = self.queries(histories)
        cands = [[self.item_texts_[int(j)] for j in valid.candidates[i]] for i in rows]
        return queries, cands, [int(valid.positive[i]) for i in rows]

    # ------------------------------------------------------------------------------------------ inference
    def rank(self, histories: Sequence[np.ndarray], candidates: Sequence[Sequence[int]],
             candidate_texts: Sequence[Sequence[str]] | None = None, shared_prefix: bool | None = None,
             use_cache: bool = True, reference: bool = False) -> list[np.ndarray]:
        """P(Yes) of every candidate item (``candidate_texts`` overrides their texts, e.g. for attacks)."""
        if not hasattr(self, "ranker_"):
            raise RuntimeError("TRSR is not fitted: call fit(split) first")
        if candidate_texts is None:
            candidate_texts = [[self.item_texts_[int(j)] for j in row] for row in candidates]
        if self._engine() == "ray":
            return self._rank_on_ray(self.queries(histories), candidate_texts, shared_prefix, use_cache, reference)
        return self.ranker_.score(self.queries(histories), candidate_texts, shared_prefix=shared_prefix,
                                  use_cache=use_cache, reference=reference)

    def _rank_on_ray(self, queries: Sequence[RankQuery], candidate_texts: Sequence[Sequence[str]],
                     shared_prefix: bool | None, use_cache: bool, reference: bool) -> list[np.ndarray]:
        """:meth:`LLMRanker.score` with the uncached users scored on a Ray actor pool: the same prompt split, cache
        keys, batches and P(Yes). The pool's wall time is shared evenly among the users it scored (their cached
        ``seconds``); the new scores are written to the cache when the job ends."""
        from recllm.distributed.ray_jobs import RayOptions, ensure_ray, score_continuations_ray, ship_model
        from recllm.llm.scoring import yes_probability
        from recllm.trsr.ranker import score_cache_key

        ranker, cfg = self.ranker_, self._config.ranker
        if len(queries) != len(candidate_texts):
            raise ValueError(f"{len(queries)} queries but {len(candidate_texts)} candidate lists")
        lm = ranker.trained_lm_ if reference else ranker.lm_
        cache = self.cache if use_cache else None
        shared = cfg.shared_prefix if shared_prefix is None else shared_prefix
        token_ids = answer_token_ids(lm, cfg)
        out: list[np.ndarray] = [np.empty(0)] * len(queries)
        seconds = [0.0] * len(queries)
        todo: list[tuple[int, str, list[str], str | None]] = []
        for i, (query, cands) in enumerate(zip(queries, candidate_texts)):
            if len(cands) == 0:
                continue
            prefix, conts = candidate_parts(lm, query, cands, cfg)
            key = score_cache_key(lm, cfg, shared, prefix, conts) if cache is not None else None
            hit = cache.get(key) if key is not None else None
            if hit is not None:
                out[i], seconds[i] = np.asarray(hit["p"], dtype=np.float64), float(hit["seconds"])
            else:
                todo.append((i, prefix, conts, key))
        if todo:
            began = time.perf_counter()
            options = self.ray_options or RayOptions()
            ensure_ray(options)
            import ray

            # the ranker's weights go to Ray's object store once per fitted model and Ray session (not per call)
            owner = (ranker.trained_lm_, reference, ray.get_runtime_context().get_job_id())
            shipped = self.__dict__.get("_shipped_ranker")
            if shipped is None or shipped[0][0] is not owner[0] or shipped[0][1:] != owner[1:]:
                ref = ship_model(ranker.trained_lm_, scoring=None if reference else (cfg.score_dtype, token_ids))
                shipped = self._shipped_ranker = (owner, ref)
            logps = score_continuations_ray(shipped[1], [(prefix, conts) for _, prefix, conts, _ in todo],
                                            token_ids=token_ids, shared_prefix=shared,
                                            batch_size=cfg.score_batch_size, show_progress=self.show_progress,
                                            options=options)
            share = (time.perf_counter() - began) / len(todo)
            new = {}
            for (i, _, _, key), logp in zip(todo, logps):
                out[i], seconds[i] = yes_probability(logp), share
                if key is not None:
                    new[key] = {"p": out[i].tolist(), "seconds": share}
            if cache is not None and new:
                cache.put_many(new)
        ranker.score_seconds_ = float(sum(seconds))
        ranker.scored_candidates_ = int(sum(len(c) for c in candidate_texts))
        return out

    def score_fn(self) -> ScoreFn:
        """``(users, histories, candidate_matrix) -> scores`` for :func:`recllm.eval.sampled.evaluate_sampled`."""
        def score(users: np.ndarray, histories: list[np.ndarray], candidates: np.ndarray) -> np.ndarray:
            return np.stack(self.rank(histories, [row for row in candidates]))

        return score


# ---------------------------------------------------------------------------------------------- prompt injection
@dataclass
class InjectionEffect:
    """Ranks (1 = top, pessimistic ties) of an attacked negative and of the true item, before and after the attack
    on the negative, and of the true item when it is the one attacked (``attacked_positive_after``; its clean rank is
    ``positive_before``). The second attack tells a ranker that ignores the injected sentence from one that merely
    learned "injected text means No", which would push an attacked negative down as well (and look robust)."""

    victim_before: np.ndarray
    victim_after: np.ndarray
    positive_before: np.ndarray
    positive_after: np.ndarray
    attacked_positive_after: np.ndarray

    def summary(self) -> dict[str, float]:
        """Mean ranks, mean places gained by the attacked negative, how often it reaches the top, the true item's
        Recall@3 before and after (what the attack costs the user), and the places the true item moves when it
        carries the injection itself (positive: it rises; negative: the ranker penalises injected text)."""
        return {
            "victim_rank_before": float(self.victim_before.mean()),
            "victim_rank_after": float(self.victim_after.mean()),
            "places_gained": float((self.victim_before - self.victim_after).mean()),
            "victim_top1_after": float((self.victim_after == 1).mean()),
            "positive_recall@3_before": float((self.positive_before <= 3).mean()),
            "positive_recall@3_after": float((self.positive_after <= 3).mean()),
            "attacked_positive_places_gained": float((self.positive_before - self.attacked_positive_after).mean()),
            "attacked_positive_recall@3": float((self.attacked_positive_after <= 3).mean()),
        }


def injection_effect(model: TRSR, candidates: SampledCandidates, scores: Sequence[np.ndarray],
                     rows: Sequence[int] | None = None, injection: str = prompts.INJECTION, seed: int = 0
                     ) -> InjectionEffect:
    """Append ``injection`` to one seeded random negative per row, and separately to the row's true item, and
    re-rank each against the clean ``scores`` (``model.rank`` output for ``candidates``): only the attacked candidate
    is re-scored."""
    rows = np.arange(len(candidates)) if rows is None else np.asarray(rows, dtype=np.int64)
    rng = np.random.default_rng([seed, 3])
    victims = []
    for i in rows:
        negatives = np.delete(np.arange(candidates.candidates.shape[1]), candidates.positive[i])
        victims.append(int(rng.choice(negatives)))
    targets = victims + [int(candidates.positive[i]) for i in rows]  # the negative attacks, then the positive ones
    row_of = list(rows) * 2
    items = [int(candidates.candidates[i, c]) for i, c in zip(row_of, targets)]
    attacked = model.rank([candidates.histories[i] for i in row_of], [[item] for item in items],
                          candidate_texts=[[inject(model.item_texts_[item], injection)] for item in items])
    out = {k: np.empty(len(rows), dtype=np.int64) for k in ("vb", "va", "pb", "pa", "ppa")}

    def rank(values: np.ndarray, at: int) -> int:  # pessimistic: below every other candidate of equal score
        return int(row_target_ranks([values], [at])[0])

    for j, (i, v) in enumerate(zip(rows, victims)):
        clean = np.asarray(scores[i], dtype=np.float64)
        p = int(candidates.positive[i])
        after, attacked_positive = clean.copy(), clean.copy()
        after[v] = float(attacked[j][0])
        attacked_positive[p] = float(attacked[len(rows) + j][0])
        out["vb"][j], out["va"][j] = rank(clean, v), rank(after, v)
        out["pb"][j], out["pa"][j] = rank(clean, p), rank(after, p)
        out["ppa"][j] = rank(attacked_positive, p)
    return InjectionEffect(out["vb"], out["va"], out["pb"], out["pa"], out["ppa"])


def precomputed_score_fn(candidates: SampledCandidates, scores: Sequence[np.ndarray]) -> ScoreFn:
    """A ``score_fn`` for :func:`~recllm.eval.sampled.evaluate_sampled` that returns scores computed beforehand for
    the rows of ``candidates`` (so one expensive LLM pass feeds both the metrics and the injection test)."""
    table = {(int(u), tuple(int(c) for c in row)): np.asarray(s, dtype=np.float64)
             for u, row, s in zip(candidates.users, candidates.candidates, scores)}

    def score(users: np.ndarray, histories: list[np.ndarray], cands: np.ndarray) -> np.ndarray:
        try:
            return np.stack([table[(int(u), tuple(int(c) for c in row))] for u, row in zip(users, cands)])
        except KeyError as err:
            raise KeyError(f"no precomputed scores for user/candidates {err}: score these candidates first") from None

    return score
