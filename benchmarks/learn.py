"""LEARN benchmark -> docs/results/learn.md (same as ``recllm bench learn``).

Usage: ``python benchmarks/learn.py [--quick] [--datasets ...] [--splits ...] [--seeds ...] [--recbole-run DIR]``.
RecBole's SASRec (``make recbole-reference``, its own environment) is set beside ours when its run folder exists.
The full run (3 data sets + ML-1M when present, 3 splits, 3 seeds, 8 models) is sized for about 40 minutes on
2 idle cores: content embeddings are cached on disk, epochs are capped and early stopping is on validation.
"""

from __future__ import annotations

import sys

from recllm.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "learn", *sys.argv[1:]]))
