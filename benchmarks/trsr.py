"""LLM-TRSR benchmark -> docs/results/trsr.md; the same run as ``recllm bench trsr``.

Usage: ``python benchmarks/trsr.py [--quick] [--datasets NAME ...] [--seeds 0 1 2] [--threads 2]``.
Everything expensive is cached under the recllm cache folder (summaries, scores, fixed candidates, SFT runs), so an
interrupted run resumes and a rerun only redoes what changed. See ``recllm.trsr.bench`` for the protocol.
"""

from __future__ import annotations

import sys
from pathlib import Path

from recllm.cli import main as recllm_main

if __name__ == "__main__":
    args = sys.argv[1:]
    if "--out" not in args:
        name = "trsr-quick.md" if "--quick" in args else "trsr.md"
        args += ["--out", str(Path(__file__).resolve().parent.parent / "docs" / "results" / name)]
    sys.exit(recllm_main(["bench", "trsr", *args]))
