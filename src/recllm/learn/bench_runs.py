"""The finished runs of ``recllm bench learn``, kept beside the report so a long benchmark resumes.

A run is one model fitted on one data set x split x seed. Its figures (means, timing, memory) go to
``<report>.runs.jsonl`` and its per-user metrics (needed for bootstrap intervals and paired tests) to
``<report>.runs.npz``; both are rewritten atomically after every run, merged under a lock with what other
processes stored meanwhile (so shards over different data sets can run side by side). Each run carries a key: the sha256 of
everything that decides its outcome (data fingerprint, split, seed, model name and settings, epoch cap,
patience, :data:`RUN_FORMAT`). A later benchmark reuses a stored run only when its key matches, so changing a
setting or the data reruns exactly the affected runs; ``--fresh`` ignores the store. Bump :data:`RUN_FORMAT`
when model or evaluation code changes in a way that changes results.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

RUN_FORMAT = 1


@dataclass
class RunResult:
    """One fitted model's test figures on one data set x split x seed."""

    dataset: str
    split: str
    seed: int
    model: str
    metrics: dict[str, float]
    per_user: dict[str, list[float]] = field(repr=False)
    fit_seconds: float = math.nan
    epoch_seconds: float = math.nan
    epochs: int = 0
    best_epoch: int = 0
    peak_mb: float = math.nan
    n_users: int = 0
    key: str = ""


def dataset_fingerprint(dataset: Any) -> str:
    """sha256 of the interactions and the item catalogue (ids and text columns), as loaded."""
    import pandas as pd

    digest = hashlib.sha256()
    for frame in (dataset.interactions, dataset.items):
        digest.update(pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy().tobytes())
    return digest.hexdigest()


def run_key(**parts: Any) -> str:
    """sha256 of the canonical JSON of ``parts`` plus :data:`RUN_FORMAT`."""
    text = json.dumps({**parts, "run_format": RUN_FORMAT}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _npz_path(runs_path: Path) -> Path:
    return runs_path.with_suffix(".npz")


def save_runs(path: Path, results: list[RunResult]) -> None:
    """Write the runs' figures (JSON lines) and per-user metrics (compressed npz), each atomically.

    Runs another process stored at ``path`` meanwhile (a benchmark shard over other data sets) are kept: the
    store is re-read and merged under a folder lock, ``results`` winning for equal keys.
    """
    from recllm.utils import atomic_path, folder_lock, write_text_atomic

    with folder_lock(path):
        mine = {r.key for r in results if r.key}
        merged = list(results) + [r for key, r in load_runs(path).items() if key not in mine]
        lines = [json.dumps({k: v for k, v in vars(r).items() if k != "per_user"}, sort_keys=True) for r in merged]
        arrays = {f"{r.key}|{m}": np.asarray(v, dtype=np.float32)
                  for r in merged if r.key for m, v in r.per_user.items()}
        with atomic_path(_npz_path(path)) as tmp:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **arrays)
        write_text_atomic(path, "\n".join(lines) + "\n")


def load_runs(path: Path) -> dict[str, RunResult]:
    """The stored runs that have a key and per-user metrics, by key ({} when there is no store)."""
    npz = _npz_path(path)
    if not path.is_file() or not npz.is_file():
        return {}
    with np.load(npz) as data:
        arrays = {name: data[name] for name in data.files}
    runs: dict[str, RunResult] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}, line {number}: not JSON ({exc}); delete the file or run with --fresh") from exc
        key = record.get("key", "")
        per_user = {m: arrays[f"{key}|{m}"].astype(float).tolist() for m in record.get("metrics", {})
                    if f"{key}|{m}" in arrays}
        if not key or len(per_user) != len(record.get("metrics", {})):
            continue  # written before runs carried keys: rerun it
        fields = {k: v for k, v in record.items() if k in RunResult.__dataclass_fields__}
        runs[key] = RunResult(**{**fields, "per_user": per_user})
    return runs
