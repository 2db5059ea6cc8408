"""Atomic writes: all or nothing, and the written file gets the permissions a plain open() would give; the source
hash of a package."""

import os
import stat
import tempfile
from pathlib import Path

import numpy as np
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


@pytest.mark.parametrize("umask, file_mode", [(0o022, 0o644), (0o077, 0o600)])
def test_published_files_and_folders_get_the_modes_a_plain_write_gives(tmp_path, umask, file_mode):
    """mkstemp, mkdtemp and safetensors make private files and folders; published ones follow the umask, and one
    that replaces an existing file or folder keeps that one's permission bits."""
    from safetensors.numpy import save_file

    from recllm.utils import publish_folder

    old = os.umask(umask)
    try:
        write_text_atomic(tmp_path / "new.txt", "x")
        (tmp_path / "theirs.txt").write_text("old")
        os.chmod(tmp_path / "theirs.txt", 0o640)
        write_text_atomic(tmp_path / "theirs.txt", "new")
        build = Path(tempfile.mkdtemp(dir=tmp_path))
        save_file({"a": np.zeros(2, np.float32)}, str(build / "w.safetensors"))  # 0600 whatever the umask
        publish_folder(build, tmp_path / "ckpt")
        replaced = Path(tempfile.mkdtemp(dir=tmp_path))
        os.chmod(tmp_path / "ckpt", 0o2750)
        publish_folder(replaced, tmp_path / "ckpt")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == file_mode
    assert stat.S_IMODE((tmp_path / "theirs.txt").stat().st_mode) == 0o640
    assert stat.S_IMODE(os.stat(tmp_path / "ckpt").st_mode) == 0o2750  # the replaced folder's bits


def test_a_published_folders_files_follow_the_umask(tmp_path):
    from safetensors.numpy import save_file

    from recllm.utils import publish_folder

    for umask, file_mode, folder_mode in [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)]:
        target = tmp_path / f"out{umask:o}"
        old = os.umask(umask)
        try:
            build = Path(tempfile.mkdtemp(dir=tmp_path))
            (build / "sub").mkdir(mode=0o700)
            save_file({"a": np.zeros(2, np.float32)}, str(build / "sub" / "w.safetensors"))
            publish_folder(build, target)
        finally:
            os.umask(old)
        assert stat.S_IMODE(target.stat().st_mode) == folder_mode
        assert stat.S_IMODE((target / "sub").stat().st_mode) == folder_mode
        assert stat.S_IMODE((target / "sub" / "w.safetensors").stat().st_mode) == file_mode


def test_a_failed_write_leaves_the_target_untouched(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("kept")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "kept" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_without_replace_a_file_that_appeared_meanwhile_is_kept_and_the_result_set_beside_it(tmp_path):
    from recllm.errors import UserInputError

    target = tmp_path / "out.txt"
    with atomic_path(target, replace=False) as tmp:  # free: written as usual
        tmp.write_text("one")
    assert target.read_text() == "one" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    target.unlink()
    for n, kept in enumerate(("out.txt.new", "out.txt.new-2")):
        with pytest.raises(UserInputError, match=f"the result is in {kept}"):
            with atomic_path(target, replace=False) as tmp:
                tmp.write_text(f"result {n}")
                if n == 0:
                    target.write_text("the user's")  # appears while the work runs
        assert target.read_text() == "the user's" and (tmp_path / kept).read_text() == f"result {n}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt", "out.txt.new", "out.txt.new-2"]


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


def test_package_source_sha256_changes_with_any_module_of_the_package(tmp_path, monkeypatch) -> None:
    import sys

    from recllm.utils import package_source_sha256

    package = tmp_path / "srchash_pkg"
    (package / "inner").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "inner" / "__init__.py").write_text("")
    (package / "inner" / "loss.py").write_text("WEIGHT = 1\n")
    (package / "notes.txt").write_text("not source")
    monkeypatch.syspath_prepend(str(tmp_path))
    first = package_source_sha256("srchash_pkg")
    assert first == package_source_sha256("srchash_pkg") and len(first) == 64
    (package / "notes.txt").write_text("other text")  # not a module: no effect
    package_source_sha256.cache_clear()
    assert package_source_sha256("srchash_pkg") == first
    (package / "inner" / "loss.py").write_text("WEIGHT = 2\n")  # a nested module edited
    package_source_sha256.cache_clear()
    assert package_source_sha256("srchash_pkg") != first
    (package / "inner" / "loss.py").write_text("WEIGHT = 1\n")
    (package / "inner" / "loss.py").rename(package / "inner" / "loss2.py")  # same bytes, another module
    package_source_sha256.cache_clear()
    second = package_source_sha256("srchash_pkg")
    assert second != first
    (package / "inner" / ".#loss2.py").symlink_to(tmp_path / "gone")  # an editor's dangling lock link
    package_source_sha256.cache_clear()
    assert package_source_sha256("srchash_pkg") == second
    sys.modules.pop("srchash_pkg", None)
    with pytest.raises(ValueError, match="not an installed package"):
        package_source_sha256("json.decoder")


def test_package_source_sha256_is_the_same_wherever_the_package_lives(tmp_path, monkeypatch) -> None:
    from recllm.utils import package_source_sha256

    for place, name in ((tmp_path / "a", "srchash_one"), (tmp_path / "b", "srchash_two")):
        (place / name / "sub").mkdir(parents=True)
        (place / name / "__init__.py").write_text("X = 1\n")
        (place / name / "sub" / "m.py").write_text("Y = 2\n")
        monkeypatch.syspath_prepend(str(place))
    assert package_source_sha256("srchash_one") == package_source_sha256("srchash_two")
    empty = tmp_path / "c" / "srchash_empty"
    empty.mkdir(parents=True)  # a namespace package without source: nothing to tell versions apart
    monkeypatch.syspath_prepend(str(tmp_path / "c"))
    with pytest.raises(ValueError, match="no .py source files"):
        package_source_sha256("srchash_empty")
