"""Full-catalogue softmax cross-entropy without the (positions x catalogue) logits matrix.

Next-item models trained with a softmax over the whole catalogue (SASRec-CE, HSTU with ``loss="ce"``) score every
target position against every item. Done as ``F.cross_entropy(hidden @ items.T, target)``, a batch of 5,000
positions over a 10,000-item catalogue writes a 200 MB logits matrix, reads it for the softmax, and writes and reads
its gradient of the same size: on a CPU the step is bound by memory traffic, not arithmetic. Here the logits are
made a few rows at a time (a block small enough to stay in the CPU's cache), reduced to each row's log-sum-exp and
target logit, and made again in the backward pass to form the gradient block by block, as "cut cross-entropy"
(Wijmans et al., 2024) and Liger's fused linear cross-entropy do on GPUs. The value and gradients are those of
``F.cross_entropy`` on the full logits (up to float rounding); memory is O(rows + block).
"""

from __future__ import annotations

import torch

CHUNK_ELEMENTS = 1 << 19  # logits per block (2 MB in float32): about a core's L2 cache


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a blocked loss takes its log-sum-exps and softmax in: float32 for half-precision inputs (as
    ``F.cross_entropy`` under autocast), else the inputs' own."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def rows_per_block(n_candidates: int, chunk_elements: int = CHUNK_ELEMENTS) -> int:
    """How many rows of a (rows x ``n_candidates``) logits matrix make a block of about ``chunk_elements``."""
    if chunk_elements < 1:
        raise ValueError(f"chunk_elements must be positive, got {chunk_elements}")
    return max(1, chunk_elements // max(n_candidates, 1))


def _block_logits(hidden: torch.Tensor, items: torch.Tensor, scale: float,
                  exclude: torch.Tensor | None) -> torch.Tensor:
    logits = (hidden if scale == 1.0 else hidden * scale) @ items.T  # the scale on the small side
    if exclude is not None:
        logits.masked_fill_(exclude, float("-inf"))
    return logits


class _FullSoftmaxCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, items, target, scale, exclude, rows_per_block):  # type: ignore[override]
        lse = torch.empty(hidden.shape[0], dtype=accumulation_dtype(hidden.dtype), device=hidden.device)
        picked = torch.empty_like(lse)
        for start in range(0, hidden.shape[0], rows_per_block):
            block = slice(start, start + rows_per_block)
            logits = _block_logits(hidden[block], items, scale, exclude).to(lse.dtype)
            lse[block] = torch.logsumexp(logits, dim=1)
            picked[block] = logits.gather(1, target[block, None])[:, 0]
        ctx.save_for_backward(hidden, items, target, lse)
        ctx.scale, ctx.exclude, ctx.rows_per_block = scale, exclude, rows_per_block
        return (lse - picked).mean()

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        hidden, items, target, lse = ctx.saved_tensors
        scale, exclude, step = ctx.scale, ctx.exclude, ctx.rows_per_block
        grad_hidden = torch.empty_like(hidden)
        grad_items = torch.zeros_like(items)
        factor = grad * scale / hidden.shape[0]
        for start in range(0, hidden.shape[0], step):
            block = slice(start, start + step)
            h = hidden[block]
            # d loss / d logits of a block: softmax minus the one-hot target, over the rows' count
            probs = _block_logits(h, items, scale, exclude).to(lse.dtype).sub_(lse[block, None]).exp_()
            probs[torch.arange(len(h), device=h.device), target[block]] -= 1
            probs = probs.to(h.dtype)
            grad_hidden[block] = (probs @ items).mul_(factor)  # the constant factor on the small results
            grad_items.addmm_(probs.T, h, alpha=float(factor))
        return grad_hidden, grad_items, None, None, None, None


def full_softmax_cross_entropy(hidden: torch.Tensor, items: torch.Tensor, target: torch.Tensor, scale: float = 1.0,
                               exclude: torch.Tensor | None = None,
                               chunk_elements: int = CHUNK_ELEMENTS) -> torch.Tensor:
    """Mean over the rows of ``-log softmax(scale * hidden @ items.T)[target]``: hidden (M, d), items (K, d),
    target (M,) item indices; ``exclude`` (K,) bool marks items that are no class (their logit is -inf for every
    row). Equal to ``F.cross_entropy`` of the masked logits, in blocks of about ``chunk_elements`` logits; with
    half-precision inputs the softmax is taken in float32 and the loss is float32."""
    if hidden.ndim != 2 or items.ndim != 2 or hidden.shape[1] != items.shape[1]:
        raise ValueError(f"hidden (M, d) and items (K, d) must share d, got {tuple(hidden.shape)} and "
                         f"{tuple(items.shape)}")
    if target.shape != hidden.shape[:1]:
        raise ValueError(f"target must hold one item per row of hidden ({hidden.shape[0]}), got {tuple(target.shape)}")
    if exclude is not None and exclude.shape != items.shape[:1]:
        raise ValueError(f"exclude must hold one flag per item ({items.shape[0]}), got {tuple(exclude.shape)}")
    return _FullSoftmaxCrossEntropy.apply(hidden, items, target, float(scale), exclude,
                                          rows_per_block(items.shape[0], chunk_elements))
