"""Epoch checkpoints of the sequence models' trainer (SASRec, HSTU, LEARN's towers): resume after a restart.

Every ``every`` epochs (and at the last one) the trainer's whole state -- weights, optimizer, the best epoch's
weights, validation history, and every random generator it draws from -- goes into one folder, written by rank 0
only and published atomically (:func:`recllm.distributed.ddp.write_atomically`). A rerun with the same folder (and,
under torchrun, the same number of processes) loads it on every rank and continues with the next epoch, ending
with the weights of an uninterrupted run. A checkpoint records what its fit trained on -- the settings
(:func:`fit_settings`), the data (:func:`data_fingerprint`) and the number of processes -- and a fit that differs in
any of them is refused in one line (the folder is left as it is).
"""

from __future__ import annotations

import dataclasses
import glob
import json
import logging
import math
import os
import pickle
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recllm.distributed.ddp import write_atomically
from recllm.errors import UserInputError
from recllm.utils import sha256_arrays

log = logging.getLogger(__name__)

__all__ = ["EpochCheckpoint", "data_fingerprint", "fit_settings", "trainer_state", "restore_trainer"]

STATE_FILE, TENSORS_FILE = "trainer_state.json", "trainer_state.pt"
CHECKPOINT_KEYS = {"settings", "epoch", "numpy_rng"}  # in every trainer_state.json :func:`trainer_state` writes


@dataclass(frozen=True)
class EpochCheckpoint:
    """The checkpoint folder of one fit, refreshed every ``every`` epochs."""

    folder: Path
    every: int = 1

    @classmethod
    def at(cls, folder: str | os.PathLike[str], every: int = 1, where: str = "checkpoint_dir") -> "EpochCheckpoint":
        """The checkpoint in ``folder``: new, empty, or an earlier fit's (never a folder holding anything else);
        ``where`` names the setting in the error (e.g. a command-line option)."""
        path = Path(folder).expanduser()
        if not path.exists():
            return cls(path, every)
        names = sorted(p.name for p in path.iterdir()) if path.is_dir() else None
        # what save() publishes is exactly these files (a Hugging Face checkpoint-N/ also has a trainer_state.json,
        # and the first save would replace it whole)
        ours = names is not None and set(names) <= {STATE_FILE, TENSORS_FILE} and (not names or STATE_FILE in names)
        if ours and names:
            meta = _read_state(path, where)  # a damaged checkpoint: one line now, before the data and models load
            ours = CHECKPOINT_KEYS <= meta.keys()
        if not ours:
            held = "" if names is None else f" (it holds {', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
            raise UserInputError(f"{path} exists and is not a recllm trainer checkpoint{held}", where,
                                 "pass a new or empty folder (recllm replaces the checkpoint folder as a whole)")
        return cls(path, every)

    def saved_epoch(self) -> int:
        """The epoch of the last checkpoint here (0: none), from its plain state only."""
        path = self._found()
        return 0 if path is None else int(_read_state(path, str(path)).get("epoch", 0))

    def check_settings(self, settings: dict[str, Any], where: str = "checkpoint_dir",
                       data: dict[str, Any] | None = None, world_size: int | None = None) -> None:
        """Refuse, in one line, a checkpoint here that a fit with other ``settings`` (:func:`fit_settings`), other
        ``data`` (:func:`data_fingerprint`) or another ``world_size`` (number of processes) wrote; None: that part
        is not checked (e.g. before the data loads); nothing here: nothing to check. Nothing is deleted."""
        path = self._found()
        if path is not None:
            _check_same_fit(_read_state(path, where), path, where, settings, data, world_size)

    def _asides(self) -> list[Path]:
        """Checkpoints a crash between write_atomically's two renames left aside (``.<name>.old-<8 mkdtemp
        characters>``, folders holding a checkpoint's two files), newest first."""
        pattern = re.compile(rf"\.{re.escape(self.folder.name)}\.old-[a-z0-9_]{{8}}")
        found = []
        for path in self.folder.parent.glob(f".{glob.escape(self.folder.name)}.old-*"):
            try:
                info = path.lstat()
            except OSError:
                continue
            if pattern.fullmatch(path.name) and stat.S_ISDIR(info.st_mode) and (path / STATE_FILE).is_file() and \
                    (path / TENSORS_FILE).is_file():
                found.append((info.st_mtime, path))
        return [path for _, path in sorted(found, reverse=True)]

    def _found(self) -> Path | None:
        if (self.folder / STATE_FILE).exists() and (self.folder / TENSORS_FILE).exists():
            return self.folder
        asides = self._asides()
        return asides[0] if asides else None

    def load(self) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The last checkpoint's plain state and tensors, or None when there is none."""
        path = self._found()
        if path is None:
            return None
        meta = _read_state(path, str(path))
        try:
            tensors = torch.load(path / TENSORS_FILE, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as exc:
            raise _damaged(path / TENSORS_FILE, exc, str(path)) from None
        return meta, tensors

    def due(self, epoch: int, last: bool) -> bool:
        return last or epoch % self.every == 0

    def save(self, meta: dict[str, Any], tensors: dict[str, Any]) -> None:
        """Publish a checkpoint (rank 0; other ranks return at once)."""
        meta = {k: (None if isinstance(v, float) and math.isinf(v) else v) for k, v in meta.items()}

        def write(tmp: Path) -> None:
            torch.save(tensors, tmp / TENSORS_FILE)
            (tmp / STATE_FILE).write_text(json.dumps(meta), encoding="utf-8")

        if write_atomically(self.folder, write) is not None:  # published: what a crash left aside is older
            for aside in self._asides():
                shutil.rmtree(aside, ignore_errors=True)


def _damaged(file: Path, exc: BaseException, where: str) -> UserInputError:
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return UserInputError(f"the checkpoint file {file} cannot be read ({reason}); it is cut short or not recllm's",
                          where, "remove the checkpoint folder to train from the start, or pass a new folder")


def _read_state(path: Path, where: str) -> dict[str, Any]:
    """A checkpoint's plain state (``trainer_state.json``), or a UserInputError naming the file."""
    try:
        meta = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: not JSON, or not UTF-8
        raise _damaged(path / STATE_FILE, exc, where) from None
    if not isinstance(meta, dict):
        raise _damaged(path / STATE_FILE, ValueError(f"a JSON {type(meta).__name__}, not an object"), where)
    return meta


# settings that may change between a fit and its resumption (they do not change what is learned)
RESUMABLE = ("checkpoint_dir", "checkpoint_every", "show_progress", "time_budget", "eval_batch_size", "device")


def fit_settings(config: Any) -> dict[str, Any]:
    """The config fields a resumed fit must share with the fit that wrote the checkpoint (as JSON values)."""
    raw = {k: v for k, v in dataclasses.asdict(config).items() if k not in RESUMABLE}
    return json.loads(json.dumps(raw, default=str))


def data_fingerprint(n_users: int, n_items: int, rows: np.ndarray, *arrays: np.ndarray) -> dict[str, Any]:
    """What a fit trains on, as its checkpoint records it: the data set's users and items, the number of training
    ``rows`` and a sha256 of them and of the other ``arrays`` the fit draws from (one pass over arrays the fit reads
    every epoch, so cheap beside an epoch)."""
    return {"n_users": int(n_users), "n_items": int(n_items), "n_rows": int(len(rows)),
            "sha256": sha256_arrays([rows, *arrays])[:16]}


def trainer_state(epoch: int, finished: bool, best: float, since_best: int, best_epoch: int,
                  history: list[dict[str, float]], step_losses: list[float], best_state: dict[str, Any] | None,
                  net: torch.nn.Module, optimizer: torch.optim.Optimizer, rng: np.random.Generator,
                  gen: torch.Generator, settings: dict[str, Any] | None = None, data: dict[str, Any] | None = None,
                  world_size: int | None = None, dist: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """What an epoch checkpoint holds: plain values (JSON) and tensors; ``settings``, ``data`` and ``world_size``
    are what a resumed fit must share (:meth:`EpochCheckpoint.check_settings`). Under torchrun (``dist``, every
    rank calls this: it gathers) the random generators of every rank, which draw apart (dropout, negatives)."""
    meta = {"settings": settings, "data": data, "world_size": world_size, "epoch": epoch, "finished": finished,
            "best": best, "since_best": since_best, "best_epoch": best_epoch, "history": history,
            "step_losses": step_losses, "numpy_rng": rng.bit_generator.state}
    own = _generator_states(gen, net)
    tensors = {"net": net.state_dict(), "optimizer": optimizer.state_dict(), **own, "best_state": best_state or {}}
    if dist is not None:
        ranks: list[Any] = [None] * dist.world_size
        torch.distributed.all_gather_object(ranks, own)
        tensors["ranks_rng"] = ranks
    return meta, tensors


def _device_of(net: torch.nn.Module) -> torch.device:
    return next(iter(net.parameters()), torch.empty(0)).device


def _generator_states(gen: torch.Generator, net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """This process's generators a fit draws from: its own ``gen``, torch's CPU one and, for a net on a GPU, that
    GPU's (CUDA dropout draws from it)."""
    states = {"generator": gen.get_state(), "torch_rng": torch.get_rng_state()}
    device = _device_of(net)
    if device.type == "cuda":
        states["cuda_rng"] = torch.cuda.get_rng_state(device)
    return states


def _check_same_settings(meta: dict[str, Any], settings: dict[str, Any] | None, where: str) -> None:
    """A checkpoint's plain state ``meta`` was written by a fit with ``settings`` (None: not checked), or one line
    naming the first difference."""
    if settings is not None and meta.get("settings") is not None and meta["settings"] != settings:
        first = next(k for k in sorted(set(settings) | set(meta["settings"]))
                     if settings.get(k) != meta["settings"].get(k))
        raise UserInputError(f"the checkpoint was written by a fit with other settings ({first}: "
                             f"{meta['settings'].get(first)!r}, now {settings.get(first)!r})", where,
                             "use the same settings to resume, or a new checkpoint folder to start afresh")


def _check_same_fit(meta: dict[str, Any], path: Path, where: str, settings: dict[str, Any] | None,
                    data: dict[str, Any] | None, world_size: int | None) -> None:
    """The checkpoint in ``path`` (plain state ``meta``) was written by a fit with these ``settings``, ``data`` and
    ``world_size`` (None: not checked), or one line naming the first difference; the folder is never touched."""
    _check_same_settings(meta, settings, where)
    todo = f"use another checkpoint folder, or delete {path} to train from the start"
    if (data is not None and meta.get("data") is None) or (world_size is not None and meta.get("world_size") is None):
        raise UserInputError(f"the checkpoint in {path} was written by an older recllm, which recorded neither its "
                             "data nor its number of processes, so resuming it cannot be checked", where, todo)
    if world_size is not None and meta["world_size"] != world_size:
        raise UserInputError(f"the checkpoint in {path} was written by {meta['world_size']} process(es) and this fit "
                             f"runs {world_size} (resume with torchrun --nproc-per-node {meta['world_size']})", where,
                             todo)
    if data is not None and meta["data"] != data:
        saved = meta["data"] if isinstance(meta["data"], dict) else {}
        first = next((k for k in data if saved.get(k) != data[k]), "sha256")
        differs = "same counts, other training rows or item content" if first == "sha256" else \
            f"{first} {data[first]} here, {saved.get(first)} there"
        raise UserInputError(f"the checkpoint in {path} was written for other data ({differs})", where, todo)


def restore_trainer(saved: tuple[dict[str, Any], dict[str, Any]], net: torch.nn.Module,
                    optimizer: torch.optim.Optimizer, rng: np.random.Generator, gen: torch.Generator,
                    settings: dict[str, Any] | None = None, where: str = "checkpoint_dir", rank: int = 0
                    ) -> dict[str, Any]:
    """Load a checkpoint into the trainer's objects (the random generators of process ``rank``); the plain values
    (epoch, best, history...) are returned. A checkpoint written with other ``settings`` is refused with one line
    naming the first difference, and so are weights that do not fit ``net`` (e.g. another item count)."""
    meta, tensors = saved
    _check_same_settings(meta, settings, where)
    try:
        net.load_state_dict(tensors["net"])
    except RuntimeError as exc:  # "Error(s) in loading state_dict for X:\n\tsize mismatch for ...: ..."
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        raise UserInputError(f"the checkpoint's weights do not fit this model ({(lines[1:] or lines)[0]})", where,
                             "use another checkpoint folder, or delete it to train from the start") from None
    optimizer.load_state_dict(tensors["optimizer"])
    ranks = tensors.get("ranks_rng") or [tensors]  # one process wrote only its own
    if rank >= len(ranks):  # a checkpoint of a recllm that kept rank 0's generators only
        log.warning("recllm: the checkpoint in %s holds rank 0's random generators only; rank %d resumes from them "
                    "(its dropout and negatives then repeat rank 0's)", where, rank)
    own = ranks[rank] if rank < len(ranks) else ranks[0]
    gen.set_state(own["generator"])
    torch.set_rng_state(own["torch_rng"])
    device = _device_of(net)
    if "cuda_rng" in own and device.type == "cuda":
        torch.cuda.set_rng_state(own["cuda_rng"], device)
    rng.bit_generator.state = meta["numpy_rng"]
    best = -math.inf if meta["best"] is None else float(meta["best"])
    return {**meta, "best": best, "best_state": tensors["best_state"] or None}
