"""``load`` checks every file of a LEARN artifact: a missing, cut, foreign or inconsistent file gives one
UserInputError naming the folder and the file and saying how to get a sound one (no IndexError later on)."""

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from recllm.errors import UserInputError
from recllm.learn import load, save
from recllm.run_folder import MissingRunFileError


@pytest.fixture(scope="module")
def saved(fitted, dataset, tmp_path_factory):
    return save(fitted, tmp_path_factory.mktemp("learn") / "art", dataset)


@pytest.fixture
def art(saved, tmp_path):
    return shutil.copytree(saved, tmp_path / "art")


def _json(path, edit):
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))


def _cut(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _offsets(path, edit):
    from safetensors.torch import load_file

    hist = load_file(str(path))
    save_file({"items": hist["items"], "offsets": torch.from_numpy(edit(hist["offsets"].numpy()))}, str(path))


DAMAGE = {  # what is done to the folder -> (the file named, a phrase of the message)
    "item ids shorter than the table": (lambda a: _json(a / "item_ids.json", lambda ids: ids[:-1]),
                                        "item_ids.json", "lists 29 ids, not the 30 items"),
    "user ids longer than the histories": (lambda a: _json(a / "user_ids.json", lambda ids: ids + ["extra"]),
                                           "user_ids.json", "users of histories.safetensors"),
    "config not JSON": (lambda a: _cut(a / "config.json"), "config.json", "is not valid JSON"),
    "config of another format": (lambda a: _json(a / "config.json", lambda m: {**m, "format": "other/9"}),
                                 "config.json", "has format 'other/9'"),
    "config with an unknown setting": (
        lambda a: _json(a / "config.json", lambda m: {**m, "config": {**m["config"], "warp": 9}}),
        "config.json", "LEARN settings this recllm cannot use"),
    "config with more items than the weights": (lambda a: _json(a / "config.json", lambda m: {**m, "n_items": 31}),
                                                "model.safetensors", "does not match config.json"),
    "weights cut short": (lambda a: _cut(a / "model.safetensors"), "model.safetensors", "is cut short"),
    "weights cut inside the header": (lambda a: _cut(a / "model.safetensors", 0.0001), "model.safetensors",
                                      "cut short"),
    "embeddings cut short": (lambda a: _cut(a / "item_embeddings.npy"), "item_embeddings.npy",
                             "cannot be read as a .npy array"),
    "embeddings with a row too few": (
        lambda a: np.save(a / "item_embeddings.npy", np.load(a / "item_embeddings.npy")[:-1]),
        "item_embeddings.npy", "has 29 rows but config.json says 30 items"),
    "histories cut short": (lambda a: _cut(a / "histories.safetensors", 0.9), "histories.safetensors",
                            "is cut short"),
    "history offsets past the end": (lambda a: _offsets(a / "histories.safetensors", lambda o: o + 1),
                                     "histories.safetensors", "offsets that do not cut"),
    # non-finite numbers scored every item NaN: `learn recommend` printed nothing and exited 0
    "embeddings all NaN": (lambda a: np.save(a / "item_embeddings.npy", np.full_like(np.load(a / "item_embeddings.npy"),
                                                                                     np.nan)),
                           "item_embeddings.npy", "holds 480 NaN or infinite numbers of 480"),
    "a weight infinite": (lambda a: _tensor(a / "model.safetensors", lambda t: t.view(-1)[:1].fill_(float("inf"))),
                          "model.safetensors", "holds 1 NaN or infinite numbers of"),
    "a whitening mean NaN": (lambda a: _tensor(a / "whitener.safetensors", lambda t: t.view(-1)[:1].fill_(np.nan)),
                             "whitener.safetensors", "holds 1 NaN or infinite numbers of"),
}


def _tensor(path, edit):
    """Edit the first float tensor of safetensors file ``path`` in place."""
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    edit(next(t for t in tensors.values() if t.is_floating_point()))
    save_file(tensors, str(path))


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_file_is_named_with_the_folder(art, case):
    damage, name, phrase = DAMAGE[case]
    damage(art)
    with pytest.raises(UserInputError) as err:
        load(art)
    msg = str(err.value)
    assert "\n" not in msg and phrase in msg, msg
    assert f"broken LEARN artifact {art}: {name}" in msg and str(art / name) in msg
    assert f"recllm learn train --out {art}" in msg


def test_a_missing_file_or_folder(art, tmp_path):
    (art / "user_ids.json").unlink()
    with pytest.raises(MissingRunFileError, match=r"is not a complete LEARN artifact: user_ids.json is missing"):
        load(art)
    with pytest.raises(FileNotFoundError, match=r"does not exist, so it is not a LEARN artifact"):
        load(tmp_path / "nowhere")  # also a FileNotFoundError, for callers that catch one


def test_a_sound_copy_loads(art, fitted):
    np.testing.assert_allclose(load(art).item_vectors, fitted.item_vectors_)


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_a_faiss_index_must_hold_the_artifacts_vectors(fitted, dataset, tmp_path, kind):
    # the vectors inside index.faiss were never compared with item_embeddings.npy: NaN ones ranked silently,
    # and another artifact's index answered for this one's items
    faiss = pytest.importorskip("faiss")
    folder = save(fitted, tmp_path / "art", dataset, index=kind)
    assert len(load(folder).recommend("u3", k=3)) == 3  # a sound one loads (hnsw gives its vectors back too)
    vectors = np.load(folder / "item_embeddings.npy").astype(np.float32)
    for bad in (np.full_like(vectors, np.nan), vectors[::-1].copy()):
        index = faiss.IndexFlatIP(vectors.shape[1])
        if kind == "hnsw":
            index = faiss.IndexHNSWFlat(vectors.shape[1], 8, faiss.METRIC_INNER_PRODUCT)
        index.add(np.ascontiguousarray(bad))
        faiss.write_index(index, str(folder / "index.faiss"))
        with pytest.raises(UserInputError, match=r"index.faiss.*does not hold the vectors of item_embeddings.npy"):
            load(folder)
