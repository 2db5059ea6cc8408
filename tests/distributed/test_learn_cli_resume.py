"""``recllm learn train --checkpoint-dir``: a training interrupted after an epoch's checkpoint resumes when the same
command is run again, and ends where an uninterrupted run ends; a folder that is not a checkpoint is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recllm import cli


@pytest.fixture()
def ddp_worker(monkeypatch):
    """tests/distributed/ddp_worker.py, its toy data set served by ``recllm.data.load``; one torch thread."""
    import torch

    from recllm.distributed.checkpoint import EpochCheckpoint

    import ddp_worker

    monkeypatch.setattr("recllm.data.load", lambda name, **kwargs: ddp_worker.dataset())
    monkeypatch.setattr(EpochCheckpoint, "save", EpochCheckpoint.save)  # die_after's patch is undone afterwards
    threads = torch.get_num_threads()
    yield ddp_worker
    torch.set_num_threads(threads)


def _train(tmp_path: Path, out: str, checkpoint: str) -> int:
    return cli.main(["learn", "train", "--data", "ml-100k", "--item-input", "id", "--dim", "8", "--out-dim", "8",
                     "--epochs", "3", "--out", str(tmp_path / out), "--checkpoint-dir", str(tmp_path / checkpoint),
                     "--threads", "1", "--quiet"])


def _history(folder: Path) -> list[dict]:
    return json.loads((folder / "trainer_state.json").read_text())["history"]


def test_a_second_invocation_resumes_from_the_checkpoint(ddp_worker, tmp_path, capsys):
    from recllm.distributed.checkpoint import EpochCheckpoint

    assert _train(tmp_path, "full", "full-ckpt") == 0
    full = _history(tmp_path / "full-ckpt")
    assert [r["epoch"] for r in full] == [1, 2, 3]

    save = EpochCheckpoint.save
    ddp_worker.die_after(2, how=RuntimeError("crash after epoch 2"))
    assert _train(tmp_path, "cut", "cut-ckpt") != 0  # the run died right after epoch 2's checkpoint
    EpochCheckpoint.save = save
    assert not (tmp_path / "cut").exists()
    before = _history(tmp_path / "cut-ckpt")
    assert [r["epoch"] for r in before] == [1, 2]
    capsys.readouterr()

    assert _train(tmp_path, "cut", "cut-ckpt") == 0  # the same command again
    resumed = _history(tmp_path / "cut-ckpt")
    assert resumed[:2] == before  # epochs 1-2, their timings too, come from the checkpoint: resumed, not redone
    assert [r["loss"] for r in resumed] == [r["loss"] for r in full]  # and it ends where the full run ends
    printed = json.loads(capsys.readouterr().out)
    assert printed["artifact"] == str(tmp_path / "cut") and (tmp_path / "cut").is_dir()


def test_a_folder_that_is_not_a_checkpoint_is_refused_before_any_work(ddp_worker, tmp_path, capsys, monkeypatch):
    def never(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("the data set was loaded before the options were checked")

    monkeypatch.setattr("recllm.data.load", never)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("mine")
    assert _train(tmp_path, "art", "notes") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a recllm trainer checkpoint" in err and "--checkpoint-dir" in err
    assert (tmp_path / "notes" / "mine.txt").read_text() == "mine" and not (tmp_path / "art").exists()


def test_a_damaged_checkpoint_is_one_line_before_any_work(ddp_worker, tmp_path, capsys, monkeypatch):
    """A cut trainer_state.json is refused when the options are checked (not 'internal error' after the data and
    the models load); a cut trainer_state.pt, found when the fit resumes, is one line too. Neither is touched."""
    import torch

    from recllm.distributed.checkpoint import EpochCheckpoint
    from recllm.errors import UserInputError

    checkpoint = EpochCheckpoint.at(tmp_path / "ck")
    meta = {"epoch": 1, "settings": None, "numpy_rng": {}}  # the keys every recllm checkpoint has
    checkpoint.save(meta, {"w": torch.ones(2)})
    state = tmp_path / "ck" / "trainer_state.json"
    state.write_text(state.read_text()[:5])

    def never(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("the data set was loaded before the options were checked")

    monkeypatch.setattr("recllm.data.load", never)
    assert _train(tmp_path, "art", "ck") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "trainer_state.json cannot be read" in err and "--checkpoint-dir" in err, err
    assert state.read_text() == '{"epo' and not (tmp_path / "art").exists()
    state.write_text(__import__("json").dumps(meta))
    tensors = tmp_path / "ck" / "trainer_state.pt"
    tensors.write_bytes(tensors.read_bytes()[:100])
    with pytest.raises(UserInputError, match="trainer_state.pt cannot be read"):
        EpochCheckpoint.at(tmp_path / "ck").load()
    assert len(tensors.read_bytes()) == 100


def test_a_checkpoint_of_other_settings_is_refused_before_any_work(ddp_worker, tmp_path, capsys, monkeypatch):
    """A finished fit's checkpoint and a command with another --dim: one line naming the difference, before the
    data set loads; the same settings resume (the early check agrees with the fit's own)."""
    assert _train(tmp_path, "first", "ck") == 0
    capsys.readouterr()

    def never(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("the data set was loaded before the options were checked")

    with monkeypatch.context() as patch:
        patch.setattr("recllm.data.load", never)
        argv = ["learn", "train", "--data", "ml-100k", "--item-input", "id", "--dim", "16", "--out-dim", "8",
                "--epochs", "3", "--out", str(tmp_path / "other"), "--checkpoint-dir", str(tmp_path / "ck"),
                "--threads", "1", "--quiet"]
        assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "other settings (dim: 8, now 16)" in err and "--checkpoint-dir" in err, err
    assert not (tmp_path / "other").exists()
    assert _train(tmp_path, "again", "ck") == 0  # the same settings pass the early check and resume


def test_a_checkpoint_of_other_data_or_processes_is_one_line_and_left_alone(ddp_worker, tmp_path, capsys,
                                                                              monkeypatch):
    """The report's case: a checkpoint of 15 items and a command on 20 items (exit 1, "internal error: ... size
    mismatch" after the data and the models loaded, before): one line, exit 2, before the fit starts; another
    number of processes before the data set loads. The checkpoint is never deleted or rewritten."""
    from recllm.learn import LEARN

    assert _train(tmp_path, "first", "ck") == 0
    capsys.readouterr()
    state = tmp_path / "ck" / "trainer_state.json"
    files = {p.name: p.read_bytes() for p in (tmp_path / "ck").iterdir()}

    def never(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("the fit started before the checkpoint was checked")

    with monkeypatch.context() as patch:
        patch.setattr("recllm.data.load", lambda name, **kwargs: ddp_worker.dataset(24, 20))
        patch.setattr(LEARN, "fit", never)
        assert _train(tmp_path, "other", "ck") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "written for other data (n_items 20 here, 15 there)" in err, err
    assert "--checkpoint-dir" in err and f"delete {tmp_path / 'ck'}" in err
    assert {p.name: p.read_bytes() for p in (tmp_path / "ck").iterdir()} == files and not (tmp_path / "other").exists()

    saved = json.loads(state.read_text())
    state.write_text(json.dumps({**saved, "world_size": 2}))  # as rank 0 of a 2-process torchrun writes it
    with monkeypatch.context() as patch:
        patch.setattr("recllm.data.load", never)
        assert _train(tmp_path, "other", "ck") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "written by 2 process(es) and this fit runs 1" in err and "--checkpoint-dir" in err
    state.write_text(json.dumps(saved))
    assert _train(tmp_path, "again", "ck") == 0  # the same data and processes: the finished fit, resumed
