"""The imputation section of ``recllm demo``: fill masked MovieLens-100K film features with the LLM and MICE.

A fifth of the films lose their release year and genres (MCAR, seeded); the mean/mode, KNN and MICE imputers and the
LLM imputer (SmolLM2-135M fine-tuned with LoRA on the table's own observed cells) fill them, and each is scored on
the masked cells. The LLM reads the title, which usually carries the year; the classic imputers cannot read text.
Adapters and answers are cached, so a second run takes seconds.
"""

from __future__ import annotations

import time
from typing import Any

EPOCHS = 1


def demo_section(seed: int = 0, show_progress: bool = True, examples: int = 128, model: Any = None,
                 rate: float = 0.2) -> list[dict[str, object]]:
    """Run the section, print its table and return its rows (``model``: a CausalLM instead of the bundled one)."""
    from recllm.data import load
    from recllm.eval.report import format_table
    from recllm.bench.impute.run import BenchConfig, impute_tables, masked_tables
    from recllm.bench.impute.tasks import TABLES

    dataset = load("ml-100k", show_progress=show_progress)
    # One epoch on ``examples`` rows, the size recllm.demo's budget measured: no held-out cells to choose among
    # epochs (LLMImputer's default of up to 3 epochs fills those cells after every epoch: several times the cost).
    config = BenchConfig(datasets=("ml-100k",), seeds=(seed,), llm_max_rows=examples, llm_max_epochs=EPOCHS)
    items = [spec for spec in TABLES["ml-100k"] if spec.name.endswith("/items")]
    tables = {spec.name: masked_tables(dataset, "ml-100k", ("mcar", rate), seed)[spec.name] for spec in items}
    n_cells = int(sum(t[2].to_numpy().sum() for t in tables.values()))
    print(f"MovieLens-100K films: {len(dataset.items)} rows; {n_cells} cells of year and genres masked "
          f"(MCAR {rate:.0%})")
    rows = []
    for name in ("mean", "knn", "mice", "llm"):
        start = time.perf_counter()
        progress = {"show_progress": show_progress} if name == "llm" else {}  # the fine-tune's and filling's bars
        result = impute_tables(name, "ml-100k", tables, seed, config, base_lm=model, specs=items, **progress)
        scores = result["scores"]["ml-100k/items"]
        info = result["info"]["ml-100k/items"]
        rows.append({"imputer": name, "year rmse": scores["year:rmse"], "genres jaccard": scores["genres:jaccard"],
                     "genres exact": scores["genres:accuracy"], "seconds": time.perf_counter() - start,
                     "note": (f"{info['examples']} training rows, {EPOCHS} epoch, adapter "
                              f"{'reused' if info['adapter_reused'] else 'trained'}") if name == "llm" else ""})
    print(format_table(rows, ["imputer", "year rmse", "genres jaccard", "genres exact", "seconds", "note"], digits=3))
    return rows

