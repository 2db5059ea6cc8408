"""Running recllm beyond one process on engines users already operate.

- :mod:`recllm.distributed.ray_jobs`: the LLM batch jobs (item embedding, candidate scoring, generation for the
  LLM-TRSR summaries) as Ray Data pipelines, an actor pool where each worker loads the model once; needs the
  ``distributed`` extra (``pip install recllm[distributed]``). Nothing here imports ray until a job runs with
  ``engine="ray"``.
- :mod:`recllm.distributed.ddp`: data-parallel training under ``torchrun`` (DistributedDataParallel), detected
  from the environment; needs only torch. Used by the sequence models and LoRA SFT.
- :mod:`recllm.distributed.checkpoint`: resumable epoch checkpoints of the sequence models' fits (rank 0 writes,
  every rank resumes).
"""

from __future__ import annotations

import importlib.util

from recllm.errors import UserInputError

__all__ = ["ENGINES", "check_engine", "require_ray"]

ENGINES = ("local", "ray")
INSTALL_HINT = "pip install 'recllm[distributed]'"


def check_engine(engine: str, where: str = "engine") -> str:
    """``engine`` if it is one of :data:`ENGINES`, else a one-line :class:`UserInputError`."""
    if engine not in ENGINES:
        raise UserInputError(f"unknown engine {engine!r}", where, f"use one of {', '.join(ENGINES)}")
    if engine == "ray":
        require_ray(where)
    return engine


def require_ray(where: str = "engine") -> None:
    """Fail with one line naming the extra to install when Ray Data is not importable."""
    if importlib.util.find_spec("ray") is None or importlib.util.find_spec("ray.data") is None:
        raise UserInputError("the ray engine needs Ray Data, which is not installed", where,
                             f"{INSTALL_HINT} (or use the local engine)")
