"""Foundation figures -> docs/results/foundation.md.

Sections: loader counts against each SOURCE.md; SmolLM2 throughput through recllm (prefill, generation, LoRA
training) against the machine's measured matmul FLOP/s; shared-prefix candidate scoring; popularity and item-kNN on
MovieLens-100K; grouped (shared-prefix) SFT against per-pair SFT; whole-row against per-cell imputer SFT.
Usage: ``python benchmarks/foundation.py [--only data,llm,sft,grouped_sft,whole_row,baselines]``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SECTIONS = {
    "data": "foundation_data",
    "llm": "foundation_llm",
    "sft": "foundation_sft",
    "grouped_sft": "foundation_grouped_sft",
    "whole_row": "foundation_whole_row",
    "baselines": "foundation_baselines",
}
THREADED = ("llm", "sft", "grouped_sft", "whole_row")  # the LLM sections, which take --threads


def data_files() -> list[Path]:
    """Every file of the real data sets the sections read (for the sha256 header)."""
    root = Path(os.environ.get("RECLLM_DATA", Path.home() / ".cache" / "recllm" / "data"))
    files = []
    for name in ("ml-100k", "ml-latest-small", "advertising", "amazon2018-magazine-subscriptions",
                 "mind-small-train-sample-unofficial"):
        folder = root / name
        if folder.is_dir():
            files += sorted(p for p in folder.iterdir() if p.is_file() and p.name not in ("SOURCE.md",)
                            and not p.name.startswith(("u1.", "u2.", "u3.", "u4.", "u5.", "ua.", "ub.")))
    return files


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections to run")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for the LLM sections (default: torch's; use 1 on a shared machine)")
    parser.add_argument("--out", default=str(HERE.parent / "docs" / "results" / "foundation.md"))
    args = parser.parse_args()
    from recllm.eval.report import git_commit, write_report

    import foundation_machine

    facts = foundation_machine.measure(args.threads)
    body = [foundation_machine.section(facts, args.out)]
    for key in args.only.split(","):
        module = importlib.import_module(SECTIONS[key])
        start = time.perf_counter()
        print(f"[foundation] section {key} ...", flush=True)
        kwargs = {"threads": args.threads} if key in THREADED else {}
        body.append(module.run(**kwargs).rstrip() + f"\n\n_Section time: {time.perf_counter() - start:.0f} s._\n")
    command = "python benchmarks/foundation.py" + ("" if args.only == ",".join(SECTIONS) else f" --only {args.only}")
    command += f" --threads {args.threads}" if args.threads else ""
    write_report(args.out, "Foundation: data, LLM core, evaluation", command, data_files(), "\n".join(body))
    foundation_machine.append_history(args.out, facts, git_commit())
    print(f"[foundation] wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
