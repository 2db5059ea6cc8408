"""What a fine-tuned imputer's fill is as a fraction of the machine's peak: a sample of a masked table's incomplete
rows filled again in passes of their own -- counted (``recllm.llm.hardware.count_flops``; the counter slows what it
counts, and this pass also warms the model), then timed -- and the matmul peak of the fill's precision at this
process's threads, measured here.

The passes never read or write the LLM imputer's answer cache: the unit's own fill may be answered from it (a rerun
costs seconds), so its seconds can time lookups, not arithmetic; the sample's cannot. GReaT seeds every fill, so a
sample pass does not change the fills that follow it. The passes leave the imputer's ``report_`` (and GReaT's
sampling counts) describing the sample: the unit's own are read before them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

FILL_SAMPLE_ROWS = 16  # incomplete rows of a table filled (counted, then timed) per unit
NOT_MEASURED = "fill_compute_error"  # a unit's table info: why its fill was not measured


@contextmanager
def _answers_computed(imputer: Any) -> Iterator[None]:
    """Within it, an LLM imputer's ``transform`` computes every answer (its fitted answer cache, ``cache_``, set
    aside); other imputers are left as they are."""
    if not hasattr(imputer, "cache_"):
        yield
        return
    saved = imputer.cache_
    imputer.cache_ = None
    try:
        yield
    finally:
        imputer.cache_ = saved


def model_precision(imputer: Any) -> tuple[str, str]:
    """(dtype name, device) the fitted imputer's fill runs its model in: the LLM imputer's tuned model, GReaT's."""
    lm = getattr(imputer, "lm_", None)
    if lm is not None:
        return lm.dtype, str(lm.device)
    parameter = next(imputer.great_.model.parameters())
    return str(parameter.dtype).removeprefix("torch."), str(parameter.device)


def fill_compute(imputer: Any, masked: pd.DataFrame, seed: int = 0, rows: int = FILL_SAMPLE_ROWS
                 ) -> dict[str, Any]:
    """Fill ``min(rows, incomplete rows)`` seeded incomplete rows of ``masked`` with the fitted ``imputer`` twice,
    uncached: counted (``fill_gflop_per_cell``), then timed (``fill_sample_seconds`` for ``fill_sample_cells`` in
    ``fill_sample_rows``); with the GFLOP/s matmul peak of its precision here (``fill_peak_gflops``,
    ``fill_dtype``) and the CPU and threads that ran it (``fill_cpu``, ``fill_threads``). Without a gap to fill or
    a FLOP counted (the work ran elsewhere), only :data:`NOT_MEASURED` saying so."""
    from recllm.hardware import this_process_machine
    from recllm.llm.hardware import count_flops, measure_matmul_flops

    incomplete = np.flatnonzero(masked.isna().to_numpy().any(axis=1))
    if not len(incomplete):
        return {NOT_MEASURED: "no gap to fill"}
    picked = np.sort(np.random.default_rng([seed, 11]).choice(incomplete, min(rows, len(incomplete)),
                                                              replace=False))
    sample = masked.iloc[picked]
    cells = int(sample.isna().to_numpy().sum())
    with _answers_computed(imputer):
        flops = count_flops(lambda: imputer.transform(sample))[1]
        start = time.perf_counter()
        imputer.transform(sample)
        seconds = time.perf_counter() - start
    if flops <= 0:
        return {NOT_MEASURED: "no FLOP counted in this process (the fill ran elsewhere)"}
    dtype, device = model_precision(imputer)
    machine = this_process_machine()
    return {"fill_sample_rows": len(picked), "fill_sample_cells": cells, "fill_sample_seconds": seconds,
            "fill_gflop_per_cell": flops / 1e9 / cells, "fill_dtype": dtype,
            "fill_peak_gflops": measure_matmul_flops(dtype, seconds=1.0, device=device) / 1e9,
            "fill_cpu": machine["cpu"], "fill_threads": machine["threads"]}


def guarded_fill_compute(imputer: Any, masked: pd.DataFrame, seed: int = 0) -> dict[str, Any]:
    """:func:`fill_compute`, but a failure to measure never costs the unit it follows (hours of fine-tuning): it is
    printed and recorded under :data:`NOT_MEASURED`, and the report says the fill was not measured."""
    try:
        return fill_compute(imputer, masked, seed)
    except Exception as exc:  # noqa: BLE001 - a measurement beside the run, never a reason to lose it
        message = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        print(f"[bench impute] the fill's share of the peak was not measured ({message}); the run is kept", flush=True)
        return {NOT_MEASURED: message}


def fill_share(info: dict[str, Any]) -> float | None:
    """The sampled fill's share of the peak (cells/s x GFLOP per cell / peak GFLOP/s) from a unit's table info;
    None when it was not measured."""
    from recllm.eval.report import of_peak

    if not info.get("fill_sample_seconds"):
        return None
    return of_peak(info.get("fill_sample_cells", 0) / info["fill_sample_seconds"], info.get("fill_gflop_per_cell"),
                   info.get("fill_peak_gflops"))
