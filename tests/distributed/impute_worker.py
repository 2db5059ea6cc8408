"""``recllm impute`` with the tiny llama, run under torchrun by test_impute_cli_engines.py.

``python impute_worker.py RESULT_DIR recllm-args...`` records the tables this process writes, runs the command and
writes ``RESULT_DIR/rank<R>.json`` with its exit code and those tables.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def table(path: str | os.PathLike[str]) -> Path:
    """A small table with gaps in a categorical and a numeric column, as CSV."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"colour": rng.choice(["red", "green", "blue"], 24),
                          "age": rng.integers(20, 60, 24).astype(float)})
    frame.loc[[1, 5, 9], "colour"] = np.nan
    frame.loc[[2, 7], "age"] = np.nan
    frame.to_csv(path, index=False)
    return Path(path)


def record_writes() -> list[str]:
    """The output tables ``recllm impute`` writes in this process."""
    import recllm.impute.table_io as table_io

    written: list[str] = []
    write = table_io.write_table

    def writing(table, filled, path, **options):  # noqa: ANN001, ANN003
        written.append(Path(path).name)
        return write(table, filled, path, **options)

    table_io.write_table = writing
    return written


def main(result_dir: str, argv: list[str]) -> int:
    import torch

    from recllm import cli

    torch.set_num_threads(1)
    written = record_writes()
    code = cli.main(argv)
    rank = int(os.environ.get("RANK", "0"))
    Path(result_dir, f"rank{rank}.json").write_text(json.dumps({"code": code, "written": written}))
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
