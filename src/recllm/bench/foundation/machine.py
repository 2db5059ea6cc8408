"""The machine the foundation figures come from: CPU, the flags that decide the precision, the precision policy's
choice, the measured matmul peak of every precision, and the CPU families earlier runs measured.

Every run appends one line to ``foundation.machines.jsonl`` beside the report (``--out``), so the table of CPU
families is made from measurements, each with its date and commit; lines are never edited.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path

import torch

# Flags that decide the precision (recllm.llm.precision) or the float32 speed.
RELEVANT_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8")
PEAK_SIZE, PEAK_SECONDS = 1024, 2.0


def native_dtypes() -> list[str]:
    """The precisions this CPU computes natively: float32 always, bfloat16 with AMX or AVX512-BF16."""
    from recllm.llm.precision import has_bf16_matmul

    return ["float32", "bfloat16"] if has_bf16_matmul() else ["float32"]


def peak_flops(dtype: str) -> float:
    """The matmul peak of ``dtype`` in FLOP/s (a ``PEAK_SIZE``-square matmul for ``PEAK_SECONDS``, in the run's thread
    setting): what every LLM figure of the report is a fraction of."""
    from recllm.llm import measure_matmul_flops

    return measure_matmul_flops(dtype, size=PEAK_SIZE, seconds=PEAK_SECONDS)


def load_note(before: tuple[float, ...], after: tuple[float, ...]) -> str:
    """The 1/5/15-minute load averages (``os.getloadavg()``) before and after a section, for its machine line."""
    def fmt(load: tuple[float, ...]) -> str:
        return "/".join(f"{x:.2f}" for x in load)

    return (f"load average (1/5/15 min) {fmt(before)} before and {fmt(after)} after (the CPU is shared: other "
            "processes lower these figures)")


def measure() -> dict:
    """This machine's facts and matmul peaks (every precision, native or emulated, so the report can show both), in
    the thread setting of the run (``recllm.utils.set_threads``, done by the caller)."""
    from recllm.llm import cpu_model, thread_info
    from recllm.llm.precision import bf16_probe, choose_precision, cpu_flags

    flags = cpu_flags()
    peaks = {d: peak_flops(d) for d in ("float32", "bfloat16")}
    probe = bf16_probe()
    return {"cpu": cpu_model(), "flags": [f for f in RELEVANT_FLAGS if f in flags],
            "cores": thread_info()["cores"], "threads": torch.get_num_threads(), "native": native_dtypes(),
            "policy": str(choose_precision("auto", "cpu")), "probe_bf16_speedup": round(probe.speedup, 4),
            "peak_gflops": {d: round(v / 1e9, 2) for d, v in peaks.items()}}


def history_path(report: str | os.PathLike[str]) -> Path:
    """The append-only record of measured machines beside ``report``."""
    return Path(report).with_name("foundation.machines.jsonl")


def commit_id(source: str) -> str:
    """The record's commit field from a report's source line (``recllm.bench.reporting.source_state``):
    ``commit abc+dirty (written with --allow-dirty)`` -> ``abc+dirty``; any other line is kept whole."""
    if not source.startswith("commit "):
        return source
    return source.removeprefix("commit ").split(" ", 1)[0]


def append_history(report: str | os.PathLike[str], facts: dict, source: str) -> None:
    """Add this run's machine line to the record (one JSON line, appended and flushed; after a line cut short by a
    stopped run, on a line of its own); ``source`` is the report's source line."""
    from recllm.utils import ends_with_newline

    line = {"date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"), "commit": commit_id(source), **facts}
    path = history_path(report)
    with open(path, "a", encoding="utf-8") as out:
        cut = out.tell() > 0 and not ends_with_newline(path)
        out.write(("\n" if cut else "") + json.dumps(line, sort_keys=True) + "\n")
        out.flush()


def _check_record(record: object) -> None:
    """A TypeError / KeyError / ValueError unless ``record`` is a machine line :func:`section` can show."""
    peaks = record["peak_gflops"]  # type: ignore[index]
    if not all(isinstance(record[k], str) for k in ("date", "commit", "cpu", "policy")):  # type: ignore[index]
        raise TypeError("date, commit, cpu and policy must be text")
    if not isinstance(record["flags"], list) or not all(isinstance(f, str) for f in record["flags"]):  # type: ignore[index]
        raise TypeError("flags must be a list of text")
    if not all(isinstance(peaks[d], (int, float)) and peaks[d] > 0 for d in ("float32", "bfloat16")):
        raise ValueError("peak_gflops must give float32 and bfloat16 as numbers above 0")


def read_history(report: str | os.PathLike[str]) -> list[dict]:
    """The machines recorded beside ``report`` (none when there is no record). A line cut short by a stopped run (an
    unfinished JSON object) is skipped; any other line that is not a machine record, or a file that is not text, is
    a :class:`recllm.errors.UserInputError` naming the file (and line): read before the benchmark measures anything."""
    from recllm.errors import UserInputError

    path = history_path(report)
    todo = "fix or delete that line, or move the file away (it is recllm's record of the machines this ran on)"
    if not path.exists():
        return []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserInputError(f"the record of measured machines cannot be read ({exc})", str(path), todo) from None
    out = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if line.lstrip().startswith("{"):  # an unfinished record: a run stopped while appending it
                continue
            raise UserInputError(f"line {number} is not a machine record ({exc})", str(path), todo) from None
        try:
            _check_record(record)
        except (ValueError, KeyError, TypeError) as exc:
            raise UserInputError(f"line {number} is not a machine record ({exc})", str(path), todo) from None
        out.append(record)
    return out


def section(facts: dict, report: str | os.PathLike[str]) -> str:
    """The markdown section for ``facts`` (from :func:`measure`) and the recorded machines."""
    from recllm.eval.report import format_table

    peaks = facts["peak_gflops"]
    rows = [{"precision": d, "native": "yes" if d in facts["native"] else "no (emulated)",
             "matmul GFLOP/s": f"{peaks[d]:.1f}", "vs float32": f"{peaks[d] / peaks['float32']:.2f}x"}
            for d in ("float32", "bfloat16")]
    seen = [{"date": h["date"], "commit": h["commit"][:12], "CPU": h["cpu"], "flags": " ".join(h["flags"]) or "-",
             "float32 GFLOP/s": f"{h['peak_gflops']['float32']:.1f}",
             "bfloat16 GFLOP/s": f"{h['peak_gflops']['bfloat16']:.1f}",
             "bf16 / fp32": f"{h['peak_gflops']['bfloat16'] / h['peak_gflops']['float32']:.2f}x",
             "auto picks": h["policy"].split(":")[0].split(" ")[0]} for h in read_history(report) + [dict(facts, date="this run",
                                                                                      commit="this run")]]
    return "\n".join([
        "## Machine and precision",
        "",
        f"CPU: {facts['cpu']}, {facts['cores']} cores, torch threads {facts['threads']}. Flags that decide the "
        f"precision or the float32 speed: {', '.join(facts['flags']) or 'none of ' + ', '.join(RELEVANT_FLAGS)}.",
        f"Native precisions: {', '.join(facts['native'])}. `dtype=\"auto\"` (recllm.llm.precision) chooses: "
        f"{facts['policy']}.",
        "",
        f"Matmul peak ({PEAK_SIZE} x {PEAK_SIZE} square matmul, {PEAK_SECONDS:.0f} s, "
        "`recllm.llm.hardware.measure_matmul_flops`): every LLM figure below is also given as a fraction of the "
        "peak of the precision it ran in. Only native precisions get tables below; an emulated one is shown here "
        "so its cost is visible.",
        "",
        format_table(rows, ["precision", "native", "matmul GFLOP/s", "vs float32"]),
        "",
        "### CPU families measured by this report",
        "",
        "Each run of this benchmark appends its machine to `foundation.machines.jsonl`; the figures move with the "
        "CPU as the table shows: with AMX (Intel Xeon) bfloat16 matmul runs several times faster than float32 and "
        "`auto` picks it; with AVX512-BF16 (AMD EPYC Zen 4) bfloat16 is native but the probe decides; with AVX2 "
        "only, bfloat16 is emulated, tens of times slower, and `auto` keeps float32. Throughput tables of other "
        "machines are in this file's git history at the commit named.",
        "",
        format_table(seen, ["date", "commit", "CPU", "flags", "float32 GFLOP/s", "bfloat16 GFLOP/s", "bf16 / fp32",
                            "auto picks"]),
    ]) + "\n"
