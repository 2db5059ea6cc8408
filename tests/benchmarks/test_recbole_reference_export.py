"""The RecBole reference's split export: benchmark files hold exactly recllm's leave-one-out split.

Fast tests parse the written files and check them (and the user-by-user verifier) on a tiny data set with tied
timestamps; the integration test lets RecBole itself read the files when ``.venv-recbole`` exists.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # the benchmarks folder is not an installed package
    sys.path.insert(0, str(ROOT))

from benchmarks.recbole_reference.export_split import (  # noqa: E402
    FIELDS, ReferenceSettings, benchmark_rows, export_split,
)
from benchmarks.recbole_reference.verify import check_view, tie_counts  # noqa: E402
from recllm.data import RecDataset, leave_one_out  # noqa: E402
from recllm.eval.report import sha256_file  # noqa: E402

# user, item, timestamp in file order. User "b" rates x, y, z at one instant: the split's fixed tie order
# (recllm.data.split.tie_order) decides which is train, valid and test, and the files must follow it. User "a" has a long history (max_len 2 cuts it). User "c" has two interactions: train only.
ROWS = [
    ("a", "i1", 10), ("b", "x", 50), ("a", "i2", 11), ("b", "w", 40), ("a", "i3", 12), ("b", "y", 50),
    ("a", "i4", 13), ("c", "i1", 5), ("b", "z", 50), ("a", "i5", 14), ("c", "i2", 6),
]
CATALOGUE = ["i5", "i4", "i3", "i2", "i1", "w", "x", "y", "z", "never"]


def tiny_split():
    inter = pd.DataFrame(ROWS, columns=["user_id", "item_id", "timestamp"]).astype({"timestamp": "int64"})
    ds = RecDataset("tiny", inter, pd.DataFrame({"item_id": CATALOGUE}), pd.DataFrame({"user_id": ["c", "b", "a"]}))
    return leave_one_out(ds)


def read_stage(path: Path) -> list[tuple[str, list[str], str]]:
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[0] == "\t".join(FIELDS) and lines[-1] == ""
    out = []
    for line in lines[1:-1]:
        user, hist, target = line.split("\t")
        out.append((user, hist.split(" ") if hist else [], target))
    return out


def recbole_like_view(folder: Path, name: str) -> dict[str, np.ndarray]:
    """What RecBole's dataset objects hold for these files: tokens re-mapped to ids (0 = padding), histories
    right-padded; rows of one stage in a shuffled order (the verifier must not depend on it)."""
    stages = {s: read_stage(folder / name / f"{name}.{s}.inter") for s in ("train", "valid", "test")}
    users, items = ["[PAD]"], ["[PAD]"]
    for rows in stages.values():
        for u, h, t in rows:
            users += [u] if u not in users else []
            items += [i for i in [*h, t] if i not in items]
    view: dict[str, np.ndarray] = {"user_tokens": np.array(users), "item_tokens": np.array(items)}
    rng = np.random.default_rng(0)
    for stage, rows in stages.items():
        rows = [rows[i] for i in rng.permutation(len(rows))]
        width = max(len(h) for _, h, _ in rows)
        hist = np.zeros((len(rows), width), dtype=np.int64)
        for r, (_, h, _) in enumerate(rows):
            hist[r, :len(h)] = [items.index(i) for i in h]
        view[f"{stage}_user"] = np.array([users.index(u) for u, _, _ in rows])
        view[f"{stage}_history"] = hist
        view[f"{stage}_length"] = np.array([len(h) for _, h, _ in rows])
        view[f"{stage}_target"] = np.array([items.index(t) for _, _, t in rows])
    return view


def test_files_hold_the_split_with_truncated_histories_and_its_tie_order(tmp_path):
    split = tiny_split()
    paths = export_split(split, tmp_path, ReferenceSettings(max_len=2), command="export")
    name = "tiny-loo"
    assert paths["train"] == tmp_path / name / f"{name}.train.inter"
    b = split.dataset.user_index(["b"])[0]
    w, t1, t2, t3 = split.dataset.items["item_id"].iloc[split.sequences("test")[b]].tolist()
    assert w == "w" and sorted([t1, t2, t3]) == ["x", "y", "z"]  # the tied three in the split's order
    train = read_stage(paths["train"])
    assert train == [  # users in user-index order (c, b, a), every transition once, histories cut to 2
        ("c", ["i1"], "i2"),
        ("b", ["w"], t1),
        ("a", ["i1"], "i2"), ("a", ["i1", "i2"], "i3"),
    ]
    assert read_stage(paths["valid"]) == [("b", ["w", t1], t2), ("a", ["i2", "i3"], "i4")]
    assert read_stage(paths["test"]) == [("b", [t1, t2], t3), ("a", ["i3", "i4"], "i5")]
    manifest = json.loads(paths["manifest"].read_text())
    assert manifest["catalogue"] == CATALOGUE and manifest["name"] == name and manifest["command"] == "export"
    assert manifest["rows"] == {"train": 4, "valid": 2, "test": 2}
    assert manifest["sha256"]["test"] == sha256_file(paths["test"])
    from recllm.bench.learn.recbole_ref import cases_fingerprint

    assert manifest["test_cases"] == cases_fingerprint(split.eval_cases("test"))
    assert ReferenceSettings(**manifest["settings"]).max_len == 2


def test_verifier_accepts_recbole_layout_and_catches_a_swapped_tie(tmp_path):
    split = tiny_split()
    export_split(split, tmp_path, ReferenceSettings(max_len=2))
    view = recbole_like_view(tmp_path, "tiny-loo")
    checks = check_view(split, view, max_len=2)
    assert [c.stage for c in checks] == ["train", "valid", "test"] and all(c.ok for c in checks)
    # RecBole seeing user b's tied items in another order (the two of its test history swapped) must be caught
    bad = dict(view)
    hist = view["test_history"].copy()
    row = int(np.flatnonzero(view["user_tokens"][view["test_user"]] == "b")[0])
    hist[row, :2] = hist[row, :2][::-1].copy()
    bad["test_history"] = hist
    test_check = check_view(split, bad, max_len=2)[2]
    assert not test_check.ok and test_check.mismatched_users == ["b"] and "user b" in test_check.example
    # a row RecBole lacks is caught by the counts too
    short = dict(view, **{f"valid_{k}": view[f"valid_{k}"][:1] for k in ("user", "history", "length", "target")})
    assert not check_view(split, short, max_len=2)[1].ok


def test_tie_counts_on_tiny_split():
    counts = tie_counts(tiny_split(), max_len=2)
    assert counts == {"test_users": 2, "test_time_equals_valid_time": 1, "users_with_tied_times_in_window": 1}


def test_bad_input_is_refused(tmp_path):
    split = tiny_split()
    with pytest.raises(ValueError, match="bundled"):
        export_split(split, tmp_path, name="ml-100k")
    with pytest.raises(ValueError, match="max_len"):
        benchmark_rows(split, 0)
    with pytest.raises(ValueError, match="dim"):
        ReferenceSettings(dim=63)
    with pytest.raises(ValueError, match="dropout"):
        ReferenceSettings(dropout=1.0)
    inter = pd.DataFrame([("u 1", "i", 1), ("u 1", "j", 2), ("u 1", "k", 3)],
                         columns=["user_id", "item_id", "timestamp"])
    spaced = RecDataset("sp", inter, pd.DataFrame({"item_id": ["i", "j", "k"]}), pd.DataFrame({"user_id": ["u 1"]}))
    with pytest.raises(ValueError, match="whitespace"):
        export_split(leave_one_out(spaced), tmp_path)


VENV = ROOT / ".venv-recbole" / "bin" / "python"


@pytest.mark.integration
@pytest.mark.skipif(not VENV.is_file(), reason="no .venv-recbole (make .venv-recbole/.installed)")
def test_recbole_itself_reads_the_tiny_split(tmp_path):
    split = tiny_split()
    export_split(split, tmp_path, ReferenceSettings(max_len=2))
    script = ROOT / "benchmarks" / "recbole_reference" / "run_recbole.py"
    done = subprocess.run([str(VENV), str(script), "--dir", str(tmp_path), "--threads", "1", "--check-only"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    view = dict(np.load(tmp_path / "recbole_view.npz"))
    checks = check_view(split, view, max_len=2)
    assert all(c.ok for c in checks), [c.example for c in checks]
