"""Downloads from a local http.server on 127.0.0.1 serving archives the tests build: never the internet."""

import dataclasses
import functools
import hashlib
import http.server
import json
import threading
import warnings
import zipfile
from pathlib import Path

import pytest

from recllm.data import DATASETS, DataError, DataWarning, load, prepare
from tests.data.tiny import write_amazon, write_ml1m, write_ml100k


@pytest.fixture
def server(tmp_path):
    """Serve ``tmp_path / "www"`` over HTTP; yields (folder, base_url)."""
    www = tmp_path / "www"
    www.mkdir()

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def _zip(source: Path, target: Path, prefix: str) -> None:
    with zipfile.ZipFile(target, "w") as zf:
        for f in sorted(source.iterdir()):
            zf.write(f, prefix + f.name)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_archive_download_with_known_hashes(server, tmp_path):
    www, url = server
    src = write_ml100k(tmp_path / "src")
    _zip(src, www / "ml-100k.zip", "ml-100k/")
    known = dataclasses.replace(DATASETS["ml-100k"], files=tuple(
        dataclasses.replace(f, sha256=_sha(src / f.name)) for f in DATASETS["ml-100k"].files))
    root = tmp_path / "data" / "ml-100k"
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # every hash is known and matches: no warning
        ds = known(root, base_url=url, show_progress=False)
    assert len(ds.interactions) == 9
    for f in ("u.data", "u.item", "u.user"):
        assert (root / f).read_bytes() == (src / f).read_bytes()
    manifest = json.loads((root / "DOWNLOADS.json").read_text())
    assert manifest["u.data"]["url"] == url + "ml-100k.zip#ml-100k/u.data"
    assert manifest["u.data"]["sha256_published"] is True
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no temporary files left behind


def test_published_hash_mismatch_refuses_and_writes_nothing(server, tmp_path):
    www, url = server
    _zip(write_ml100k(tmp_path / "src"), www / "ml-100k.zip", "ml-100k/")
    root = tmp_path / "data" / "ml-100k"
    with pytest.raises(DataError) as err:
        load("ml-100k", root=root, base_url=url, show_progress=False)
    msg = str(err.value)
    assert "u.data" in msg and "not the published 06416e59" in msg and url + "ml-100k.zip" in msg
    assert not root.exists()  # the data folder is only touched once everything verified


def test_unknown_hash_is_reported_and_recorded(server, tmp_path, monkeypatch):
    www, url = server
    src = write_ml1m(tmp_path / "src")
    _zip(src, www / "ml-1m.zip", "ml-1m/")
    monkeypatch.setenv("RECLLM_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("RECLLM_DATA_URL", url)  # the environment override of the publisher's server
    with pytest.warns(DataWarning, match=f"no published sha256 is known.*ratings.dat sha256 {_sha(src / 'ratings.dat')}"):
        ds = load("ml-1m", show_progress=False)
    assert ds.n_items == 4
    manifest = json.loads((tmp_path / "data" / "ml-1m" / "DOWNLOADS.json").read_text())
    assert manifest["movies.dat"] == {**manifest["movies.dat"], "sha256": _sha(src / "movies.dat"),
                                      "sha256_published": False}
    assert ds.info["files_sha256"]["users.dat"] == _sha(src / "users.dat")


def test_direct_file_download_for_any_amazon_category(server, tmp_path):
    www, url = server
    src = write_amazon(tmp_path / "src", category="Video_Games")
    (www / "categoryFilesSmall").mkdir()
    (www / "metaFiles2").mkdir()
    (www / "categoryFilesSmall" / "Video_Games_5.json.gz").write_bytes((src / "Video_Games_5.json.gz").read_bytes())
    (www / "metaFiles2" / "meta_Video_Games.json.gz").write_bytes((src / "meta_Video_Games.json.gz").read_bytes())
    with pytest.warns(DataWarning):
        ds = prepare("amazon2018-video-games", root=tmp_path / "vg", base_url=url, show_progress=False)
    assert len(ds.interactions) == 4 and (tmp_path / "vg" / "meta_Video_Games.json.gz").is_file()


def test_http_404_names_file_folder_url_and_fix(server, tmp_path):
    _, url = server
    root = tmp_path / "data" / "ml-1m"
    with pytest.raises(DataError) as err:
        load("ml-1m", root=root, base_url=url, show_progress=False)
    msg = str(err.value)
    for part in ("ratings.dat", str(root), url + "ml-1m.zip", "404", "RECLLM_DATA", "Fix: place"):
        assert part in msg
    assert not root.exists()


def test_truncated_archive_is_refused(server, tmp_path):
    www, url = server
    _zip(write_ml1m(tmp_path / "src"), www / "ml-1m.zip", "ml-1m/")
    data = (www / "ml-1m.zip").read_bytes()
    (www / "ml-1m.zip").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="not a valid zip archive"):
        load("ml-1m", root=tmp_path / "m", base_url=url, show_progress=False)


def test_partial_folder_downloads_only_missing_files(server, tmp_path):
    www, url = server
    src = write_ml1m(tmp_path / "src")
    _zip(src, www / "ml-1m.zip", "ml-1m/")
    root = write_ml1m(tmp_path / "m")
    (root / "users.dat").unlink()
    with pytest.warns(DataWarning, match="users.dat"):
        load("ml-1m", root=root, base_url=url, show_progress=False)
    assert set(json.loads((root / "DOWNLOADS.json").read_text())) == {"users.dat"}
