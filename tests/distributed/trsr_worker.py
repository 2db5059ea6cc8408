"""A tiny LLM-TRSR set-up for the CLI tests: a toy data set behind ``recllm trsr``, the tiny llama as a model folder.

``python trsr_worker.py RESULT_DIR recllm-args...`` (run under torchrun by test_trsr_cli_ddp.py) serves the toy
split to ``recllm trsr``, counts the summaries this process generates and the run-folder files it writes, runs the
command and writes ``RESULT_DIR/rank<R>.json`` with its exit code, that count and those files.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from recllm.data import RecDataset, Schema, leave_one_out


def toy_dataset(n_users: int = 8, n_items: int = 40, length: int = 9, seed: int = 0) -> RecDataset:
    """Users who each like one colour of thing (as tests/trsr/test_pipeline.py)."""
    rng = np.random.default_rng(seed)
    colours = ["red", "blue"]
    items = pd.DataFrame({"item_id": [f"i{j}" for j in range(n_items)],
                          "title": [f"{colours[j % 2]} thing {j}" for j in range(n_items)]})
    rows = []
    for u in range(n_users):
        pool = np.arange(u % 2, n_items, 2)
        for t, j in enumerate(rng.choice(pool, size=length, replace=False)):
            rows.append((f"u{u}", f"i{j}", 1000 + 10 * t))
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).astype({"timestamp": "int64"})
    users = pd.DataFrame({"user_id": [f"u{u}" for u in range(n_users)]})
    return RecDataset("trsr-toy", inter, items, users, Schema(item_text=("title",)))


def toy_split():
    return leave_one_out(toy_dataset())


def model_folder(path: str | os.PathLike[str]) -> str:
    """The tiny llama (seed 0, float32) saved as a model folder ``--model`` can name."""
    from recllm.llm.backbone import tiny_causal_lm

    folder = Path(path)
    if not (folder / "config.json").exists():
        lm = tiny_causal_lm(seed=0)
        lm.model.save_pretrained(folder)
        lm.tokenizer.save_pretrained(folder)
    return str(folder)


def serve_toy_split() -> None:
    """``recllm trsr`` loads the toy split whatever ``--data`` names (a registered name passes the checks)."""
    import recllm.trsr.cli as trsr_cli

    trsr_cli._split = lambda name, quiet, train=False: toy_split()


def count_generated() -> dict[str, int]:
    """A counter of the summary prompts this process generates (the summariser's ``generate``)."""
    import recllm.trsr.summarize as summarize

    counts = {"prompts": 0}
    real = summarize.generate

    def counting(lm, prompts, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        counts["prompts"] += len(prompts)
        return real(lm, prompts, *args, **kwargs)

    summarize.generate = counting
    return counts


def record_writes() -> list[str]:
    """The files ``recllm trsr train`` itself writes in this process (its run marker and trsr_config.json)."""
    import recllm.outputs as outputs
    import recllm.utils as utils

    written: list[str] = []
    mark, write_json = outputs.mark_output_dir, utils.write_json_atomic

    def marking(path, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        written.append(f"marker of {Path(path).name}")
        return mark(path, *args, **kwargs)

    cache = os.environ.get("RECLLM_CACHE")

    def writing(target, obj):  # noqa: ANN001
        if not (cache and Path(target).resolve().is_relative_to(Path(cache).resolve())):  # cache files are not outputs
            written.append(Path(target).name)
        return write_json(target, obj)

    outputs.mark_output_dir, utils.write_json_atomic = marking, writing
    return written


def main(result_dir: str, argv: list[str]) -> int:
    import torch

    from recllm import cli

    torch.set_num_threads(1)
    serve_toy_split()
    counts, written = count_generated(), record_writes()
    code = cli.main(argv)
    rank = int(os.environ.get("RANK", "0"))
    Path(result_dir, f"rank{rank}.json").write_text(json.dumps({"code": code, "generated": counts["prompts"],
                                                                 "written": written}))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
