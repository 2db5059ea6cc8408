"""LEARN's training objectives: in-batch InfoNCE and the dense all-action loss (PinnerFormer).

The dense all-action loss asks the user state at a sampled history position to retrieve items the user engages
with *later* (not only the next one). Per user, up to ``n_history`` positions are drawn without replacement with
recency weights ``w_i = log(alpha + i (beta - alpha) / (N - 1))`` (i = 0 oldest .. N - 1 newest; alpha = 10,
beta = 10000 in the paper), and for each of them up to ``n_future`` later items within ``horizon`` steps.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def recency_weights(n: int, alpha: float = 10.0, beta: float = 10000.0) -> torch.Tensor:
    """``w_i = log(alpha + i (beta - alpha) / (n - 1))`` for i = 0..n-1 (a single position gets ``log(alpha)``)."""
    if n < 1:
        raise ValueError(f"recency_weights needs n >= 1, got {n}")
    if not 1.0 < alpha <= beta:
        raise ValueError(f"need 1 < alpha <= beta so every weight is positive, got alpha={alpha}, beta={beta}")
    i = torch.arange(n, dtype=torch.float64)
    return torch.log(alpha + i * (beta - alpha) / max(n - 1, 1))


def info_nce(queries: torch.Tensor, candidates: torch.Tensor, targets: torch.Tensor, temperature: float,
             exclude: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over queries of ``-log softmax(q . c / temperature)[target]``.

    ``candidates`` (C, d) are shared by all queries (M, d); ``targets`` (M,) index into them; ``exclude`` (M, C)
    marks candidates that must not act as negatives for a query (other positives of the same user); a query's
    own target is never excluded.
    """
    logits = queries @ candidates.T / temperature
    if exclude is not None:
        exclude = exclude.clone()
        exclude[torch.arange(len(targets), device=targets.device), targets] = False
        logits = logits.masked_fill(exclude, float("-inf"))
    return F.cross_entropy(logits, targets)


def negative_logsumexp(logits: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """Per row, ``log(sum over negatives of exp(logit))`` (-inf for a row without negatives)."""
    return torch.logsumexp(logits.masked_fill(~negatives, float("-inf")), dim=1)


def info_nce_pairs(logits: torch.Tensor, negatives: torch.Tensor, rows: torch.Tensor,
                   targets: torch.Tensor, neg_lse: torch.Tensor | None = None) -> torch.Tensor:
    """InfoNCE for many (query row, target column) pairs that share query rows, from one logits matrix.

    ``logits`` (Q, C) are already divided by the temperature; ``negatives`` (Q, C) marks the candidates that act
    as negatives for a row (a user's own items are not). The loss of a pair is
    ``-log(exp(s_t) / (exp(s_t) + sum_negatives exp(s_n)))``: the same as :func:`info_nce` with every other
    positive of the user excluded, but each row's normaliser is computed once for all its targets, so the dense
    all-action loss (10 targets per history position) costs no more than next-item prediction. Pass ``neg_lse``
    (:func:`negative_logsumexp`) to share it between several calls on the same logits.
    """
    if neg_lse is None:
        neg_lse = negative_logsumexp(logits, negatives)
    pos = logits[rows, targets]
    return (torch.logaddexp(pos, neg_lse[rows]) - pos).mean()


def _gumbel_top_k(log_weights: torch.Tensor, k: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``k`` indices per row without replacement, proportional to ``exp(log_weights)`` (-inf = never).

    Returns (indices, ok): ``ok`` is False where a row had fewer than ``k`` eligible entries.
    """
    k = min(k, log_weights.shape[-1])
    uniform = torch.rand(log_weights.shape, generator=gen, dtype=torch.float64).clamp_(1e-12, 1 - 1e-12)
    keys = log_weights.double().cpu() - torch.log(-torch.log(uniform))
    top = keys.topk(k, dim=-1)
    return top.indices.to(log_weights.device), torch.isfinite(top.values).to(log_weights.device)


def dense_action_pairs(rows: torch.Tensor, n_history: int = 10, n_future: int = 10, horizon: int | None = None,
                       alpha: float = 10.0, beta: float = 10000.0,
                       gen: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(row, history position, future position) triples for the dense all-action loss.

    ``rows`` (B, L + 1) are left-padded windows of shifted item ids (0 = padding). History positions are input
    positions ``0..L-1`` holding an item; the future of position i is ``i+1 .. min(i + horizon, L)``.
    """
    if n_history < 1 or n_future < 1:
        raise ValueError(f"n_history and n_future must be positive, got {n_history}, {n_future}")
    if horizon is not None and horizon < 1:
        raise ValueError(f"horizon must be positive or None, got {horizon}")
    gen = gen if gen is not None else torch.Generator().manual_seed(0)
    b, width = rows.shape
    length = width - 1
    valid = rows[:, :-1] > 0
    n_valid = valid.sum(dim=1)
    pos = torch.arange(length, device=rows.device)
    rank = pos[None, :] - (length - n_valid)[:, None]  # 0 = oldest item of the window
    denom = (n_valid - 1).clamp(min=1)[:, None].to(torch.float64)
    weights = torch.log(alpha + rank.clamp(min=0).to(torch.float64) * (beta - alpha) / denom)
    log_w = torch.where(valid, torch.log(weights), torch.full_like(weights, -math.inf))
    hist, hist_ok = _gumbel_top_k(log_w, n_history, gen)  # (B, H)
    j = torch.arange(width, device=rows.device)
    future = j[None, None, :] > hist[:, :, None]
    if horizon is not None:
        future &= j[None, None, :] <= hist[:, :, None] + horizon
    future &= hist_ok[:, :, None]
    log_f = torch.where(future, torch.zeros(future.shape, dtype=torch.float64, device=rows.device),
                        torch.full(future.shape, -math.inf, dtype=torch.float64, device=rows.device))
    fut, fut_ok = _gumbel_top_k(log_f.view(b * hist.shape[1], width), n_future, gen)
    fut, fut_ok = fut.view(b, hist.shape[1], -1), fut_ok.view(b, hist.shape[1], -1)
    ok = fut_ok & hist_ok[:, :, None]
    row_idx = torch.arange(b, device=rows.device)[:, None, None].expand_as(fut)
    hist_idx = hist[:, :, None].expand_as(fut)
    return row_idx[ok], hist_idx[ok], fut[ok]


# ---------------------------------------------------------------------------------------------- blocked form
from recllm.models.softmax import CHUNK_ELEMENTS, accumulation_dtype, rows_per_block  # noqa: E402 (one blocking)


class _BlockedPairsInfoNCE(torch.autograd.Function):
    """:func:`blocked_pairs_info_nce`: logits made a block of rows at a time, and again in the backward pass."""

    @staticmethod
    def _negative_logits(hidden, items, scale, member, window, block):  # (rows of block, C), non-negatives -inf
        logits = ((hidden[block] * scale) @ items.T).to(accumulation_dtype(hidden.dtype))  # scale on the small side
        return logits.masked_fill_(member[window[block]], float("-inf"))

    @staticmethod
    def forward(ctx, hidden, items, scale, member, window, pair_rows, pair_targets, weights, step):  # type: ignore[override]
        neg_lse = torch.empty(hidden.shape[0], dtype=accumulation_dtype(hidden.dtype), device=hidden.device)
        for start in range(0, hidden.shape[0], step):
            block = slice(start, start + step)
            neg_lse[block] = torch.logsumexp(
                _BlockedPairsInfoNCE._negative_logits(hidden, items, scale, member, window, block), dim=1)
        pos = (hidden[pair_rows].to(neg_lse.dtype) * items[pair_targets].to(neg_lse.dtype)).sum(-1) * scale
        ctx.save_for_backward(hidden, items, member, window, pair_rows, pair_targets, weights, neg_lse, pos)
        ctx.scale, ctx.step = scale, step
        return (weights * (torch.logaddexp(pos, neg_lse[pair_rows]) - pos)).sum()

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        hidden, items, member, window, pair_rows, pair_targets, weights, neg_lse, pos = ctx.saved_tensors
        scale, step = ctx.scale, ctx.step
        # d loss_p / d neg_lse = sigmoid(neg_lse - pos) = - d loss_p / d pos (0 for a row without negatives)
        pull = grad * weights * torch.sigmoid(neg_lse[pair_rows] - pos)
        per_row = torch.zeros_like(neg_lse).index_add_(0, pair_rows, pull)
        finite = torch.isfinite(neg_lse)
        lse = torch.where(finite, neg_lse, torch.zeros_like(neg_lse))
        per_row = torch.where(finite, per_row, torch.zeros_like(per_row))
        grad_hidden = torch.empty_like(hidden)
        grad_items = torch.zeros_like(items)
        for start in range(0, hidden.shape[0], step):
            block = slice(start, start + step)
            # d neg_lse / d logit = softmax over the row's negatives
            probs = _BlockedPairsInfoNCE._negative_logits(hidden, items, scale, member, window, block)
            probs = probs.sub_(lse[block, None]).exp_().to(hidden.dtype)
            row_factor = (per_row[block] * scale)[:, None].to(hidden.dtype)  # on the small sides of the products
            grad_hidden[block] = (probs @ items).mul_(row_factor)
            grad_items.addmm_(probs.T, hidden[block] * row_factor)
        push = (-pull * scale)[:, None].to(hidden.dtype)  # the target logit of each pair
        grad_hidden.index_add_(0, pair_rows, push * items[pair_targets])
        grad_items.index_add_(0, pair_targets, push * hidden[pair_rows])
        return grad_hidden, grad_items, None, None, None, None, None, None, None


def blocked_pairs_info_nce(hidden: torch.Tensor, items: torch.Tensor, scale: float, member: torch.Tensor,
                           window: torch.Tensor, pair_rows: torch.Tensor, pair_targets: torch.Tensor,
                           weights: torch.Tensor, chunk_elements: int = CHUNK_ELEMENTS) -> torch.Tensor:
    """``sum_p weights[p] * InfoNCE(pair p)`` of :func:`info_nce_pairs` without its (rows x candidates) logits:
    the logits ``scale * hidden @ items.T`` are made a block of rows at a time (and again in the backward pass),
    so memory traffic stays in the CPU's cache.

    ``hidden`` (Q, d) query rows; ``items`` (C, d) candidates; ``member`` (B, C) bool, candidate c occurs in window
    b (never a negative for that window's rows); ``window`` (Q,) each row's window; ``pair_rows`` / ``pair_targets``
    / ``weights`` (P,): each pair's query row, target candidate and weight. Equal to the reference form
    (:func:`negative_logsumexp` and :func:`info_nce_pairs` on the full logits) up to float rounding; with
    half-precision inputs the log-sum-exps are taken in float32 and the loss is float32."""
    if hidden.ndim != 2 or items.ndim != 2 or hidden.shape[1] != items.shape[1]:
        raise ValueError(f"hidden (Q, d) and items (C, d) must share d, got {tuple(hidden.shape)} and "
                         f"{tuple(items.shape)}")
    if member.shape[1:] != items.shape[:1] or window.shape != hidden.shape[:1]:
        raise ValueError(f"member must be (windows, {items.shape[0]}) and window ({hidden.shape[0]},), got "
                         f"{tuple(member.shape)} and {tuple(window.shape)}")
    if not pair_rows.shape == pair_targets.shape == weights.shape or pair_rows.ndim != 1:
        raise ValueError(f"pair_rows, pair_targets and weights must be (P,), got {tuple(pair_rows.shape)}, "
                         f"{tuple(pair_targets.shape)} and {tuple(weights.shape)}")
    return _BlockedPairsInfoNCE.apply(hidden, items, float(scale), member, window, pair_rows, pair_targets,
                                      weights.to(accumulation_dtype(hidden.dtype)),
                                      rows_per_block(items.shape[0], chunk_elements))
