"""Hostile-user regression suite (issue 13): every mistake is one line on stderr and the right exit code.

Each case runs ``recllm.cli.main(argv)`` in-process and asserts: the exit code; exactly one line on stderr,
``recllm <command>: error: ...`` with the expected words; no traceback anywhere; the work folder (inputs, the user's
files, earlier outputs) byte-for-byte unchanged, so no partial or replaced file and, for ``impute``, no observed cell
changed. Learn / trsr / llm / bench cases also fail if a data set or model weights get loaded: arguments are
checked first.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from badinput_helpers import snapshot

from recllm.cli import main

TABLE = "user,age,score,city\n1,34,2.5,paris\n2,,3.0,lyon\n3,51,,paris\n4,28,4.5,\n5,40,1.0,lyon\n"


def _write(name: str, content: str | bytes) -> Callable[[Path, pytest.MonkeyPatch], None]:
    def setup(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return setup


def _all(*setups: Callable) -> Callable[[Path, pytest.MonkeyPatch], None]:
    def setup(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        for s in setups:
            s(work, monkeypatch)
    return setup


def _ml100k(data_lines: list[str], last_newline: bool = True) -> Callable[[Path, pytest.MonkeyPatch], None]:
    """A tiny MovieLens-100K folder in the publisher's format under work/data, with RECLLM_DATA pointing at it."""
    flags = "|".join(["0"] * 18 + ["1"])

    def setup(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        folder = work / "data" / "ml-100k"
        folder.mkdir(parents=True)
        (folder / "u.data").write_text("\n".join(data_lines) + ("\n" if last_newline else ""))
        (folder / "u.item").write_text("".join(f"{i}|Film {i} (1995)|01-Jan-1995||http://x/{i}|{flags}\n"
                                               for i in range(1, 4)))
        (folder / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n")
        monkeypatch.setenv("RECLLM_DATA", str(work / "data"))
    return setup


def _ml100k_file_is_a_folder(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _ml100k(GOOD_LINES)(work, monkeypatch)
    data = work / "data" / "ml-100k" / "u.data"
    data.unlink()
    data.mkdir()


def _folder(name: str, files: dict[str, str]) -> Callable[[Path, pytest.MonkeyPatch], None]:
    def setup(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        for rel, text in files.items():
            path = work / name / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        (work / name).mkdir(exist_ok=True)
    return setup


def _artifact_edit(edit: Callable[[Path], None]) -> Callable[[Path, pytest.MonkeyPatch], None]:
    def setup(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        edit(work / "art")
    return setup


def _truncate_config(art: Path) -> None:
    text = (art / "config.json").read_text()
    (art / "config.json").write_text(text[: len(text) // 2])


def _wrong_format(art: Path) -> None:
    meta = json.loads((art / "config.json").read_text())
    (art / "config.json").write_text(json.dumps({**meta, "format": "recllm-learn/99"}))


def _parquet(name: str, columns: dict) -> Callable[[Path, pytest.MonkeyPatch], None]:
    def setup(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table(columns), work / name)
    return setup


def _cache_is_a_file(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (work / "cache.csv").write_text("a,b\n1,2\n")
    monkeypatch.setenv("RECLLM_CACHE", str(work / "cache.csv"))


def _data_is_a_file(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (work / "somefile.csv").write_text("a,b\n1,2\n")
    monkeypatch.setenv("RECLLM_DATA", str(work / "somefile.csv"))


table = _write("t.csv", TABLE)
user_folder = _folder("mine", {"thesis.tex": "years of work", "figs/plot.png": "png bytes"})
GOOD_LINES = ["1\t1\t5\t881250949", "1\t2\t3\t881250950", "2\t1\t4\t891717742", "2\t3\t2\t891717743"]
EVENTS = "user_id,item_id,timestamp\n" + "".join(f"u{u},i{(u + t) % 5},{100 * t + u}\n" for u in range(6) for t in range(4))
shop_without_items = _folder("shop", {"interactions.csv": EVENTS})
ITEMS = "item_id,title\n" + "".join(f"i{i},film {i}\n" for i in range(5))
shop_few_items = _folder("shop", {"interactions.csv": EVENTS, "items.csv": ITEMS})  # 5 items: < 20 negatives
shop_too_small = _folder("shop", {"interactions.csv": "user_id,item_id,timestamp\nu,a,1\nu,b,2\nv,a,3\n"})
# 3 interactions per user: leave-one-out has valid and test cases but no user with 2 training items to learn from
SHORT_USERS = "user_id,item_id,timestamp\n" + "".join(f"u{u},i{(u + k) % 25},{1700000000 + 100 * k}\n"
                                                       for u in range(8) for k in range(3))
shop_short_users = _folder("shop", {"interactions.csv": SHORT_USERS, "items.csv": "item_id,title\n" + "".join(
    f"i{i},film {i}\n" for i in range(25))})
shop_two_users = _folder("shop", {"interactions.csv": "user_id,item_id,timestamp\nu1,007,1700000000\n"
                                  "u1,i2,1700000100\nu1,i3,1700000200\nu2,007,1700000000\nu2,i2,1700000300\n"
                                  "u2,i3,1700000400\n"})
shop_bad_time = _folder("shop", {"interactions.csv": "user_id,item_id,timestamp\nu,a,1\nu,b,2024-01-01\n"})
RUN_CONFIG = json.dumps({"data": "ml-100k", "model": None, "config": {}})

# (argv, setup, exit code, words the message must hold, needs the tiny artifact, marks)
CASES = [
    # ------------------------------------------------------------------------------------------------ global
    ([], None, 2, "required: command", False, ()),
    (["--seed", "abc", "data", "list"], None, 2, "--seed: 'abc' is not a whole number", False, ()),
    (["frobnicate"], None, 2, "invalid choice", False, ()),
    # ------------------------------------------------------------------------------------------------ data
    (["data"], None, 2, "required", False, ()),
    (["data", "info"], None, 2, "required: name", False, ()),
    (["data", "info", "nope"], None, 2, "unknown data set 'nope'", False, ()),
    (["data", "info", "ml-100"], None, 2, "did you mean 'ml-100k'", False, ()),
    (["data", "prepare", "movielens"], None, 2, "recllm data list", False, ()),
    (["data", "info", ""], None, 2, "no data set name", False, ()),
    (["data", "info", "ml-100k"], _ml100k([*GOOD_LINES, "2\t3"], last_newline=False), 2, "cut off", False, ()),
    (["data", "info", "ml-100k"], _ml100k([*GOOD_LINES[:3], "2\t3\t7\t891717743"]), 2, "rating scale", False, ()),
    (["data", "info", "ml-100k"], _ml100k_file_is_a_folder, 2, "u.data is a folder", False, ()),
    (["data", "info", "ml-100k"], _ml100k(["1\t1\t5\t881250949", "1\t2\tfive\t881250950"]), 2, "u.data", False, ()),
    # ------------------------------------------------------------------------------------------------ data folders
    (["data", "info", "./nowhere"], None, 2, "no such folder", False, ()),
    (["data", "info", "./shop"], shop_bad_time, 2, "column 'timestamp', line 3", False, ()),
    (["data", "info", "mine"], user_folder, 2, "no interactions.csv or interactions.parquet", False, ()),
    (["learn", "train", "--data", "./nowhere", "--out", "art"], None, 2, "no such folder", False, ()),
    (["learn", "train", "--data", "./shop", "--out", "art"], shop_without_items, 2, "no item text", False, ()),
    (["learn", "train", "--data", "./shop", "--out", "art", "--item-input", "id"], shop_too_small, 2,
     "leaves no valid case", False, ()),
    (["learn", "train", "--data", "./shop", "--out", "art", "--item-input", "id"], shop_short_users, 2,
     "the loo split of 'shop' leaves no user with 2 or more training interactions", False, ()),
    (["learn", "train", "--data", "./shop", "--out", "art", "--item-input", "id", "--split", "cold_start"],
     shop_two_users, 2, "add interactions to --data", False, ()),
    (["trsr", "train", "--data", "./shop", "--out", "run"], shop_short_users, 2,
     "leaves no user with 2 or more training interactions", False, ()),
    (["trsr", "train", "--data", "./shop", "--out", "run"], shop_without_items, 2, "no item text", False, ()),
    (["trsr", "train", "--data", "./shop", "--out", "run"], shop_few_items, 2, "fewer than the 20 negatives", False,
     ()),
    # ------------------------------------------------------------------------------------------------ impute
    (["impute", "missing.csv", "--out", "o.csv"], None, 2, "missing.csv", False, ()),
    (["impute", "t.txt", "--out", "o.csv"], _write("t.txt", TABLE), 2, ".txt", False, ()),
    (["impute", "t.csv", "--out", "o.csv"], _write("t.csv", ""), 2, "empty", False, ()),
    (["impute", "t.csv", "--out", "o.csv"], _write("t.csv", "a,b\n"), 2, "no rows", False, ()),
    (["impute", "t.csv", "--out", "o.txt"], table, 2, "use a name ending in", False, ()),
    (["impute", "t.csv", "--out", "t.csv", "--overwrite"], table, 2, "input table", False, ()),
    (["impute", "t.csv", "--out", "done.csv"], _all(table, _write("done.csv", "keep,me\n1,2\n")), 2, "--overwrite",
     False, ()),
    (["impute", "t.csv", "--out", "dir.csv"], _all(table, _folder("dir.csv", {})), 2, "is a folder", False, ()),
    (["impute", "t.csv", "--out", "t.csv/o.csv"], table, 2, "is a file", False, ()),
    (["impute", "t.csv", "--out", "o.csv", "--report", "r.txt"], table, 2, ".json", False, ()),
    (["impute", "t.csv", "--out", "o.csv", "--report", ""], table, 2, "no file name given (--report)", False, ()),
    (["impute", "t.csv", "--out", ""], table, 2, "no file name given (--out)", False, ()),
    (["impute", "e.csv", "--out", "o.csv", "--method", "deletion"], _write("e.csv", "a,b\n1,\n,\n4,\n"), 2,
     "column 'b' has no observed value, so case-wise deletion would drop every row", False, ()),
    (["impute", "t.csv", "--out", "o.csv", "--method", "magic"], table, 2, "invalid choice", False, ()),
    (["impute", "t.csv", "--out", "o.csv", "--examples", "0"], table, 2, "examples", False, ()),
    (["impute", "t.csv", "--out", "o.csv", "--threads", "-2"], table, 2, "threads", False, ()),
    (["impute", "t.csv", "--method", "llm", "--out", "o.txt"], table, 2, "use a name ending in", False, ()),
    (["impute", "t.csv", "--method", "llm", "--model", "./no-model", "--out", "o.csv"], table, 2,
     "no such model folder", False, ()),
    (["impute", "t.csv", "--out", "o.csv"], _write("t.csv", "a,a,b\n1,2,3\n4,,6\n"), 2, "'a'", False, ()),
    (["impute", "t.csv", "--out", "o.csv"], _write("t.csv", "a,b,c\n1,2,3\n4,5\n7,,9\n"), 2, "line 3", False, ()),
    (["impute", "t.csv", "--out", "o.csv"], _write("t.csv", "a;b;c\n1;2;3\n4;;6\n"), 2, "--sep", False, ()),
    (["impute", "t.csv", "--out", "o.csv"], _write("t.csv", "name,score\ncaf\xe9,1\n,2\n".encode("latin-1")), 2,
     "--encoding", False, ()),
    (["impute", "one.csv", "--out", "o.csv"], _write("one.csv", "a\n1\n\n3\n"), 2,
     "a blank line between the rows of a one-column table", False, ()),
    (["impute", "d.csv", "--out", "o.csv"], _folder("d.csv", {}), 2, "is a folder, not a table file", False, ()),
    (["impute", "adir", "--out", "o.csv"], _folder("adir", {}), 2, "is a folder, not a table file", False, ()),
    (["impute", "l.parquet", "--out", "o.parquet"], _parquet("l.parquet", {"a": [1.0, None], "b": [[1], [2, 3]]}),
     2, "column 'b' holds list", False, ()),
    (["impute", "s.parquet", "--out", "o.parquet"], _parquet("s.parquet", {"a": [1.0, None], "b": [{"x": 1}, None]}),
     2, "column 'b' holds struct", False, ()),
    (["impute", "b.parquet", "--out", "o.csv", "--method", "mean"],
     _parquet("b.parquet", {"a": [1.0, None, 3.0], "b": [b"ab", b"\xff\x00", b"c"]}), 2, "column 'b' holds bytes",
     False, ()),
    (["impute", "t.tsv", "--out", "o.csv"], _write("t.tsv", TABLE.replace(",", "\t")), 2,
     "rename it to .csv and pass --sep '\\t'", False, ()),
    (["impute", "t.csv", "--out", "o.csv", "--method", "mice", "--epochs", "3"], table, 2,
     "--epochs only applies to LLM fills, and --method mice has none", False, ()),
    (["impute", "t.csv", "--out", "o.csv", "--method", "mean", "--numbers", "expected", "--train-on", "observed",
      "--model", "x"], table, 2, "--model, --train-on, --numbers only apply to LLM fills, and --method mean has none", False, ()),
    (["impute", "t.csv", "--out", "o.csv", "--method", "llm", "--engine", "ray", "--ray-address", "bogus"], table, 2,
     "'bogus' is not a Ray address", False, ()),
    (["impute", "t.csv", "--out", "o.csv", "--method", "llm", "--engine", "ray", "--ray-address", "127.0.0.1:\u00b2"],
     table, 2, "is not a Ray address", False, ()),
    (["impute", "t.csv", "--out", "o.csv", "--method", "llm", "--engine", "ray", "--ray-address", "127.0.0.1:1"],
     table, 2, "nothing answers at 127.0.0.1:1", False, ()),
    # ------------------------------------------------------------------------------------------------ learn
    (["learn", "train", "--data", "nope", "--out", "art"], None, 2, "unknown data set 'nope'", False, ()),
    (["learn", "train", "--data", "ml-100k", "--out", "a2", "--checkpoint-dir", "a2"], None, 2,
     "inside the artifact folder", False, ()),
    (["learn", "train", "--data", "ml-100k", "--out", "a2", "--checkpoint-dir", "a2/ck"], None, 2,
     "inside the artifact folder", False, ()),
    (["learn", "train", "--data", "ml-100k", "--out", "mine"], user_folder, 2, "not made by recllm", False, ()),
    (["learn", "train", "--data", "ml-100k", "--out", "model"], _write("model", "a file"), 2, "existing file", False,
     ()),
    (["learn", "train", "--data", "ml-100k", "--out", "model/art"], _write("model", "a file"), 2, "is a file", False,
     ()),
    (["learn", "train", "--data", "ml-100k", "--out", "a", "--dim", "0"], None, 2, "argument --dim", False, ()),
    (["learn", "train", "--data", "ml-100k", "--out", "a", "--epochs", "-5"], None, 2, "positive", False, ()),
    (["learn", "train", "--data", "ml-100k", "--out", "a", "--dim", "33"], None, 2, "divisible", False, ()),
    (["learn", "train", "--data", "ml-100k", "--out", "a", "--content-model", "./enc"], None, 2,
     "no such model folder", False, ()),
    (["learn", "train", "--data", "ml-100k", "--out", "a", "--item-tower", "deep"], None, 2, "invalid choice", False,
     ()),
    (["learn", "train", "--data", "ml-100k", "--out", "a", "--catalogue-negatives", "-1"], None, 2, "negative",
     False, ()),
    (["learn", "recommend", "nowhere", "--user", "u1"], None, 2, "does not exist", False, ()),
    (["learn", "recommend", "t.csv", "--user", "u1"], table, 2, "is a file", False, ()),
    (["learn", "recommend", "mine", "--user", "u1"], user_folder, 2, "config.json is missing", False, ()),
    (["learn", "recommend", "art", "--user", "nobody"], None, 2, "user 'nobody' is not in this artifact", True, ()),
    (["learn", "recommend", "art", "--user", "u1", "-k", "0"], None, 2, "argument -k", True, ()),
    (["learn", "recommend", "art", "--user", "u1", "-k", "-3"], None, 2, "argument -k", True, ()),
    (["learn", "recommend", "art", "--user", "nobody"], None, 2, "or a new user's items with --history", True, ()),
    (["learn", "recommend", "art", "--history", "i1", "nope"], None, 2, "item 'nope' is not in this artifact", True,
     ()),
    (["learn", "recommend", "art", "--user", "u1", "--history", "i1"], None, 2, "not allowed with argument", True,
     ()),
    (["learn", "similar", "art", "--item", "nope"], None, 2, "item 'nope' is not in this artifact", True, ()),
    (["learn", "similar", "art", "--item", "i1", "-k", "-5"], None, 2, "argument -k", True, ()),
    (["learn", "recommend", "art", "--user", "u1"], _artifact_edit(_truncate_config), 2, "config.json", True, ()),
    (["learn", "recommend", "art", "--user", "u1"], _artifact_edit(lambda a: (a / "model.safetensors").unlink()), 2,
     "model.safetensors", True, ()),
    (["learn", "recommend", "art", "--user", "u1"], _artifact_edit(_wrong_format), 2, "format", True, ()),
    # ------------------------------------------------------------------------------------------------ trsr
    (["trsr", "summarize", "--data", "nope"], None, 2, "unknown data set", False, ()),
    (["trsr", "summarize", "--data", "ml-100k", "--users", "0"], None, 2, "argument --users", False, ()),
    (["trsr", "summarize", "--data", "ml-100k", "--users", "-1"], None, 2, "argument --users", False, ()),
    (["trsr", "summarize", "--data", "ml-100k", "--out", ""], None, 2, "no file name given (--out)", False, ()),
    (["trsr", "summarize", "--data", "ml-100k", "--out", "s.txt"], None, 2, ".jsonl", False, ()),
    (["trsr", "summarize", "--data", "ml-100k", "--out", "s.jsonl"], _write("s.jsonl", '{"keep": 1}\n'), 2,
     "--overwrite", False, ()),
    (["trsr", "summarize", "--data", "ml-100k", "--model", "./no-model"], None, 2, "no such model folder", False, ()),
    (["trsr", "summarize", "--data", "ml-100k", "--item-tokens", "0"], None, 2, "argument --item-tokens", False, ()),
    (["trsr", "train", "--data", "ml-100k", "--out", "mine"], user_folder, 2, "not made by recllm", False, ()),
    (["trsr", "train", "--data", "ml-100k", "--out", "model"], _write("model", "a file"), 2, "existing file", False,
     ()),
    (["trsr", "train", "--data", "ml-100k", "--out", "r", "--lr", "0"], None, 2, "argument --lr", False, ()),
    (["trsr", "train", "--data", "ml-100k", "--out", "r", "--inject-fraction", "1.5"], None, 2, "between 0 and 1",
     False, ()),
    (["trsr", "train", "--data", "ml-100k", "--out", "r", "--mode", "bogus"], None, 2, "invalid choice", False, ()),
    (["trsr", "train", "--data", "ml-100k", "--out", "r", "--recent", "0"], None, 2, "argument --recent", False, ()),
    (["trsr", "train", "--data", "ml-100k", "--out", "r", "--class-weight", "equal"], None, 2,
     "argument --class-weight", False, ()),
    (["trsr", "rank", "--run", "nowhere"], None, 2, "does not exist", False, ()),
    (["trsr", "rank", "--run", "notes.txt"], _write("notes.txt", "x"), 2, "or train one into a new folder", False, ()),
    (["trsr", "rank", "--run", "run"], _folder("run", {"trsr_config.json": RUN_CONFIG[:20], "sft/x": ""}), 2,
     "--out run` (a rerun resumes)", False, ()),
    (["trsr", "rank", "--run", "run"], _folder("run", {"trsr_config.json": RUN_CONFIG[:20]}), 2, "not valid JSON", False,
     ()),
    (["trsr", "rank", "--run", "run"], _folder("run", {"trsr_config.json": RUN_CONFIG}), 2, "cannot use", False, ()),
    (["trsr", "rank", "--run", "run", "--rows", "0"], None, 2, "argument --rows", False, ()),
    # ------------------------------------------------------------------------------------------------ llm
    (["llm"], None, 2, "required", False, ()),
    (["llm", "check", "--model", "./no-model"], None, 2, "no such model folder", False, ()),
    (["llm", "check", "--model", "t.csv"], table, 2, "is a file", False, ()),
    (["llm", "check", "--batch", "0"], None, 2, "argument --batch", False, ()),
    (["llm", "check", "--max-new-tokens", "-1"], None, 2, "argument --max-new-tokens", False, ()),
    (["llm", "check", "--threads", "-2"], None, 2, "argument --threads", False, ()),
    (["llm", "check", "--threads", "99999"], None, 2, "argument --threads: '99999' is far more threads", False, ()),
    (["impute", "t.csv", "--out", "o.csv", "--threads", "99999"], table, 2, "argument --threads", False, ()),
    (["serve", "--learn", "art", "--threads", "99999"], None, 2, "argument --threads", False, ()),
    (["llm", "check", "--dtype", "float64"], None, 2, "float64", False, ()),
    (["llm", "check", "--model", "adir"], _folder("adir", {}), 2, "adir is a folder without config.json", False, ()),
    (["llm", "check", "--model", "art"], None, 2, "art/config.json names no model_type", True, ()),
    (["trsr", "summarize", "--data", "ml-100k", "--model", "art"], None, 2, "art/config.json names no model_type",
     True, ()),
    (["demo", "--sections", "learn,magic"], None, 2, "unknown demo section(s) ['magic']", False, ()),
    (["demo", "--sections"], None, 2, "--sections names no section", False, ()),
    (["demo", "--sections", ","], None, 2, "--sections names no section", False, ()),
    # ------------------------------------------------------------------------------------------------ cache, serve
    (["cache", "clean", "parsed", "--older-than", "nan", "--force"], None, 2, "not a finite number", False, ()),
    (["cache", "clean", "parsed", "--older-than", "-1"], None, 2, "is negative", False, ()),
    (["cache", "list"], _cache_is_a_file, 2, "cache.csv is a file", False, ()),
    (["data", "list"], _data_is_a_file, 2, "somefile.csv is a file; recllm keeps the data sets", False, ()),
    (["data", "info", "ml-100k"], _data_is_a_file, 2, "(RECLLM_DATA); set it to the folder", False, ()),
    (["serve", "--learn", "art", "--port", "70000"], None, 2, "not a port", False, ()),
    # ------------------------------------------------------------------------------------------------ bench
    (["bench", "learn", "--out", "notes.md"], _write("notes.md", "# my notes\n"), 2, "--overwrite", False, ()),
    (["bench", "learn", "--out", "report.txt"], None, 2, ".md", False, ()),
    (["bench", "learn", "--datasets", "nope"], None, 2, "unknown data set 'nope'", False, ()),
    (["bench", "learn", "--models", "Magic"], None, 2, "unknown model", False, ()),
    (["bench", "trsr", "--datasets", "nope"], None, 2, "unknown benchmark data set", False, ()),
    (["bench", "impute", "--out", "mine/notes.txt"], user_folder, 2, ".md", False, ()),
    (["bench", "impute", "--plan", "--datasets", "nope"], None, 2,
     "unknown benchmark data set(s) ['nope'] (--datasets)", False, ()),
    (["bench", "impute", "--plan", "--imputers", "nope"], None, 2, "unknown imputer(s) ['nope'] (--imputers)", False,
     ()),
    (["bench", "impute", "--plan", "--attempts", "-3"], None, 2, "unknown attempt(s) ['-3'] (--attempts)", False, ()),
    (["bench", "impute", "--plan", "--attempt-datasets", "nope"], None, 2, "(--attempt-datasets); choose from",
     False, ()),
]


def _command(argv: list[str]) -> str:
    """The command named in the message: the (sub)command whose parser or handler reports the error."""
    if not argv or argv[0] not in ("data", "impute", "learn", "trsr", "llm", "bench", "demo", "cache", "serve"):
        return "recllm"
    if argv[0] in ("impute", "demo", "serve") or len(argv) == 1:
        return f"recllm {argv[0]}"
    return f"recllm {argv[0]} {argv[1]}"


@pytest.mark.parametrize("argv, setup, code, words, artifact, marks", [
    pytest.param(*case, id=" ".join(case[0])[:70] or "no-arguments", marks=case[5]) for case in CASES])
def test_bad_input(placeholder_data, argv, setup, code, words, artifact, marks, work, no_heavy_loads, monkeypatch, capsys, request):
    if artifact:
        request.getfixturevalue("artifact_copy")
    if setup is not None:
        setup(work, monkeypatch)
    if "data" in [p.name for p in work.iterdir()]:  # a case about loading a bad data file: loading is the point
        monkeypatch.undo()
        monkeypatch.setenv("RECLLM_DATA", str(work / "data"))
        monkeypatch.setenv("RECLLM_CACHE", str(work.parent / "cache"))
        monkeypatch.chdir(work)
    before = snapshot(work)
    got = main(list(argv))
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert "Traceback" not in out + err
    assert got == code, err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{_command(argv)}: error: "), lines[0]
    assert words in lines[0], lines[0]
    assert snapshot(work) == before


def test_suite_size():
    """The issue asks for at least 40 cases across impute, data, learn, trsr and llm."""
    groups = {case[0][0] for case in CASES if case[0]}
    assert len(CASES) >= 40 and {"impute", "data", "learn", "trsr", "llm"} <= groups
