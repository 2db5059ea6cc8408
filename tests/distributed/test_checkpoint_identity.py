"""An epoch checkpoint records what its fit trained on -- the data and the number of processes -- and a fit on
other data, or with another number of processes, is refused in one line before any training work, the folder left
as it is; the same fit still resumes exactly (one process: the torchrun case is test_ddp.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import ddp_worker
from recllm.distributed.checkpoint import STATE_FILE, TENSORS_FILE, EpochCheckpoint, restore_trainer
from recllm.errors import UserInputError


@pytest.fixture()
def cut(tmp_path, monkeypatch) -> Path:
    """A checkpoint folder of the toy SASRec fit (24 users, 15 items) interrupted after epoch 1's checkpoint."""
    with monkeypatch.context() as patch:
        patch.setattr(EpochCheckpoint, "save", EpochCheckpoint.save)  # die_after's patch is undone on leaving
        ddp_worker.die_after(1, how=RuntimeError("crash after epoch 1"))
        with pytest.raises(RuntimeError, match="crash after epoch 1"):
            ddp_worker.fit(str(tmp_path / "ck"))
    return tmp_path / "ck"


def _files(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in (STATE_FILE, TENSORS_FILE)}


def _refused(folder: Path, says: str, **fit) -> str:
    """Fit into ``folder`` and expect one line matching ``says``, with the folder left as it was."""
    before = _files(folder)

    def never(*args, **kwargs):  # noqa: ANN002, ANN003
        raise AssertionError("the net was built before the checkpoint was checked")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ddp_worker.SASRec, "_build", never)
        with pytest.raises(UserInputError, match=says) as refused:
            ddp_worker.fit(str(folder), **fit)
    assert "\n" not in str(refused.value) and str(folder) in str(refused.value)
    assert _files(folder) == before  # never deleted, never rewritten
    return str(refused.value)


def test_a_checkpoint_of_other_data_is_refused_and_the_same_data_resumes(cut, tmp_path):
    line = _refused(cut, r"written for other data \(n_users 40 here, 24 there\)", data=ddp_worker.dataset(40, 15))
    assert line.endswith(f"use another checkpoint folder, or delete {cut} to train from the start")
    _refused(cut, r"other data \(n_items 20 here, 15 there\)", data=ddp_worker.dataset(24, 20))
    same_counts = ddp_worker.dataset()  # one interaction of one user on another item: only the hash tells
    same_counts.interactions.loc[0, "item_id"] = "i7" if same_counts.interactions.loc[0, "item_id"] != "i7" else "i8"
    _refused(cut, r"other data \(same counts, other training rows or item content\)", data=same_counts)

    full = ddp_worker.fit(str(tmp_path / "full"))
    resumed = ddp_worker.fit(str(cut))  # the data it was written for: resumed, ending where the full fit ends
    assert [r["epoch"] for r in resumed.history_] == [1, 2, 3]
    assert [r["loss"] for r in resumed.history_] == [r["loss"] for r in full.history_]
    for name, value in full.net_.state_dict().items():
        assert torch.equal(resumed.net_.state_dict()[name], value), name


def _edit_state(folder: Path, **changes: object) -> None:
    state = json.loads((folder / STATE_FILE).read_text())
    for key, value in changes.items():
        if value is None:
            state.pop(key)
        else:
            state[key] = value
    (folder / STATE_FILE).write_text(json.dumps(state))


def test_a_checkpoint_of_another_number_of_processes_is_refused(cut):
    assert json.loads((cut / STATE_FILE).read_text())["world_size"] == 1
    _edit_state(cut, world_size=2)  # what rank 0 of `torchrun --nproc-per-node 2` writes
    _refused(cut, r"written by 2 process\(es\) and this fit runs 1 \(resume with torchrun --nproc-per-node 2\)")


def test_a_checkpoint_of_an_older_recllm_is_refused(cut):
    """A checkpoint that recorded neither its data nor its number of processes cannot be checked: refused."""
    _edit_state(cut, data=None, world_size=None)
    _refused(cut, r"written by an older recllm, which recorded neither its data nor its number of processes")


def test_weights_that_do_not_fit_the_net_are_one_line(tmp_path):
    """The last guard (restore_trainer): a state_dict size mismatch is a UserInputError naming the folder."""
    import numpy as np

    net, other = torch.nn.Linear(3, 2), torch.nn.Linear(4, 2)
    saved = ({"numpy_rng": None}, {"net": net.state_dict()})
    optimizer = torch.optim.SGD(other.parameters(), lr=0.1)
    with pytest.raises(UserInputError, match=r"weights do not fit this model \(size mismatch for weight: .*\) "
                                             r"\(runs/ck\); use another checkpoint folder") as refused:
        restore_trainer(saved, other, optimizer, np.random.default_rng(0), torch.Generator(), where="runs/ck")
    assert "\n" not in str(refused.value)


def test_a_learn_checkpoint_of_other_item_content_is_refused(tmp_path):
    """LEARN's content table is a buffer of the checkpointed net: a fit with other content embeddings (or item
    texts) resumed the old table, and whitened with the new one."""
    from recllm.data.split import leave_one_out
    from recllm.learn import LEARN

    split = leave_one_out(ddp_worker.dataset())
    rng = np.random.default_rng(0)
    first, other = (rng.normal(size=(split.dataset.n_items, 8)).astype(np.float32) for _ in range(2))
    settings = dict(dim=16, out_dim=16, n_heads=2, n_layers=1, max_len=6, max_epochs=1, batch_size=8,
                    device="cpu", show_progress=False, seed=3, checkpoint_dir=str(tmp_path / "ck"))
    LEARN(content_embeddings=first, **settings).fit(split)
    with pytest.raises(UserInputError, match=r"other data \(same counts, other training rows or item content\)"):
        LEARN(content_embeddings=other, **settings).fit(split)
    LEARN(content_embeddings=first, **settings).fit(split)  # the same content: resumed (it had finished)
