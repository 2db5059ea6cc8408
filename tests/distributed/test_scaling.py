"""recllm.bench.scaling: the cost model, the report's tables from given measurements, a trainer's measurement."""

from __future__ import annotations

import pytest

from recllm.bench.scaling import JOBS, TRAINERS, PaperScale, Sizes, _train_towers, project, report_body

TINY = Sizes(model="tiny", texts=4, groups=2, candidates=3, prompts=2, new_tokens=2, chunk=1, users=40, items=30,
             history=6, epochs=1, sft_examples=4, sft_batch=2)


def test_projection_divides_the_work_by_the_effective_workers():
    assert project(10.0, 0.9, 1000.0, 1) == pytest.approx(100.0)  # one worker: no efficiency loss
    assert project(10.0, 0.9, 1000.0, 4, overhead=5.0) == pytest.approx(5.0 + 1000.0 / (10.0 * 0.9 * 4))
    assert project(10.0, 1.3, 1000.0, 4) == pytest.approx(25.0)  # a super-linear measurement is capped at 1
    with pytest.raises(ValueError, match="per_worker > 0"):
        project(0.0, 0.9, 1000.0, 4)


def test_report_tables_come_from_the_measurements():
    batch = {"jobs": {job: {"local": 12.0, 1: 5.0, 2: 4.0} for job in JOBS}, "pool_start": {1: 2.0, 2: 2.0},
             "units": {job: (30, "things") for job in JOBS}, "ray_start_seconds": 7.25,
             "flops_per_unit": {job: 1e9 for job in JOBS}}
    batch["jobs"]["generation"][2] = 2.01  # the pool start took the whole 2-worker job: no efficiency
    trainers = {name: {1: {"unit": "rows", "per_second": 100.0, "seconds": 2.0, "wall": 9.0},
                       2: {"unit": "rows", "per_second": 180.0, "seconds": 1.0, "wall": 10.0}} for name in TRAINERS}
    trainers["sasrec"][1]["flops_per_unit"] = 2e7
    peaks = {1: 48e9, 2: 100e9}
    body = report_body(TINY, batch, trainers, peaks, PaperScale(items=1200, interactions=3600, users=10),
                       widths=(1, 4))
    # 30 things in 5 s (2 s of pool start): 6/s for the job, 10/s steady; 2 workers 7.5 and 15; ratio 1.5;
    # 1 GFLOP a thing: 12 GFLOP/s of a 48 GFLOP/s 1-thread peak; every Ray rate too, against the peak at its
    # workers' threads: 1 worker 6 and 10 of 48, 2 workers 7.5 and 15 of a 100 GFLOP/s 2-thread peak
    assert ("| embedding | things | 30 | 12.00 | 6.00 | 10.00 | 7.50 | 15.00 | 1.50 | 1 | 25.0% | 12.5% | 20.8% | "
            "7.5% | 15.0% |") in body
    assert ("| generation | things | 30 | 12.00 | 6.00 | 10.00 | 14.93 | nan | nan | 1 | 25.0% | 12.5% | 20.8% | "
            "14.9% |  |") in body
    # 100 rows/s x 0.02 GFLOP = 2 GFLOP/s of 48: 4.2%; 180 x 0.02 = 3.6 of 100: 3.6%; no count: no fraction
    assert "| SASRec | rows | 100.00 | 180.00 | 1.80 | 0.02 | 4.2% | 3.6% | 7.0 / 9.0 |" in body
    assert "| LoRA SFT | rows | 100.00 | 180.00 | 1.80 |  |  |  | 7.0 / 9.0 |" in body
    assert "48.0 GFLOP/s with 1 thread(s), 100.0 GFLOP/s with 2 thread(s)" in body
    assert "7.2 s" in body and "a projection, not a measurement" in body
    # 1,200 items at 12/s per worker, efficiency 0.75, start-up 7.25 + 2 s: 109.25 s on 1, 9.25 + 1200/36 on 4
    assert "| embed 1,200 item texts | 12.00 | 0.75 | 9.25 | 1.8 min | 0.7 min |" in body
    assert "| 60 summaries (10 users) | 12.00 | nan | 9.25 | 0.2 min |  |" in body
    # SASRec: 3,600 interactions at 100/s, efficiency 0.9, launch 9 s: 45 s on 1 worker, 9 + 10 s on 4
    assert "| one SASRec epoch over 3,600 interactions | 100.00 | 0.90 | 9.00 | 0.8 min | 0.3 min |" in body


def test_a_tower_measurement_counts_training_transitions():
    out = _train_towers("sasrec", TINY)
    assert out["unit"] == "interactions" and out["seconds"] > 0 and "flops_per_unit" not in out
    counted = _train_towers("sasrec", TINY, count=True)
    assert counted["units"] == out["units"] and counted["flops_per_unit"] > 0 and counted["count_seconds"] > 0
    from recllm.bench.scaling import _split

    seqs = _split(TINY).sequences("train")
    assert out["units"] == sum(len(s) - 1 for s in seqs.values())  # one epoch: every transition once


def test_sizes_are_checked():
    with pytest.raises(ValueError, match="Sizes.model"):
        Sizes(**{**TINY.__dict__, "model": "gpt"})
    with pytest.raises(ValueError, match="Sizes.texts"):
        Sizes(**{**TINY.__dict__, "texts": 0})
    with pytest.raises(ValueError, match="Sizes.min_job_seconds"):
        Sizes(**{**TINY.__dict__, "min_job_seconds": -1.0})


def test_a_batch_job_faster_than_its_minimum_is_grown(monkeypatch):
    """On a fast CPU the preset's work ends within a Ray pool's start: each job is grown (at most 20x) until it
    takes ``min_job_seconds`` in one process, and the rates and units reported are the grown job's."""
    import recllm.bench.scaling as scaling
    import recllm.distributed.ray_jobs as ray_jobs

    monkeypatch.setattr(scaling, "_timed", lambda fn: 0.1)  # every job takes 0.1 s, whatever its size (not run)
    for name in ("ensure_ray", "ship_model", "embed_texts_ray", "score_continuations_ray", "generate_chunks_ray"):
        monkeypatch.setattr(ray_jobs, name, lambda *a, **k: None)
    monkeypatch.setattr("ray.shutdown", lambda: None)
    grown = scaling.measure_batch_jobs(Sizes(**{**TINY.__dict__, "min_job_seconds": 0.5}))
    # 0.5 s / 0.1 s: 5x the texts (4 -> 20), the groups (2 -> 10: 30 candidates), the prompts (2 -> 10)
    assert grown["units"] == {"embedding": (20, "items"), "scoring": (30, "candidates"), "generation": (10, "prompts")}
    assert grown["jobs"]["embedding"]["local"] == pytest.approx(200.0) and grown["min_job_seconds"] == 0.5
    capped = scaling.measure_batch_jobs(Sizes(**{**TINY.__dict__, "min_job_seconds": 60.0}))
    assert capped["units"]["embedding"] == (80, "items")  # at most 20x the preset
    as_given = scaling.measure_batch_jobs(TINY)
    assert as_given["units"]["embedding"] == (4, "items") and as_given["min_job_seconds"] == 0.0


def test_the_flop_count_is_left_out_of_a_trainers_launch_time(monkeypatch, tmp_path):
    """The 1-process run also counts FLOPs after training: those seconds are no part of torchrun's launch and set-up."""
    import json
    import subprocess

    import recllm.bench.scaling as scaling

    def fake_run(command, **kwargs):  # a run of 0.6 s, 0.5 of them counting FLOPs
        import time

        time.sleep(0.6)
        result = command[command.index("trainer") + 2]
        with open(result, "w", encoding="utf-8") as handle:
            json.dump({"units": 100, "unit": "rows", "seconds": 0.05, "count_seconds": 0.5}, handle)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(scaling.subprocess, "run", fake_run)
    out = scaling.measure_trainer("sasrec", "quick", 1)
    assert out["per_second"] == 2000.0 and 0.05 < out["wall"] < 0.4  # 0.6 s less the count's 0.5
