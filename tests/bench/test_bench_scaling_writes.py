"""recllm bench scaling writes its report once measured (the measurements faked: this tests the last step)."""

from recllm.bench import scaling


def test_run_scaling_writes_the_report_with_its_command(tmp_path, monkeypatch):
    monkeypatch.setattr(scaling, "measure_batch_jobs", lambda sizes: {})
    monkeypatch.setattr(scaling, "measure_trainer", lambda name, size, processes: {})
    monkeypatch.setattr(scaling, "matmul_peaks", lambda: {1: 1e9, 2: 2e9})
    monkeypatch.setattr(scaling, "report_body", lambda sizes, batch, trainers, peaks: "## body\n")
    monkeypatch.setattr("recllm.distributed.require_ray", lambda where: None)
    out = tmp_path / "scaling.md"
    assert scaling.run_scaling(quick=True, out=out, show_progress=False, command="recllm bench scaling --quick") == 0
    text = out.read_text()
    assert "recllm bench scaling --quick" in text and "## body" in text
