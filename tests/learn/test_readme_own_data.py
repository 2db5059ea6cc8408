"""The README's "Your own data" example runs as printed, and its artifact answers the printed commands (the
Python example saves to a folder of its own: the command-line one, which ``recllm serve`` writes into, is not reused)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"


def _example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("**Your own data.**"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_own_data_example_trains_saves_and_recommends(tmp_path, monkeypatch, capsys):
    rng = np.random.default_rng(0)
    rows = [(f"c{u}", f"sku{i}", 1_700_000_000 + 86_400 * t + u)
            for u in range(16) for t, i in enumerate(rng.choice(10, size=6, replace=False))]
    pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).to_csv(tmp_path / "events.csv", index=False)
    pd.DataFrame({"item_id": [f"sku{i}" for i in range(10)], "title": [f"product {i}" for i in range(10)],
                  "description": ["" if i % 4 == 0 else f"a small thing number {i}" for i in range(10)]}
                 ).to_csv(tmp_path / "items.csv", index=False)
    monkeypatch.chdir(tmp_path)
    exec(compile(_example(), str(README), "exec"), {})
    from recllm.cli import main

    assert main(["learn", "recommend", "runs/learn-my-shop-py", "--user", "c3", "-k", "3"]) == 0
    assert main(["learn", "recommend", "runs/learn-my-shop-py", "--history", "sku1", "sku2", "-k", "3"]) == 0
    lines = [line.split() for line in capsys.readouterr().out.splitlines() if re.match(r"\s+\d+\s+sku", line)]
    assert len(lines) == 6 and not {"sku1", "sku2"} & {line[1] for line in lines[3:]}
