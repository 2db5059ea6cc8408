"""Data-parallel training under ``torchrun``: detected from the environment, as nanoGPT does.

``torchrun --nproc-per-node N ...`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`context` then joins
the process group (gloo on CPU, nccl on CUDA, one GPU per local rank) and returns a :class:`DistContext` that
the sequence models' trainer uses: the model wrapped in ``DistributedDataParallel``, each global batch cut into
``N`` equal parts (one per rank), and per-rank losses weighted so that DDP's gradient average equals the gradient
of the mean over the whole batch. Only rank 0 writes files (:func:`write_atomically`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["DistContext", "context", "write_atomically", "is_main_process"]


@dataclass(frozen=True)
class DistContext:
    """This process's place in a torchrun job."""

    rank: int
    world_size: int
    local_rank: int
    device: str

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, net: nn.Module) -> nn.Module:
        """``net`` in DistributedDataParallel (its methods stay reachable through the wrapper)."""
        ids = [self.local_rank] if self.device.startswith("cuda") else None
        return _DDP(net, device_ids=ids)

    def part(self, batch: np.ndarray) -> np.ndarray:
        """This rank's share of a global batch of rows: ``world_size`` contiguous, near-equal parts."""
        return np.array_split(batch, self.world_size)[self.rank]

    def sum(self, value: float) -> float:
        """Sum of ``value`` over the ranks."""
        tensor = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(tensor)
        return float(tensor.item())


class _DDP(nn.parallel.DistributedDataParallel):
    """DDP whose unknown attributes fall through to the wrapped module (``item_vectors``, ``similarity``...)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else None


def context(device: str = "auto") -> DistContext | None:
    """The torchrun context of this process (joining the process group once), or None outside torchrun.

    A job of one process (``WORLD_SIZE=1``) is treated as no job: training runs exactly as in one process.
    """
    rank, world = _env_int("RANK"), _env_int("WORLD_SIZE")
    if rank is None or world is None or world < 2:
        return None
    local_rank = _env_int("LOCAL_RANK") or 0
    cuda = torch.cuda.is_available() and device in ("auto", "cuda") or device.startswith("cuda")
    dev = f"cuda:{local_rank}" if cuda else "cpu"
    if not torch.distributed.is_initialized():
        if cuda:
            torch.cuda.set_device(local_rank)
        torch.distributed.init_process_group(backend="nccl" if cuda else "gloo")
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, device=dev)


def is_main_process() -> bool:
    """True outside torchrun and on rank 0: the process that writes checkpoints and artifacts."""
    return (_env_int("RANK") or 0) == 0


def write_atomically(folder: str | os.PathLike[str], write: Callable[[Path], None]) -> Path | None:
    """On the main process only: ``write(tmp)`` fills a fresh folder beside ``folder``, which then replaces
    ``folder`` in one rename (a reader never sees half an artifact). Other ranks return None at once."""
    if not is_main_process():
        return None
    target = Path(folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write(tmp)
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
