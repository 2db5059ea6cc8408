"""The one store of finished benchmark runs, kept beside the report so a long benchmark resumes.

A stored run is reused only when all three things that decide it match:

* the settings and the data: the benchmark's key (:func:`run_key`) hashes its settings with the sha256 of the data
  files it read (:func:`data_sha256`);
* the code: with each run the store records the sha256 of the source of every recllm module imported in the
  process (``sys.modules`` entries under ``recllm.`` with a ``__file__``), as the process first saw it -- a module
  is hashed when a store is opened or, if imported later, at the first :meth:`RunStore.put` after its import, and
  that hash is kept, so a file edited while a benchmark runs does not lend its new hash to runs made by the code
  loaded before the edit (they are not kept, and a warning names the module) -- minus
  :data:`PRESENTATION_MODULES` (report rendering only) and :data:`DISPATCH_MODULES` (the command line). The
  ``recllm bench <name>`` command imports only that benchmark's module, so other benchmarks' code is not part of
  its runs' identity. A run is valid only while every recorded module still
  hashes the same and none of them is gone; a changed line anywhere in the estimator, the data layer or the
  benchmark's own settings makes its runs stale, and they are dropped the next time the store is written.

The file ``<report>.runs.jsonl`` holds two kinds of JSON lines: ``{"code": id, "modules": {name: sha256}}`` (one
per distinct code identity) and ``{"key", "code", "row"}`` (one per run). Per-run arrays (e.g. per-user metrics)
go to ``<report>.runs.npz``. Both are rewritten atomically after every :meth:`RunStore.put`, merged under a
folder lock with what other processes stored meanwhile, and are committed with the report.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import warnings
import weakref
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

# Modules that only render reports (their changes cannot change a stored run's figures); every other imported
# recllm module is part of a run's code identity.
PRESENTATION_MODULES: frozenset[str] = frozenset({
    "recllm.eval.report", "recllm.bench.reporting", "recllm.bench.impute.report", "recllm.bench.learn.report",
    "recllm.bench.learn.patience_report", "recllm.bench.trsr.report",
})
# Modules that only read the command line and dispatch to a benchmark (its settings are in the run key; the
# ``recllm bench <name>`` command imports no other benchmark and no system's command module).
DISPATCH_MODULES: frozenset[str] = frozenset({
    "recllm.__main__", "recllm.cli", "recllm.cli_args", "recllm.bench", "recllm.bench.__main__",
    # the benchmarks' packages: each only parses its options and calls its run module (whose settings are keyed)
    "recllm.bench.impute", "recllm.bench.learn", "recllm.bench.trsr",
})
PACKAGES: tuple[str, ...] = ("recllm",)
_hashes: dict[tuple[str, int, int], str] = {}  # (path, mtime_ns, size) -> sha256, so checks hash a file once
# module object -> sha256 of its source when this process first recorded it (a re-imported module is a new object)
_loaded: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
_warned_changed: set[tuple[str, str]] = set()  # (module, new sha256) whose edit warning was given


# ---------------------------------------------------------------------------------------------- identity
def source_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 of a source file's bytes (memoised on its path, modification time and size)."""
    stat = os.stat(path)
    memo = (str(path), stat.st_mtime_ns, stat.st_size)
    if memo not in _hashes:
        _hashes[memo] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return _hashes[memo]


def _module_file(name: str) -> str | None:
    """The source file of module ``name`` (imported or not), or None when it is gone."""
    module = sys.modules.get(name)
    if module is not None and getattr(module, "__file__", None):
        return module.__file__
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    return spec.origin if spec is not None and spec.origin and os.path.isfile(spec.origin) else None


def code_identity(packages: Iterable[str] | None = None) -> dict[str, str]:
    """module name -> sha256 of its source, for every module of ``packages`` (default :data:`PACKAGES`) imported in
    this process (minus :data:`PRESENTATION_MODULES` and :data:`DISPATCH_MODULES`)."""
    packages = tuple(PACKAGES if packages is None else packages)
    out: dict[str, str] = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if (path and name not in PRESENTATION_MODULES and name not in DISPATCH_MODULES and os.path.isfile(path)
                and any(name == p or name.startswith(p + ".") for p in packages)):
            out[name] = _loaded_sha256(name, module, path)
    return dict(sorted(out.items()))


def _loaded_sha256(name: str, module: Any, path: str) -> str:
    """The sha256 of ``module``'s source as this process first recorded it; warns once if the file has changed
    since (the process still runs the code it loaded, so its runs must not carry the new file's hash)."""
    now = source_sha256(path)
    try:
        first = _loaded.setdefault(module, now)
    except TypeError:  # an object in sys.modules that takes no weak reference: hash it as it is now
        return now
    if first != now and (name, now) not in _warned_changed:
        _warned_changed.add((name, now))
        warnings.warn(f"{path}: {name} changed on disk after this process loaded it; runs this process stores are "
                      f"not kept (they come from the code it loaded); restart the benchmark to run the changed code",
                      RuntimeWarning, stacklevel=3)
    return first


def code_matches(modules: dict[str, str]) -> bool:
    """True when every recorded module still exists and its source hashes the same."""
    for name, digest in modules.items():
        path = _module_file(name)
        if path is None or source_sha256(path) != digest:
            return False
    return True


def data_sha256(paths: Iterable[str | os.PathLike[str]]) -> str:
    """One sha256 over the (name, sha256) of every data file read (order-independent)."""
    from recllm.eval.report import sha256_file

    parts = sorted(f"{Path(p).name}:{sha256_file(p)}" for p in paths)
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()


def run_key(**parts: Any) -> str:
    """sha256 of the canonical JSON of everything that decides a run's result except the code (settings, data
    sha256, seed, ...)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _code_id(modules: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(modules, sort_keys=True).encode("utf-8")).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- the store
def required_fields(cls: type) -> tuple[str, ...]:
    """The fields of dataclass ``cls`` that have no default: what a stored row must hold to be read back as one."""
    import dataclasses

    return tuple(f.name for f in dataclasses.fields(cls)
                 if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)


def _not_a_store(path: Path, what: str) -> Exception:
    """The one-line error for a run store file (``path``) that cannot be read as one: what is wrong and what to do."""
    from recllm.errors import UserInputError

    return UserInputError(what, str(path), "if recllm wrote it, delete the file to recompute every run (and its "
                          ".runs.npz); if not, move it away or choose another --out")


class RunStore:
    """Key -> JSON-able row (and optional arrays) of runs whose code is unchanged; persisted beside a report.

    ``packages``: whose imported modules make a run's code identity (default :data:`PACKAGES`, ``("recllm",)``).
    """

    def __init__(self, path: str | os.PathLike[str], packages: Iterable[str] | None = None) -> None:
        self.path = Path(path)
        self.packages = tuple(PACKAGES if packages is None else packages)
        self._code: dict[str, dict[str, str]] = {}
        self._runs: dict[str, dict[str, Any]] = {}  # key -> {"code": id, "row": row}
        self._arrays: dict[str, dict[str, np.ndarray]] = {}
        self._valid: dict[str, bool] = {}
        self._read_into(self._code, self._runs, self._arrays)
        self.stale = sum(1 for key in self._runs if not self._is_valid(key))  # runs whose code changed
        code_identity(self.packages)  # record the modules loaded so far as they are now, before any run starts

    @property
    def arrays_path(self) -> Path:
        return self.path.with_suffix(".npz")

    def _read_into(self, code: dict, runs: dict, arrays: dict) -> None:
        for path in (self.path, self.arrays_path):
            if path.exists() and not path.is_file():
                raise _not_a_store(path, "it is a folder, not a run store")
        try:
            text = self.path.read_text(encoding="utf-8") if self.path.is_file() else ""
        except UnicodeDecodeError:
            raise _not_a_store(self.path, "it is not UTF-8 text, so not a run store") from None
        except OSError as exc:
            raise _not_a_store(self.path, f"it cannot be read ({exc.strerror or exc})") from None
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict) or not isinstance(record.get("key", record.get("code")), str):
                    raise TypeError("not a JSON object with a key or a code")
                if "modules" in record:
                    code[record["code"]] = dict(record["modules"].items())
                elif "code" not in record:  # stored before code identities: stale
                    runs[record["key"]] = {"code": "", "row": None}
                else:
                    runs[record["key"]] = {"code": record["code"], "row": record["row"]}
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise _not_a_store(self.path, f"line {number} is not a stored run ({exc})") from None
        if self.arrays_path.is_file():
            try:
                with np.load(self.arrays_path) as data:
                    for name in data.files:
                        key, bar, field = name.partition("|")
                        if not bar:
                            raise ValueError(f"array {name!r} is not named key|field")
                        arrays.setdefault(key, {})[field] = data[name]
            except (OSError, ValueError, TypeError, EOFError, zipfile.BadZipFile, AttributeError) as exc:
                raise _not_a_store(self.arrays_path, f"it is not the arrays of a run store ({exc})") from None

    def _is_valid(self, key: str) -> bool:
        run = self._runs.get(key)
        if run is None:
            return False
        code = run["code"]
        if code not in self._valid:
            self._valid[code] = code in self._code and code_matches(self._code[code])
        return self._valid[code]

    def __len__(self) -> int:
        return sum(1 for key in self._runs if self._is_valid(key))

    def __contains__(self, key: str) -> bool:
        return self._is_valid(key)

    def keys(self) -> list[str]:
        """The keys of the valid stored runs."""
        return [key for key in self._runs if self._is_valid(key)]

    def get(self, key: str, required: Iterable[str] = ()) -> Any:
        """A copy of the stored row if its code, data and settings match (the key and the code check), else None.
        ``required``: the fields the caller reads; a row without one of them (a store edited by hand) is refused in
        one line naming the store and the fields, not left to fail later in a report."""
        if not self._is_valid(key):
            return None
        row = json.loads(json.dumps(self._runs[key]["row"]))
        missing = [name for name in required if not isinstance(row, dict) or name not in row]
        if missing:
            raise _not_a_store(self.path, f"the run stored under key {key[:16]}... has no {', '.join(missing)}, "
                               "which this code writes and reads")
        return row

    def get_arrays(self, key: str) -> dict[str, np.ndarray]:
        """The arrays stored with a valid run ({} for none)."""
        return dict(self._arrays.get(key, {})) if self._is_valid(key) else {}

    def put(self, key: str, row: Any, arrays: dict[str, Any] | None = None) -> None:
        """Store ``row`` (and ``arrays``) under ``key`` with the code identity of this process, rewrite the files
        atomically, keep what other processes stored meanwhile and drop runs whose code changed."""
        from recllm.utils import atomic_path, folder_lock, write_text_atomic

        modules = code_identity(self.packages)
        code = _code_id(modules)
        with folder_lock(self.path):
            disk_code: dict = {}
            disk_runs: dict = {}
            disk_arrays: dict = {}
            self._read_into(disk_code, disk_runs, disk_arrays)
            self._code = {**disk_code, **self._code, code: modules}
            self._runs = {**disk_runs, **self._runs, key: {"code": code, "row": json.loads(json.dumps(row))}}
            self._arrays = {**disk_arrays, **self._arrays}
            if arrays is not None:
                self._arrays[key] = {k: np.asarray(v) for k, v in arrays.items()}
            self._valid[code] = code_matches(modules)  # False only if a module was edited after it was loaded
            self._runs = {k: r for k, r in self._runs.items() if self._is_valid(k)}
            self._arrays = {k: a for k, a in self._arrays.items() if k in self._runs}
            used = {r["code"] for r in self._runs.values()}
            self._code = {c: m for c, m in self._code.items() if c in used}
            lines = [json.dumps({"code": c, "modules": m}, sort_keys=True) for c, m in self._code.items()]
            lines += [json.dumps({"key": k, "code": r["code"], "row": r["row"]}, sort_keys=True)
                      for k, r in self._runs.items()]
            if self._arrays:
                flat = {f"{k}|{name}": value for k, group in self._arrays.items() for name, value in group.items()}
                with atomic_path(self.arrays_path) as tmp:
                    with open(tmp, "wb") as handle:
                        np.savez_compressed(handle, **flat)
            write_text_atomic(self.path, "\n".join(lines) + "\n")
