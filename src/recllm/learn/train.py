"""The LEARN recommender: frozen content embeddings -> twin towers, trained contrastively.

Training rows are SASRec's sliding windows over each user's chronological training sequence. Each step adds two
in-batch InfoNCE terms over the same candidate set (the distinct target items of the batch, each embedded once by
the item tower): next-item prediction at every position, and the dense all-action loss (user state at recency-
weighted history positions -> items engaged with later). A user's own items are never used as its negatives.
With ``catalogue_negatives`` > 0 each step also draws that many items uniformly from the whole catalogue into the
candidate set (mixed negative sampling), so items that no training user engaged with are pushed down too.
Early stopping on validation NDCG@10 through the evaluation harness, as for the baselines.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from recllm.errors import UserInputError
from recllm.learn.encoder import ContentConfig, Whitener, item_content_embeddings
from recllm.learn.losses import blocked_pairs_info_nce, dense_action_pairs
from recllm.learn.model import ITEM_INPUTS, ITEM_TOWERS, LEARNNet
from recllm.models.sasrec import SeqConfig, SequentialRecommender
from recllm.utils import is_finite_number, is_integer

if TYPE_CHECKING:
    from recllm.data.split import Split


@dataclass
class LEARNConfig(SeqConfig):
    """Tower sizes, item-tower variant, loss weights and the content encoder; validated on construction."""

    loss: str = "infonce"
    lr: float = 3e-3
    item_input: str = "content"
    item_tower: str = "shared"
    out_dim: int = 64
    adaptor_hidden: int = 256
    temperature: float = 0.2  # 0.05 sat on a popularity-level plateau for ~6 epochs on ML-100K (validation)
    dense_weight: float = 1.0
    n_history: int = 10
    n_future: int = 10
    horizon: int | None = None
    alpha: float = 10.0
    beta: float = 10000.0
    catalogue_negatives: int = 0  # negatives per batch drawn uniformly from the catalogue (0: in-batch only)
    content: ContentConfig = field(default_factory=ContentConfig)

    losses: ClassVar[tuple[str, ...]] = ("infonce",)

    def __post_init__(self) -> None:
        if isinstance(self.content, dict):
            unknown = sorted(set(self.content) - {f.name for f in fields(ContentConfig)})
            if unknown:
                raise ValueError(f"LEARNConfig.content has unknown field(s) {unknown}; ContentConfig's are "
                                 f"{[f.name for f in fields(ContentConfig)]}")
            self.content = ContentConfig(**self.content)
        if not isinstance(self.content, ContentConfig):
            raise ValueError(f"LEARNConfig.content must be a ContentConfig or a dict of its fields, "
                             f"got {type(self.content).__name__}")
        super().__post_init__()
        if self.item_input not in ITEM_INPUTS:
            raise ValueError(f"LEARNConfig.item_input must be one of {ITEM_INPUTS}, got {self.item_input!r}")
        if self.item_tower not in ITEM_TOWERS:
            raise ValueError(f"LEARNConfig.item_tower must be one of {ITEM_TOWERS}, got {self.item_tower!r}")
        for name in ("out_dim", "adaptor_hidden", "n_history", "n_future"):
            if not is_integer(getattr(self, name)) or getattr(self, name) < 1:
                raise ValueError(f"LEARNConfig.{name} must be a positive integer, got {getattr(self, name)!r}")
            setattr(self, name, int(getattr(self, name)))  # True is not a count; a NumPy integer as a plain int
        if not is_integer(self.catalogue_negatives) or self.catalogue_negatives < 0:
            raise ValueError(f"LEARNConfig.catalogue_negatives must be a non-negative integer, "
                             f"got {self.catalogue_negatives!r}")
        self.catalogue_negatives = int(self.catalogue_negatives)
        if self.horizon is not None and (not is_integer(self.horizon) or self.horizon < 1):
            raise ValueError(f"LEARNConfig.horizon must be a positive integer or None, got {self.horizon!r}")
        if self.horizon is not None:
            self.horizon = int(self.horizon)
        for name in ("temperature", "dense_weight", "alpha", "beta"):
            if not is_finite_number(getattr(self, name)):
                raise ValueError(f"LEARNConfig.{name} must be a finite number, got {getattr(self, name)!r}")
        if not self.temperature > 0 or self.dense_weight < 0:
            raise ValueError(f"need temperature > 0 and dense_weight >= 0, got {self.temperature}, {self.dense_weight}")
        if not 1.0 < self.alpha <= self.beta:
            raise ValueError(f"need 1 < alpha <= beta for the recency weights, got {self.alpha}, {self.beta}")


class LEARN(SequentialRecommender):
    """LEARN (arXiv 2405.03988): ``LEARN(item_input="content", item_tower="shared").fit(split)``.

    ``content_embeddings`` (n_items, width), optional: raw item-text embeddings in catalogue order, to reuse one
    encoding across several models; by default they are computed from ``split.dataset.item_texts()`` with
    ``config.content`` (cached on disk). Learned state adds ``whitener_`` and ``item_vectors_`` (n_items, out_dim).
    """

    config_class = LEARNConfig
    config: LEARNConfig
    loss_is_position_mean = False
    loss_is_global_share = True  # under torchrun _batch_loss returns this rank's share of the whole batch's loss

    def __init__(self, config: LEARNConfig | None = None, content_embeddings: np.ndarray | None = None,
                 **params: Any) -> None:
        super().__init__(config, **params)  # (LEARNConfig reads a content dict as ContentConfig's fields)
        self.content_embeddings = content_embeddings

    def _content(self, split: "Split") -> torch.Tensor | None:
        cfg = self.config
        if cfg.item_input == "id":
            self.whitener_ = None
            return None
        n_items = split.dataset.n_items
        if self.content_embeddings is not None:
            raw = np.asarray(self.content_embeddings, dtype=np.float32)
            if raw.ndim != 2 or raw.shape[0] != n_items:
                raise ValueError(f"content_embeddings has shape {raw.shape}; expected ({n_items}, width) in catalogue order")
            if not np.isfinite(raw).all():  # whitening failed in eigh; with whiten="none" every score was NaN
                row = int(np.flatnonzero(~np.isfinite(raw).all(axis=1))[0])
                raise UserInputError(f"content_embeddings holds NaN or infinite values (item row {row})",
                                     "LEARN(content_embeddings=...)", "pass finite embeddings in catalogue order")
            # whitening statistics from the items the split lets a model know (not its held-out new items)
            self.whitener_ = Whitener.fit(raw[split.known_items()], cfg.content.whiten, cfg.content.whiten_dim)
            return torch.from_numpy(self.whitener_.transform(raw))
        emb, self.whitener_ = item_content_embeddings(split.dataset, cfg.content, fit_rows=split.known_items(),
                                                      show_progress=cfg.show_progress)
        return torch.from_numpy(emb)

    def _build(self, split: "Split") -> nn.Module:
        cfg = self.config
        return self.build_net(self._content(split), split.dataset.n_items, cfg)

    def _fit_inputs(self, split: "Split") -> list[np.ndarray]:
        """The item content a checkpoint must have been trained on: the embeddings given, or the item texts they
        are computed from (the encoder is a setting) -- another content resumed a net holding the old table."""
        if self.config.item_input == "id":
            return []
        if self.content_embeddings is not None:
            return [np.asarray(self.content_embeddings, dtype=np.float32)]
        texts = "\x00".join(str(t) for t in split.dataset.item_texts())
        return [np.frombuffer(texts.encode("utf-8", "surrogatepass"), dtype=np.uint8)]

    @staticmethod
    def build_net(content: torch.Tensor | None, n_items: int, cfg: LEARNConfig) -> LEARNNet:
        return LEARNNet(content, n_items, dim=cfg.dim, out_dim=cfg.out_dim, n_layers=cfg.n_layers,
                        n_heads=cfg.n_heads, max_len=cfg.max_len, dropout=cfg.dropout, item_input=cfg.item_input,
                        item_tower=cfg.item_tower, adaptor_hidden=cfg.adaptor_hidden)

    def _batch_loss(self, rows: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        cfg, net = self.config, self.net_
        inp = rows[:, :-1]
        hidden = net(inp)
        mask = inp > 0
        # one query per real position (its user state); the dense pairs reuse these rows
        query_of = torch.full(inp.shape, -1, dtype=torch.long, device=rows.device)
        query_of[mask] = torch.arange(int(mask.sum()), device=rows.device)
        query_rows = torch.nonzero(mask, as_tuple=True)[0]
        next_targets = rows[:, 1:][mask] - 1
        if cfg.dense_weight > 0:
            b, i, j = dense_action_pairs(rows, cfg.n_history, cfg.n_future, cfg.horizon, cfg.alpha, cfg.beta, gen)
            dense_queries, dense_targets = query_of[b, i], rows[b, j] - 1
        else:
            dense_queries = dense_targets = torch.empty(0, dtype=torch.long, device=rows.device)
        # mixed negative sampling (Yang et al., WWW 2020): in-batch candidates only ever contain items that some
        # user engaged with, so items nobody trains on are never pushed down; uniform catalogue draws reach them
        sampled = (self.draw_items((cfg.catalogue_negatives,), gen).to(rows.device)  # never a held-out new item
                   if cfg.catalogue_negatives else next_targets[:0])
        n_next, n_dense = len(next_targets), len(dense_targets)
        own = torch.cat([next_targets, dense_targets])
        candidates, total_next, total_dense = self._batch_candidates(own, sampled, n_next, n_dense)
        unique, inverse = torch.unique(torch.cat([own, candidates]), return_inverse=True)
        # next-item pairs (mean) + dense_weight x dense pairs (mean), each query's negatives the candidates not in
        # its own window (a user's own items are never its negatives); scores are net.similarity / temperature
        weights = torch.cat([torch.full((n_next,), 1.0 / total_next),
                             torch.full((n_dense,), cfg.dense_weight / max(total_dense, 1))]).to(rows.device)
        return blocked_pairs_info_nce(
            hidden[mask], net.items(unique), 1.0 / cfg.temperature, _membership(rows, unique), query_rows,
            torch.cat([torch.arange(n_next, device=rows.device), dense_queries]), inverse[:n_next + n_dense],
            weights)

    def _batch_candidates(self, own: torch.Tensor, sampled: torch.Tensor, n_next: int, n_dense: int
                          ) -> tuple[torch.Tensor, int, int]:
        """The batch's other candidates and its numbers of next-item and dense pairs. In one process: the sampled
        catalogue negatives and this batch's counts. Under torchrun every rank's share of the batch is a candidate
        for every query, as in one process, and the pair counts are the whole batch's (so each rank's loss is its
        share of the one-process loss); the catalogue negatives are rank 0's draw, one draw a batch as in one
        process."""
        dist = getattr(self, "_dist", None)
        if dist is None:
            return sampled, n_next, n_dense
        import torch.distributed as torch_dist

        gathered: list[Any] = [None] * dist.world_size
        torch_dist.all_gather_object(gathered, (own.cpu(), sampled.cpu(), n_next, n_dense))
        others = [g[0] for r, g in enumerate(gathered) if r != dist.rank] + [gathered[0][1]]
        return (torch.cat(others).to(own.device), sum(g[2] for g in gathered), sum(g[3] for g in gathered))

    def fit(self, split: "Split") -> "LEARN":
        super().fit(split)
        with torch.no_grad():
            self.item_vectors_ = self.net_.item_vectors().float().cpu().numpy()
        return self

    def user_embeddings(self, histories: list[np.ndarray]) -> np.ndarray:
        """Unit-norm user embeddings (n, out_dim) after each history (item indices, oldest first)."""
        return self.user_vectors(histories).float().cpu().numpy()


def _membership(rows: torch.Tensor, unique: torch.Tensor) -> torch.Tensor:
    """(B, C) bool: candidate c (an item of ``unique``, sorted) occurs in window b."""
    items = rows - 1
    pos = torch.searchsorted(unique, items.clamp(min=0))
    hit = (rows > 0) & (pos < len(unique))
    hit &= unique[pos.clamp(max=len(unique) - 1)] == items
    member = torch.zeros(rows.shape[0], len(unique), dtype=torch.bool, device=rows.device)
    r = torch.arange(rows.shape[0], device=rows.device)[:, None].expand_as(rows)
    member[r[hit], pos[hit]] = True
    return member


def learn_config_dict(config: LEARNConfig) -> dict[str, Any]:
    """JSON-able config (nested content config included)."""
    return dataclasses.asdict(config)
