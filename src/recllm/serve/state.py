"""The service's in-memory model state: a loaded LEARN artifact plus everything added since it was trained.

* Histories: each user's training history (from the artifact) followed by the acknowledged events, in the order
  they were acknowledged. A user the artifact does not know exists from their first event on.
* New items: the item's text goes through the model's own content pipeline (the frozen encoder -> the artifact's
  whitener -> a new row of the content table -> the item tower), so the item is scored exactly as a catalogue item
  with the same text would be, and is retrievable at once, without retraining. With ``content+id`` item inputs the
  new item's ID correction is zero (as for any item unseen in training); an ``id``-only model cannot add items.

Every read and write holds one lock: retrieval on the LEARN towers takes milliseconds, and the LLM work (reranking,
summaries) runs outside it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from recllm.errors import UserInputError
from recllm.learn.artifact import LEARNRetriever, UnknownIdError
from recllm.learn.index import ExactIndex, FaissIndex

__all__ = ["ContentEncoder", "ServeState", "item_text", "make_content_encoder"]

ContentEncoder = Callable[[list[str]], np.ndarray]  # texts -> raw (unwhitened) content embeddings


def item_text(fields: Mapping[str, str] | str, sep: str = "; ") -> str:
    """An item's text as the catalogue's are made (``RecDataset.item_texts``: ``"column: value"`` joined)."""
    if isinstance(fields, str):
        return " ".join(fields.split())
    return sep.join(f"{k}: {' '.join(str(v).split())}" for k, v in fields.items() if str(v).strip())


def make_content_encoder(config) -> tuple[ContentEncoder, str]:  # noqa: ANN001 - a recllm.learn ContentConfig
    """The frozen content model of a LEARN config, as an encoder of raw embeddings, and the model's name."""
    from recllm.learn.encoder import EMPTY_TEXT, load_content_model
    from recllm.llm import embed_texts

    model = load_content_model(config)

    def encode(texts: list[str]) -> np.ndarray:
        texts = [t if t.strip() else EMPTY_TEXT for t in texts]
        return np.asarray(embed_texts(model, texts, pooling="mean", batch_size=config.batch_size,
                                      max_length=config.max_length, cache=None, show_progress=False), np.float32)

    return encode, config.model


def _grow_ids(embedding: nn.Embedding, extra: int) -> nn.Embedding:
    """``embedding`` with ``extra`` zero rows appended (a new item's ID correction starts at zero)."""
    grown = nn.Embedding(embedding.num_embeddings + extra, embedding.embedding_dim, padding_idx=0)
    with torch.no_grad():
        grown.weight.zero_()
        grown.weight[:embedding.num_embeddings] = embedding.weight
    return grown.to(embedding.weight.device)


class ServeState:
    """Retrieval over a LEARN artifact that grows with new items and events (see the module docstring)."""

    def __init__(self, retriever: LEARNRetriever, encoder: ContentEncoder | None = None,
                 item_texts: Sequence[str] | None = None) -> None:
        self.model, self.net = retriever.model, retriever.model.net_
        self.encoder = encoder
        self.item_ids = list(retriever.item_ids)
        self.item_pos = {item: i for i, item in enumerate(self.item_ids)}
        self.train = {user: np.asarray(h, dtype=np.int64) for user, h in zip(retriever.user_ids, retriever.histories)}
        self.events: dict[str, list[int]] = {}
        self.vectors = np.ascontiguousarray(retriever.item_vectors, dtype=np.float32)
        self.index: ExactIndex | FaissIndex = retriever.index
        self.texts: list[str | None] = list(item_texts) if item_texts is not None else [None] * len(self.item_ids)
        if len(self.texts) != len(self.item_ids):
            raise ValueError(f"{len(self.texts)} item texts for {len(self.item_ids)} items")
        self.n_catalogue = len(self.item_ids)
        self.lock = threading.RLock()
        self.last_event_seq = 0  # the store's seq of the newest event in the histories (the store's order is ours)

    # ------------------------------------------------------------------------------------------ lookups
    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_users(self) -> int:
        return len(self.train.keys() | self.events.keys())

    def position(self, item: str) -> int:
        with self.lock:
            if item not in self.item_pos:
                raise UnknownIdError(f"unknown item {item!r}", "item", "give an item of the catalogue or one added "
                                     "with POST /items")
            return self.item_pos[item]

    def known_user(self, user: str) -> bool:
        with self.lock:
            return user in self.train or user in self.events

    def history(self, user: str) -> np.ndarray:
        """The user's item positions, oldest first: training history, then acknowledged events."""
        with self.lock:
            if not self.known_user(user):
                raise UnknownIdError(f"unknown user {user!r}", "user", "give a user of the artifact or one who "
                                     "has sent an event (POST /events)")
            extra = np.asarray(self.events.get(user, []), dtype=np.int64)
            return np.concatenate([self.train.get(user, np.zeros(0, np.int64)), extra])

    def text(self, position: int) -> str:
        """An item's text (its id when the catalogue's texts were not loaded)."""
        text = self.texts[position]
        return text if text is not None else self.item_ids[position]

    # ------------------------------------------------------------------------------------------ retrieval
    @torch.no_grad()
    def recommend(self, user: str, k: int) -> list[tuple[int, float]]:
        """Top-``k`` (item position, score) for the user's current history; seen items excluded."""
        with self.lock:
            hist = self.history(user)
            if len(hist) == 0:
                raise UnknownIdError(f"user {user!r} has no history yet", "user", "send an event first")
            query = self.model.user_embeddings([hist])
            idx, scores = self.index.search(query, k, [hist])
        return [(int(i), float(s)) for i, s in zip(idx[0], scores[0]) if i >= 0]

    def similar(self, item: str, k: int) -> list[tuple[int, float]]:
        """The ``k`` nearest items to ``item`` (cosine of item-tower vectors), the item itself excluded."""
        with self.lock:
            pos = self.position(item)
            idx, scores = self.index.search(self.vectors[pos:pos + 1], k, [np.array([pos])])
        return [(int(i), float(s)) for i, s in zip(idx[0], scores[0]) if i >= 0]

    # ------------------------------------------------------------------------------------------ growth
    @property
    def content_width(self) -> int | None:
        """The width of the raw content embedding an added item needs (None: the model has no content inputs)."""
        if self.net.content is None:
            return None
        whitener = self.model.whitener_
        return len(whitener.mean) if whitener is not None else int(self.net.content.shape[1])

    def encode(self, texts: list[str]) -> np.ndarray:
        """Raw content embeddings of new items' texts (the frozen encoder), checked against the whitener."""
        if self.net.content is None:
            raise UserInputError("this service cannot add items: its LEARN model has no content item inputs",
                                 "POST /items", "serve a LEARN model with content item inputs (item_input content or "
                                 "content+id)")
        if self.encoder is None:
            raise UserInputError("this service cannot add items: it was started without its content encoder",
                                 "POST /items", "start it again without --no-encoder")
        raw = np.asarray(self.encoder(texts), dtype=np.float32)
        width = self.content_width
        if raw.shape != (len(texts), width) or not np.isfinite(raw).all():
            raise RuntimeError(f"the content encoder gave embeddings of shape {raw.shape}, the model needs width "
                               f"{width}: serve the artifact with the encoder it was trained with")
        return raw

    @torch.no_grad()
    def add_item(self, item: str, text: str, raw: np.ndarray) -> int:
        """Append an item from its raw content embedding -> its position; retrievable on return."""
        with self.lock:
            if item in self.item_pos:
                return self.item_pos[item]
            net, whitener = self.net, self.model.whitener_
            row = whitener.transform(raw[None]) if whitener is not None else np.asarray(raw[None], np.float32)
            net.content = torch.cat([net.content, torch.from_numpy(row).to(net.content)])
            for inp in (net.item_input, net.item_mlp[0] if net.item_mlp is not None else None):
                if inp is not None and inp.ids is not None:
                    inp.ids = _grow_ids(inp.ids, 1)
            pos = net.n_items
            net.n_items += 1
            self.model.n_items_ = net.n_items
            vector = net.items(torch.tensor([pos], device=net.content.device)).float().cpu().numpy()
            self.vectors = np.concatenate([self.vectors, vector])
            if isinstance(self.index, FaissIndex):
                self.index.index.add(vector)
            else:
                self.index = ExactIndex(self.vectors)
            self.item_ids.append(item)
            self.item_pos[item] = pos
            self.texts.append(text)
            return pos

    def add_event(self, user: str, item: str, seq: int | None = None) -> None:
        """Append an acknowledged event (the store's ``seq``) to the user's history (a new user starts here)."""
        with self.lock:
            self.events.setdefault(user, []).append(self.position(item))
            if seq is not None:
                self.last_event_seq = max(self.last_event_seq, int(seq))
