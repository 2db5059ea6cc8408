"""``save`` never deletes or hides what recllm did not write (issue 13: a user's folder was deleted by --out)."""

import pytest

from recllm.errors import UserInputError
from recllm.learn import load, save
from recllm.outputs import MARKER


def _snapshot(root):
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def test_a_users_folder_is_refused_and_kept(fitted, dataset, tmp_path):
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"\xff\xd8 precious")
    (mine / "sub").mkdir()
    (mine / "sub" / "notes.txt").write_text("keep me")
    before = _snapshot(tmp_path)
    with pytest.raises(UserInputError, match="not made by recllm"):
        save(fitted, mine, dataset)
    assert _snapshot(tmp_path) == before


def test_an_existing_file_is_refused_not_hidden(fitted, dataset, tmp_path):
    target = tmp_path / "model"
    target.write_text("a file the user owns")
    before = _snapshot(tmp_path)
    with pytest.raises(UserInputError, match="existing file"):
        save(fitted, target, dataset)
    assert _snapshot(tmp_path) == before  # nothing renamed to .model.old, nothing left behind


def test_replacing_our_artifact_spares_a_users_hidden_sibling(fitted, dataset, tmp_path):
    folder = save(fitted, tmp_path / "art", dataset)
    sibling = tmp_path / ".art.old"  # the name the old code used as scratch space (and deleted)
    sibling.mkdir()
    (sibling / "data.csv").write_text("a,b\n1,2\n")
    save(fitted, folder, dataset)  # our own artifact: replaced
    assert (sibling / "data.csv").read_text() == "a,b\n1,2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".art.old", "art"]
    assert (folder / MARKER).is_file() and load(folder).recommend("u3", k=3)


def test_an_empty_folder_is_filled(fitted, dataset, tmp_path):
    (tmp_path / "art").mkdir()
    folder = save(fitted, tmp_path / "art", dataset)
    assert (folder / "config.json").is_file() and (folder / MARKER).is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["art"]
