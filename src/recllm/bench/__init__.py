"""recllm.bench: every benchmark of the project, one convention for all of them.

A benchmark is a module or small subpackage ``recllm.bench.<module>`` with ``register_cli(bench)``, which adds the
``recllm bench <name>`` parser (its report options come from :func:`recllm.bench.reporting.add_report_args`: ``--out``,
default ``docs/results/<name>.md`` under the current folder, ``--overwrite`` and ``--allow-dirty``) and sets its
handler. ``main(name, argv)`` runs one as ``recllm bench <name> ...`` would. :data:`BENCHMARKS` below is the registry.

Shared parts: :mod:`recllm.bench.runs` (the one run store: a stored run is reused only when the code that produced
it, the data and the settings match), :mod:`recllm.bench.reporting` (report paths, the clean-tree rule, headers).
The estimators (``recllm.impute``, ``recllm.learn``, ``recllm.trsr``) import nothing from here.
"""

from __future__ import annotations

import argparse
import importlib

# ``recllm bench <name>`` -> the module that registers it (imported when the parser is built).
BENCHMARKS: dict[str, str] = {
    "foundation": "recllm.bench.foundation",
    "foundation-baselines": "recllm.bench.foundation",
    "impute": "recllm.bench.impute",
    "impute-numbers": "recllm.bench.impute_numbers",
    "learn": "recllm.bench.learn",
    "learn-catalogue": "recllm.bench.learn_catalogue",
    "learn-patience": "recllm.bench.learn_patience",
    "scaling": "recllm.bench.scaling",
    "trsr": "recllm.bench.trsr",
    "trsr-agreement": "recllm.bench.trsr_agreement",
}


def register_cli(bench: argparse._SubParsersAction, only: str | None = None) -> None:
    """Add every registered benchmark (or only the module of benchmark ``only``) to the ``recllm bench``
    subparsers (a module not present is skipped)."""
    names = dict.fromkeys(BENCHMARKS.values()) if only is None else [BENCHMARKS[only]]
    for module_name in names:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # registered ahead of its module (another engineer's benchmark not landed yet)
        module.register_cli(bench)


def main(name: str, argv: list[str] | None = None) -> int:
    """Run benchmark ``name`` with ``argv`` as ``recllm bench <name> <argv>`` would; returns the exit code."""
    import sys

    from recllm.cli import main as recllm_main

    return recllm_main(["bench", name, *(sys.argv[1:] if argv is None else argv)])
