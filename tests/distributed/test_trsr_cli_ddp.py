"""``recllm trsr train`` under torchrun: rank 0 alone summarises (into the shared cache) and writes the run folder,
every rank fine-tunes its share (DDP), and the run equals a one-process run's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.distributed

HERE = Path(__file__).parent


def _losses(run: Path) -> list[float]:
    records = [json.loads(line) for line in (run / "sft" / "training_log.jsonl").read_text().splitlines()]
    return [r["loss"] for r in records if "step" in r and "loss" in r]


def _adapter(run: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(run / "sft" / "best" / "adapter_model.safetensors"))


def test_two_ranks_one_writer_and_the_one_process_run(tmp_path, monkeypatch):
    import torch

    import recllm.outputs
    import recllm.trsr.cli
    import recllm.trsr.summarize
    import recllm.utils
    from recllm.trsr.run import read_run

    import trsr_worker
    folder = trsr_worker.model_folder(tmp_path / "tiny")

    def argv(run: Path) -> list[str]:
        return ["trsr", "train", "--data", "ml-100k", "--model", folder, "--out", str(run), "--summary-tokens", "3",
                "--item-tokens", "8", "--quiet", "--threads", "1"]

    # one process, in this one (the worker's patches are undone after the test)
    for module, name in ((recllm.trsr.cli, "_split"), (recllm.trsr.summarize, "generate"),
                         (recllm.outputs, "mark_output_dir"), (recllm.utils, "write_json_atomic")):
        monkeypatch.setattr(module, name, getattr(module, name))
    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path / "cache-one"))
    threads = torch.get_num_threads()
    (tmp_path / "one").mkdir()
    try:
        assert trsr_worker.main(str(tmp_path / "one"), argv(tmp_path / "run-one")) == 0
    finally:
        torch.set_num_threads(threads)
    single = json.loads((tmp_path / "one" / "rank0.json").read_text())

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(HERE),
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "RECLLM_CACHE": str(tmp_path / "cache-two")}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    (tmp_path / "two").mkdir()
    run = tmp_path / "run-two"
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(HERE / "trsr_worker.py"), str(tmp_path / "two"), *argv(run)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / "two" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["code"] for r in ranks] == [0, 0]
    # rank 0 made every summary the one-process run made; rank 1 found them all in the shared cache
    assert ranks[0]["generated"] == single["generated"] > 0 and ranks[1]["generated"] == 0
    # rank 0 writes what the one-process run writes (the run's marker and its config), rank 1 nothing
    assert single["written"][0] == "marker of run-one" and single["written"][-1] == "trsr_config.json"
    assert ranks[0]["written"] == [w.replace("run-one", "run-two") for w in single["written"]]
    assert ranks[1]["written"] == []
    assert done.stdout.count("trained on 8 training users") == 1  # one report, from rank 0
    assert read_run(run).adapter == run / "sft" / "best"  # the folder is complete: config and adapter check out
    assert sorted(p.name for p in run.iterdir() if not p.name.startswith(".")) == ["sft", "trsr_config.json"]
    # the data-parallel fine-tune follows the one-process one: each rank ran one of a step's two groups with its
    # own LoRA dropout draws (the CLI's LoRA dropout is on), so they agree statistically, not to the last digit
    # (the exact loss-curve comparison, dropout off, is test_ddp_sft_grouped.py's); the log holds the epoch's mean
    # bf16 autocast (CPUs with native bf16) adds ~2e-4 of rounding between the two runs
    np.testing.assert_allclose(_losses(run), _losses(tmp_path / "run-one"), rtol=1e-3, atol=0)
    one, two = _adapter(tmp_path / "run-one"), _adapter(run)
    assert one.keys() == two.keys()
    for name, value in one.items():
        np.testing.assert_allclose(two[name], value, rtol=0, atol=1e-3)
