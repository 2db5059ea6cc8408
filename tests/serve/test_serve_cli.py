"""`recllm serve` wiring: load_service from folders (store under the run, imputer spec, page), start-up checks."""

import pytest
from serve_helpers import AUTH, TOKEN


def test_load_service_builds_the_app_from_folders(artifact, tmp_path):
    from fastapi.testclient import TestClient

    from recllm.serve.cli import load_service

    table = tmp_path / "t.csv"
    table.write_text("a,b\n1,x\n3,x\n,y\n", encoding="utf-8")
    app = load_service(artifact, imputer=f"mean:{table}", db=f"sqlite:///{tmp_path / 'x.db'}", token=TOKEN,
                       encoder=False)
    with TestClient(app) as c:
        health = c.get("/health").json()
        assert health["impute"] and not health["rerank"] and health["items"] == 30
        assert c.post("/impute", json={"rows": [{"a": None, "b": "y"}]}, headers=AUTH).json()["rows"] == [
            {"a": 2.0, "b": "y"}]
        page = c.get("/")
        assert page.status_code == 200 and "<script>" in page.text and "recllm serve" in page.text
        refused = c.post("/items", json={"id": "n", "text": "episode 1"}, headers=AUTH)
        assert refused.status_code == 400 and "cannot add items" in refused.json()["error"]
        assert "started without its content encoder" in refused.json()["error"]  # the model has content inputs
        metrics = c.get("/metrics").text
        assert 'recllm_model_load_seconds{model="learn"}' in metrics
    assert (tmp_path / "x.db").is_file() and not (artifact / "serve.db").exists()


def test_start_up_errors_are_one_line(artifact, tmp_path, capsys):
    from recllm.cli import main

    assert main(["serve", "--learn", str(artifact), "--imputer", "median:x.csv"]) == 2
    assert "METHOD:TABLE" in capsys.readouterr().err
    assert main(["serve", "--learn", str(artifact), "--imputer", f"mean:{tmp_path / 'none.csv'}"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["serve", "--learn", str(artifact), "--host", "0.0.0.0"]) == 2
    assert "without a token" in capsys.readouterr().err
    assert main(["serve", "--learn", str(artifact), "--db", "mysql://x", "--no-encoder"]) == 2
    assert "unknown database URL" in capsys.readouterr().err
    assert main(["serve", "--learn", str(tmp_path / "none")]) == 2
    assert "no such LEARN run folder" in capsys.readouterr().err


def test_a_bad_database_is_one_line_before_any_load_and_a_bad_table_leaves_no_database(artifact, tmp_path,
                                                                                         monkeypatch, capsys):
    import recllm.serve.cli as serve_cli
    from recllm.cli import main

    def no_load(*args, **kwargs):
        raise AssertionError("the service was loaded before --db was checked")

    notes = tmp_path / "notes.db"
    notes.write_text("my notes, not a database" * 50)
    cases = {f"sqlite:///{notes}": "cannot open the database", f"sqlite:///{tmp_path}/none/x.db": "does not exist",
             f"sqlite:///{tmp_path}": "is a folder"}
    with monkeypatch.context() as patch:
        patch.setattr(serve_cli, "load_service", no_load)
        for url, message in cases.items():
            assert main(["serve", "--learn", str(artifact), "--db", url, "--no-encoder"]) == 2
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and message in err[0], err
    assert notes.read_text() == "my notes, not a database" * 50
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2,3\n")
    from recllm.data import DataError

    with pytest.raises(DataError, match="line 2"):
        serve_cli.load_service(artifact, imputer=f"mean:{bad}", db=f"sqlite:///{tmp_path}/s.db", token=TOKEN)
    assert not (tmp_path / "s.db").exists()


@pytest.mark.parametrize("content, advice", [
    ("name,score\ncaf\xe9,1\n,2\n".encode("latin-1"), "save the file as utf-8"),
    (b"a;b\n1;2\n;3\n", "save the file with ','"),
])
def test_an_imputer_table_mistake_gives_advice_serve_can_follow(artifact, tmp_path, content, advice):
    """recllm serve has no --encoding or --sep: the advice is how to save the --imputer table, not an option."""
    import recllm.serve.cli as serve_cli
    from recllm.data import DataError

    table = tmp_path / "t.csv"
    table.write_bytes(content)
    with pytest.raises(DataError) as raised:
        serve_cli.load_service(artifact, imputer=f"mean:{table}", db=f"sqlite:///{tmp_path}/s.db", token=TOKEN)
    assert advice in str(raised.value) and "--encoding" not in str(raised.value) and "--sep" not in str(raised.value)


def test_a_content_encoder_of_the_wrong_width_is_refused_at_start(artifact, monkeypatch):
    import numpy as np

    from recllm.errors import UserInputError
    from recllm.serve import cli, state

    monkeypatch.setattr(state, "make_content_encoder", lambda config: (lambda t: np.zeros((len(t), 7)), "x"))
    with pytest.raises(UserInputError, match="width"):
        cli.load_service(artifact, db="sqlite:///:memory:", token=TOKEN)


def test_a_taken_port_or_an_unknown_host_is_one_line_before_any_load(artifact, monkeypatch, capsys):
    import socket

    import recllm.serve.cli as serve_cli
    from recllm.cli import main

    def no_load(*args, **kwargs):
        raise AssertionError("the service was loaded before the address was checked")

    monkeypatch.setattr(serve_cli, "load_service", no_load)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--learn", str(artifact), "--port", str(port), "--no-encoder"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"cannot listen on 127.0.0.1:{port}" in err[0] and "--port" in err[0]

    def unknown(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", unknown)
    assert main(["serve", "--learn", str(artifact), "--host", "nosuch.invalid", "--token", "t" * 32,
                 "--no-encoder"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot resolve the host 'nosuch.invalid'" in err[0]


def test_paths_under_the_home_folder_are_served_where_they_were_checked(artifact, tmp_path, monkeypatch):
    """`serve --learn '~/art'` passed check_input_dir (which expands ~) and then failed in load_service with "no such
    file (~/art/config.json)"; `--imputer mean:~/t.csv` (the shell leaves ~ after a colon) was "no such file"."""
    import shutil
    import socket

    import uvicorn

    import recllm.serve.cli as serve_cli
    from recllm.cli import main

    home = tmp_path / "home"
    shutil.copytree(artifact, home / "art")
    (home / "t.csv").write_text("a,b\n1,x\n3,x\n,y\n", encoding="utf-8")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    real_load, apps = serve_cli.load_service, []
    monkeypatch.setattr(serve_cli, "load_service", lambda *a, **k: apps.append(real_load(*a, **k)))
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: None)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert main(["serve", "--learn", "~/art", "--imputer", "mean:~/t.csv", "--port", str(port), "--no-encoder",
                 "--token", "t" * 32, "--quiet"]) == 0
    assert len(apps) == 1 and (home / "art" / "serve.db").is_file() and not (tmp_path / "~").exists()
    app = real_load("~/art", db="sqlite:///~/x.db", token=TOKEN, encoder=False)  # library use too
    assert app is not None and (home / "x.db").is_file()


def test_max_reranks_is_a_server_option_with_one_default(artifact, tmp_path, monkeypatch, capsys):
    import socket

    import uvicorn

    import recllm.serve.cli as serve_cli
    from recllm.cli import main
    from recllm.serve.rerank import MAX_RERANKS

    given = []
    monkeypatch.setattr(serve_cli, "load_service", lambda *args, **kwargs: given.append(kwargs["max_reranks"]))
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: None)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = ["serve", "--learn", str(artifact), "--db", f"sqlite:///{tmp_path / 's.db'}", "--port", str(port),
               "--no-encoder", "--token", "t" * 32]
    assert main(command) == 0 and main(command + ["--max-reranks", "1"]) == 0
    assert given == [MAX_RERANKS, 1]
    assert main(command + ["--max-reranks", "0"]) == 2
    assert "--max-reranks" in capsys.readouterr().err


def test_check_listen_takes_every_interface_and_names_a_foreign_address():
    from recllm.errors import UserInputError
    from recllm.serve.cli import check_listen

    check_listen("", 0)  # all interfaces, as uvicorn reads an empty host
    check_listen("127.0.0.1", 0)
    with pytest.raises(UserInputError, match=r"192\.0\.2\.1 is not an address of this machine.*--host"):
        check_listen("192.0.2.1", 8000)  # TEST-NET-1: never a local address


def test_check_listen_skips_an_address_family_this_machine_lacks(monkeypatch):
    import socket

    from recllm.serve.cli import check_listen

    real_socket, real_getaddrinfo = socket.socket, socket.getaddrinfo

    def no_ipv6(family=socket.AF_INET, *args, **kwargs):
        if family == socket.AF_INET6:
            raise OSError(97, "Address family not supported by protocol")
        return real_socket(family, *args, **kwargs)

    def both(host, port, *args, **kwargs):
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::", port, 0, 0)),
                *real_getaddrinfo("127.0.0.1", port, *args, **kwargs)]

    monkeypatch.setattr(socket, "getaddrinfo", both)
    monkeypatch.setattr(socket, "socket", no_ipv6)
    check_listen("", 0)  # as asyncio: the IPv6 wildcard is skipped, the IPv4 one is free


def test_an_artifact_of_a_data_folder_is_served_with_its_item_texts(shop_folder, tmp_path):
    """`learn train --data FOLDER`: the service reads the folder's items.csv again for the item texts."""
    from fastapi.testclient import TestClient

    from recllm.cli import main
    from recllm.serve.cli import load_service

    art = tmp_path / "art"
    assert main(["learn", "train", "--data", str(shop_folder), "--item-input", "id", "--out", str(art), "--epochs",
                 "1", "--dim", "8", "--quiet"]) == 0
    app = load_service(art, db=f"sqlite:///{tmp_path / 'x.db'}", token=TOKEN, encoder=False)
    with TestClient(app) as c:
        rows = c.get("/recommend", params={"user": "c3", "k": 3}, headers=AUTH).json()["items"]
    assert len(rows) == 3 and all(row["text"].startswith("title: Mug model") for row in rows)


def test_a_trsr_run_and_a_learn_artifact_of_one_data_folder_name_the_same_data(tmp_path, monkeypatch):
    """`serve --learn A --trsr R` requires both trained on the same data: a folder is named by its absolute path
    in both, however `--data` spelled it."""
    from recllm.data.folder import data_reference, read_folder
    from recllm.learn.artifact import trained_on

    monkeypatch.chdir(tmp_path)
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "interactions.csv").write_text("user_id,item_id,timestamp\nu,a,1\n")
    dataset = read_folder("./shop")
    learned = trained_on({"dataset": dataset.name, "data_folder": dataset.info["data_folder"]})
    assert learned == data_reference("./shop") == data_reference(str(tmp_path / "shop")) == data_reference("shop")
    assert trained_on({"dataset": "ml-100k", "data_folder": None}) == data_reference("ml-100k") == "ml-100k"


def test_a_trsr_run_of_other_data_is_refused_before_any_model_is_loaded_or_database_made(artifact, tmp_path,
                                                                                         monkeypatch):
    """The data sets of --learn and --trsr were compared after the LEARN model and its encoder were loaded and the
    default database was created."""
    import types

    import recllm.learn
    import recllm.trsr.run
    from recllm.errors import UserInputError
    from recllm.serve import cli

    def no_load(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("a model was loaded before the runs' data sets were compared")

    monkeypatch.setattr(recllm.trsr.run, "read_run", lambda folder: types.SimpleNamespace(data="ml-100k"))
    monkeypatch.setattr(recllm.learn, "load", no_load)
    with pytest.raises(UserInputError, match=r"the TRSR run was trained on 'ml-100k', the LEARN run on"):
        cli.load_service(artifact, trsr=tmp_path, db=f"sqlite:///{tmp_path}/s.db", token=TOKEN)
    assert not (tmp_path / "s.db").exists()


def test_a_damaged_config_is_one_line_naming_the_file(artifact, tmp_path):
    """load_service read config.json itself (to compare --trsr's data set early): a cut file was an internal
    JSONDecodeError, where `recllm.learn.load` names the file."""
    import shutil

    from recllm.errors import UserInputError
    from recllm.serve import cli

    broken = tmp_path / "broken"
    shutil.copytree(artifact, broken)
    (broken / "config.json").write_text('{"format": ')
    with pytest.raises(UserInputError, match=r"config\.json is not valid JSON"):
        cli.load_service(broken, db=f"sqlite:///{tmp_path}/s.db", token=TOKEN)
    assert not (tmp_path / "s.db").exists()
