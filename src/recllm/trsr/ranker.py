"""The LLM recommender of LLM-TRSR: a Yes/No question per (user, candidate), score = P(Yes).

The prompt is the user's preference summary, the most recent items and the candidate's text; the model answers
"Yes" or "No". A user's candidates share everything up to the candidate's text, so the prompt is split there
(:func:`candidate_parts`): the prefix, then per candidate its text and the end of the turn. Scoring runs the prefix
once and reuses its KV cache for every candidate (``recllm.llm.scoring``), which makes ranking 21 or 50 candidates
per user affordable; training uses the same split, one group per user (``recllm.llm.sft_grouped``: the prefix runs
once, every candidate attends to it and to itself), so a user's 21 labelled candidates cost about one pass, and
training and scoring read the same tokens (prefix and continuation tokenized separately in both). LoRA fine-tuning
with the loss on the answer token, class-balanced by default (the lone positive of a group weighs as much as its
negatives together, the paper's 1:1 pairs); a candidate's score is the softmax over the "Yes" and "No" next-token
logits.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from recllm.errors import UserInputError
from recllm.llm.backbone import CausalLM, chat_prompt, trainable_copy
from recllm.llm.cache import DiskCache
from recllm.llm.precision import check_dtype
from recllm.llm.scoring import scoring_lm
from recllm.llm.sft import LoRAConfig, SFTConfig, sft_train
from recllm.llm.sft_grouped import GroupedExample
from recllm.trsr import prompts
from recllm.utils import check_flag, is_integer

__all__ = ["RankerConfig", "RankQuery", "LLMRanker", "prompt_parts", "candidate_parts", "answer_token_ids",
           "target_ranks_of", "scoring_lm", "ranker_sft_config", "score_cache_key", "label_weights", "CLASS_WEIGHTS"]

_MARK = "\x00CANDIDATE\x00"


def ranker_sft_config(**overrides) -> SFTConfig:
    """The ranker's fine-tuning schedule, the one place its defaults live (``overrides`` replace fields).

    The paper's learning rate 1e-4, one epoch; ``batch_size`` counts groups (one user's prompt and its candidates,
    :mod:`recllm.llm.sft_grouped`): a step is 2 groups, one in memory at a time (``grad_accum=2``), i.e. 42
    labelled candidates at 20 negatives per positive. The answer is learned without an end-of-text token (P(Yes) is
    read at the answer position); ``max_length`` bounds each candidate's prompt + answer.
    """
    defaults = dict(append_eos=False, epochs=1, learning_rate=1e-4, batch_size=1, grad_accum=2, max_length=512)
    return SFTConfig(**{**defaults, **overrides})


@dataclass(frozen=True)
class RankerConfig:
    """What the recommender prompt holds and how it is scored.

    ``n_recent`` most recent items are listed after the summary (the paper found 3 best); ``guarded`` quotes item
    text and tells the model to ignore instructions inside it; ``answers`` are the positive and negative answer
    strings (each must be one token); ``shared_prefix`` reuses each user's prefix KV cache across candidates.
    ``score_dtype`` is the scoring precision, "auto" by default (:mod:`recllm.llm.precision`); a half precision
    scores with a copy of the model whose answer logits are computed in full precision (:func:`scoring_lm`): about
    2-3x faster on CPUs with AMX, without the ties that half-precision logits cause.
    """

    n_recent: int = 3
    guarded: bool = False
    answers: tuple[str, str] = ("Yes", "No")
    shared_prefix: bool = True
    score_batch_size: int = 64
    score_dtype: str = "auto"

    def __post_init__(self) -> None:
        if not is_integer(self.n_recent) or self.n_recent < 0:
            raise ValueError(f"RankerConfig.n_recent must be an integer >= 0, got {self.n_recent!r}")
        if isinstance(self.answers, str) or not isinstance(self.answers, (tuple, list)):  # "YN" is not ("Y", "N")
            raise ValueError(f"RankerConfig.answers must be a pair of answer words such as ('Yes', 'No'), "
                             f"got {self.answers!r}")
        if (len(self.answers) != 2 or not all(isinstance(a, str) and a for a in self.answers)
                or self.answers[0] == self.answers[1]):
            raise ValueError(f"RankerConfig.answers must be two different non-empty strings, got {self.answers!r}")
        if not is_integer(self.score_batch_size) or self.score_batch_size < 1:
            raise ValueError(f"RankerConfig.score_batch_size must be a positive integer, got {self.score_batch_size!r}")
        for name in ("n_recent", "score_batch_size"):  # a NumPy integer as a plain int (the config is written as JSON)
            object.__setattr__(self, name, int(getattr(self, name)))
        check_dtype(self.score_dtype, "RankerConfig.score_dtype")
        for name in ("guarded", "shared_prefix"):
            check_flag(getattr(self, name), f"RankerConfig.{name}")


CLASS_WEIGHTS: tuple[str | None, ...] = ("balanced", None)


def check_class_weight(value: Any, where: str) -> None:
    """Raise unless ``value`` is one of :data:`CLASS_WEIGHTS`."""
    if value not in CLASS_WEIGHTS:
        raise ValueError(f"{where} must be 'balanced' or None, got {value!r}")


def label_weights(labels: Sequence[int], class_weight: str | None) -> list[float] | None:
    """Per-label loss weights of one group: "balanced" gives each class ``n / (2 * n_class)`` (scikit-learn's
    formula), so Yes and No weigh the same in total; None (or a group of one class) weighs all alike."""
    if class_weight is None:
        return None
    n_yes = sum(int(y) == 1 for y in labels)
    n_no = len(labels) - n_yes
    if n_yes == 0 or n_no == 0:
        return None
    return [len(labels) / (2 * (n_yes if int(y) == 1 else n_no)) for y in labels]


@dataclass(frozen=True)
class RankQuery:
    """One user's side of the prompt: the summary (``None``: no-summary ablation) and recent item texts."""

    summary: str | None
    recent: tuple[str, ...] = field(default_factory=tuple)


def prompt_parts(lm: CausalLM, query: RankQuery, config: RankerConfig) -> tuple[str, str]:
    """``(prefix, suffix)`` of the templated prompt: the full prompt for candidate text ``c`` is
    ``prefix + prompts.format_item(c, guarded) + suffix``, and ``suffix`` ends with the assistant header."""
    recent = query.recent[-config.n_recent:] if config.n_recent else ()
    head, tail = prompts.ranker_message_parts(query.summary, recent, config.guarded)
    system = prompts.SYSTEM_RANKER_GUARDED if config.guarded else prompts.SYSTEM_RANKER
    text = chat_prompt(lm, head + _MARK + tail, system=system)
    if text.count(_MARK) != 1:
        raise ValueError(f"the chat template of {lm.name!r} altered the candidate marker; cannot split the prompt")
    prefix, suffix = text.split(_MARK)
    return prefix, suffix


def candidate_parts(lm: CausalLM, query: RankQuery, candidates: Sequence[str], config: RankerConfig
                    ) -> tuple[str, list[str]]:
    """``(prefix, continuations)``: the prompt shared by ``query``'s candidates and, per candidate, the rest of its
    prompt (its formatted text and the end of the turn). Training groups and scoring both split prompts here."""
    prefix, suffix = prompt_parts(lm, query, config)
    return prefix, [prompts.format_item(c, config.guarded) + suffix for c in candidates]


def answer_token_ids(lm: CausalLM, config: RankerConfig) -> list[int]:
    """Token ids of the positive and negative answers; each answer must be a single token after the header."""
    ids = []
    for answer in config.answers:
        toks = lm.tokenizer(answer, add_special_tokens=False)["input_ids"]
        if len(toks) != 1:
            raise ValueError(f"answer {answer!r} is {len(toks)} tokens for {lm.name!r}; choose single-token answers "
                             "(RankerConfig.answers)")
        ids.append(int(toks[0]))
    return ids


def score_cache_key(lm: CausalLM, config: RankerConfig, shared_prefix: bool, prefix: str,
                    continuations: Sequence[str]) -> str:
    """The :class:`DiskCache` key of one user's P(Yes) scores: the scoring model's fingerprint (adapter included),
    the answers, guarding, prefix sharing, the prompt templates and the prompt text (``prefix`` and the candidates'
    ``continuations``, :func:`candidate_parts`). The one recipe of the local and the Ray scoring, so either reads
    what the other cached."""
    settings = {"answers": list(config.answers), "guarded": config.guarded, "shared_prefix": shared_prefix,
                "template": prompts.template_fingerprint()}
    return DiskCache.key(task="trsr-rank", model=lm.fingerprint, params=settings, prefix=prefix,
                         input=list(continuations))


def _training_record(folder: Path) -> tuple[float, dict[int, float]]:
    """Training seconds (all sessions) and validation score per epoch from an ``sft_train`` output folder's log."""
    from recllm.llm.checkpoints import read_log

    seconds, scores = 0.0, {}
    for record in read_log(folder):
        if "step" in record and "seconds" in record:
            seconds += float(record["seconds"])
        if record.get("event") == "epoch" and "eval" in record:
            scores[int(record["epoch"])] = float(record["eval"])
    return seconds, scores


def target_ranks_of(scores: Sequence[np.ndarray], target_positions: Sequence[int]) -> np.ndarray:
    """Pessimistic 1-based rank of each row's target among its candidates (ties rank the target lower): the one
    tie-broken rank of :func:`recllm.eval.ranking.row_target_ranks`."""
    from recllm.eval.ranking import row_target_ranks

    return row_target_ranks(scores, target_positions)


class LLMRanker:
    """Yes/No LLM recommender over candidate texts (scikit-learn semantics: ``fit`` returns self).

    ``fine_tune=False`` is the zero-shot ranker: ``fit`` only records the base model. Fine-tuning trains a LoRA
    adapter on a copy of ``lm`` in the training precision; ``lm`` itself is never changed. After ``fit``, ``lm_`` is
    the model used for scoring (see ``RankerConfig.score_dtype``), ``trained_lm_`` the model as trained, and
    ``train_seconds_`` the time spent. With ``cache`` each user's scores are stored under
    the model fingerprint (adapter weights included), prompt templates, settings and prompt text, together with the
    model time they took; ``score`` records ``score_seconds_`` (model time of the scored users, cached or not) and
    ``scored_candidates_`` of its last call.

    ``class_weight`` weighs each training answer's loss as scikit-learn's ``class_weight`` does: "balanced" (the
    default) gives a group's Yes and No labels equal total weight (with 1 positive and 20 negatives, the positive
    weighs 10.5 and each negative 0.525), the paper's 1:1 ratio of positive to negative pairs while every negative
    is still learned from; None weighs every label alike (then a group's loss is dominated by its negatives).
    """

    def __init__(self, lm: CausalLM, config: RankerConfig = RankerConfig(), sft: SFTConfig | None = None,
                 lora: LoRAConfig | None = None, fine_tune: bool = True,
                 output_dir: str | Path | None = None, cache: DiskCache | None = None,
                 show_progress: bool = True, class_weight: str | None = "balanced") -> None:
        check_class_weight(class_weight, "LLMRanker.class_weight")
        self.lm = lm
        self.config = config
        self.sft = sft
        self.lora = lora
        self.class_weight = class_weight
        self.fine_tune = fine_tune
        self.output_dir = output_dir
        self.cache = cache
        self.show_progress = show_progress

    # ------------------------------------------------------------------------------------------ training
    def groups(self, queries: Sequence[RankQuery], candidates: Sequence[Sequence[str]],
               labels: Sequence[Sequence[int]]) -> list[GroupedExample]:
        """The SFT groups: per query, its prompt prefix shared by its candidates, each continuation the candidate's
        part of the prompt (:func:`candidate_parts`, as scoring splits it) with answer "Yes" (label 1) or "No",
        weighted as ``class_weight`` says."""
        if not (len(queries) == len(candidates) == len(labels)):
            raise UserInputError(f"queries, candidate lists and label lists differ in length: {len(queries)}, "
                                 f"{len(candidates)}, {len(labels)}", "LLMRanker.fit",
                                 "give one candidate list and one label list per query")
        yes, no = self.config.answers
        out = []
        for g, (query, cands, labs) in enumerate(zip(queries, candidates, labels)):
            if isinstance(cands, str) or len(cands) == 0 or len(cands) != len(labs):
                raise UserInputError(f"{len(cands)} candidates and {len(labs)} labels", f"LLMRanker.fit group {g}",
                                     "give each query a non-empty list of candidate texts and one 0/1 label each")
            if any(int(y) not in (0, 1) for y in labs):
                raise UserInputError(f"labels must be 0 or 1, got {list(labs)!r:.60}", f"LLMRanker.fit group {g}")
            prefix, conts = candidate_parts(self.lm, query, cands, self.config)
            out.append(GroupedExample(prefix, [(c, yes if int(y) == 1 else no) for c, y in zip(conts, labs)],
                                      weights=label_weights(labs, self.class_weight)))
        return out

    def fit(self, queries: Sequence[RankQuery], candidates: Sequence[Sequence[str]],
            labels: Sequence[Sequence[int]],
            valid: tuple[Sequence[RankQuery], Sequence[Sequence[str]], Sequence[int]] | None = None) -> LLMRanker:
        """LoRA-fine-tune on labelled groups: per query, its candidate texts and a 0/1 label per candidate (one
        training group each, :meth:`groups`). ``sft`` defaults to :func:`ranker_sft_config`.

        ``valid = (queries, candidate lists, index of the true item in each list)`` selects the epoch with the best
        validation Recall@3 + Recall@5 + Recall@10 (the paper's criterion). After fitting, ``n_train_groups_`` and
        ``n_train_candidates_`` say how many groups and labelled candidates it trained on.
        """
        start = time.perf_counter()
        self.valid_scores_: dict[int, float] = {}
        if not self.fine_tune:
            self.trained_lm_ = self.lm
            self.lm_ = self._for_scoring(self.lm)
            self.train_seconds_ = 0.0
            self.n_train_groups_ = self.n_train_candidates_ = 0
            return self
        groups = self.groups(queries, candidates, labels)
        eval_fn: Callable[[CausalLM, int], float] | None = None
        if valid is not None:
            v_queries, v_cands, v_targets = valid

            def eval_fn(lm: CausalLM, epoch: int) -> float:
                # cached under the epoch's adapter: scoring the same rows with the trained ranker reads them back
                scores = self._score_with(self._for_scoring(lm), v_queries, v_cands, cache=self.cache)
                ranks = target_ranks_of(scores, v_targets)
                value = float(sum((ranks <= k).mean() for k in (3, 5, 10)))
                self.valid_scores_[epoch] = value
                return value

        sft = self.sft or ranker_sft_config()
        if not self.show_progress:  # the ranker's switch covers its fine-tune's bar (not part of the run's identity)
            sft = replace(sft, show_progress=False)
        # LoRA goes into a copy: the caller's model (perhaps also a summariser or a zero-shot ranker) stays as given
        trained = sft_train(trainable_copy(self.lm), groups, sft, self.lora or LoRAConfig(),
                            output_dir=self.output_dir, eval_fn=eval_fn)
        self.trained_lm_ = trained
        self.lm_ = self._for_scoring(trained)
        self.n_train_groups_ = len(groups)
        self.n_train_candidates_ = sum(len(g.continuations) for g in groups)
        self.train_seconds_ = time.perf_counter() - start
        if self.output_dir is not None:  # a resumed or reloaded run: its log has the full record
            logged_seconds, logged_scores = _training_record(Path(self.output_dir))
            self.train_seconds_ = max(self.train_seconds_, logged_seconds)
            self.valid_scores_ = {**logged_scores, **self.valid_scores_}
        return self

    # ------------------------------------------------------------------------------------------ scoring
    def _for_scoring(self, lm: CausalLM) -> CausalLM:
        return scoring_lm(lm, self.config.score_dtype, answer_token_ids(lm, self.config))

    def score(self, queries: Sequence[RankQuery], candidates: Sequence[Sequence[str]],
              shared_prefix: bool | None = None, use_cache: bool = True, reference: bool = False
              ) -> list[np.ndarray]:
        """P(Yes) for every candidate text of every query (one array per query, in candidate order).

        ``reference=True`` scores with the model as trained (``trained_lm_``) instead of the scoring copy, to measure
        what a half-precision ``score_dtype`` changes.
        """
        if not hasattr(self, "lm_"):
            raise RuntimeError("LLMRanker is not fitted: call fit(...) first (fine_tune=False for zero-shot)")
        seconds: list[float] = []
        out = self._score_with(self.trained_lm_ if reference else self.lm_, queries, candidates, shared_prefix,
                               cache=self.cache if use_cache else None, seconds=seconds)
        self.score_seconds_ = float(sum(seconds))
        self.scored_candidates_ = int(sum(len(c) for c in candidates))
        return out

    def _score_with(self, lm: CausalLM, queries: Sequence[RankQuery], candidates: Sequence[Sequence[str]],
                    shared_prefix: bool | None = None, cache: DiskCache | None = None,
                    seconds: list[float] | None = None) -> list[np.ndarray]:
        from recllm.llm.scoring import next_token_logprobs, yes_probability

        if len(queries) != len(candidates):
            raise ValueError(f"{len(queries)} queries but {len(candidates)} candidate lists")
        shared = self.config.shared_prefix if shared_prefix is None else shared_prefix
        token_ids = answer_token_ids(lm, self.config)
        iterator = zip(queries, candidates)
        if self.show_progress and len(queries) > 1:
            from tqdm.auto import tqdm

            iterator = tqdm(iterator, total=len(queries), desc="rank", unit="user")
        out = []
        for query, cands in iterator:
            if len(cands) == 0:
                out.append(np.empty(0))
                continue
            prefix, conts = candidate_parts(lm, query, cands, self.config)
            key = None
            if cache is not None:
                key = score_cache_key(lm, self.config, shared, prefix, conts)
                hit = cache.get(key)
                if hit is not None:
                    out.append(np.asarray(hit["p"], dtype=np.float64))
                    if seconds is not None:
                        seconds.append(float(hit["seconds"]))
                    continue
            began = time.perf_counter()
            logp = next_token_logprobs(lm, prefix, conts, token_ids, shared_prefix=shared,
                                       batch_size=self.config.score_batch_size)
            p = yes_probability(logp)  # softmax over the (Yes, No) log-probs
            took = time.perf_counter() - began
            if key is not None:
                cache.put(key, {"p": p.tolist(), "seconds": took})
            if seconds is not None:
                seconds.append(took)
            out.append(p)
        return out
