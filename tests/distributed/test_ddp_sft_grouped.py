"""torchrun for grouped LoRA SFT (the LLM-TRSR ranker's format): 2 ranks each run half the groups of every batch
and follow 1 process's loss curve."""

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


def test_two_ranks_share_the_groups_and_reproduce_one_process(tmp_path, monkeypatch):
    import recllm.llm.sft as sft

    sys.path.insert(0, str(HERE))
    try:
        import sft_worker
    finally:
        sys.path.remove(str(HERE))
    monkeypatch.setattr(sft, "collate", sft.collate)  # undone after the test
    rows = sft_worker.count_rows()
    sft_worker.train(str(tmp_path / "single"), grouped=True)
    one = sft_worker.step_losses(str(tmp_path / "single"))

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(HERE),
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "SFT_WORKER_GROUPED": "1"}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    result = tmp_path / "two.json"
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(HERE / "sft_worker.py"), str(tmp_path / "two"), str(result)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    two = sft_worker.step_losses(str(tmp_path / "two"))
    assert len(one) == 4 and len(two) == len(one)  # 8 groups, batches of 4, 2 epochs; logged once (rank 0)
    np.testing.assert_allclose(two, one, rtol=0, atol=1e-5)
    assert one[0] != one[-1]  # it trained
    # one process ran every batch's 4 groups at once; each rank ran 2 of them (half the groups, none twice)
    assert rows == [4, 4, 4, 4]
    per_rank = [json.loads(Path(f"{result}.rank{r}.json").read_text()) for r in (0, 1)]
    assert per_rank == [[2, 2, 2, 2], [2, 2, 2, 2]]
