"""``recllm impute --engine ray`` (LLM fills only, checked before any work) and ``recllm impute --method llm`` under
torchrun (every rank fine-tunes, rank 0 alone fills and writes)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recllm import cli

# the worker scripts beside this file (tests/distributed/conftest.py puts the folder on sys.path)
import impute_worker
import trsr_worker

HERE = Path(__file__).parent


def test_engine_ray_is_refused_for_a_method_without_llm_fills(tmp_path, capsys):
    path = impute_worker.table(tmp_path / "t.csv")
    code = cli.main(["impute", str(path), "--method", "mice", "--engine", "ray", "--out", str(tmp_path / "o.csv")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "--method mice has none" in err and "--engine" in err and "--method llm" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


def test_engine_ray_without_the_extra_is_one_line(tmp_path, capsys, monkeypatch):
    path = impute_worker.table(tmp_path / "t.csv")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name.startswith("ray") else real(name, *a))
    code = cli.main(["impute", str(path), "--method", "llm", "--engine", "ray", "--out", str(tmp_path / "o.csv")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "recllm[distributed]" in err and "--engine" in err


def test_engine_ray_options_reach_the_llm_imputer():
    pytest.importorskip("ray.data")
    from recllm.distributed.ray_jobs import RayOptions
    from recllm.impute.cli import _imputer

    args = cli.build_parser().parse_args(["impute", "t.csv", "--method", "llm", "--out", "o.csv", "--engine", "ray",
                                          "--ray-address", "auto", "--ray-workers", "3"])
    imputer = _imputer(args)
    assert imputer.engine == "ray" and imputer.ray_options == RayOptions(address="auto", workers=3)
    args = cli.build_parser().parse_args(["impute", "t.csv", "--method", "llm", "--out", "o.csv"])
    assert _imputer(args).engine == "local"


@pytest.mark.distributed
def test_llm_imputation_under_torchrun_fills_and_writes_once(tmp_path):
    import pandas as pd

    folder = trsr_worker.model_folder(tmp_path / "tiny")
    path = impute_worker.table(tmp_path / "t.csv")
    out = tmp_path / "filled.csv"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(HERE),
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "RECLLM_CACHE": str(tmp_path / "cache")}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    (tmp_path / "ranks").mkdir()
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(HERE / "impute_worker.py"), str(tmp_path / "ranks"), "impute", str(path), "--method",
                           "llm", "--model", folder, "--examples", "16", "--epochs", "1", "--out", str(out),
                           "--threads", "1", "--quiet"], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["code"] for r in ranks] == [0, 0]
    assert ranks[0]["written"] == ["filled.csv"] and ranks[1]["written"] == []  # one writer: rank 0
    assert done.stdout.count("cells filled by llm") == 1
    filled, given = pd.read_csv(out), pd.read_csv(path)
    assert filled.shape == given.shape and not filled.isna().any().any()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp file left behind
