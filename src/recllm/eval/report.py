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
import re
import subprocess
from collections.abc import Iterable, Mapping, Sequence
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


REPORT_FOLDER = Path("docs") / "results"  # where generated reports and their stores live in a checkout


def is_generated_result(porcelain_path: str) -> bool:
    """Whether a changed path (``git status --porcelain`` form, renames as ``old -> new``) is a generated result
    under :data:`REPORT_FOLDER` (which does not make a tree dirty: a report is written there)."""
    prefix = REPORT_FOLDER.as_posix() + "/"
    return all(part.strip().strip('"').startswith(prefix) for part in porcelain_path.split(" -> "))


def code_checkout(package: str | os.PathLike[str] | None = None) -> Path | None:
    """The top folder of the git checkout that tracks ``package`` (default: the recllm package imported here), or
    None: installed from a wheel, or lying untracked inside some other repository (a virtual environment in a
    user's project)."""
    folder = Path(package).resolve() if package is not None else Path(__file__).resolve().parents[1]
    try:
        top = Path(git_output(["rev-parse", "--show-toplevel"], folder))
        git_output(["ls-files", "--error-unmatch", "--", str(folder / "__init__.py")], top)
    except (OSError, subprocess.SubprocessError):
        return None
    return top


def git_output(args: list[str], where: Path) -> str:
    """The stripped standard output of ``git ARGS`` run in ``where`` (raises OSError or a SubprocessError)."""
    return subprocess.run(["git", *args], cwd=where, capture_output=True, text=True, timeout=20,
                          check=True).stdout.strip()


def git_commit(cwd: str | os.PathLike[str] | None = None) -> str:
    """The commit of the checkout at ``cwd`` (default: :func:`code_checkout`) with ``+dirty`` when tracked files other
    than generated results changed, or ``unknown`` outside a checkout."""
    where = Path(cwd) if cwd is not None else code_checkout()
    if where is None:
        return "unknown"
    try:
        sha = git_output(["rev-parse", "--short=12", "HEAD"], where)
        changed = git_output(["status", "--porcelain", "--untracked-files=no"], where).splitlines()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    dirty = [line for line in changed if line.strip() and not is_generated_result(line[2:].lstrip())]
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
def of_peak(rate: Any, work_per_unit: Any, peak: Any) -> float | None:
    """``rate`` units/s x the work of a unit (FLOPs, or GFLOPs) over ``peak`` (FLOP/s, or GFLOP/s: the same scale);
    None when a figure is missing, not a number or not finite."""
    try:
        value = float(rate) * float(work_per_unit) / float(peak)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return value if math.isfinite(value) else None


def fmt_of_peak(rate: Any, work_per_unit: Any, peak: Any) -> str:
    """:func:`of_peak` as a percentage, e.g. ``"12.5%"``; '' when it is None."""
    value = of_peak(rate, work_per_unit, peak)
    return "" if value is None else f"{value:.1%}"


def fmt_over_runs(values: Sequence[float], digits: int = 4) -> str:
    """The mean of per-seed ``values`` with its t-interval across them (:func:`recllm.eval.stats.interval_over_runs`),
    as :func:`fmt_ci` writes it; one value alone prints as the value; none as ""."""
    from recllm.eval.stats import interval_over_runs

    values = list(values)
    if not values:
        return ""
    mean, low, high = interval_over_runs(values)
    return fmt_ci(mean, low, high, digits) if len(values) > 1 else f"{mean:.{digits}f}"


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
    commit: str | None = None, precision: str | None = None, more_versions: Mapping[str, str | None] | None = None,
) -> str:
    """The markdown header every report starts with (see the module docstring).

    ``more_versions``: further libraries the run used (name -> version, None: not installed), appended to the
    versions line.

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
        f"numpy {machine['numpy']}, recllm {machine['recllm']}"
        + "".join(f", {name} {version or 'not installed'}" for name, version in (more_versions or {}).items()),
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
    method_changes: Sequence[tuple[str, str]] = (),
    more_versions: Mapping[str, str | None] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a generated markdown report atomically: :func:`report_header`, ``body`` (paths under the working folder
    made relative: committed reports name no machine's folders), then what changed since the
    report this one replaces (:func:`report_changes`; ``method_changes``: the benchmark's ``(commit, what changed in
    its method)`` list). ``path`` ends in ``.md``; a file recllm did not generate there is replaced only with
    ``overwrite`` (a benchmark's ``--overwrite``; checked again now, not only before the benchmark's work: one may
    have appeared meanwhile). Returns the path."""
    text = report_header(title, command, data_paths, seeds, commit, precision, more_versions) + "\n" \
        + body.rstrip() + "\n"
    text = text.replace(str(Path.cwd().resolve()) + os.sep, "")  # paths under the working folder, relative
    return write_generated(path, text, method_changes, overwrite)


def write_generated(path: str | os.PathLike[str], text: str, method_changes: Sequence[tuple[str, str]] = (),
                    overwrite: bool = False) -> Path:
    """Write the generated report ``text`` atomically at ``path`` with :func:`with_changes`; a file recllm did not
    generate there is replaced only with ``overwrite`` (else a one-line :class:`UserInputError`, nothing written)."""
    from recllm.outputs import check_report_file

    path = check_report_file(path, overwrite=overwrite)
    write_text_atomic(path, with_changes(path, text, method_changes))
    return path


def with_changes(path: str | os.PathLike[str], text: str, method_changes: Sequence[tuple[str, str]] = ()) -> str:
    """``text``, a report about to be written to ``path``, followed by what changed since the generated report it
    replaces there (:func:`report_changes`); ``text`` alone when there is none."""
    previous = _previous_report(Path(path))
    if previous is None:
        return text
    return text + "\n" + report_changes(previous, text, method_changes, where=code_checkout())


def _previous_report(path: Path) -> str | None:
    """The text of the generated report at ``path`` that is about to be replaced (None: none, or not generated)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return text if GENERATED_NOTE in text[:2000] else None


# ---------------------------------------------------------------------------------------------- changes
CHANGES_HEADING = "## Changes from the previous version"
_HEADER_FIELDS = ("command", "date", "source", "git commit")
_NUMBER = re.compile(r"^[-+−]?(\d|\.\d|nan\b|inf\b|n/a\b)", re.IGNORECASE)


def _header_fields(text: str) -> dict[str, str]:
    """``command``, ``date``, ``commit`` and ``dirty`` ("yes" when made from a tree with uncommitted changes) from a
    report header (``- source: commit X`` or ``- git commit: X``, either with ``+dirty``)."""
    fields: dict[str, str] = {}
    for line in text.splitlines()[:40]:
        for name in _HEADER_FIELDS:
            prefix = f"- {name}: "
            if line.startswith(prefix) and name not in fields:
                fields[name] = line[len(prefix):].strip()
    source = fields.pop("source", fields.pop("git commit", ""))
    commit = source.removeprefix("commit ").split()[0] if source else "unknown"
    fields["commit"], fields["dirty"] = commit.removesuffix("+dirty"), "yes" if commit.endswith("+dirty") else ""
    fields["command"] = fields.get("command", "").strip("`")
    fields["date"] = fields.get("date", "unknown").split(";")[0]
    return fields


def _cells(line: str) -> list[str]:
    parts = re.split(r"(?<!\\)\|", line.strip())[1:-1]
    return [part.strip().replace("**", "") for part in parts]


# columns that name what a row is even after its figures (e.g. trsr-agreement.md's row per CPU, serve.md's row
# per client count)
IDENTITY_COLUMNS = frozenset({"CPU", "clients"})
_TableKey = tuple[str, str, int]  # (headings above it, its first column, its number among such tables)


def _tables(text: str) -> dict[_TableKey, dict[str, dict[str, str]]]:
    """Every markdown table of a report (its changes section aside), keyed by (the headings above it without their
    parenthesised counts, its first column, its number among such tables); each row (keyed by its leading
    non-numeric cells and its :data:`IDENTITY_COLUMNS` cells, or its position when it has none) maps column name
    -> cell."""
    if CHANGES_HEADING in text:
        text = text[:text.index(CHANGES_HEADING)]
    headings: dict[int, str] = {}
    tables: dict[_TableKey, dict[str, dict[str, str]]] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            headings = {k: v for k, v in headings.items() if k < level}
            headings[level] = re.sub(r"\s*\([^)]*\)\s*$", "", line.lstrip("#").strip())
        if line.startswith("|") and i + 1 < len(lines) and set(lines[i + 1].replace("|", "").strip()) <= set("-: "):
            columns = tuple(_cells(line))
            i += 2
            rows: dict[str, dict[str, str]] = {}
            while i < len(lines) and lines[i].startswith("|"):
                cells = _cells(lines[i])
                lead = next((k for k, c in enumerate(cells) if _NUMBER.match(c)), len(cells))
                # a row measured on another machine is another row, not a change of this one's figures
                named = [c for c in cells[:lead] if c] + [c for k, c in enumerate(cells) if lead <= k < len(columns)
                                                          and columns[k] in IDENTITY_COLUMNS and c]
                key = " / ".join(named) or f"row {len(rows) + 1}"
                while key in rows:
                    key += "'"
                rows[key] = dict(zip(columns, cells))
                i += 1
            section = " / ".join(headings[k] for k in sorted(headings)[1:])  # the title aside
            n = sum(1 for (s, c, _) in tables if (s, c) == (section, columns[0]))
            tables[(section, columns[0], n)] = rows
            continue
        i += 1
    return tables


def _table_name(key: _TableKey) -> str:
    section, first, n = key
    return f"{section or 'top'}: table by {first}" + (f" #{n + 1}" if n else "")


_KEPT_PREFIX = "No figure changed from the version"
_NO_FIGURE_CHANGED = "No figure in its tables changed."


def _commits_between(old: str, new: str, where: Path | None) -> str:
    """How many commits changed ``src/recllm`` between two commits of the checkout at ``where`` ('' if unknown)."""
    if where is None or "unknown" in (old, new) or old == new:
        return ""
    try:
        out = subprocess.run(["git", "rev-list", "--count", f"{old}..{new}", "--", ":/src/recllm"], cwd=where,
                             capture_output=True, text=True, timeout=20, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    if out == "0":
        return "No commit changed the library since then."
    return (f"{out} commit{'s' if out != '1' else ''} changed the library since then "
            f"(`git log {old}..{new} -- src/recllm`).")


def report_changes(previous: str, current: str, method_changes: Sequence[tuple[str, str]] = (),
                   where: str | os.PathLike[str] | None = None) -> str:
    """The closing section of a regenerated report: which previous version it replaces (commit, date, command), the
    ``method_changes`` ``(commit, text)`` that version did not have (all of them when git cannot tell, e.g. outside
    the checkout at ``where``), and for every table which figures changed, column by column, with the largest
    change, and which tables and rows appeared or went. When no figure changed, the previous version's account of
    changed figures is kept under a line naming the version it replaces (a re-render does not hide what the last
    rerun changed); with no such account, the section says that nothing changed."""
    before, after = _tables(previous), _tables(current)
    lines: list[str] = []
    for key in sorted(after.keys() & before.keys(), key=list(after).index):
        old_rows, new_rows = before[key], after[key]
        old_columns = list(next(iter(old_rows.values()), {}))
        columns = list(next(iter(new_rows.values()), {}))
        notes = []
        for column in columns:
            changed = [(row, old_rows[row][column], cells[column]) for row, cells in new_rows.items()
                       if row in old_rows and column in old_rows[row] and column in cells
                       and cells[column] != old_rows[row][column] and _NUMBER.match(cells[column] or "x")]
            if changed:
                row, was, now = max(changed, key=lambda c: _distance(c[1], c[2]))
                notes.append(f"{column}: {len(changed)} of {len(new_rows)} rows (largest: {row}, {was} -> {now})")
        if new_rows and old_rows and columns != old_columns:
            notes += [f"columns added: {', '.join(c for c in columns if c not in old_columns) or 'none'}, removed: "
                      f"{', '.join(c for c in old_columns if c not in columns) or 'none'}"]
        added = [row for row in new_rows if row not in old_rows]
        gone = [row for row in old_rows if row not in new_rows]
        if added:
            notes.append(f"rows added: {', '.join(added)}")
        if gone:
            notes.append(f"rows removed: {', '.join(gone)}")
        if notes:
            lines.append(f"- {_table_name(key)}: " + "; ".join(notes))
    lines += [f"- new table: {_table_name(key)}" for key in after if key not in before]
    lines += [f"- table no longer in the report: {_table_name(key)}" for key in before if key not in after]
    old, new = _header_fields(previous), _header_fields(current)
    kept = previous[previous.index(CHANGES_HEADING) + len(CHANGES_HEADING):].strip() \
        if CHANGES_HEADING in previous else ""
    if kept.startswith(_KEPT_PREFIX):  # a re-render of a re-render: one preamble, naming the newest version
        kept = kept.split("\n\n", 1)[1] if "\n\n" in kept else ""
    if not lines and kept and _NO_FIGURE_CHANGED not in kept:  # keep the last account of changed figures
        return (f"{CHANGES_HEADING}\n\n{_KEPT_PREFIX} made on {old['date']} from commit {old['commit']}"
                + (" with uncommitted changes" if old["dirty"] else "") + ". The account of the last rerun whose "
                "figures changed follows; its commits are that rerun's.\n\n" + kept).rstrip() + "\n"
    checkout = Path(where) if where is not None else None
    intro = [CHANGES_HEADING, "",
             f"This version replaces the one made on {old['date']} from commit {old['commit']}"
             + (" with uncommitted changes" if old["dirty"] else "")
             + (f" by `{old['command']}`" if old["command"] and old["command"] != new["command"] else "") + ". "
             + _commits_between(old["commit"], new["commit"], checkout)]
    new_in_method = [(commit, text) for commit, text in method_changes
                     if not _has_commit(old["commit"], commit, checkout)]
    if new_in_method:
        intro += ["", "Changes in method since that version:", ""]
        intro += [f"- {text.strip()} ({commit})" for commit, text in new_in_method]
    intro += ["", "Figures in its tables, compared row by row (rows matched by their name):" if lines
              else _NO_FIGURE_CHANGED, ""]
    return "\n".join(intro + lines).rstrip() + "\n"


def _has_commit(version: str, change: str, where: Path | None) -> bool:
    """Whether the commit ``version`` of a report already contained the commit ``change`` (False when git cannot
    tell: no checkout, unknown commit)."""
    if where is None:
        return False
    try:
        return subprocess.run(["git", "merge-base", "--is-ancestor", change, version],
                              cwd=where, capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _distance(was: str, now: str) -> float:
    """How far apart two cells' leading numbers are (relative; inf when one does not parse)."""
    def lead(text: str) -> float:
        match = re.match(r"[-+−]?\d*\.?\d+(e[-+]?\d+)?", text.replace("−", "-"), re.IGNORECASE)
        return float(match.group(0)) if match else math.nan
    a, b = lead(was), lead(now)
    if math.isnan(a) or math.isnan(b):
        return math.inf
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


def save_plot(fig: Any, path: str | os.PathLike[str], dpi: int = 120, overwrite: bool = False) -> Path:
    """Save a matplotlib figure as PNG atomically (Agg backend, no display needed) and close it; a file at ``path``
    that is not a plot recllm saved is replaced only with ``overwrite`` (else a one-line error, the figure closed)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from recllm.errors import UserInputError
    from recllm.outputs import PLOT_SOFTWARE, check_plot_files

    path = Path(path)
    try:
        check_plot_files([path], overwrite)
    except UserInputError:
        plt.close(fig)
        raise
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": PLOT_SOFTWARE})
    plt.close(fig)
    return path
