"""recllm.outputs: where recllm may write; replacing only its own output folders; files need --overwrite."""

import errno
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from recllm.errors import UserInputError
from recllm.outputs import (MARKER, check_output_dir, check_output_file, check_report_file, mark_output_dir,
                            publish_output_dir, read_marker)


def _snapshot(root):
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def _built(tmp_path, name="build", payload="new"):
    tmp = tmp_path / name
    tmp.mkdir()
    (tmp / "weights.bin").write_text(payload)
    return tmp


# ------------------------------------------------------------------------------------------- check_output_dir
def test_absent_empty_and_own_folders_are_accepted(tmp_path):
    assert check_output_dir(tmp_path / "a" / "b", "learn-artifact", 1) == tmp_path / "a" / "b"
    (tmp_path / "empty").mkdir()
    check_output_dir(tmp_path / "empty", "learn-artifact", 1)
    own = mark_output_dir(tmp_path / "own", "learn-artifact", 1)
    (own / "x").write_text("1")
    check_output_dir(own, "learn-artifact", 1)
    check_output_dir(own, "learn-artifact", 2)  # a newer recllm may replace an older format of its own output
    assert not (tmp_path / "a").exists()  # checking creates nothing


@pytest.mark.parametrize("setup, match", [
    (lambda p: p.write_text("file"), "existing file"),
    (lambda p: (p.mkdir(), (p / "mine.txt").write_text("x")), "not made by recllm"),
    (lambda p: (p.mkdir(), (p / MARKER).write_text(json.dumps({"kind": "trsr-run", "version": 1}))), "'trsr-run'"),
    (lambda p: (p.mkdir(), (p / MARKER).write_text(json.dumps({"kind": "learn-artifact", "version": 9}))), "newer"),
    (lambda p: (p.mkdir(), (p / MARKER).write_text("not json")), "not made by recllm"),
])
def test_other_paths_are_refused_with_what_to_do(tmp_path, setup, match):
    target = tmp_path / "out"
    setup(target)
    with pytest.raises(UserInputError, match=match) as err:
        check_output_dir(target, "learn-artifact", 1)
    assert str(target) in str(err.value) and "choose a new --out folder" in str(err.value)


def test_parent_that_is_a_file_or_unwritable_is_refused(tmp_path, monkeypatch):
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserInputError, match="is a file"):
        check_output_dir(tmp_path / "f" / "sub" / "out", "learn-artifact", 1)
    with pytest.raises(UserInputError, match="is a file"):
        check_output_file(tmp_path / "f" / "out.csv", (".csv",))
    monkeypatch.setattr("recllm.outputs.can_write_in", lambda folder: False)  # root passes permission bits
    with pytest.raises(UserInputError, match="no write permission"):
        check_output_dir(tmp_path / "new" / "out", "learn-artifact", 1)
    with pytest.raises(UserInputError, match="no write permission"):
        check_output_file(tmp_path / "out.csv", (".csv",))


# ------------------------------------------------------------------------------------------- publish_output_dir
def test_publish_into_absent_and_empty_folders(tmp_path):
    out = publish_output_dir(_built(tmp_path), tmp_path / "deep" / "out", "learn-artifact", 1)
    assert (out / "weights.bin").read_text() == "new" and read_marker(out)["kind"] == "learn-artifact"
    (tmp_path / "empty").mkdir()
    publish_output_dir(_built(tmp_path, "b2"), tmp_path / "empty", "learn-artifact", 1)
    assert (tmp_path / "empty" / "weights.bin").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep", "empty"]


@pytest.mark.parametrize("umask, file_mode, folder_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_a_published_output_folder_gets_the_modes_a_plain_write_gives(tmp_path, umask, file_mode, folder_mode):
    """The build folder is mkdtemp's (0700) and safetensors writes 0600 files: the published folder and its files
    follow the umask instead, and a replaced folder of ours keeps its permission bits."""
    import tempfile

    from safetensors.numpy import save_file

    old = os.umask(umask)
    try:
        build = Path(tempfile.mkdtemp(dir=tmp_path))
        save_file({"a": np.zeros(2, np.float32)}, str(build / "model.safetensors"))
        out = publish_output_dir(build, tmp_path / "out", "learn-artifact", 1)
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [out, *out.iterdir()]}
        os.chmod(out, 0o750)
        publish_output_dir(_built(tmp_path), out, "learn-artifact", 1)
    finally:
        os.umask(old)
    assert modes == {"out": folder_mode, "model.safetensors": file_mode, MARKER: file_mode}
    assert stat.S_IMODE(out.stat().st_mode) == 0o750 and (out / "weights.bin").is_file()


def test_an_empty_folder_the_user_made_is_kept_with_its_modes_group_and_inode(tmp_path):
    """`mkdir -m 2775 out; recllm learn train --out out` used to swap in a new private folder (setgid and group
    access lost); now the output's files are linked into the user's folder, which stays as it was."""
    import tempfile

    from safetensors.numpy import save_file

    target = tmp_path / "shared"
    target.mkdir()
    os.chmod(target, 0o2775)
    before = target.stat()
    old = os.umask(0o022)
    try:
        build = Path(tempfile.mkdtemp(dir=tmp_path))
        save_file({"a": np.zeros(2, np.float32)}, str(build / "model.safetensors"))
        (build / "sub").mkdir()
        (build / "sub" / "ids.json").write_text("[]")
        assert publish_output_dir(build, target, "learn-artifact", 1) == target
    finally:
        os.umask(old)
    after = target.stat()
    assert (after.st_ino, stat.S_IMODE(after.st_mode), after.st_gid) == (before.st_ino, 0o2775, before.st_gid)
    assert stat.S_IMODE((target / "model.safetensors").stat().st_mode) == 0o644
    assert read_marker(target)["files"] == ["model.safetensors", "sub/ids.json"]
    assert (target / "sub" / "ids.json").read_text() == "[]"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shared"]  # the build folder is gone


def test_an_empty_folder_that_fills_meanwhile_is_left_as_it_is(tmp_path, monkeypatch):
    """A file that appears in the empty folder during the work is never replaced; whatever recllm linked in is
    taken out again. Without hard links the folder is replaced by a rename, which fails if it filled."""
    import recllm.outputs as outputs

    target = tmp_path / "out"
    target.mkdir()
    real_link = os.link

    def link_then_user_writes(src, dst, **kwargs):
        real_link(src, dst, **kwargs)
        if not (target / "weights.bin").exists():  # right after recllm's marker went in
            (target / "weights.bin").write_text("the user's")

    monkeypatch.setattr(outputs.os, "link", link_then_user_writes)
    with pytest.raises(UserInputError, match="filled while recllm was working"):
        publish_output_dir(_built(tmp_path), target, "learn-artifact", 1)
    assert sorted(p.name for p in target.iterdir()) == ["weights.bin"]
    assert (target / "weights.bin").read_text() == "the user's"
    (target / "weights.bin").unlink()

    def no_links(src, dst, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(outputs.os, "link", no_links)
    publish_output_dir(_built(tmp_path, "b2"), target, "learn-artifact", 1)
    assert (target / "weights.bin").read_text() == "new"


def test_publish_replaces_only_our_own_folder(tmp_path):
    target = publish_output_dir(_built(tmp_path, payload="old"), tmp_path / "out", "learn-artifact", 1)
    publish_output_dir(_built(tmp_path, payload="new"), target, "learn-artifact", 1)
    assert (target / "weights.bin").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no aside copy left behind


def test_publish_records_its_files_and_never_replaces_a_folder_holding_others(tmp_path):
    """A file added to our output after it was published (a service's database, notes) is the user's: a rerun
    into the folder is refused before any work, and at publish time too, and every file is kept."""
    target = publish_output_dir(_built(tmp_path, payload="old"), tmp_path / "out", "learn-artifact", 1)
    assert read_marker(target)["files"] == ["weights.bin"]
    (target / "serve.db").write_bytes(b"SQLite events")
    (target / "sub").mkdir()
    (target / "sub" / "notes.md").write_text("mine")
    before = _snapshot(tmp_path)
    with pytest.raises(UserInputError, match=r"files recllm did not write there \(serve.db, sub/notes.md\); "
                                             "recllm will not replace it"):
        check_output_dir(target, "learn-artifact", 1)
    with pytest.raises(UserInputError, match=r"did not write there \(serve.db, sub/notes.md\)"):
        publish_output_dir(_built(tmp_path, payload="new"), target, "learn-artifact", 1)
    after = {k: v for k, v in _snapshot(tmp_path).items() if not k.startswith("build")}
    assert after == before


def test_a_users_folder_or_unreadable_folder_inside_our_output_is_theirs(tmp_path, monkeypatch):
    """Folders count too: an empty one (it was deleted silently) and one that cannot be read (os.walk skipped it,
    and the rerun failed with a traceback, leaving the user's file in a hidden folder)."""
    import recllm.outputs as outputs

    target = publish_output_dir(_built(tmp_path, payload="old"), tmp_path / "out", "learn-artifact", 1)
    (target / "empty").mkdir()
    with pytest.raises(UserInputError, match=r"did not write there \(empty/\)"):
        check_output_dir(target, "learn-artifact", 1)
    (target / "empty").rmdir()
    (target / "locked").mkdir()
    (target / "locked" / "secret.txt").write_text("mine")
    real_walk = os.walk
    monkeypatch.setattr(outputs.os, "walk", lambda top, onerror=None, **kw: _walk_denying(real_walk, top, onerror,
                                                                                          "locked", **kw))
    with pytest.raises(UserInputError, match=r"locked/ \(unreadable\)"):
        publish_output_dir(_built(tmp_path, payload="new"), target, "learn-artifact", 1)
    assert (target / "locked" / "secret.txt").read_text() == "mine"


def _walk_denying(walk, top, onerror, name, **kw):
    """os.walk as it behaves for a folder ``name`` it may not read (as a non-root user would see it)."""
    for root, dirs, files in walk(top, onerror=onerror, **kw):
        if os.path.basename(root) == name:
            onerror(PermissionError(13, "Permission denied", root))
            dirs[:] = []
            continue
        yield root, dirs, files


def test_publish_over_a_marker_without_file_list_keeps_names_the_new_output_lacks(tmp_path):
    """A folder published before markers listed files may be replaced only when the new output has every name."""
    old = tmp_path / "out"
    old.mkdir()
    (old / "weights.bin").write_text("old")
    (old / MARKER).write_text(json.dumps({"kind": "learn-artifact", "version": 1}))
    publish_output_dir(_built(tmp_path, payload="new"), old, "learn-artifact", 1)
    assert (old / "weights.bin").read_text() == "new"
    (old / MARKER).write_text(json.dumps({"kind": "learn-artifact", "version": 1}))
    (old / "serve.db").write_bytes(b"events")
    with pytest.raises(UserInputError, match=r"did not write there \(serve.db\)"):
        publish_output_dir(_built(tmp_path, "b2", payload="newer"), old, "learn-artifact", 1)
    assert (old / "serve.db").read_bytes() == b"events" and (old / "weights.bin").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b2", "out"]  # no aside copy left behind
    # with the kind's known names: refused before any work, and a name the new output lacks is still ours
    with pytest.raises(UserInputError, match=r"\(serve.db\); recllm will not replace it"):
        check_output_dir(old, "learn-artifact", 1, known=("weights.bin", "index.faiss"))
    (old / "serve.db").unlink()
    (old / "index.faiss").write_bytes(b"ours, from an earlier --index run")
    publish_output_dir(_built(tmp_path, "b3", payload="newest"), old, "learn-artifact", 1,
                       known=("weights.bin", "index.faiss"))
    assert sorted(p.name for p in old.iterdir()) == [MARKER, "weights.bin"]


def test_a_symbolic_link_as_output_folder_is_refused_before_any_work(tmp_path):
    """It was accepted, then failed after the work (the rename replaced the link) naming a temporary path."""
    real = tmp_path / "real"
    real.mkdir()
    for name in ("to-empty", "dangling"):
        link = tmp_path / name
        link.symlink_to(real if name == "to-empty" else tmp_path / "nowhere")
        with pytest.raises(UserInputError, match=r"symbolic link.*give the folder it points to"):
            check_output_dir(link, "learn-artifact", 1)
        assert link.is_symlink()


def test_publish_refuses_a_users_folder_and_leaves_everything(tmp_path):
    user = tmp_path / "out"
    user.mkdir()
    (user / "thesis.tex").write_text("years of work")
    tmp = _built(tmp_path)
    before = {k: v for k, v in _snapshot(tmp_path).items() if not k.startswith("build")}
    with pytest.raises(UserInputError, match="not made by recllm"):
        publish_output_dir(tmp, user, "learn-artifact", 1)
    after = {k: v for k, v in _snapshot(tmp_path).items() if not k.startswith("build")}
    assert after == before


def test_publish_restores_the_old_folder_when_the_swap_fails(tmp_path, monkeypatch):
    target = publish_output_dir(_built(tmp_path, payload="old"), tmp_path / "out", "learn-artifact", 1)
    real_replace = os.replace
    calls = []

    def flaky(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # the rename of the new folder into place
            raise OSError("disk trouble")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", flaky)
    with pytest.raises(OSError, match="disk trouble"):
        publish_output_dir(_built(tmp_path, payload="new"), target, "learn-artifact", 1)
    monkeypatch.setattr(os, "replace", real_replace)
    assert (target / "weights.bin").read_text() == "old"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_service_that_opens_its_database_in_the_folder_during_a_retrain_keeps_it(tmp_path, monkeypatch):
    """The race of a running `serve` and a retrain into the same folder: the service creates serve.db after the
    retrain's checks passed, just before the swap. The check after the rename aside finds it, the folder is put
    back with the open database in it, and the service's connection writes on into the same file."""
    import sqlite3

    import recllm.outputs as outputs

    target = publish_output_dir(_built(tmp_path, payload="old"), tmp_path / "out", "learn-artifact", 1)
    real_check = outputs.check_output_dir
    service = []

    def check_then_service_starts(*args, **kwargs):
        checked = real_check(*args, **kwargs)
        db = sqlite3.connect(target / "serve.db")
        db.execute("create table events (user text, item text)")
        db.execute("insert into events values ('u1', 'i1')")
        db.commit()
        service.append(db)
        return checked

    monkeypatch.setattr(outputs, "check_output_dir", check_then_service_starts)
    with pytest.raises(UserInputError, match=r"did not write there \(serve.db\)"):
        publish_output_dir(_built(tmp_path, payload="new"), target, "learn-artifact", 1)
    db = service[0]
    db.execute("insert into events values ('u2', 'i2')")
    db.commit()
    db.close()
    assert (target / "weights.bin").read_text() == "old"
    rows = sqlite3.connect(target / "serve.db").execute("select * from events").fetchall()
    assert rows == [("u1", "i1"), ("u2", "i2")]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_mark_output_dir_is_resumable_and_refuses_foreign_folders(tmp_path):
    run = mark_output_dir(tmp_path / "run", "trsr-run", 1)
    (run / "checkpoint").write_text("step 5")
    assert mark_output_dir(run, "trsr-run", 1) == run and (run / "checkpoint").read_text() == "step 5"
    with pytest.raises(UserInputError):
        mark_output_dir(run, "learn-artifact", 1)


# ------------------------------------------------------------------------------------------- files
def test_check_output_file_rules(tmp_path):
    assert check_output_file(tmp_path / "sub" / "o.CSV", (".csv", ".parquet")) == tmp_path / "sub" / "o.CSV"
    with pytest.raises(UserInputError, match=r"unsupported output file type \('\.txt'\).*\.csv or \.parquet"):
        check_output_file(tmp_path / "o.txt", (".csv", ".parquet"))
    with pytest.raises(UserInputError, match="no suffix"):
        check_output_file(tmp_path / "o", (".csv",))
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(UserInputError, match="is a folder"):
        check_output_file(tmp_path / "dir.csv", (".csv",))
    (tmp_path / "old.csv").write_text("a\n1\n")
    with pytest.raises(UserInputError, match="--overwrite"):
        check_output_file(tmp_path / "old.csv", (".csv",))
    assert check_output_file(tmp_path / "old.csv", (".csv",), overwrite=True).name == "old.csv"
    assert not (tmp_path / "sub").exists()


def test_reports_recllm_generated_may_be_rewritten(tmp_path):
    from recllm.eval.report import GENERATED_NOTE

    ours = tmp_path / "bench.md"
    ours.write_text(f"# Title\n\n<!-- {GENERATED_NOTE} -->\n")
    assert check_report_file(ours) == ours
    notes = tmp_path / "notes.md"
    notes.write_text("# my notes\n")
    with pytest.raises(UserInputError, match="--overwrite"):
        check_report_file(notes)
    assert check_report_file(notes, overwrite=True) == notes


def test_legacy_folders_are_written_in_place_but_never_deleted(tmp_path):
    old = tmp_path / "run"
    old.mkdir()
    (old / "trsr_config.json").write_text("{}")
    recognise = lambda folder: {p.name for p in folder.iterdir()} <= {"trsr_config.json", "sft"}  # noqa: E731
    with pytest.raises(UserInputError):
        check_output_dir(old, "trsr-run", 1)
    assert mark_output_dir(old, "trsr-run", 1, legacy=recognise) == old and read_marker(old)["kind"] == "trsr-run"
    legacy_art = tmp_path / "art"
    legacy_art.mkdir()
    (legacy_art / "config.json").write_text("{}")
    check_output_dir(legacy_art, "learn-artifact", 1, legacy=lambda f: True)
    with pytest.raises(UserInputError):
        publish_output_dir(_built(tmp_path), legacy_art, "learn-artifact", 1)
    assert (legacy_art / "config.json").is_file()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_a_folder_that_cannot_take_a_file_is_refused_even_for_root():
    """os.access says yes to root for /proc; the write probe finds out before any work is done."""
    from recllm.outputs import can_write_in, check_output_dir, check_output_file

    assert not can_write_in(Path("/proc"))
    with pytest.raises(UserInputError, match="no write permission"):
        check_output_file("/proc/recllm-x.csv", (".csv",))
    with pytest.raises(UserInputError, match="no write permission"):
        check_output_dir("/proc/recllm-run", "learn", 1)


def test_the_write_probe_leaves_nothing(tmp_path):
    from recllm.outputs import can_write_in

    assert can_write_in(tmp_path) and list(tmp_path.iterdir()) == []
