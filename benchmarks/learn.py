"""LEARN benchmark -> docs/results/learn.md (same as ``recllm bench learn``).

Usage: ``python benchmarks/learn.py [--quick] [--datasets ...] [--splits ...] [--seeds ...] [--recbole-run DIR]``.
RecBole's SASRec (``make recbole-reference``, its own environment) is set beside ours when its run folder exists.
The full run (3 data sets + ML-1M when present, 3 splits, 3 seeds, popularity, SASRec, HSTU and LEARN, plus the
ablations and variants) takes several core-hours on a 2-core CPU, most of it on ml-latest-small, where one sequence
model on a warm split takes 10-20 minutes at one thread. Run it as single-thread shards (README, "Results"):
finished runs are stored beside the report and reused, content embeddings are cached on disk, epochs are capped
and early stopping is on validation.
"""

from __future__ import annotations

import sys

from recllm.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "learn", *sys.argv[1:]]))
