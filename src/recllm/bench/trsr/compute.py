"""What an LLM ranker's throughput is as a fraction of the machine's peak: FLOPs per ranked candidate and per
summarised user, counted on a few test users in passes of their own (no cache, untimed: the counter slows what it
counts), and the matmul peak of each model's precision at this process's threads, measured here.

The rates they divide come from the timed runs (``candidates_per_s``, ``summary_users_per_s``); the report shows
``rate x FLOPs per unit / peak``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recllm.trsr.pipeline import TRSR

COMPUTE_USERS = 2  # test users whose ranking and summaries are counted


def counted_compute(model: "TRSR", histories: list[Any], candidates: list[Any], users: int = COMPUTE_USERS
                    ) -> dict[str, float]:
    """GFLOPs per ranked candidate and (when the ranker reads summaries) per summarised user, counted on the first
    ``users`` test users, and the GFLOP/s matmul peak of the ranker's and the summariser's precision here. Empty
    when the work ran elsewhere (a Ray pool: nothing was counted in this process)."""
    from recllm.llm.hardware import count_flops, measure_matmul_flops
    from recllm.trsr.summarize import summarize_histories

    hist, cands = list(histories[:users]), list(candidates[:users])
    scored = sum(len(c) for c in cands)
    _, flops = count_flops(lambda: model.rank(hist, cands, use_cache=False))
    if flops <= 0 or scored == 0:
        return {}
    ranker = model.ranker_.lm_
    out = {"rank_gflop_per_candidate": flops / 1e9 / scored,
           "rank_peak_gflops": measure_matmul_flops(ranker.dtype, seconds=1.0, device=ranker.device) / 1e9}
    if model.config.use_summary:
        lm = model.summarizer_lm
        _, flops = count_flops(lambda: summarize_histories(lm, hist, model.item_texts_, model.config.summarizer,
                                                           cache=None, show_progress=False))
        if flops > 0:
            out["summary_gflop_per_user"] = flops / 1e9 / len(hist)
            out["summary_peak_gflops"] = measure_matmul_flops(lm.dtype, seconds=1.0, device=lm.device) / 1e9
    return out
