"""The LLM-TRSR side of the service: users' recurrent summaries kept current, and the Yes/No reranker.

Summaries. A user's summary covers the complete blocks of their history (``SegmentConfig.block_size`` items,
boundaries counted from the first item, as in ``recllm.trsr.segment``); the newest, partial block reaches the
ranker as its "recent items". The first time a user's summary is needed it is made by the recurrent summariser over
the history's complete blocks (the newest ``max_blocks``); afterwards, whenever acknowledged events complete a new
block, ONE recurrent step updates it from the old summary and the new block (:func:`recllm.trsr.summarize.
recurrent_update`) — the history is never summarised again. Updates run on one background thread fed by a queue,
so ``POST /events`` returns as soon as the event is durable; ``queue_depth`` is exported in /metrics. Each stored
summary carries a ``version`` (1 for the first, +1 per update) and how many history items it ``covered``.

Reranking. The top ``candidates`` items of the LEARN retrieval are scored by the trained TRSR ranker with the
*guarded* prompt (item text quoted and declared data, whatever the run was trained with; a run trained with
``--guarded --inject-fraction`` is the hardened ranker meant for this), sharing the user's prompt prefix across
candidates. They are reordered by P(Yes), ties keeping the retrieval order — the fused order of the two-stage
protocol of ``recllm bench trsr`` (``recllm.bench.trsr.run.Reranked``: the reranked top keeps the retriever's set
and is ordered by P(Yes)).
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from recllm.serve.storage import EventStore, StoredSummary

__all__ = ["SummaryKeeper", "LLMReranker", "MAX_RERANKS"]

MAX_RERANKS = 4  # rerank=llm requests in flight (one ranks, the rest wait) before the service answers 503


class SummaryKeeper:
    """Users' recurrent summaries in ``store``, updated block by block on a background thread."""

    def __init__(self, lm: Any, config: Any, store: EventStore, history: Callable[[str], np.ndarray],
                 text: Callable[[int], str], on_error: Callable[[BaseException], None] | None = None,
                 on_update: Callable[[], None] | None = None) -> None:
        self.lm, self.store, self.history, self.text = lm, store, history, text
        self.config = dataclasses.replace(config, mode="recurrent")
        self.block = config.segment.block_size
        self.on_error, self.on_update = on_error, on_update  # on_update: called after each recurrent step
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._pending: set[str] = set()  # queued, not started: an update that starts later reads the newest history
        self._running: set[str] = set()  # being updated now: a block completed meanwhile needs another update
        self._lm_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._worker = threading.Thread(target=self._run, name="recllm-summaries", daemon=True)
        self._worker.start()

    @property
    def queue_depth(self) -> int:
        """Users waiting for a summary update or being updated."""
        with self._state_lock:
            return len(self._pending | self._running)

    def _texts(self, items: np.ndarray) -> list[str]:
        return [self.text(int(i)) for i in items]

    def current(self, user: str) -> StoredSummary:
        """The user's stored summary; made now (synchronously) the first time it is needed."""
        found = self.store.get_summary(user)
        if found is not None:
            return found
        with self._lm_lock:
            found = self.store.get_summary(user)
            if found is not None:
                return found
            from recllm.trsr.summarize import summarize_histories

            hist = self.history(user)
            covered = (len(hist) // self.block) * self.block
            text = ""
            if covered:
                texts = self._texts(hist[:covered])  # the history re-indexed 0..covered-1
                text = summarize_histories(self.lm, [np.arange(covered)], texts, self.config,
                                           show_progress=False).texts[0]
            summary = StoredSummary(user, text or "", 1 if covered else 0, covered, time.time())
            self.store.put_summary(summary)
            return summary

    def notify(self, user: str) -> None:
        """An event of ``user`` was acknowledged: queue an update when a new block is complete."""
        summary = self.store.get_summary(user)
        covered = summary.covered if summary is not None else 0
        if len(self.history(user)) - covered >= self.block:
            with self._state_lock:
                if user in self._pending:
                    return
                self._pending.add(user)
            self._queue.put(user)

    def update(self, user: str) -> StoredSummary:
        """Bring the user's summary up to date, one recurrent step per newly completed block."""
        from recllm.trsr.summarize import recurrent_update

        summary = self.current(user)
        with self._lm_lock:
            summary = self.store.get_summary(user) or summary
            while len(hist := self.history(user)) - summary.covered >= self.block:  # events arrive meanwhile
                block = hist[summary.covered:summary.covered + self.block]
                text = recurrent_update(self.lm, summary.text, self._texts(block), self.config)
                summary = StoredSummary(user, text, summary.version + 1, summary.covered + self.block, time.time())
                self.store.put_summary(summary)
                if self.on_update is not None:
                    self.on_update()
        return summary

    def _run(self) -> None:
        while True:
            user = self._queue.get()
            if user is None:
                return
            with self._state_lock:  # from now on a newly completed block queues the user again (see notify)
                self._pending.discard(user)
                self._running.add(user)
            try:
                self.update(user)
            except Exception as exc:  # noqa: BLE001 - the worker must survive one user's failure
                if self.on_error is not None:
                    self.on_error(exc)
            finally:
                with self._state_lock:
                    self._running.discard(user)

    def wait(self, timeout: float = 30.0) -> bool:
        """Wait until no update is pending (tests, shutdown) -> whether the queue drained in time."""
        end = time.monotonic() + timeout
        while self.queue_depth and time.monotonic() < end:
            time.sleep(0.01)
        return self.queue_depth == 0

    def stop(self) -> None:
        self._queue.put(None)


class LLMReranker:
    """The TRSR ranker over a user's summary, recent items and candidate texts (guarded prompt)."""

    def __init__(self, ranker_lm: Any, trsr_config: Any, summaries: SummaryKeeper,
                 text: Callable[[int], str]) -> None:
        from recllm.trsr.ranker import LLMRanker

        self.config = trsr_config
        ranker_config = dataclasses.replace(trsr_config.ranker, guarded=True)
        self.ranker = LLMRanker(ranker_lm, ranker_config, fine_tune=False, show_progress=False).fit([], [], [])
        self.summaries, self.text = summaries, text
        self._lock = threading.Lock()

    def rerank(self, user: str, history: np.ndarray, candidates: list[tuple[int, float]]
               ) -> tuple[list[tuple[int, float, float]], StoredSummary | None]:
        """``candidates`` (position, retrieval score) reordered by P(Yes) -> ((position, score, P(Yes)), summary)."""
        from recllm.trsr.ranker import RankQuery

        summary = self.summaries.current(user) if self.config.use_summary else None
        n_recent = self.ranker.config.n_recent
        recent = tuple(self.text(int(i)) for i in history[-n_recent:]) if n_recent else ()
        query = RankQuery(summary.text if summary is not None else None, recent)
        with self._lock:
            p = self.ranker.score([query], [[self.text(c) for c, _ in candidates]], use_cache=False)[0]
        order = np.argsort(-np.asarray(p, dtype=np.float64), kind="stable")
        return [(candidates[j][0], candidates[j][1], float(p[j])) for j in order], summary
