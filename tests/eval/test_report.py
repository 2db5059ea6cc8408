"""Report header, tables, CI formatting and atomic plot writing."""

import hashlib
import math
import re

import pytest

from recllm.eval.report import (
    GENERATED_NOTE, data_checksums, fmt_ci, format_table, machine_info, save_plot, write_report,
)


def test_fmt_ci():
    assert fmt_ci(0.1234, 0.1178, 0.1290) == "0.1234 ± 0.0056"
    assert fmt_ci(0.5, 0.4, 0.55, digits=2) == "0.50 ± 0.10"  # the larger side of a skewed interval
    assert fmt_ci(0.4, math.nan, math.nan) == "0.4000 (no CI)"


def test_format_table():
    table = format_table([{"model": "pop|x", "hr": 0.12345, "n": 3}], ["model", "hr", "n"])
    assert table.splitlines() == ["| model | hr | n |", "| --- | --- | --- |", "| pop\\|x | 0.1235 | 3 |"]
    with pytest.raises(KeyError, match="row 0"):
        format_table([{"model": "a"}], ["model", "hr"])


def test_machine_info_has_no_paths():
    info = machine_info()
    assert set(info) >= {"cpu", "cores", "amx", "python", "torch", "transformers"}
    assert info["amx"] in ("yes", "no")


def test_write_report_header_and_checksums(tmp_path, monkeypatch):
    data = tmp_path / "data" / "toy"
    data.mkdir(parents=True)
    (data / "a.csv").write_bytes(b"x,y\n1,2\n")
    (data / "b.csv").write_bytes(b"z\n")
    monkeypatch.setenv("RECLLM_DATA", str(tmp_path / "data"))
    out = write_report(tmp_path / "docs" / "r.md", "Toy results", "python bench.py --seed 0", [data], "| a |\n", seeds=[0, 1])
    text = out.read_text()
    assert text.startswith("# Toy results\n")
    assert GENERATED_NOTE in text
    assert "- command: `python bench.py --seed 0`" in text
    assert re.search(r"- date: \d{4}-\d\d-\d\d \d\d:\d\d UTC", text)
    assert "- seeds: 0, 1" in text and "AMX:" in text and "torch" in text
    digest = hashlib.sha256(b"x,y\n1,2\n").hexdigest()
    assert f"`toy/a.csv`: `{digest}`" in text
    assert "toy/b.csv" in text and str(tmp_path) not in text
    assert text.rstrip().endswith("| a |")
    assert not [p for p in (tmp_path / "docs").iterdir() if p.name != "r.md"]  # no temp files left


def test_missing_data_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        data_checksums([tmp_path / "nope.csv"])


def test_save_plot_atomic(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    path = save_plot(fig, tmp_path / "p.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["p.png"]
