"""torchrun: 2 processes with half of each batch reproduce the loss curve of 1 process with the whole batch, and a
fit killed mid-way resumes from rank 0's epoch checkpoint to the weights of an uninterrupted fit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

# the worker scripts beside this file (tests/distributed/conftest.py puts the folder on sys.path)
import ddp_worker

pytestmark = pytest.mark.distributed

HERE = Path(__file__).parent


def _torchrun(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(HERE), **(env_extra or {})}
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(HERE / "ddp_worker.py"), *args], env=env, capture_output=True, text=True, timeout=300)


def test_two_ranks_reproduce_one_process_and_resume_after_a_crash(tmp_path):
    single = ddp_worker.fit()
    out = tmp_path / "run"
    done = _torchrun(str(out), str(tmp_path / "ckpt"))  # checkpoints every epoch (they change no number)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", "run"]  # written atomically, by rank 0
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

    crashed = _torchrun(str(tmp_path / "cut"), str(tmp_path / "cut-ckpt"), "2")
    assert crashed.returncode != 0 and not (tmp_path / "cut").exists()  # rank 0 died after epoch 2's checkpoint
    before = json.loads((tmp_path / "cut-ckpt" / "trainer_state.json").read_text())["history"]
    resumed = _torchrun(str(tmp_path / "cut"), str(tmp_path / "cut-ckpt"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    again = json.loads((tmp_path / "cut" / "losses.json").read_text())
    assert again["history"][:2] == before  # epochs 1-2 (their timings too) come from the checkpoint: resumed
    assert again["weights"] == run["weights"] and again["steps"] == run["steps"]  # exactly the uninterrupted fit
    assert [r["loss"] for r in again["history"]] == [r["loss"] for r in run["history"]]


def test_ranks_draw_their_own_numbers_and_resume_them_exactly(tmp_path):
    """With dropout and BCE negatives every rank drew rank 0's numbers (the same seed), and a resumed fit gave
    every rank rank 0's generators back: the resumed run left the uninterrupted one at its first step."""
    env = {"WORKER_SETTINGS": json.dumps({"loss": "bce", "dropout": 0.3})}
    done = _torchrun(str(tmp_path / "run"), str(tmp_path / "ckpt"), env_extra=env)
    assert done.returncode == 0, done.stderr[-3000:]
    crashed = _torchrun(str(tmp_path / "cut"), str(tmp_path / "cut-ckpt"), "2", env_extra=env)
    assert crashed.returncode != 0 and not (tmp_path / "cut").exists()
    resumed = _torchrun(str(tmp_path / "cut"), str(tmp_path / "cut-ckpt"), env_extra=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    run, again = (json.loads((tmp_path / name / "losses.json").read_text()) for name in ("run", "cut"))
    assert again["steps"] == run["steps"] and again["weights"] == run["weights"]
    states = torch.load(tmp_path / "ckpt" / "trainer_state.pt", weights_only=True)["ranks_rng"]
    assert len(states) == 2 and not torch.equal(states[0]["torch_rng"], states[1]["torch_rng"])  # their own draws
    assert not torch.equal(states[0]["generator"], states[1]["generator"])


def test_learn_on_two_ranks_optimises_the_one_process_loss(tmp_path):
    """LEARN's in-batch softmax took its candidates from each rank's share of the batch: with 2 ranks each query met
    about half the negatives one process gives it (loss 1.38 where one process has 1.91). Every rank's share is
    now a candidate for every query and the pair counts are the whole batch's."""
    single = ddp_worker.fit_learn()
    done = _torchrun(str(tmp_path / "run"), env_extra={"WORKER_MODEL": "learn"})
    assert done.returncode == 0, done.stderr[-3000:]
    run = json.loads((tmp_path / "run" / "losses.json").read_text())
    assert len(run["steps"]) == len(single.step_losses_) >= 6
    np.testing.assert_allclose(run["steps"], single.step_losses_, rtol=0, atol=1e-5)
    # with dense pairs and catalogue negatives (drawn per rank): the same loss in expectation, not in value
    noisy = _torchrun(str(tmp_path / "noisy"), env_extra={
        "WORKER_MODEL": "learn", "WORKER_SETTINGS": json.dumps({"dense_weight": 1.0, "catalogue_negatives": 4})})
    assert noisy.returncode == 0, noisy.stderr[-3000:]


def test_a_time_budget_one_rank_runs_out_of_stops_every_rank(tmp_path):
    """Each rank checked the time budget on its own clock: the rank past it left the epoch loop while the other
    waited in its next all-reduce, and the job died ("Connection closed by peer")."""
    done = _torchrun(str(tmp_path / "run"), env_extra={"BUDGET_RANK": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    run = json.loads((tmp_path / "run" / "losses.json").read_text())
    assert len(run["history"]) == 1  # both ranks stopped after the first epoch


def test_one_process_resumes_exactly_with_dropout_and_sampled_negatives(tmp_path, monkeypatch):
    """Every random generator the fit draws from (dropout, negatives, batch order) is restored from the checkpoint."""
    from recllm.distributed.checkpoint import EpochCheckpoint
    noisy = dict(dropout=0.3, loss="bce")
    full = ddp_worker.fit(str(tmp_path / "full"), **noisy)
    monkeypatch.setattr(EpochCheckpoint, "save", EpochCheckpoint.save)  # restored by undo() below
    ddp_worker.die_after(2, how=RuntimeError("crash after epoch 2"))
    with pytest.raises(RuntimeError, match="crash after epoch 2"):
        ddp_worker.fit(str(tmp_path / "cut"), **noisy)
    monkeypatch.undo()
    before = json.loads((tmp_path / "cut" / "trainer_state.json").read_text())["history"]
    resumed = ddp_worker.fit(str(tmp_path / "cut"), **noisy)
    assert [r["epoch"] for r in resumed.history_] == [1, 2, 3]
    assert resumed.history_[:2] == before  # epochs 1-2, timings included, come from the checkpoint: resumed
    assert [r["loss"] for r in resumed.history_] == [r["loss"] for r in full.history_]
    assert resumed.step_losses_ == full.step_losses_
    for name, value in full.net_.state_dict().items():
        assert torch.equal(resumed.net_.state_dict()[name], value), name
    finished = ddp_worker.fit(str(tmp_path / "cut"), **noisy)  # a finished fit reruns as a no-op
    assert finished.history_ == resumed.history_
    from recllm.errors import UserInputError

    with pytest.raises(UserInputError, match=r"other settings \(lr: 0.005, now 0.01\)"):
        ddp_worker.fit(str(tmp_path / "cut"), **noisy, lr=1e-2)


def test_a_folder_that_is_not_a_checkpoint_is_refused(tmp_path):
    from recllm.errors import UserInputError

    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UserInputError, match="not a recllm trainer checkpoint"):
        ddp_worker.fit(str(tmp_path))
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_another_programs_trainer_state_folder_is_refused_and_kept(tmp_path):
    """A Hugging Face Trainer checkpoint-500/ (or recllm's SFT checkpoint-N/) has a trainer_state.json too: it was
    taken for an epoch checkpoint, trained from the start, and replaced whole by the first save."""
    import json

    from recllm.distributed.checkpoint import EpochCheckpoint
    from recllm.errors import UserInputError

    hf = tmp_path / "checkpoint-500"
    hf.mkdir()
    (hf / "trainer_state.json").write_text(json.dumps({"global_step": 500}))
    (hf / "optimizer.pt").write_bytes(b"weights")
    only_state = tmp_path / "state-only"  # the two file names alone are not enough: the JSON must be recllm's
    only_state.mkdir()
    (only_state / "trainer_state.json").write_text(json.dumps({"global_step": 500}))
    for folder in (hf, only_state):
        before = {p.name: p.read_bytes() for p in folder.iterdir()}
        with pytest.raises(UserInputError, match=r"not a recllm trainer checkpoint"):
            EpochCheckpoint.at(folder)
        assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    with pytest.raises(UserInputError, match=r"holds optimizer\.pt, trainer_state\.json"):
        ddp_worker.fit(str(hf))
    (tmp_path / "empty").mkdir()
    assert EpochCheckpoint.at(tmp_path / "empty").saved_epoch() == 0


def test_publishing_a_checkpoint_never_touches_a_users_sibling_and_recovers_from_a_crash(tmp_path):
    """A user's `.ckpt.old` beside --checkpoint-dir ckpt survives every save (it was the scratch name, deleted);
    a checkpoint left aside by a crash between the two renames is still found."""
    import torch

    from recllm.distributed.checkpoint import EpochCheckpoint
    from recllm.distributed.ddp import write_atomically
    from recllm.utils import publish_folder as publish

    mine = tmp_path / ".ckpt.old"
    mine.mkdir()
    (mine / "backup.txt").write_text("my backup")
    checkpoint = EpochCheckpoint.at(tmp_path / "ckpt")
    for epoch in (1, 2):
        checkpoint.save({"epoch": epoch}, {"w": torch.ones(2) * epoch})
    assert checkpoint.load()[0]["epoch"] == 2 and (mine / "backup.txt").read_text() == "my backup"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ckpt.old", "ckpt"]
    # the crash: the last checkpoint renamed aside, the new one never renamed in; the resumed fit's next save
    # publishes and removes it, so deleting the folder later starts afresh
    (tmp_path / "ckpt").rename(tmp_path / ".ckpt.old-x1y2_3z4")
    assert checkpoint.load()[0]["epoch"] == 2
    checkpoint.save({"epoch": 3}, {"w": torch.ones(2) * 3})
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ckpt.old", "ckpt"]
    __import__("shutil").rmtree(tmp_path / "ckpt")
    assert checkpoint.load() is None
    (tmp_path / ".ckpt.old-dangling").symlink_to(tmp_path / "nowhere")  # not a traceback, not a checkpoint
    assert checkpoint.load() is None
    write_atomically(tmp_path / "ckpt", lambda tmp: (tmp / "f").write_text("x"))
    # the adapter checkpoints' publish: the same rule
    target, theirs = tmp_path / "adapter", tmp_path / f".adapter.old-{__import__('os').getpid()}"
    theirs.mkdir()
    (theirs / "keep.txt").write_text("theirs")
    for payload in ("a", "b"):
        built = tmp_path / f"built-{payload}"
        built.mkdir()
        (built / "w").write_text(payload)
        publish(built, target)
    assert (target / "w").read_text() == "b" and (theirs / "keep.txt").read_text() == "theirs"
