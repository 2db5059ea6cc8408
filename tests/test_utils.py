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
