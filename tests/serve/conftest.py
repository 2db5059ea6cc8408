"""A tiny LEARN artifact (the cyclic data of tests/learn) and apps over it, with a stand-in content encoder."""

import re
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "learn"))

from learn_synthetic import TINY, cyclic_content, cyclic_dataset  # noqa: E402

from serve_helpers import AUTH, TOKEN  # noqa: E402,F401 - the fixtures below use them


def fake_encoder(texts: list[str]) -> np.ndarray:
    """The raw content the tiny model was trained on: "episode N ..." encodes as catalogue item N's content."""
    table = cyclic_content()
    out = []
    for text in texts:
        found = re.search(r"episode (\d+)", text)
        out.append(table[int(found.group(1)) % len(table)] if found else np.zeros(table.shape[1], np.float32))
    return np.stack(out).astype(np.float32)


@pytest.fixture(scope="session")
def dataset():
    return cyclic_dataset()


@pytest.fixture(scope="session")
def artifact(tmp_path_factory, dataset):
    from recllm.data.split import leave_one_out
    from recllm.learn import LEARN, save

    settings = {**TINY, "max_epochs": 2, "patience": 2}  # a working model, not a good one: serving is tested
    model = LEARN(content_embeddings=cyclic_content(), **settings).fit(leave_one_out(dataset))
    return save(model, tmp_path_factory.mktemp("serve") / "learn", dataset)


@pytest.fixture
def make_app(artifact, dataset, tmp_path):
    """``make_app(db=None, parts=None, **create_app options) -> (app, state, store)`` over a fresh load of the
    artifact; ``parts(state, store)`` returns more create_app options built on the restored state."""
    from recllm.learn import load
    from recllm.serve.app import create_app, restore
    from recllm.serve.state import ServeState
    from recllm.serve.storage import SQLiteStore

    stores = []

    def make(db=None, encoder=fake_encoder, parts=None, **options):
        state = ServeState(load(artifact), encoder, dataset.item_texts())
        store = SQLiteStore(db or tmp_path / "serve.db")
        stores.append(store)
        restore(state, store)
        options.update(parts(state, store) if parts is not None else {})
        return create_app(state, store, TOKEN, **options), state, store

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def client(make_app):
    from fastapi.testclient import TestClient

    app, state, store = make_app()
    with TestClient(app, raise_server_exceptions=False) as c:
        c.state, c.store = state, store
        yield c
