"""Settings shared by every sequence model LEARN is compared with or served beside (benchmark, demos).

One place for them: the benchmark (:mod:`recllm.bench.learn`), the LEARN demo and the serving demo read
``SEQ_SETTINGS`` from here and override only explicitly (e.g. LEARN's own ``lr``, from :class:`LEARNConfig`).
"""

from __future__ import annotations

from typing import Any

# Architecture and optimiser shared by every sequence model (and handed to RecBole's SASRec).
SEQ_SETTINGS: dict[str, Any] = {"dim": 64, "n_layers": 2, "n_heads": 2, "max_len": 50, "dropout": 0.2, "lr": 1e-3}
