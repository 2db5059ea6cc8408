"""torchrun for grouped LoRA SFT (the LLM-TRSR ranker's format): 2 ranks each run half the groups of every batch
and follow 1 process's loss curve; a step of several batches is shared out by rows (the ranker's one group per
pass, two per step, gives each of 2 ranks one group)."""

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

    import sft_worker
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
    assert len(one) == 8 and len(two) == len(one)  # 8 groups, 2 per step, 2 epochs; logged once (rank 0)
    np.testing.assert_allclose(two, one, rtol=0, atol=1e-5)
    assert one[0] != one[-1]  # it trained
    # one process ran each step's 2 groups one after the other; each rank ran one of them: half the passes each
    assert rows == [1] * 16
    per_rank = [json.loads(Path(f"{result}.rank{r}.json").read_text()) for r in (0, 1)]
    assert per_rank == [[1] * 8, [1] * 8]


class _Dist:
    """The parts of a DistContext that the step split reads."""

    def __init__(self, rank: int, world_size: int) -> None:
        self.rank, self.world_size = rank, world_size

    def part(self, batch: np.ndarray) -> np.ndarray:
        return np.array_split(batch, self.world_size)[self.rank]


def test_a_step_is_shared_out_by_rows_in_equal_numbers_of_passes():
    from recllm.llm.sft import _rank_micro_batches

    step = [[5, 1], [7]]  # a step of two batches (grad_accum=2), 3 rows
    assert _rank_micro_batches(step, None, 2) == [([5, 1], 1.0), ([7], 1.0)]
    assert _rank_micro_batches(step, _Dist(0, 2), 2) == [([5, 1], 2.0)]
    assert _rank_micro_batches(step, _Dist(1, 2), 2) == [([7], 2.0)]
    assert _rank_micro_batches(step, _Dist(0, 2), 1) == [([5], 2.0), ([1], 2.0)]
    assert _rank_micro_batches(step, _Dist(1, 2), 1) == [([7], 2.0), ([5], 0.0)]  # a weight-0 pass to keep step
    assert _rank_micro_batches([[3]], _Dist(1, 2), 1) == [([3], 0.0)]  # fewer rows than ranks
