"""LEARN's twin towers (the PCH, "preference comprehension" module) over frozen content embeddings.

Item input: a content adaptor (MLP over the whitened LLM embedding), an item-ID embedding (the ablation), or
their sum (content + ID; the ID part starts at zero, so an item never seen in training is scored by content).
User tower: the item inputs of the history -> a causal transformer -> a projection to a small unit-norm user
embedding. Item tower: ``"shared"`` (the paper's default) runs the user tower itself on the length-1 sequence of
the item; ``"mlp"`` is a separate MLP over the item input. Scores are dot products of unit vectors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recllm.models.sasrec import CausalTransformer, FastDropout

ITEM_INPUTS = ("content", "id", "content+id")
ITEM_TOWERS = ("shared", "mlp")


class ItemInput(nn.Module):
    """Shifted item ids (0 = padding) -> (…, dim) vectors from content, ID, or both."""

    def __init__(self, content: torch.Tensor | None, n_items: int, dim: int, kind: str, hidden: int,
                 dropout: float) -> None:
        super().__init__()
        if kind not in ITEM_INPUTS:
            raise ValueError(f"item input must be one of {ITEM_INPUTS}, got {kind!r}")
        if kind != "id" and content is None:
            raise ValueError(f"item input {kind!r} needs content embeddings")
        self.kind = kind
        self.adaptor: nn.Module | None = None
        self.ids: nn.Embedding | None = None
        if kind != "id":
            width = content.shape[1]
            self.adaptor = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), FastDropout(dropout),
                                         nn.Linear(hidden, dim), nn.LayerNorm(dim))
        if kind != "content":
            self.ids = nn.Embedding(n_items + 1, dim, padding_idx=0)
            if kind == "id":
                nn.init.normal_(self.ids.weight, std=0.02)
            else:
                nn.init.zeros_(self.ids.weight)  # ID corrections start at zero: cold items keep their content
            with torch.no_grad():
                self.ids.weight[0].zero_()

    def forward(self, ids: torch.Tensor, content: torch.Tensor | None) -> torch.Tensor:
        out = 0.0
        if self.adaptor is not None:
            padded = torch.cat([torch.zeros_like(content[:1]), content])  # row 0 = padding
            out = self.adaptor(padded[ids])
        if self.ids is not None:
            out = out + self.ids(ids)
        return out * (ids > 0)[..., None]


class LEARNNet(nn.Module):
    """User tower, item tower and the frozen content table (a buffer saved with the weights)."""

    def __init__(self, content: torch.Tensor | None, n_items: int, dim: int = 64, out_dim: int = 64,
                 n_layers: int = 2, n_heads: int = 2, max_len: int = 50, dropout: float = 0.2,
                 item_input: str = "content", item_tower: str = "shared", adaptor_hidden: int = 256) -> None:
        super().__init__()
        if item_tower not in ITEM_TOWERS:
            raise ValueError(f"item_tower must be one of {ITEM_TOWERS}, got {item_tower!r}")
        self.n_items, self.item_tower = n_items, item_tower
        self.register_buffer("content", content.float() if content is not None else None)
        self.item_input = ItemInput(content, n_items, dim, item_input, adaptor_hidden, dropout)
        self.tower = CausalTransformer(dim, n_layers, n_heads, max_len, dropout)
        self.proj = nn.Linear(dim, out_dim)
        self.item_mlp: nn.Module | None = None
        if item_tower == "mlp":
            self.item_mlp = nn.Sequential(
                ItemInput(content, n_items, dim, item_input, adaptor_hidden, dropout),
                nn.GELU(), nn.Linear(dim, out_dim),
            )

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """(B, L) shifted item ids -> (B, L, out_dim) unit-norm user states (position t: after item t)."""
        valid = seq > 0
        hidden = self.tower(self.item_input(seq, self.content), valid)
        return F.normalize(self.proj(hidden), dim=-1)

    def items(self, ids: torch.Tensor) -> torch.Tensor:
        """Unit-norm item embeddings of 0-based item indices ``ids`` (K,) -> (K, out_dim)."""
        shifted = ids + 1
        if self.item_mlp is not None:
            first, rest = self.item_mlp[0], self.item_mlp[1:]
            return F.normalize(rest(first(shifted, self.content)), dim=-1)
        single = shifted[:, None]
        hidden = self.tower(self.item_input(single, self.content), torch.ones_like(single, dtype=torch.bool))
        return F.normalize(self.proj(hidden[:, -1]), dim=-1)

    def item_vectors(self, batch_size: int = 4096) -> torch.Tensor:
        """Embeddings of the whole catalogue (n_items, out_dim)."""
        ids = torch.arange(self.n_items, device=self.proj.weight.device)
        return torch.cat([self.items(ids[s:s + batch_size]) for s in range(0, self.n_items, batch_size)])

    def similarity(self, hidden: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """A dot product (training's blocked loss, :func:`recllm.learn.losses.blocked_pairs_info_nce`, relies on it)."""
        return hidden @ items.T

    def pair_similarity(self, hidden: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (hidden * items).sum(-1)
