"""Data-parallel training under ``torchrun``: detected from the environment, as nanoGPT does.

``torchrun --nproc-per-node N ...`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; :func:`context` then joins
the process group (gloo on CPU, nccl on CUDA, one GPU per local rank) and returns a :class:`DistContext` that
the sequence models' trainer uses: the model wrapped in ``DistributedDataParallel``, each global batch cut into
``N`` equal parts (one per rank), and per-rank losses weighted so that DDP's gradient average equals the gradient
of the mean over the whole batch. Only rank 0 writes files (:func:`write_atomically`); one-off work that every rank
needs (LLM summaries into a shared cache, say) runs on rank 0 first while the others wait (:func:`main_process_first`).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from recllm.utils import publish_folder

__all__ = ["DistContext", "context", "world_size", "write_atomically", "is_main_process", "barrier",
           "main_process_first"]

# the wait of the other ranks while rank 0 does one-off work (hours of summaries at scale); torchrun ends them at
# once if rank 0 fails, so a long limit costs nothing
ONE_OFF_TIMEOUT = datetime.timedelta(hours=24)


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


def world_size() -> int:
    """The number of processes of this torchrun job, read from the environment without joining it (1 outside
    torchrun, and for a job of one process)."""
    rank, world = _env_int("RANK"), _env_int("WORLD_SIZE")
    return 1 if rank is None or world is None or world < 2 else world


def context(device: str = "auto") -> DistContext | None:
    """The torchrun context of this process (joining the process group once), or None outside torchrun.

    A job of one process (``WORLD_SIZE=1``) is treated as no job: training runs exactly as in one process.
    """
    world = world_size()
    if world < 2:
        return None
    rank = _env_int("RANK") or 0
    local_rank = _env_int("LOCAL_RANK") or 0
    cuda = torch.cuda.is_available() and device in ("auto", "cuda") or device.startswith("cuda")
    dev = f"cuda:{local_rank}" if cuda else "cpu"
    if not torch.distributed.is_initialized():
        if cuda:
            torch.cuda.set_device(local_rank)
        torch.distributed.init_process_group(backend="nccl" if cuda else "gloo")
        atexit.register(_leave_process_group)
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, device=dev)


def _leave_process_group() -> None:
    """Destroy the process group this module joined, at interpreter exit: left to the C++ destructors, a gloo group
    may end a finished rank with "terminate called without an active exception" (SIGABRT) while others still work."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def is_main_process() -> bool:
    """True outside torchrun and on rank 0: the process that writes checkpoints and artifacts."""
    return (_env_int("RANK") or 0) == 0


def write_atomically(folder: str | os.PathLike[str], write: Callable[[Path], None]) -> Path | None:
    """On the main process only: ``write(tmp)`` fills a fresh folder beside ``folder``, which then replaces
    ``folder`` in one rename (a reader never sees half an artifact). The old ``folder`` is renamed aside to a hidden
    sibling ``.<name>.old-<random>`` made for it (a crash between the two renames leaves it there) and deleted after;
    no other sibling is touched. Other ranks return None at once."""
    if not is_main_process():
        return None
    target = Path(folder)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write(tmp)
        publish_folder(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


_wait_groups: dict[int, Any] = {}


def barrier(dist: DistContext | None = None) -> None:
    """Wait until every rank gets here (nothing outside torchrun). Rides a gloo group whose timeout is
    :data:`ONE_OFF_TIMEOUT`, not the training collectives' limit, so ranks may wait out rank 0's one-off work."""
    dist = dist if dist is not None else context()
    if dist is None:
        return
    world = torch.distributed.group.WORLD
    group = _wait_groups.get(id(world))
    if group is None:  # created by every rank at its first barrier (new_group is collective)
        group = _wait_groups[id(world)] = torch.distributed.new_group(backend="gloo", timeout=ONE_OFF_TIMEOUT)
    torch.distributed.barrier(group=group)


@contextlib.contextmanager
def main_process_first(dist: DistContext | None = None) -> Iterator[bool]:
    """Run the body on rank 0 first, then on the other ranks (each yields whether it is rank 0).

    For one-off work whose results every rank needs and rank 0 stores where the others read them (LLM summaries in
    the shared ``DiskCache``): the other ranks wait at a :func:`barrier` until rank 0 is done, then run the same
    body and find everything made. Every rank must enter it, in the same order (it is a collective: a rank that
    skips it leaves the others waiting). Outside torchrun the body just runs.
    """
    dist = dist if dist is not None else context()
    if dist is None:
        yield True
        return
    if not dist.is_main:
        barrier(dist)
    yield dist.is_main
    if dist.is_main:
        barrier(dist)
