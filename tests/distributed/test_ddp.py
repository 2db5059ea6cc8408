"""torchrun: 2 processes with half of each batch reproduce the loss curve of 1 process with the whole batch."""

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


def test_two_ranks_reproduce_one_process(tmp_path):
    sys.path.insert(0, str(HERE))
    try:
        import ddp_worker
    finally:
        sys.path.remove(str(HERE))
    single = ddp_worker.fit()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(HERE)}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(HERE / "ddp_worker.py"), str(out)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # written once, atomically, by rank 0
    run = json.loads((out / "losses.json").read_text())
    assert len(single.step_losses_) >= 6 and len(run["steps"]) == len(single.step_losses_)
    np.testing.assert_allclose(run["steps"], single.step_losses_, rtol=0, atol=1e-5)
    assert run["steps"][0] != run["steps"][-1]  # it trained
    # Adam divides near-zero gradients by their own scale, so float rounding reaches the weights at ~lr: the
    # final weights agree loosely, the validation metric within noise
    for name, value in single.net_.state_dict().items():
        np.testing.assert_allclose(np.asarray(run["weights"][name]), value.numpy(), rtol=0, atol=1e-2)
    assert [r["valid_ndcg@10"] for r in run["history"]] == pytest.approx(
        [r["valid_ndcg@10"] for r in single.history_], abs=0.02)
