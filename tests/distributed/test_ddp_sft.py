"""torchrun for LoRA SFT: 2 ranks with half of each batch follow 1 process's loss curve, and a run whose rank 0
dies mid-run resumes from rank 0's checkpoint to the weights of an uninterrupted run."""

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


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(HERE),
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(HERE / "sft_worker.py"), *args], env=env, capture_output=True, text=True, timeout=600)


def test_two_ranks_reproduce_one_process_and_resume_after_a_crash(tmp_path):
    import sft_worker
    single = sft_worker.train(str(tmp_path / "single"))
    one = sft_worker.step_losses(str(tmp_path / "single"))

    done = _torchrun(str(tmp_path / "two"), str(tmp_path / "two.json"))
    assert done.returncode == 0, done.stderr[-3000:]
    two = sft_worker.step_losses(str(tmp_path / "two"))
    assert len(one) == 6 and len(two) == len(one)  # 12 examples, batches of 4, 2 epochs; logged once (rank 0)
    np.testing.assert_allclose(two, one, rtol=0, atol=1e-5)
    assert one[0] != one[-1]  # it trained
    weights = json.loads((tmp_path / "two.json").read_text())
    for name, value in single.items():  # Adam amplifies rounding slightly: the weights agree loosely
        np.testing.assert_allclose(np.asarray(weights[name]), np.asarray(value), rtol=0, atol=1e-3)

    crashed = _torchrun(str(tmp_path / "cut"), str(tmp_path / "cut.json"), "2")
    assert crashed.returncode != 0 and not (tmp_path / "cut.json").exists()  # rank 0 died after step 2
    assert sorted(p.name for p in (tmp_path / "cut").glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    resumed = _torchrun(str(tmp_path / "cut"), str(tmp_path / "cut.json"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((tmp_path / "cut.json").read_text()) == weights  # exactly the uninterrupted run's weights
    assert sft_worker.step_losses(str(tmp_path / "cut")) == two
    events = [json.loads(x).get("event") for x in (tmp_path / "cut" / "training_log.jsonl").read_text().splitlines()]
    assert events.count("start") == 1 and events.count("resume") == 1
