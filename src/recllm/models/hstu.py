"""HSTU (Zhai et al., ICML 2024, "Actions Speak Louder than Words"): pointwise aggregated attention.

Written after meta-recsys/generative-recommenders' research implementation (``SequentialTransductionUnitJagged``):
per block, ``U, V, Q, K = SiLU(LayerNorm(x) W)``; attention weights are ``SiLU(Q K^T + relative bias) / N`` (no
softmax; ``N`` is the padded sequence length), masked causally; the output is ``x + W_o(dropout(U * LayerNorm(A V)))``.
The relative bias is a learned function of the position offset and, when timestamps are given, of the
log-bucketed time gap. Trained like SASRec: by default a sampled softmax over L2-normalised embeddings with a
temperature (the paper's ML-1M recipe: 128 negatives, temperature 0.05), or full-softmax cross-entropy.

The :class:`HSTU` recommender uses the position bias only: :meth:`Recommender.score` receives item histories
without timestamps, so the time bias is available at block level (``HSTUBlock(..., timestamps=...)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from recllm.models.sasrec import FastDropout, SeqConfig, SequentialRecommender, fast_dropout
from recllm.utils import is_integer

if TYPE_CHECKING:
    from recllm.data.split import Split


@dataclass
class HSTUConfig(SeqConfig):
    """SASRec's settings plus HSTU's: per-head Q/K and U/V widths, temperature, time-bucket count."""

    n_heads: int = 1
    attention_dim: int = 64
    linear_dim: int = 64
    temperature: float = 0.05
    loss: str = "sampled"
    n_time_buckets: int = 128

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("attention_dim", "linear_dim", "n_time_buckets"):
            value = getattr(self, name)
            if not is_integer(value) or value < 1:
                raise ValueError(f"HSTUConfig.{name} must be a positive integer, got {value!r}")
            setattr(self, name, int(value))  # True is not a count; a NumPy integer as a plain int
        if not self.temperature > 0:
            raise ValueError(f"HSTUConfig.temperature must be positive, got {self.temperature}")


def time_buckets(gaps: torch.Tensor, n_buckets: int) -> torch.Tensor:
    """generative-recommenders' bucketing: ``floor(log(max(|gap|, 1)) / 0.301)`` clamped to [0, n_buckets]."""
    return (torch.log(gaps.abs().clamp(min=1).float()) / 0.301).long().clamp(0, n_buckets)


class HSTUBlock(nn.Module):
    """One HSTU layer over left-padded (B, L, dim) inputs; ``valid`` (B, L) marks real items."""

    def __init__(self, dim: int, n_heads: int, attention_dim: int, linear_dim: int, max_len: int,
                 dropout: float, n_time_buckets: int = 128, eps: float = 1e-6) -> None:
        super().__init__()
        self.dim, self.n_heads, self.attention_dim, self.linear_dim = dim, n_heads, attention_dim, linear_dim
        self.max_len, self.dropout, self.eps, self.n_time_buckets = max_len, dropout, eps, n_time_buckets
        width = 2 * linear_dim * n_heads + 2 * attention_dim * n_heads
        self.uvqk = nn.Parameter(torch.empty(dim, width).normal_(mean=0.0, std=0.02))
        self.o = nn.Linear(linear_dim * n_heads, dim)
        nn.init.xavier_uniform_(self.o.weight)
        self.rel_pos = nn.Parameter(torch.empty(2 * max_len - 1).normal_(mean=0.0, std=0.02))
        self.rel_time = nn.Parameter(torch.empty(n_time_buckets + 1).normal_(mean=0.0, std=0.02))

    def relative_bias(self, length: int, timestamps: torch.Tensor | None) -> torch.Tensor:
        """(1 or B, L, L) bias: learned per offset ``j - i``, plus a learned per time bucket when timestamps given.

        As in the reference, query ``i`` measures time from the next event (``ts[i+1]``, the request time; the
        last position uses its own time) back to key ``j``.
        """
        pos = torch.arange(length, device=self.rel_pos.device)
        bias = self.rel_pos[pos[None, :] - pos[:, None] + self.max_len - 1][None]
        if timestamps is not None:
            nxt = torch.cat([timestamps[:, 1:], timestamps[:, -1:]], dim=1)
            buckets = time_buckets(nxt[:, :, None] - timestamps[:, None, :], self.n_time_buckets)
            bias = bias + self.rel_time[buckets]
        return bias

    def forward(self, x: torch.Tensor, valid: torch.Tensor, timestamps: torch.Tensor | None = None) -> torch.Tensor:
        b, length, _ = x.shape
        if length > self.max_len:
            raise ValueError(f"sequence length {length} exceeds the block's max_len {self.max_len}")
        h = F.silu(F.layer_norm(x, (self.dim,), eps=self.eps) @ self.uvqk)
        hl, ha = self.linear_dim * self.n_heads, self.attention_dim * self.n_heads
        u, v, q, k = torch.split(h, [hl, hl, ha, ha], dim=-1)
        q = q.view(b, length, self.n_heads, self.attention_dim)
        k = k.view(b, length, self.n_heads, self.attention_dim)
        v = v.view(b, length, self.n_heads, self.linear_dim)
        scores = torch.einsum("bnhd,bmhd->bhnm", q, k) + self.relative_bias(length, timestamps)[:, None]
        causal = torch.ones(length, length, dtype=torch.bool, device=x.device).tril()
        keep = (causal[None] & valid[:, None, :])[:, None].to(scores.dtype)
        weights = F.silu(scores) / self.max_len * keep
        attn = torch.einsum("bhnm,bmhd->bnhd", weights, v).reshape(b, length, hl)
        gated = u * F.layer_norm(attn, (hl,), eps=self.eps)
        return x + self.o(fast_dropout(gated, self.dropout, self.training))


class HSTUNet(nn.Module):
    """Item-ID embeddings scaled by sqrt(dim) + learned positions, HSTU blocks, L2-normalised outputs."""

    def __init__(self, n_items: int, cfg: HSTUConfig) -> None:
        super().__init__()
        self.temperature = cfg.temperature
        self.scale = math.sqrt(cfg.dim)
        self.item_emb = nn.Embedding(n_items + 1, cfg.dim, padding_idx=0)
        nn.init.normal_(self.item_emb.weight, std=0.02)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
        self.pos = nn.Parameter(torch.randn(cfg.max_len, cfg.dim) * 0.02)
        self.drop = FastDropout(cfg.dropout)
        self.blocks = nn.ModuleList(
            HSTUBlock(cfg.dim, cfg.n_heads, cfg.attention_dim, cfg.linear_dim, cfg.max_len, cfg.dropout,
                      cfg.n_time_buckets)
            for _ in range(cfg.n_layers)
        )

    def forward(self, seq: torch.Tensor, timestamps: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) shifted item ids (0 = padding) -> (B, L, dim) unit-norm hidden states."""
        valid = seq > 0
        x = self.drop(self.item_emb(seq) * self.scale + self.pos[-seq.shape[1]:]) * valid[..., None]
        for block in self.blocks:
            x = block(x, valid, timestamps)
        return F.normalize(x, dim=-1)

    def item_vectors(self) -> torch.Tensor:
        return F.normalize(self.item_emb.weight[1:], dim=-1)

    @property
    def score_scale(self) -> float:
        """similarity(h, items) == score_scale * h @ items.T (the full-softmax loss relies on it)."""
        return 1.0 / self.temperature

    def similarity(self, hidden: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(M, d) x (K, d) -> (M, K) cosine similarities divided by the temperature."""
        return hidden @ items.T / self.temperature

    def pair_similarity(self, hidden: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (hidden * items).sum(-1) / self.temperature


class HSTU(SequentialRecommender):
    """HSTU over item-ID embeddings, trained with SASRec's loop (``loss="sampled"`` default, or ``"ce"``)."""

    config_class = HSTUConfig

    def _build(self, split: "Split") -> nn.Module:
        return HSTUNet(split.dataset.n_items, self.config)
