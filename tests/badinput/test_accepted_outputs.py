"""recllm's own earlier outputs stay usable: the output checks let them through (the run then stops at the first
data load, which the sentinel turns into an internal error; reaching it proves every check passed)."""

import json

import pytest

from recllm.cli import main
from recllm.eval.report import GENERATED_NOTE
from recllm.learn.artifact import OUTPUT_KIND
from recllm.outputs import MARKER
from recllm.trsr.cli import RUN_KIND


def _marked(folder, kind):
    folder.mkdir()
    (folder / MARKER).write_text(json.dumps({"kind": kind, "version": 1}))
    (folder / "config.json").write_text("{}")  # a name this kind writes (an old marker lists no files)


@pytest.mark.parametrize("argv, setup", [
    (["learn", "train", "--data", "ml-100k", "--out", "out"], lambda w: _marked(w / "out", OUTPUT_KIND)),
    (["learn", "train", "--data", "ml-100k", "--out", "out"], lambda w: (w / "out").mkdir()),
    (["trsr", "train", "--data", "ml-100k", "--out", "out"], lambda w: _marked(w / "out", RUN_KIND)),
    (["trsr", "train", "--data", "ml-100k", "--out", "out"],  # a run written before run folders were marked
     lambda w: ((w / "out" / "sft").mkdir(parents=True), (w / "out" / "trsr_config.json").write_text("{}"))),
    (["trsr", "summarize", "--data", "ml-100k", "--out", "s.jsonl", "--overwrite"],
     lambda w: (w / "s.jsonl").write_text("{}\n")),
    (["bench", "learn", "--out", "report.md"], lambda w: (w / "report.md").write_text(f"# R\n<!-- {GENERATED_NOTE} -->\n")),
])
def test_own_outputs_pass_the_checks(placeholder_data, argv, setup, work, no_heavy_loads, capsys):
    setup(work)
    assert main(argv) == 1
    assert "was loaded before the arguments were checked" in capsys.readouterr().err


def test_a_run_folder_of_another_kind_is_refused(work, capsys):
    _marked(work / "out", OUTPUT_KIND)
    assert main(["trsr", "train", "--data", "ml-100k", "--out", "out"]) == 2
    assert "holds a recllm 'learn-artifact' output" in capsys.readouterr().err
