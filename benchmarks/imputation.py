"""LLM imputation benchmark -> docs/results/imputation.md (same as ``recllm bench impute``).

Usage: ``python benchmarks/imputation.py [--quick] [--attempts] [--datasets ...] [--seeds ...] [--threads N]``.
The full run (advertising + MovieLens-100K, 5 missingness settings, 3 seeds, 6 imputers, 3 DLRM tasks) caches
every finished cell, the LLM adapters and the LLM answers, so it resumes after an interruption.
"""

from __future__ import annotations

import sys

from recllm.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "impute", *sys.argv[1:]]))
