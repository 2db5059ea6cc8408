"""recllm bench foundation and foundation-baselines: the report and its command line, the machines record beside it,
the ``--only`` check, and the LLM and training sections on the tiny model (machine and matmul peaks faked: the
2-second measurements are not under test)."""

import importlib
import json

import pytest

from recllm.bench import foundation
from recllm.bench.foundation import machine
from recllm.cli import main

FACTS = {"cpu": "Test CPU", "flags": ["avx2"], "cores": 2, "threads": 1, "native": ["float32"],
         "policy": "float32: test", "probe_bf16_speedup": 0.01, "peak_gflops": {"float32": 100.0, "bfloat16": 1.0}}


@pytest.fixture(scope="module")
def tiny_base():
    from recllm.llm import tiny_causal_lm

    return tiny_causal_lm(seed=0)


@pytest.fixture
def tiny_lm(tiny_base, monkeypatch):
    """The sections' ``load_causal_lm`` gives a fresh copy of the tiny model (the real tokenizer, a 2-layer random
    llama) at each call, as it gives a fresh SmolLM2 (training wraps the model it is given)."""
    import copy
    import dataclasses

    import recllm.llm

    monkeypatch.setattr(recllm.llm, "load_causal_lm",
                        lambda **kwargs: dataclasses.replace(tiny_base, model=copy.deepcopy(tiny_base.model)))
    return tiny_base


@pytest.fixture
def no_data(tmp_path, monkeypatch):
    """No real data (the data section then lists every data set as absent) and a faked machine measurement."""
    empty = tmp_path / "data"
    empty.mkdir()
    monkeypatch.setenv("RECLLM_DATA", str(empty))
    monkeypatch.setattr(machine, "measure", lambda: dict(FACTS))
    return empty


def test_only_data_writes_the_report_with_the_cli_command_and_the_machine_record(tmp_path, no_data):
    out = tmp_path / "reports" / "f.md"
    out.parent.mkdir()
    for _ in range(2):
        assert main(["bench", "foundation", "--only", "data", "--out", str(out), "--allow-dirty"]) == 0
    text = out.read_text()
    assert f"- command: `recllm bench foundation --only data --out {out} --allow-dirty`" in text
    assert "## Machine and precision" in text and "## Data: loader counts against SOURCE.md" in text
    assert "Not present in `$RECLLM_DATA`, so not checked: ml-100k" in text
    assert "SmolLM2" not in text and "precision (dtype 'auto')" not in text  # no LLM section ran
    history = [json.loads(line) for line in (out.parent / "foundation.machines.jsonl").read_text().splitlines()]
    assert len(history) == 2 and history[0]["cpu"] == "Test CPU"
    assert not history[0]["commit"].startswith("commit ") and " " not in history[0]["commit"]
    assert "| Test CPU |" in text.split("### CPU families measured by this report")[1]  # the first run's line


def test_a_bad_only_is_one_line_naming_the_sections_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(machine, "measure", lambda: pytest.fail("measured before --only was checked"))
    out = tmp_path / "f.md"
    assert main(["bench", "foundation", "--only", "data,bogus", "--out", str(out), "--allow-dirty"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bogus" in err and ",".join(foundation.SECTIONS) in err
    assert not out.exists()


def test_foundation_baselines_writes_its_report_with_the_cli_command(tmp_path, monkeypatch, placeholder_data):
    from recllm.bench.foundation import baselines as bench

    calls = []
    monkeypatch.setattr(bench, "run", lambda seed, quick: calls.append((seed, quick)) or "## Baselines body\n")
    out = tmp_path / "b.md"
    assert main(["bench", "foundation-baselines", "--seed", "3", "--quick", "--out", str(out), "--allow-dirty"]) == 0
    text = out.read_text()
    assert calls == [(3, True)] and "## Baselines body" in text and "- seeds: 3" in text
    assert f"- command: `recllm bench foundation-baselines --seed 3 --quick --out {out} --allow-dirty`" in text


@pytest.mark.parametrize("source, commit", [
    ("commit 0123456789ab", "0123456789ab"),
    ("commit 0123456789ab+dirty (written with --allow-dirty)", "0123456789ab+dirty"),
    ("not a git checkout (recllm 0.1.0)", "not a git checkout (recllm 0.1.0)"),
])
def test_the_machine_record_keeps_the_commit_of_the_source_line(source, commit):
    assert machine.commit_id(source) == commit


@pytest.mark.parametrize("name", list(foundation.SECTIONS))
def test_every_section_is_a_module_of_the_package_with_run(name):
    module = importlib.import_module(foundation.SECTIONS[name])
    assert module.__name__ == f"recllm.bench.foundation.{name}" and callable(module.run)


def test_llm_section_on_the_tiny_model(tiny_lm, monkeypatch):
    import recllm.llm
    from recllm.bench.foundation import llm

    monkeypatch.setattr(recllm.llm, "measure_matmul_flops", lambda dtype, size, seconds: 1e11)
    text = llm.run(repeats=1, parts=("scoring",))
    assert "shared prefix (KV cache)" in text and f"{llm.N_CANDIDATES} full sequences" in text
    assert "within 1e-4" in text  # the shared-prefix path gives the full sequences' P(Yes) in float32


def test_sft_timing_sections_on_the_tiny_model(shared_data, tiny_lm):
    """The training sections' measurements agree with the batch plan sft_train ran (their own assertions) and time
    every step after the warm-up."""
    from recllm.bench.foundation import grouped_sft, whole_row

    masked, spec = whole_row.masked_table("advertising")
    per_cell, per_row = (whole_row.measure(mode, masked, spec, n=8, batch_size=4) for mode in ("per-cell", "whole-row"))
    assert per_cell["timed_steps"] == per_row["timed_steps"] == 1 and per_cell["timed_cells"] == 4
    assert per_row["timed_cells"] > per_cell["timed_cells"] and per_row["seconds"] > 0
    groups = grouped_sft.user_groups(tiny_lm, n_groups=2, n_candidates=grouped_sft.PAIR_BATCH)
    pairs, grouped = grouped_sft.measure(groups, False, False), grouped_sft.measure(groups, True, False)
    assert pairs["steps"] == grouped["steps"] == 1 and pairs["answers"] == grouped["answers"] == grouped_sft.PAIR_BATCH
    assert grouped["tokens"] < pairs["tokens"]  # the group's prefix runs once


def test_training_sections_render_on_the_tiny_model(shared_data, tiny_lm, monkeypatch):
    import recllm.llm
    from recllm.bench.foundation import grouped_sft, whole_row

    monkeypatch.setattr(recllm.llm, "measure_matmul_flops", lambda dtype, size, seconds: 1e11)
    text = whole_row.run(examples=8, batch_size=4) + grouped_sft.run(n_groups=2, n_candidates=grouped_sft.PAIR_BATCH)
    assert "as many observed cells per second as per-cell.**" in text and "| per pair |" in text
    assert text.count(f"against a float32 {machine.PEAK_SIZE}-square matmul") == 1
    assert text.count("load average (1/5/15 min)") == 2 and "{" not in text  # every placeholder filled


def test_a_machine_line_cut_short_by_a_stopped_run_does_not_break_the_next(tmp_path, no_data):
    """The record is appended to: a run stopped mid-line leaves an unfinished line without its newline, which the
    next runs skip (the next starts its own line after it)."""
    out = tmp_path / "f.md"
    record = tmp_path / "foundation.machines.jsonl"
    record.write_text(json.dumps({"date": "2026-01-01", "commit": "abc", **FACTS}) + "\n" + '{"date": "2026-')
    assert main(["bench", "foundation", "--only", "data", "--out", str(out), "--allow-dirty"]) == 0
    lines = record.read_text().splitlines()
    assert len(lines) == 3 and lines[1] == '{"date": "2026-' and json.loads(lines[2])["cpu"] == "Test CPU"
    assert main(["bench", "foundation", "--only", "data", "--out", str(out), "--allow-dirty"]) == 0  # now inside
    assert "| Test CPU |" in out.read_text().split("### CPU families measured by this report")[1]


@pytest.mark.parametrize("content", [b"not json\n", b'{"date": "x"}\n', b"\xff\xfe binary\n"])
def test_a_damaged_machine_record_is_one_line_before_anything_is_measured(tmp_path, monkeypatch, capsys, content):
    monkeypatch.setattr(machine, "measure", lambda: pytest.fail("measured before the record was read"))
    (tmp_path / "foundation.machines.jsonl").write_bytes(content)
    assert main(["bench", "foundation", "--only", "data", "--out", str(tmp_path / "f.md"), "--allow-dirty"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "foundation.machines.jsonl" in err and "Traceback" not in err, err
    assert (tmp_path / "foundation.machines.jsonl").read_bytes() == content
