"""Atomic writes: all or nothing, and the written file gets the permissions a plain open() would give."""

import os
import stat

import pytest

from recllm.utils import atomic_path, write_text_atomic


def test_atomic_write_replaces_and_follows_the_umask(tmp_path):
    target = tmp_path / "out.txt"
    old = os.umask(0o022)
    try:
        write_text_atomic(target, "one")
        write_text_atomic(target, "two")
    finally:
        os.umask(old)
    assert target.read_text() == "two"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_failed_write_leaves_the_target_untouched(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("kept")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "kept" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_set_threads_limits_torch_and_the_blas_pools(monkeypatch):
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    from recllm.utils import set_threads

    before = torch.get_num_threads()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    with threadpool_limits(limits=None):  # restores the pools' limits afterwards
        try:
            set_threads(1)
            assert torch.get_num_threads() == 1 and torch.get_num_interop_threads() >= 1
            pools = threadpool_info()
            assert pools and all(pool["num_threads"] == 1 for pool in pools)
            import os

            assert os.environ["OMP_NUM_THREADS"] == "1" and os.environ["OPENBLAS_NUM_THREADS"] == "1"
            set_threads(0)  # 0 leaves the defaults alone
            assert torch.get_num_threads() == 1
        finally:
            torch.set_num_threads(before)
