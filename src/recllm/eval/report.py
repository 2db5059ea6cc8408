"""Result reports: markdown files in docs/results that say how, when, where and on which bytes they were made.

Every report starts with a header naming the command that produced it, the UTC date, the machine (CPU model,
cores, AMX, Python/torch/transformers versions), the git commit, and the sha256 of every data file used, so a
reader can reproduce or distrust each figure. Files are written atomically and say they are generated.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
import os
import platform
import subprocess
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from recllm.utils import atomic_path, write_text_atomic

GENERATED_NOTE = "This file is generated; do not edit it by hand. Re-run the command below to update it."


# ---------------------------------------------------------------------------------------------- machine
def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine_info() -> dict[str, str]:
    """What ran the benchmark: CPU model, cores, AMX and native bfloat16 matmuls, OS and library versions (no host
    names or paths)."""
    from recllm.hardware import cpu_model, has_amx, has_bf16_matmul

    return {
        "cpu": cpu_model(),
        "cores": str(os.cpu_count() or "unknown"),
        "amx": "yes" if has_amx() else "no",
        "bf16": "yes" if has_bf16_matmul() else "no",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "torch": _version("torch"),
        "transformers": _version("transformers"),
        "numpy": _version("numpy"),
        "recllm": _version("recllm"),
    }


def git_commit(cwd: str | os.PathLike[str] | None = None) -> str:
    """The current git commit (with ``+dirty`` when tracked files changed), or ``unknown`` outside a checkout."""
    where = Path(cwd) if cwd is not None else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=where, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return sha + ("+dirty" if dirty else "")


# ---------------------------------------------------------------------------------------------- data files
def sha256_file(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def _display_path(path: Path) -> str:
    """A path without machine-specific prefixes: relative to $RECLLM_DATA, else to the working folder, else its
    last two parts (reports are committed, so they must not leak absolute paths)."""
    resolved = path.resolve()
    roots = [os.environ.get("RECLLM_DATA"), os.getcwd()]
    for root in roots:
        if not root:
            continue
        try:
            return resolved.relative_to(Path(root).resolve()).as_posix()
        except ValueError:
            continue
    return Path(*resolved.parts[-2:]).as_posix()


def data_checksums(data_paths: Iterable[str | os.PathLike[str]]) -> list[tuple[str, str]]:
    """``(display path, sha256)`` for every file; a folder contributes each file inside it (sorted)."""
    out: list[tuple[str, str]] = []
    for raw in data_paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        elif path.is_file():
            files = [path]
        else:
            raise FileNotFoundError(
                f"data file {str(path)!r} for the report does not exist; pass the files the run read"
            )
        out.extend((_display_path(f), sha256_file(f)) for f in files)
    return out


# ---------------------------------------------------------------------------------------------- formatting
def fmt_ci(mean: float, low: float, high: float, digits: int = 4) -> str:
    """``"0.1234 ± 0.0056"``: the mean and the larger distance to an interval end (conservative for skewed
    bootstrap intervals). A nan interval (e.g. one seed) prints as ``"0.1234 (no CI)"``."""
    if math.isnan(mean):
        return "nan"
    if math.isnan(low) or math.isnan(high):
        return f"{mean:.{digits}f} (no CI)"
    half = max(mean - low, high - mean, 0.0)
    return f"{mean:.{digits}f} ± {half:.{digits}f}"


def _cell(value: Any, digits: int) -> str:
    if isinstance(value, float):
        text = "nan" if math.isnan(value) else f"{value:.{digits}f}"
    elif value is None:
        text = ""
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], digits: int = 4) -> str:
    """A markdown table of ``rows`` (dicts) restricted to ``columns`` in that order; floats get ``digits`` places."""
    if not columns:
        raise ValueError("format_table needs at least one column")
    for i, row in enumerate(rows):
        missing = [c for c in columns if c not in row]
        if missing:
            raise KeyError(f"row {i} of the table lacks column(s) {missing}; it has {list(row)}")
    lines = ["| " + " | ".join(_cell(c, digits) for c in columns) + " |",
             "| " + " | ".join("---" for _ in columns) + " |"]
    lines += ["| " + " | ".join(_cell(row[c], digits) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- writing
def report_header(
    title: str, command: str, data_paths: Iterable[str | os.PathLike[str]] = (), seeds: Sequence[int] | None = None,
    commit: str | None = None, precision: str | None = None,
) -> str:
    """The markdown header every report starts with (see the module docstring).

    ``commit``: the source line (``recllm.bench.reporting.source_state``; default: :func:`git_commit`, marked
    ``+dirty`` when tracked files changed). ``precision``: what the run's ``dtype="auto"`` meant, from the caller
    (``recllm.llm.describe_precision()``) when the run used a language model; no line without it.
    """
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = machine_info()
    lines = [
        f"# {title}",
        "",
        f"<!-- {GENERATED_NOTE} -->",
        f"_{GENERATED_NOTE}_",
        "",
        f"- command: `{command}`",
        f"- date: {now}",
        f"- source: {commit}" if commit is not None else f"- git commit: {git_commit()}",
        f"- machine: {machine['cpu']}, {machine['cores']} cores, AMX: {machine['amx']}, bf16 matmul: "
        f"{machine['bf16']}, {machine['os']}",
        *([f"- precision (dtype 'auto'): {precision}"] if precision else []),
        f"- versions: python {machine['python']}, torch {machine['torch']}, transformers {machine['transformers']}, "
        f"numpy {machine['numpy']}, recllm {machine['recllm']}",
    ]
    if seeds is not None:
        lines.append(f"- seeds: {', '.join(str(s) for s in seeds)}")
    checksums = data_checksums(data_paths)
    if checksums:
        lines.append("- data (sha256):")
        lines += [f"  - `{name}`: `{digest}`" for name, digest in checksums]
    return "\n".join(lines) + "\n"


def write_report(
    path: str | os.PathLike[str],
    title: str,
    command: str,
    data_paths: Iterable[str | os.PathLike[str]],
    body: str,
    seeds: Sequence[int] | None = None,
    commit: str | None = None,
    precision: str | None = None,
) -> Path:
    """Write a generated markdown report atomically: :func:`report_header` then ``body``. Returns the path."""
    path = Path(path)
    text = report_header(title, command, data_paths, seeds, commit, precision) + "\n" + body.rstrip() + "\n"
    write_text_atomic(path, text)
    return path


def save_plot(fig: Any, path: str | os.PathLike[str], dpi: int = 120) -> Path:
    """Save a matplotlib figure as PNG atomically (Agg backend, no display needed) and close it."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": "recllm (generated)"})
    plt.close(fig)
    return path
