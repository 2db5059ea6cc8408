"""Where a benchmark's report goes and on what source it may be written; checked before any expensive work.

A report goes to ``--out`` (default ``docs/results/<name>.md`` under the current folder, never inside the installed
package). It is written only from a clean git tree (``git status --porcelain``, tracked files, of the checkout whose
tracked files are the recllm package this process imported): a reader must be able to check out the commit its
header names. The current folder's own repository plays no part: a user's project does not make the figures.
Changes under ``docs/results/`` (the generated reports, their run stores and plots) do not count: they are outputs,
not the code a figure came from, and a benchmark resumed across sessions from one frozen checkout changes them as it
goes. ``--allow-dirty`` writes it anyway, and the header then says ``commit <sha>+dirty (written with
--allow-dirty)``. A recllm installed from a wheel (its files tracked by no checkout) gives a header that says so and
names the recllm version.
"""

from __future__ import annotations

import argparse
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# where reports go, the checkout of the code running, git, and what leaves a tree clean
from recllm.eval.report import REPORT_FOLDER, code_checkout, git_output, is_generated_result

# A change in method every benchmark with a run store shares (see recllm.eval.report.report_changes).
RUN_STORE_CHANGE: tuple[str, str] = (
    "809e9f4", "a stored run is reused only while the code that made it (sha256 of every recllm module it imported), "
    "the data sha256 and the settings are unchanged; runs stored under hand-bumped version numbers were refit")


@dataclass(frozen=True)
class ReportTarget:
    """A checked report path, the source line its header shows (see :func:`source_state`), and whether the user
    allowed replacing a file recllm did not make there (``--overwrite``; checked again when the report is written)."""

    path: Path
    commit: str
    overwrite: bool = False


def library_versions(distributions: "tuple[str, ...] | list[str]") -> dict[str, str | None]:
    """Distribution -> its installed version (``importlib.metadata``; None when absent): part of a benchmark's run
    keys and rows, so runs of different installs are never mixed."""
    from importlib import metadata

    out: dict[str, str | None] = {}
    for dist in distributions:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def _checkout(where: Path) -> Path | None:
    """The top folder of the git checkout holding ``where``, or None."""
    try:
        return Path(git_output(["rev-parse", "--show-toplevel"], where))
    except (OSError, subprocess.SubprocessError):
        return None


def source_state(allow_dirty: bool = False, where: str | os.PathLike[str] | None = None) -> str:
    """The header's source line: ``commit <sha>``, ``commit <sha>+dirty (written with --allow-dirty)``,
    ``no commit yet (written with --allow-dirty)`` or ``not a git checkout (recllm <version>)``.

    Looks at the checkout holding ``where`` (default: :func:`code_checkout`, the one whose files are the recllm
    code running). A tree with changed tracked files raises :class:`recllm.errors.UserInputError` unless
    ``allow_dirty``.
    """
    from recllm.errors import UserInputError

    top = _checkout(Path(where)) if where is not None else code_checkout()
    if top is None:
        from importlib import metadata

        try:
            version = metadata.version("recllm")
        except metadata.PackageNotFoundError:
            version = "unknown"
        return f"not a git checkout (recllm {version})"
    try:
        sha = git_output(["rev-parse", "--short=12", "HEAD"], top)
    except (OSError, subprocess.SubprocessError):  # a checkout without a commit yet (`git init` only)
        if not allow_dirty:
            raise UserInputError("the git checkout has no commit yet, so a report cannot name its source", str(top),
                                 "commit the code, or pass --allow-dirty (the header then says so)") from None
        return "no commit yet (written with --allow-dirty)"
    changed = [line for line in git_output(["status", "--porcelain", "--untracked-files=no"], top).splitlines()
               if not is_generated_result(line[2:].lstrip())]
    if not changed:
        return f"commit {sha}"
    if not allow_dirty:
        raise UserInputError(f"the git tree has {len(changed)} uncommitted change(s), e.g. {changed[0].strip()!r}",
                             str(top), "commit them (a report names the commit it was made from) or pass "
                             "--allow-dirty (the header then says so)")
    return f"commit {sha}+dirty (written with --allow-dirty)"


def report_path(out: str | os.PathLike[str] | None, default_name: str) -> Path:
    """Where ``--out`` puts a report: the path as given; ``default_name`` inside it when it is an existing folder
    or ends with a path separator (``--out results/``, like ``cp``); ``docs/results/<default_name>`` under the
    current folder without one. A leading ``~`` is the home folder, as the checks take it."""
    if not out:
        return Path.cwd() / REPORT_FOLDER / default_name
    text = os.path.expanduser(os.fspath(out))
    if text.endswith(("/", os.sep)) or Path(text).is_dir():
        return Path(text) / default_name
    return Path(text)


def report_target(out: str | os.PathLike[str] | None, default_name: str, *, overwrite: bool = False,
                  allow_dirty: bool = False) -> ReportTarget:
    """The checked report path (``out``, default ``docs/results/<default_name>`` under the current folder) and
    the source line; raises before any work for a path recllm may not write or a dirty tree."""
    from recllm.outputs import check_report_file

    path = check_report_file(report_path(out, default_name), overwrite=overwrite)
    return ReportTarget(path, source_state(allow_dirty), overwrite)


def as_target(out: "ReportTarget | str | os.PathLike[str] | None", default_name: str) -> ReportTarget:
    """``out`` as a :class:`ReportTarget`; a plain path (library use, tests) is checked with ``--overwrite`` and
    ``--allow-dirty`` semantics, so its header still tells a dirty tree."""
    if isinstance(out, ReportTarget):
        return out
    return report_target(out, default_name, overwrite=True, allow_dirty=True)


def check_seed_args(args: argparse.Namespace) -> None:
    """A benchmark's ``--seeds`` (at least one, none twice) and ``--seed``, each a whole number from 0 to 2**32 - 1
    (:func:`recllm.cli_args.check_seeds`, for the options not parsed with ``cli_args.seed_arg``); a
    :class:`recllm.errors.UserInputError` naming the option otherwise."""
    from recllm.cli_args import check_seeds

    check_seeds(getattr(args, "seeds", None), "--seeds")
    if getattr(args, "seed", None) is not None:
        check_seeds([args.seed], "--seed")


def check_run_stores(report: Path, stores: "tuple[str, ...]") -> None:
    """Read every run store beside ``report`` (``report`` with each suffix of ``stores``, e.g. ``.runs.jsonl``) that
    is there, so one that is damaged or not a run store is a one-line error before any data or model is loaded."""
    from recllm.bench.runs import RunStore

    for suffix in stores:
        RunStore(report.with_suffix(suffix))


def add_report_args(parser: argparse.ArgumentParser, default_name: str,
                    handler: Callable[[argparse.Namespace], int], stores: "tuple[str, ...]" = ()) -> None:
    """``--out``, ``--overwrite`` and ``--allow-dirty``, and ``handler`` run only after they are checked (its
    ``args.report`` is the :class:`ReportTarget`; ``--seeds`` / ``--seed`` are checked too, see
    :func:`check_seed_args`, and so are the run stores the benchmark keeps beside its report, ``stores``: their
    suffixes, see :func:`check_run_stores`). With ``--plan`` (a command that has it: it writes no report)
    nothing is checked: ``args.report`` is the report's path, beside which the plan reads the run store."""
    parser.add_argument("--out", default=None, help=f"report path, or a folder to write {default_name} into "
                        f"(default {REPORT_FOLDER / default_name} under the current folder); an existing file that "
                        "recllm did not generate needs --overwrite")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --out file (or a plot the report links beside it) that "
                        "recllm did not generate")
    parser.add_argument("--allow-dirty", action="store_true",
                        help="write the report from a git tree with uncommitted changes (its header says so)")

    def run(args: argparse.Namespace) -> int:
        name = default_name
        if getattr(args, "quick", False):
            name = default_name.replace(".md", "-quick.md")
        check_seed_args(args)
        if getattr(args, "plan", False):  # a plan writes nothing: no report-path or clean-tree check
            args.report = report_path(args.out, name)
        else:
            args.report = report_target(args.out, name, overwrite=args.overwrite, allow_dirty=args.allow_dirty)
            check_run_stores(args.report.path, stores)
        args.command = command_line(parser, args)
        return handler(args)

    parser.set_defaults(func=run)


def command_line(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """The command as a reader can rerun it: ``parser.prog`` (``recllm bench <name>``) and every option whose value
    differs from its default (for the report header)."""
    parts = [parser.prog]
    for action in parser._actions:
        if not action.option_strings or action.dest in ("help", "overwrite"):
            continue
        value = getattr(args, action.dest, action.default)
        if value == action.default:
            continue
        flag = max(action.option_strings, key=len)
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            parts.append(flag)
        elif isinstance(value, (list, tuple)):
            parts += [flag, *(repr(v) if " " in str(v) else str(v) for v in value)]
        else:
            parts += [flag, str(value)]
    return " ".join(parts)


@dataclass(frozen=True)
class SeededComparison:
    """``a - b`` on the same test users over seeded runs: ``users`` the paired bootstrap over users of each user's
    difference averaged over the seeds each method ran (test-sampling noise; a :class:`~recllm.eval.stats.PairedDiff`),
    ``seeds`` the t-interval across the seeds both ran (training noise; a :class:`~recllm.eval.stats.Difference`,
    None with fewer than two), ``per_seed`` the per-seed differences of the means, ``n_seeds`` each side's seed
    count. ``verdict``: "better" / "worse" only when every interval given excludes 0 on the same side."""

    users: object
    seeds: object | None
    per_seed: dict
    n_seeds: tuple[int, int]

    @property
    def mean(self) -> float:
        return float(self.users.mean)

    @property
    def verdict(self) -> str:
        sides = [i.low > 0 if i.low > 0 or i.high < 0 else None for i in (self.users, self.seeds) if i is not None]
        return ("better" if all(s is True for s in sides) else "worse" if all(s is False for s in sides)
                else "not distinguishable")


def compare_seeded(a: dict, b: dict, seed: int = 0) -> SeededComparison:
    """:class:`SeededComparison` of two methods given as ``{seed: per-user values}`` over the same users (in the
    same order under every seed)."""
    import numpy as np

    from recllm.eval.stats import paired_bootstrap_diff, paired_difference

    if not a or not b:
        raise ValueError("compare_seeded needs at least one seed of each method")
    ua = np.mean([np.asarray(v, dtype=float) for v in a.values()], axis=0)
    ub = np.mean([np.asarray(v, dtype=float) for v in b.values()], axis=0)
    users = paired_bootstrap_diff(ua, ub, seed=seed)
    common = sorted(set(a) & set(b))
    means = {k: (float(np.mean(a[k])), float(np.mean(b[k]))) for k in common}
    seeds = (paired_difference([means[k][0] for k in common], [means[k][1] for k in common])
             if len(common) >= 2 else None)
    return SeededComparison(users, seeds, {k: means[k][0] - means[k][1] for k in common}, (len(a), len(b)))


def users_interval(by_seed: dict, seed: int = 0) -> tuple[float, float, float]:
    """``(mean, low, high)`` of a method over the same users under several seeds: the percentile bootstrap over
    users of each user's figure averaged over the seeds (the same kind of interval for a deterministic model and a
    seeded one, so one table's ± can be compared)."""
    import numpy as np

    from recllm.eval.stats import bootstrap_ci

    return bootstrap_ci(np.mean([np.asarray(v, dtype=float) for v in by_seed.values()], axis=0), seed=seed)


def idle_share(cpu_share: float, load_average: float) -> float:
    """The factor from a probe's time to an idle machine's: the share of its cores the probing process measured it
    had (``cpu_share``: CPU time over wall time x threads; a probe run under ``nice`` beside busy jobs gets far less
    than the load average suggests), else the share ``load_average`` suggests; 1 when the probe had its cores."""
    if cpu_share == cpu_share:  # measured
        return min(max(cpu_share, 0.01), 1.0)
    cpus = os.cpu_count() or 1
    if not load_average == load_average or load_average <= cpus:  # NaN or idle enough
        return 1.0
    return cpus / load_average


STARVED_SHARE = 0.5  # a probe that got less than this share of its threads' cores measured its wait, not the work


class ShareClock:
    """Started at creation; :meth:`share` is the share of its threads' cores this process got since: CPU time over
    wall time x torch's threads (1.0: it had them all; ~0.1: under ``nice`` beside busy jobs)."""

    def __init__(self) -> None:
        import time

        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def share(self) -> float:
        import time

        import torch

        seconds = max((time.perf_counter() - self._wall) * torch.get_num_threads(), 1e-9)
        return min((time.process_time() - self._cpu) / seconds, 1.0)


def calmer_now(probe_load: float, load: float, cpus: int, probe_share: float = float("nan")) -> bool:
    """Whether a cached speed probe should be taken again: it ran on a saturated machine (``probe_load`` above
    ``cpus``) and the load is now under half of that, or it got less than :data:`STARVED_SHARE` of its cores
    (``probe_share``, e.g. under ``nice`` beside busy processes) and a core is free now (``load`` below
    ``cpus - 0.5``). A probe from a busy hour would overestimate every later plan."""
    starved = probe_share == probe_share and probe_share < STARVED_SHARE
    return (probe_load > cpus and load < probe_load / 2) or (starved and load < cpus - 0.5)


def machine_text(machine: dict | None) -> str:
    """"CPU model, N threads" of a stored run's ``machine`` record (:func:`recllm.hardware.this_process_machine`),
    or "not recorded" for runs stored before it was."""
    if not machine:
        return "not recorded"
    return f"{machine['cpu']}, {machine['threads']} thread{'s' if machine['threads'] != 1 else ''}"


def lora_text(lora: object) -> str:
    """A LoRA adapter's shape as the reports print it: ``r=8, alpha 16, dropout 0.05 on q/k/v/o``."""
    modules = "/".join(m.removesuffix("_proj") for m in lora.target_modules)
    return f"r={lora.r}, alpha {lora.alpha:g}, dropout {lora.dropout:g} on {modules}"
