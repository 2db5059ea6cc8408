"""The imputation demo section runs end to end on the real film table (tiny model for speed)."""

import pytest


@pytest.mark.integration
def test_demo_section_on_real_films(shared_data, tmp_path, monkeypatch, capsys, tiny):
    from recllm.impute.demo import demo_section

    monkeypatch.setenv("RECLLM_CACHE", str(tmp_path / "cache"))
    rows = demo_section(seed=0, show_progress=False, examples=8, model=tiny, rate=0.02)
    assert [r["imputer"] for r in rows] == ["mean", "knn", "mice", "llm"]
    assert all(r["year rmse"] >= 0 and 0 <= r["genres jaccard"] <= 1 for r in rows)
    text = capsys.readouterr().out
    assert "cells of year and genres masked" in text and "| llm |" in text
