"""SASRec (Kang & McAuley, ICDM 2018): causal self-attention over item-ID embeddings.

Also home of :class:`SequentialRecommender`, the training loop shared by the sequence models (SASRec, HSTU and
LEARN's towers): sliding windows over each user's chronological training sequence, next-item loss at every
position, early stopping on validation NDCG@10 computed by the evaluation harness (ranked among the split's
validation candidates when it names them, e.g. a cold-start split's valid-new items: ``SeqConfig.valid_candidates``),
seeded and batched.

Losses: ``"ce"`` is full-softmax cross-entropy over the whole catalogue (the strong variant, as in RecBole and
most recent papers); ``"bce"`` is the original paper's binary cross-entropy with one sampled negative per
position; ``"sampled"`` is a sampled softmax with ``n_negatives`` uniform negatives shared by the batch.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recllm.models.base import Recommender, check_histories
from recllm.models.softmax import full_softmax_cross_entropy
from recllm.utils import check_device, is_integer, keeps_global_rng, resolve_device, seed_everything

if TYPE_CHECKING:
    from recllm.data.split import Split
    from recllm.distributed.checkpoint import EpochCheckpoint

LOSSES = ("ce", "bce", "sampled")
VALID_CANDIDATES = ("split", "all")  # SeqConfig.valid_candidates


@dataclass
class SeqConfig:
    """Hyper-parameters shared by the sequence models; validated on construction."""

    dim: int = 64
    n_layers: int = 2
    n_heads: int = 2
    max_len: int = 50
    dropout: float = 0.2
    loss: str = "ce"
    n_negatives: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 128
    max_epochs: int = 100
    patience: int = 5
    eval_every: int = 1
    time_budget: float | None = None
    eval_batch_size: int = 256
    seed: int = 0
    device: str = "auto"
    show_progress: bool = True
    checkpoint_dir: str | None = None  # resume a fit from here (recllm.distributed.checkpoint); None: no checkpoints
    checkpoint_every: int = 1  # epochs between checkpoints
    # what early stopping ranks each validation case among: "split": the items the split names for its validation
    # (Split.candidates("valid"): a cold-start split's valid-new items), the full catalogue when it names none;
    # "all": always the full catalogue
    valid_candidates: str = "split"

    losses: ClassVar[tuple[str, ...]] = LOSSES

    def __post_init__(self) -> None:
        positive = ("dim", "n_layers", "n_heads", "max_len", "n_negatives", "batch_size", "max_epochs",
                    "patience", "eval_every", "eval_batch_size", "checkpoint_every")
        for name in positive:
            value = getattr(self, name)
            if not is_integer(value) or value < 1:
                raise ValueError(f"{type(self).__name__}.{name} must be a positive integer, got {value!r}")
            setattr(self, name, int(value))  # True is not a count; a NumPy integer as a plain int
        if self.dim % self.n_heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by n_heads ({self.n_heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.loss not in self.losses:
            raise ValueError(f"loss must be one of {self.losses}, got {self.loss!r}")
        name = type(self).__name__
        for field_name, low in (("lr", 0.0), ("weight_decay", None)):
            value = getattr(self, field_name)
            if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                    or (value <= low if low is not None else value < 0)):
                need = "> 0" if low is not None else ">= 0"
                raise ValueError(f"{name}.{field_name} must be a finite number {need}, got {value!r}")
        if self.time_budget is not None and (isinstance(self.time_budget, bool) or not isinstance(
                self.time_budget, (int, float)) or not self.time_budget > 0):
            raise ValueError(f"time_budget must be positive seconds or None, got {self.time_budget}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)):
            raise ValueError(f"{name}.seed must be an integer, got {self.seed!r}")
        check_device(self.device, f"{name}.device")
        if self.valid_candidates not in VALID_CANDIDATES:
            raise ValueError(f"valid_candidates must be one of {VALID_CANDIDATES}, got {self.valid_candidates!r}")


# --------------------------------------------------------------------------------------------- building blocks
def fast_dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Inverted dropout with masks cut from full-range 64-bit random words (8 random bytes each).

    On CPU, ``torch.bernoulli`` draws one number per element and dominated training time (~40 ms per
    128 x 50 x 256 tensor); this draws one word per 8 elements (~4 ms in all). ``p`` is rounded to a multiple of
    1/256. Seeded by torch's global generator, like ``nn.Dropout``. On CUDA, ``F.dropout`` is used.
    """
    if not training or p <= 0.0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, training=True)
    n = x.numel()
    words = torch.empty((n + 7) // 8, dtype=torch.int64).random_(-(2**63), 2**63 - 1)
    threshold = min(255, max(1, round(p * 256)))
    keep = words.view(torch.uint8)[:n] >= threshold
    return x * keep.view(x.shape).to(x.dtype).mul_(256.0 / (256 - threshold))


class FastDropout(nn.Module):
    """``nn.Dropout`` with :func:`fast_dropout`'s cheap CPU masks."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fast_dropout(x, self.p, self.training)


def attention_mask(valid: torch.Tensor) -> torch.Tensor:
    """Boolean (B, 1, L, L) mask, True where query i may attend key j: j <= i and j is a real item.

    A padding query may attend itself only, so no row is empty (no NaN) and no real query ever sees padding.
    """
    length = valid.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=valid.device).tril()
    allowed = causal[None] & valid[:, None, :]
    allowed = allowed | torch.eye(length, dtype=torch.bool, device=valid.device)[None]
    return allowed[:, None]


class CausalSelfAttentionBlock(nn.Module):
    """A pre-LayerNorm transformer block (multi-head causal self-attention + GELU feed-forward).

    Dropout acts on the two residual branches (and, in :class:`CausalTransformer`, on the inputs); dropout on
    attention probabilities and inside the feed-forward layer is left out to keep CPU training fast (with
    torch's CPU random-number generation those masks cost more than the rest of the block).
    """

    def __init__(self, dim: int, n_heads: int, dropout: float, ff_mult: int = 4) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, ff_mult * dim), nn.GELU(), nn.Linear(ff_mult * dim, dim))
        self.drop = FastDropout(dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        b, length, dim = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, length, 3, self.n_heads, dim // self.n_heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        x = x + self.drop(self.proj(attn.transpose(1, 2).reshape(b, length, dim)))
        return x + self.drop(self.ff(self.ln2(x)))


class CausalTransformer(nn.Module):
    """Learned positions + a stack of causal blocks + final LayerNorm over left-padded (B, L, dim) inputs.

    Position ``L - 1`` is always the most recent item (left padding), so positions count back from "now".
    """

    def __init__(self, dim: int, n_layers: int, n_heads: int, max_len: int, dropout: float) -> None:
        super().__init__()
        self.pos = nn.Parameter(torch.randn(max_len, dim) * 0.02)
        self.blocks = nn.ModuleList(CausalSelfAttentionBlock(dim, n_heads, dropout) for _ in range(n_layers))
        self.ln = nn.LayerNorm(dim)
        self.drop = FastDropout(dropout)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        x = self.drop(x + self.pos[-x.shape[1]:]) * valid[..., None]
        allowed = attention_mask(valid)
        for block in self.blocks:
            x = block(x, allowed)
        return self.ln(x)


class SASRecNet(nn.Module):
    """Item-ID embeddings (index 0 = padding) shared between input and output, a causal transformer in between."""

    score_scale = 1.0  # similarity(h, items) == score_scale * h @ items.T (the full-softmax loss relies on it)

    def __init__(self, n_items: int, cfg: SeqConfig) -> None:
        super().__init__()
        self.item_emb = nn.Embedding(n_items + 1, cfg.dim, padding_idx=0)
        nn.init.normal_(self.item_emb.weight, std=0.02)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
        self.encoder = CausalTransformer(cfg.dim, cfg.n_layers, cfg.n_heads, cfg.max_len, cfg.dropout)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """(B, L) shifted item ids (0 = padding) -> (B, L, dim) hidden states."""
        return self.encoder(self.item_emb(seq), seq > 0)

    def item_vectors(self) -> torch.Tensor:
        return self.item_emb.weight[1:]

    def similarity(self, hidden: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(M, d) x (K, d) -> (M, K) scores."""
        return hidden @ items.T

    def pair_similarity(self, hidden: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Row-wise scores of hidden[i] with items[i]: (M,)."""
        return (hidden * items).sum(-1)


# --------------------------------------------------------------------------------------------- data helpers
def sliding_windows(sequences: list[np.ndarray], max_len: int) -> np.ndarray:
    """Left-padded windows of ``max_len + 1`` shifted ids (item index + 1) covering every transition once.

    A long sequence is cut from its end into windows that overlap by one item, so each (item -> next item)
    transition is a training target exactly once per epoch.
    """
    rows = []
    for seq in sequences:
        seq = np.asarray(seq, dtype=np.int64) + 1
        end = len(seq)
        while end >= 2:
            start = max(0, end - max_len - 1)
            row = np.zeros(max_len + 1, dtype=np.int64)
            row[max_len + 1 - (end - start):] = seq[start:end]
            rows.append(row)
            end = start + 1
    if not rows:
        return np.zeros((0, max_len + 1), dtype=np.int64)
    return np.stack(rows)


def left_pad(histories: list[np.ndarray], max_len: int) -> np.ndarray:
    """The last ``max_len`` items of each history, shifted by one and left-padded with 0: (n, max_len)."""
    out = np.zeros((len(histories), max_len), dtype=np.int64)
    for row, hist in enumerate(histories):
        tail = np.asarray(hist, dtype=np.int64)[-max_len:] + 1
        if len(tail):
            out[row, max_len - len(tail):] = tail
    return out


# --------------------------------------------------------------------------------------------- the trainer
class SequentialRecommender(Recommender):
    """Shared fit/score loop for next-item models; subclasses provide ``config_class`` and ``_build``.

    Learned state: ``net_`` (the torch module, best validation epoch), ``n_items_``, ``history_`` (one dict per
    epoch: loss, seconds, validation NDCG@10), ``best_epoch_``, ``epoch_seconds_`` (mean training time per epoch).
    """

    config_class: type[SeqConfig] = SeqConfig
    # the batch loss is a mean over target positions (under torchrun, ranks are weighted by their positions)
    loss_is_position_mean: ClassVar[bool] = True
    # True: under torchrun _batch_loss is already this rank's share of the whole batch's loss (it gathers what it
    # needs from the other ranks), so the ranks' losses add up to the one-process loss
    loss_is_global_share: ClassVar[bool] = False

    def __init__(self, config: SeqConfig | None = None, **params: Any) -> None:
        base = config if config is not None else self.config_class()
        if not isinstance(base, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(base).__name__}")
        self.config = dataclasses.replace(base, **params)

    @classmethod
    def _param_names(cls) -> list[str]:
        """The config's fields (``SASRec(dim=32)``) and any other constructor argument (LEARN's
        ``content_embeddings``); ``config`` itself is not one: its fields are."""
        own = [name for name in super()._param_names() if name != "config"]
        return sorted([f.name for f in dataclasses.fields(cls.config_class)] + own)

    def _get_param(self, name: str) -> Any:
        return getattr(self.config, name) if name in self._config_fields() else getattr(self, name)

    def _set_params(self, params: dict[str, Any]) -> None:
        fields = self._config_fields()
        config = {k: v for k, v in params.items() if k in fields}
        if config:  # validated as on construction
            self.config = dataclasses.replace(self.config, **config)
        super()._set_params({k: v for k, v in params.items() if k not in fields})

    @classmethod
    def _config_fields(cls) -> set[str]:
        return {f.name for f in dataclasses.fields(cls.config_class)}

    # -- subclass hooks -------------------------------------------------------------------------------------
    def _build(self, split: "Split") -> nn.Module:
        raise NotImplementedError

    def _training_rows(self, split: "Split") -> np.ndarray:
        seqs = split.sequences("train")
        return sliding_windows([seqs[u] for u in sorted(seqs)], self.config.max_len)

    def _batch_loss(self, rows: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """Next-item loss of a batch of windows (B, max_len + 1)."""
        cfg, net = self.config, self.net_
        inp, tgt = rows[:, :-1], rows[:, 1:]
        mask = inp > 0
        hidden = net(inp)[mask]
        target = tgt[mask]
        items = net.item_vectors()
        if cfg.loss == "ce":  # items the split holds out as new are no class to train against
            exclude = None if self.future_items_ is None else self.future_items_.to(hidden.device)
            return full_softmax_cross_entropy(hidden, items, target - 1, net.score_scale, exclude)
        pos = net.pair_similarity(hidden, items[target - 1])
        if cfg.loss == "bce":
            neg_ids = self.draw_items(target.shape, gen).to(hidden.device)
            neg = net.pair_similarity(hidden, items[neg_ids])
            keep = (neg_ids != target - 1).float()
            return (F.softplus(-pos) + keep * F.softplus(neg)).mean()
        neg_ids = self.draw_items((cfg.n_negatives,), gen).to(hidden.device)
        neg = net.similarity(hidden, items[neg_ids])
        neg = neg.masked_fill(neg_ids[None, :] == (target - 1)[:, None], float("-inf"))
        logits = torch.cat([pos[:, None], neg], dim=1)
        return F.cross_entropy(logits, torch.zeros(len(target), dtype=torch.long, device=hidden.device))

    def draw_items(self, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
        """Uniform negatives (item indices, on the CPU) among the items the split lets a model know
        (:meth:`~recllm.data.split.Split.known_items`): never a cold-start split's held-out new items. Where every
        item is known the draws are those of ``torch.randint(0, n_items)``."""
        picks = torch.randint(0, len(self.known_items_), shape, generator=gen, device="cpu")
        return self.known_items_[picks]

    # -- public API ------------------------------------------------------------------------------------------
    @keeps_global_rng  # seeded for its own numbers; the caller's random streams are left as they were
    def fit(self, split: "Split") -> "SequentialRecommender":
        from recllm.eval.ranking import evaluate_full_ranking

        from recllm.distributed.ddp import context

        cfg = self.config
        seed_everything(cfg.seed)
        dist = context(cfg.device)  # under torchrun: DDP, each rank a 1/N share of every batch
        self.device_ = dist.device if dist else resolve_device(cfg.device)
        self.n_items_ = split.dataset.n_items
        # a cold-start split's new items take no part in training, not even as negatives or softmax classes (that
        # would train an ID model to rank them below every known item before they exist)
        self.known_items_ = torch.as_tensor(split.known_items(), dtype=torch.long)
        self.future_items_ = None
        if len(self.known_items_) < self.n_items_:
            self.future_items_ = torch.ones(self.n_items_, dtype=torch.bool)
            self.future_items_[self.known_items_] = False
        rows = self._training_rows(split)
        if len(rows) == 0:
            raise ValueError(f"split {split.name!r} of {split.dataset.name!r} has no user with 2+ training items")
        # another fit's checkpoint is refused before the net is built (LEARN encodes the catalogue there)
        ckpt, fitted_on = self._checked_checkpoint(split, rows)
        self.net_ = self._build(split).to(self.device_)
        self._dist, self._ddp_net = dist, dist.wrap(self.net_) if dist else None
        self.step_losses_: list[float] = []
        valid_cases = split.eval_cases("valid")
        candidates = split.candidates("valid") if cfg.valid_candidates == "split" else None
        optimizer = torch.optim.AdamW(self.net_.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        rng = np.random.default_rng(cfg.seed)  # the batch order: the same on every rank
        gen = torch.Generator().manual_seed(cfg.seed)
        if dist is not None and dist.rank > 0:  # rank 0 draws what one process draws; the others their own numbers
            rank_seed = (cfg.seed * 1_000_003 + dist.rank) % 2 ** 63
            torch.manual_seed(rank_seed)  # dropout masks
            if getattr(cfg, "loss", None) != "sampled":  # the sampled softmax's negatives are the whole batch's
                gen.manual_seed(rank_seed)
        self.history_: list[dict[str, float]] = []
        best, best_state, since_best, self.best_epoch_ = -math.inf, None, 0, 0
        first = 1
        if ckpt is not None:  # resume: every rank loads rank 0's last epoch checkpoint
            from recllm.distributed.checkpoint import restore_trainer, trainer_state

            saved = ckpt.load()
            if saved is not None:
                done = restore_trainer(saved, self.net_, optimizer, rng, gen, fitted_on["settings"], str(ckpt.folder),
                                       rank=dist.rank if dist else 0)
                best, best_state, since_best = done["best"], done["best_state"], done["since_best"]
                self.best_epoch_, self.history_, self.step_losses_ = done["best_epoch"], done["history"], \
                    done["step_losses"]
                first = cfg.max_epochs + 1 if done["finished"] else done["epoch"] + 1
        started = time.perf_counter()
        progress = _progress(range(first, cfg.max_epochs + 1), cfg.show_progress, type(self).__name__)
        for epoch in progress:
            tick = time.perf_counter()
            loss = self._train_epoch(rows, optimizer, rng, gen)
            record = {"epoch": epoch, "loss": loss, "seconds": time.perf_counter() - tick}
            if epoch % cfg.eval_every == 0 or epoch == cfg.max_epochs:
                if len(valid_cases):
                    result = evaluate_full_ranking(self, valid_cases, ks=(10,), batch_size=cfg.eval_batch_size,
                                                   show_progress=False, candidates=candidates)
                    record["valid_ndcg@10"] = float(np.mean(result.per_user["ndcg@10"]))
                # no validation users: no figure in the history, and the last epoch is kept (each is "best")
                score = record.get("valid_ndcg@10", float(epoch))
                if score > best:
                    best, since_best, self.best_epoch_ = score, 0, epoch
                    best_state = copy.deepcopy(self.net_.state_dict())
                else:
                    since_best += 1
            self.history_.append(record)
            if hasattr(progress, "set_postfix"):
                progress.set_postfix(loss=f"{loss:.4f}", ndcg=f"{record.get('valid_ndcg@10', float('nan')):.4f}")
            stop = since_best >= cfg.patience or (
                cfg.time_budget is not None and time.perf_counter() - started > cfg.time_budget)
            if dist is not None:  # every rank stops at the same epoch (each one's clock decides the time budget)
                stop = dist.sum(float(stop)) > 0
            if ckpt is not None and ckpt.due(epoch, stop or epoch == cfg.max_epochs):
                ckpt.save(*trainer_state(epoch, stop or epoch == cfg.max_epochs, best, since_best, self.best_epoch_,
                                         self.history_, self.step_losses_, best_state, self.net_, optimizer, rng,
                                         gen, **fitted_on, dist=dist))
            if stop:
                break
        if best_state is not None:
            self.net_.load_state_dict(best_state)
        self.net_.eval()
        self.epoch_seconds_ = float(np.mean([r["seconds"] for r in self.history_]))
        self._dist = self._ddp_net = None  # the fitted model holds no process-group state
        return self

    def check_checkpoint(self, split: "Split", where: str = "checkpoint_dir") -> None:
        """Refuse, in one line and before any training work, a checkpoint in ``config.checkpoint_dir`` written by a
        fit with other settings, other data than ``split``'s training rows, or another number of processes (as
        :meth:`fit` does before it builds the net); no checkpoint folder: nothing to check."""
        self._checked_checkpoint(split, self._training_rows(split), where)

    def _fit_inputs(self, split: "Split") -> list[np.ndarray]:
        """What else than the split's rows the fit learns from (e.g. item content), as arrays a checkpoint's data
        fingerprint covers; none here."""
        return []

    def _checked_checkpoint(self, split: "Split", rows: np.ndarray, where: str = "checkpoint_dir"
                            ) -> tuple["EpochCheckpoint | None", dict[str, Any]]:
        """The fit's checkpoint folder (None without ``checkpoint_dir``) and what a checkpoint there must record:
        settings, data (``rows`` and the split's known items) and number of processes; another fit's is refused."""
        cfg = self.config
        if cfg.checkpoint_dir is None:
            return None, {}
        from recllm.distributed.checkpoint import EpochCheckpoint, data_fingerprint, fit_settings
        from recllm.distributed.ddp import world_size

        known = np.asarray(split.known_items(), dtype=np.int64)
        fitted_on = {"settings": fit_settings(cfg), "world_size": world_size(),
                     "data": data_fingerprint(split.dataset.n_users, split.dataset.n_items, rows, known,
                                              *self._fit_inputs(split))}
        ckpt = EpochCheckpoint.at(cfg.checkpoint_dir, cfg.checkpoint_every, where)
        ckpt.check_settings(where=where, **fitted_on)
        return ckpt, fitted_on

    def _train_epoch(self, rows: np.ndarray, optimizer: torch.optim.Optimizer, rng: np.random.Generator,
                     gen: torch.Generator) -> float:
        self.net_.train()
        order = rng.permutation(len(rows))
        dist = getattr(self, "_dist", None)
        total, count = 0.0, 0
        for start in range(0, len(order), self.config.batch_size):
            chosen = order[start:start + self.config.batch_size]
            if dist is None:
                batch = torch.from_numpy(rows[chosen]).to(self.device_)
                loss = self._batch_loss(batch, gen)
                reported = float(loss.detach())
            else:
                if len(chosen) < dist.world_size:  # too few rows left to give every rank one
                    break
                loss, reported = self._dist_batch_loss(rows[dist.part(chosen)], len(chosen), gen)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            self.step_losses_.append(reported)
            total += reported * len(chosen)
            count += len(chosen)
        return total / max(count, 1)

    def _dist_batch_loss(self, part: np.ndarray, global_rows: int, gen: torch.Generator) -> tuple[torch.Tensor, float]:
        """This rank's loss, weighted so that DDP's average of the ranks' gradients is the gradient of the loss
        over the whole batch, and that whole-batch loss. The weights are the ranks' shares of the loss's terms:
        target positions for the position-mean losses of this class, rows otherwise."""
        dist, plain = self._dist, self.net_
        batch = torch.from_numpy(part).to(self.device_)
        own = float((batch[:, :-1] > 0).sum()) if self.loss_is_position_mean else float(len(batch))
        every = dist.sum(own) if self.loss_is_position_mean else float(global_rows)
        self.net_ = self._ddp_net  # forward through DDP so its gradient hooks run
        try:
            loss = self._batch_loss(batch, gen)
        finally:
            self.net_ = plain
        if self.loss_is_global_share:  # the ranks' losses add up to the whole batch's; DDP averages the gradients
            return loss * dist.world_size, dist.sum(float(loss.detach()))
        reported = dist.sum(float(loss.detach()) * own) / every
        return loss * (own * dist.world_size / every), reported

    @torch.no_grad()
    def user_vectors(self, histories: list[np.ndarray]) -> torch.Tensor:
        """The hidden state after the last history item for each history: (n, dim)."""
        self._check_fitted()
        check_histories(histories, self.n_items_)
        self.net_.eval()
        seq = torch.from_numpy(left_pad(histories, self.config.max_len)).to(self.device_)
        return self.net_(seq)[:, -1]

    @torch.no_grad()
    def score(self, users: np.ndarray, histories: list[np.ndarray]) -> np.ndarray:
        self._check_fitted()
        check_histories(histories, self.n_items_, users)
        self.net_.eval()
        items = self.net_.item_vectors()
        out = np.empty((len(histories), self.n_items_), dtype=np.float32)
        step = self.config.eval_batch_size
        for start in range(0, len(histories), step):
            hidden = self.user_vectors(histories[start:start + step])
            out[start:start + len(hidden)] = self.net_.similarity(hidden, items).float().cpu().numpy()
        return out

    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(split) first")


def _progress(iterable: Any, show: bool, desc: str) -> Any:
    if not show:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, unit="epoch")


class SASRec(SequentialRecommender):
    """SASRec over item-ID embeddings; ``SASRec(loss="ce")`` (default, full softmax) or ``loss="bce"``."""

    config_class = SeqConfig

    def _build(self, split: "Split") -> nn.Module:
        return SASRecNet(split.dataset.n_items, self.config)
