"""LEARN artifacts: a folder written atomically and loaded with one call, ``recllm.learn.load(folder)``.

Layout (no pickles)::

    config.json              format version, LEARNConfig (content encoder included), data set, index kind
    model.safetensors        the towers' weights (with the frozen, whitened content table)
    item_embeddings.npy      unit-norm item vectors (n_items, out_dim), catalogue order
    item_ids.json, user_ids.json   model index -> external id
    histories.safetensors    every user's chronological item indices (flat ``items`` + ``offsets``)
    whitener.safetensors     the content whitening (mean, projection), to encode new items the same way
    index.faiss              only for the faiss index kinds
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from safetensors.torch import save_file

from recllm.errors import UserInputError
from recllm.learn.index import INDEX_KINDS, ExactIndex, FaissIndex, build_index
from recllm.learn.train import LEARN, LEARNConfig
from recllm.models.base import check_k
from recllm.outputs import check_output_dir, publish_output_dir
from recllm.run_folder import RunFolder
from recllm.utils import write_json_atomic

if TYPE_CHECKING:
    from recllm.data.dataset import RecDataset
    from recllm.learn.encoder import Whitener

FORMAT = "recllm-learn/1"
OUTPUT_KIND, OUTPUT_VERSION = "learn-artifact", 1  # recllm.outputs marker: which folders ``save`` may replace


def user_histories(dataset: "RecDataset") -> list[np.ndarray]:
    """Every user's chronological item indices (all interactions), in user index order."""
    from recllm.data.dataset import ITEM, TIME, USER

    frame = dataset.interactions.assign(_u=dataset.user_index(dataset.interactions[USER]),
                                        _i=dataset.item_index(dataset.interactions[ITEM]))
    frame = frame.sort_values(["_u", TIME], kind="stable")
    grouped = {int(u): g["_i"].to_numpy(np.int64) for u, g in frame.groupby("_u", sort=True)}
    return [grouped.get(u, np.zeros(0, np.int64)) for u in range(dataset.n_users)]


def trained_on(meta: dict[str, Any]) -> str:
    """What the artifact with config ``meta`` was trained on, as ``--data`` names it: its data folder's absolute
    path (``recllm learn train --data FOLDER``), else its data set's name."""
    return meta.get("data_folder") or meta.get("dataset", "")


# every file save() may write (an artifact whose marker predates file lists may hold only these)
ARTIFACT_FILES = ("config.json", "model.safetensors", "item_embeddings.npy", "item_ids.json", "user_ids.json",
                  "histories.safetensors", "whitener.safetensors", "index.faiss")


def save(model: LEARN, folder: str | os.PathLike[str], dataset: "RecDataset", index: str = "exact") -> Path:
    """Write a fitted LEARN model, its item embeddings, id maps, histories and index into ``folder``.

    The folder is built beside the target and renamed into place, so readers never see a half-written artifact.
    ``folder`` must be absent, empty or an artifact written by :func:`save` (recllm.outputs rules); anything
    else is refused with :class:`recllm.errors.UserInputError` and left untouched.
    """
    if not hasattr(model, "item_vectors_"):
        raise RuntimeError("LEARN model is not fitted: call fit(split) before saving it")
    if index not in INDEX_KINDS:
        raise ValueError(f"index must be one of {INDEX_KINDS}, got {index!r}")
    if dataset.n_items != model.n_items_:
        raise ValueError(f"data set {dataset.name!r} has {dataset.n_items} items, the model {model.n_items_}")
    target = check_output_dir(folder, OUTPUT_KIND, OUTPUT_VERSION, known=ARTIFACT_FILES)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write_json_atomic(tmp / "config.json", {
            "format": FORMAT, "config": dataclasses.asdict(model.config), "dataset": dataset.name,
            "data_folder": dataset.info.get("data_folder"),  # read_folder's: where item texts are found again
            "n_items": model.n_items_, "n_users": dataset.n_users, "index": index,
            "best_epoch": model.best_epoch_,
        })
        state = {k: v.detach().cpu().contiguous() for k, v in model.net_.state_dict().items()}
        save_file(state, str(tmp / "model.safetensors"))
        np.save(tmp / "item_embeddings.npy", model.item_vectors_.astype(np.float32))
        write_json_atomic(tmp / "item_ids.json", [str(i) for i in dataset.items["item_id"]])
        write_json_atomic(tmp / "user_ids.json", [str(u) for u in dataset.users["user_id"]])
        hists = user_histories(dataset)
        offsets = np.r_[0, np.cumsum([len(h) for h in hists])].astype(np.int64)
        flat = np.concatenate(hists) if hists else np.zeros(0, np.int64)
        save_file({"items": torch.from_numpy(flat), "offsets": torch.from_numpy(offsets)}, str(tmp / "histories.safetensors"))
        if model.whitener_ is not None:
            w = model.whitener_
            save_file({"mean": torch.from_numpy(np.ascontiguousarray(w.mean)),
                       "projection": torch.from_numpy(np.ascontiguousarray(w.projection))},
                      str(tmp / "whitener.safetensors"))
        if index != "exact":
            build_index(model.item_vectors_, index).save(tmp / "index.faiss")
        publish_output_dir(tmp, target, OUTPUT_KIND, OUTPUT_VERSION, known=ARTIFACT_FILES)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return target


class UnknownIdError(UserInputError, KeyError):
    """A user or item id that is not in the artifact (a KeyError too, for callers that catch one)."""

    __str__ = Exception.__str__  # KeyError's would quote the message


class LEARNRetriever:
    """A loaded LEARN artifact: top-k items for known users or new histories, and similar items."""

    def __init__(self, model: LEARN, item_ids: list[str], user_ids: list[str], histories: list[np.ndarray],
                 index: ExactIndex | FaissIndex) -> None:
        self.model, self.item_ids, self.user_ids = model, item_ids, user_ids
        self.histories, self.index = histories, index
        self._item_pos = {item: i for i, item in enumerate(item_ids)}
        self._user_pos = {user: u for u, user in enumerate(user_ids)}

    @property
    def item_vectors(self) -> np.ndarray:
        return self.model.item_vectors_

    def item_position(self, item: str) -> int:
        if item not in self._item_pos:
            raise UnknownIdError(f"item {item!r} is not in this artifact's catalogue",
                                 f"{len(self.item_ids)} items, e.g. {', '.join(map(repr, self.item_ids[:3]))}",
                                 "give an item id the artifact was trained on (listed in its item_ids.json)")
        return self._item_pos[item]

    def history(self, user: str) -> np.ndarray:
        if user not in self._user_pos:
            raise UnknownIdError(f"user {user!r} is not in this artifact",
                                 f"{len(self.user_ids)} users, e.g. {', '.join(map(repr, self.user_ids[:3]))}",
                                 "give a user id the artifact was trained on (listed in its user_ids.json), or "
                                 "use recommend_for_history(items) for a new user")
        return self.histories[self._user_pos[user]]

    def recommend_for_history(self, items: list[str], k: int = 10, filter_seen: bool = True) -> list[tuple[str, float]]:
        """Top-``k`` (item id, score) for a history given as item ids, oldest first."""
        k = check_k(k)
        hist = np.asarray([self.item_position(i) for i in items], dtype=np.int64)
        query = self.model.user_embeddings([hist])
        idx, scores = self.index.search(query, k, [hist] if filter_seen else None)
        return [(self.item_ids[i], float(s)) for i, s in zip(idx[0], scores[0]) if i >= 0]

    def recommend(self, user: str, k: int = 10, filter_seen: bool = True) -> list[tuple[str, float]]:
        """Top-``k`` (item id, score) for a known user after the full stored history; seen items removed."""
        k = check_k(k)
        hist = self.history(user)
        return self.recommend_for_history([self.item_ids[i] for i in hist], k, filter_seen)

    def similar_items(self, item: str, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` nearest items (cosine of item-tower embeddings), the item itself excluded."""
        k = check_k(k)
        pos = self.item_position(item)
        idx, scores = self.index.search(self.item_vectors[pos:pos + 1], k, [np.array([pos])])
        return [(self.item_ids[i], float(s)) for i, s in zip(idx[0], scores[0]) if i >= 0]


REQUIRED = ("config.json", "model.safetensors", "item_embeddings.npy", "item_ids.json", "user_ids.json",
            "histories.safetensors")


def _checked_config(folder: str | os.PathLike[str]) -> tuple[RunFolder, dict[str, Any]]:
    """The artifact folder's checked reader and its ``config.json`` (one line naming the file when it is missing,
    not JSON, or another format's)."""
    from recllm.outputs import read_marker

    ours = (read_marker(folder) or {}).get("kind") == OUTPUT_KIND  # a damaged artifact is retrained in place
    run = RunFolder(folder, "LEARN artifact", f"retrain it with `recllm learn train --out {folder}`" if ours else
                    "give a folder written by `recllm learn train --out DIR`, or train one into a new folder")
    run.require("config.json")
    meta = run.json("config.json")
    run.check(meta.get("format") == FORMAT, "config.json",
              f"has format {meta.get('format')!r}, not {FORMAT!r} (another program's or another recllm's folder)")
    return run, meta


def artifact_config(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """An artifact's ``config.json``, checked as :func:`load` checks it, without loading the model."""
    return _checked_config(folder)[1]


def load(folder: str | os.PathLike[str], device: str = "cpu") -> LEARNRetriever:
    """Load an artifact written by :func:`save` (one call; no language model is loaded).

    Every file is checked first: a missing, unreadable, cut or inconsistent one (e.g. ``item_ids.json`` shorter
    than the embedding table) raises :class:`recllm.errors.UserInputError` naming the folder and the file.
    """
    run, meta = _checked_config(folder)
    n_items, kind = meta.get("n_items"), meta.get("index", "exact")
    run.check(isinstance(n_items, int) and not isinstance(n_items, bool) and n_items >= 1, "config.json",
              f"has n_items {n_items!r}, not a positive whole number")
    run.check(kind in INDEX_KINDS, "config.json", f"has index {kind!r}, not one of {INDEX_KINDS}")
    run.check(isinstance(meta.get("config"), dict), "config.json", "lacks the LEARN settings ('config')")
    run.require(*REQUIRED, *(("index.faiss",) if kind != "exact" else ()))
    try:
        cfg = LEARNConfig(**{**meta["config"], "device": device, "show_progress": False})
    except (TypeError, ValueError) as exc:
        raise run.error("config.json", f"holds LEARN settings this recllm cannot use ({exc})") from None
    model = LEARN(cfg)
    state = run.safetensors("model.safetensors")
    content = state.get("content")
    run.check(content is None or len(content) == n_items, "model.safetensors",
              f"does not match config.json (a content table of {0 if content is None else len(content)} items, "
              f"not {n_items})")
    try:
        model.net_ = LEARN.build_net(content, n_items, cfg)
        model.net_.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise run.error("model.safetensors", f"does not match config.json ({RunFolder.reason(exc)})") from None
    model.net_.to(device).eval()
    model.n_items_, model.device_, model.best_epoch_ = n_items, device, meta.get("best_epoch", 0)
    model.item_vectors_ = _item_vectors(run, n_items)
    model.whitener_ = _whitener(run)
    item_ids = _ids(run, "item_ids.json", n_items, f"the {n_items} items of config.json and item_embeddings.npy")
    histories, n_users = _histories(run, n_items)
    user_ids = _ids(run, "user_ids.json", n_users, f"the {n_users} users of histories.safetensors")
    index: ExactIndex | FaissIndex = ExactIndex(model.item_vectors_)
    if kind != "exact":
        try:
            index = FaissIndex.load(run.path("index.faiss"), kind)
        except (RuntimeError, OSError, ValueError) as exc:
            raise run.error("index.faiss", f"cannot be read as a faiss index, it is cut short or not one "
                                           f"({RunFolder.reason(exc)})") from None
        run.check(len(index) == n_items, "index.faiss", f"holds {len(index)} vectors, not the {n_items} items")
        held = index.stored_vectors()  # NaN here would rank silently; another artifact's index would answer wrongly
        run.check(held is None or np.array_equal(held, model.item_vectors_.astype(np.float32)), "index.faiss",
                  "does not hold the vectors of item_embeddings.npy (NaN, or another artifact's index)")
    return LEARNRetriever(model, item_ids, user_ids, histories, index)


def _item_vectors(run: RunFolder, n_items: int) -> np.ndarray:
    vectors = run.npy("item_embeddings.npy")
    run.check(vectors.ndim == 2 and np.issubdtype(vectors.dtype, np.floating), "item_embeddings.npy",
              f"holds a {vectors.dtype} array of shape {vectors.shape}, not a float table (items x dimensions)")
    run.check(len(vectors) == n_items, "item_embeddings.npy",
              f"has {len(vectors)} rows but config.json says {n_items} items")
    return vectors


def _whitener(run: RunFolder) -> "Whitener | None":
    if not run.path("whitener.safetensors").is_file():
        return None
    from recllm.learn.encoder import Whitener

    w = run.safetensors("whitener.safetensors")
    run.check({"mean", "projection"} <= set(w), "whitener.safetensors",
              f"lacks 'mean' or 'projection' (has {sorted(w)})")
    mean, projection = w["mean"].numpy(), w["projection"].numpy()
    run.check(mean.ndim == 1 and projection.ndim == 2 and projection.shape[0] == len(mean), "whitener.safetensors",
              f"has mean {mean.shape} and projection {projection.shape}, which do not fit together")
    return Whitener(mean, projection)


def _histories(run: RunFolder, n_items: int) -> tuple[list[np.ndarray], int]:
    """Every user's item indices, from the flat ``items`` and ``offsets`` (user u: items[offsets[u]:offsets[u+1]])."""
    name = "histories.safetensors"
    hist = run.safetensors(name)
    run.check({"items", "offsets"} <= set(hist), name, f"lacks 'items' or 'offsets' (has {sorted(hist)})")
    flat, offsets = hist["items"].numpy(), hist["offsets"].numpy()
    run.check(flat.ndim == 1 and offsets.ndim == 1 and len(offsets) >= 1, name, "is not flat item and offset lists")
    run.check(offsets[0] == 0 and offsets[-1] == len(flat) and bool(np.all(np.diff(offsets) >= 0)), name,
              f"has offsets that do not cut its {len(flat)} items into histories")
    run.check(len(flat) == 0 or (flat.min() >= 0 and flat.max() < n_items), name,
              f"refers to items outside the catalogue of {n_items}")
    return [flat[offsets[u]:offsets[u + 1]] for u in range(len(offsets) - 1)], len(offsets) - 1


def _ids(run: RunFolder, name: str, expected: int, what: str) -> list[str]:
    ids = run.json(name, list)
    run.check(len(ids) == expected, name, f"lists {len(ids)} ids, not {what}")
    run.check(all(isinstance(i, str) for i in ids), name, "holds ids that are not strings")
    run.check(len(set(ids)) == len(ids), name, "lists an id twice")
    return ids
