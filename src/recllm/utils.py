"""Small shared helpers: seeding, atomic file writes, cache folders, device choice, the source hash of a package."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import math
import os
import random
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (when imported) torch, so the same seed gives the same numbers."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return
    torch.manual_seed(seed)


def keeps_global_rng(func: Callable[..., T]) -> Callable[..., T]:
    """Decorate a call that seeds the global generators (:func:`seed_everything`) for its own reproducibility: the
    caller's Python, NumPy and torch (CPU, and the current CUDA device's) generator states come back as they were
    when it returns, so a fit does not reset the random streams of the program around it (a loop drawing
    ``np.random`` numbers around repeated fits drew the same numbers each time). What the call computes is
    unchanged."""

    @functools.wraps(func)
    def call(*args: Any, **kwargs: Any) -> T:
        import torch

        python_state, numpy_state = random.getstate(), np.random.get_state()
        # the CUDA generator of the current device, only where CUDA is already in use: forking every device's would
        # start a CUDA context on each GPU (from each torchrun rank), and on a GPU machine running on the CPU. Where
        # CUDA is not started yet its generators hold only torch.manual_seed's pending seed: that seed is set again
        cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
        pending_cuda_seed = torch.initial_seed() if torch.cuda.is_available() and not cuda else None
        with torch.random.fork_rng(devices=[torch.cuda.current_device()] if cuda else []):
            try:
                return func(*args, **kwargs)
            finally:
                random.setstate(python_state)
                np.random.set_state(numpy_state)
                if pending_cuda_seed is not None:
                    torch.cuda.manual_seed_all(pending_cuda_seed)

    return call


def set_threads(n: int) -> None:
    """Use ``n`` threads for compute: torch intra-op (and at most ``n`` inter-op) threads and the BLAS/OpenMP pools
    of NumPy, SciPy and scikit-learn (threadpoolctl when installed; else the environment variables, which reach
    only libraries loaded later). ``n <= 0`` leaves every library's default."""
    if n <= 0:
        return
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(n)
    import torch

    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(min(n, torch.get_num_interop_threads()))
    except RuntimeError:  # only settable before torch's first parallel work; the intra-op limit still holds
        pass
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    threadpool_limits(n)


def cache_root() -> Path:
    """Where the user's recllm cache folder is (``$RECLLM_CACHE`` or ``~/.cache/recllm``), without creating it."""
    return Path(os.environ.get("RECLLM_CACHE", Path.home() / ".cache" / "recllm"))


def cache_dir(*parts: str) -> Path:
    """The user's recllm cache folder (:func:`cache_root`) or a folder in it, created on demand."""
    path = cache_root().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def sha256_arrays(parts: Iterable[object]) -> str:
    """One sha256 over arrays and plain values, each with its dtype and shape (so [1, 2] + [3] differs from
    [1] + [2, 3])."""
    digest = hashlib.sha256()
    for part in parts:
        array = np.ascontiguousarray(np.asarray(part))
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=None)
def package_source_sha256(package: str, exclude: tuple[str, ...] = ()) -> str:
    """sha256 over the relative path and bytes of every ``.py`` file of an installed package (e.g. ``"recllm.llm"``),
    read once per process: part of the key of every cached model output and fine-tuned adapter, so nothing computed
    by other code (an older recllm, or an edited checkout) is reused as if this code had computed it.

    ``exclude``: relative paths (e.g. ``"cache.py"``) of files that store results but do not compute them."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"{package!r} is not an installed package (a folder of Python modules)")
    files = {}  # relative path -> file; every folder of a namespace package, the first one winning a name
    for root in map(Path, spec.submodule_search_locations):
        for path in root.rglob("*.py"):
            name = path.relative_to(root).as_posix()
            if path.is_file() and name not in exclude:  # not an editor's dangling lock link (.#name.py)
                files.setdefault(name, path)
    if not files:  # e.g. a zipped or sourceless install: no source to tell its versions apart
        raise ValueError(f"{package!r} has no .py source files to hash ({list(spec.submodule_search_locations)}); "
                         "install recllm from a wheel or a source folder")
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode("utf-8") + b"\0")
        digest.update(hashlib.sha256(files[name].read_bytes()).digest())
    return digest.hexdigest()


def current_umask() -> int:
    """The process's umask, read without changing it where Linux tells it (``/proc/self/status``), else by setting
    and restoring it."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    umask = os.umask(0)
    os.umask(umask)
    return umask


def _mode_of(path: Path) -> int | None:
    """The permission bits of the existing file or folder ``path`` (None when there is none)."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None


def give_normal_modes(tmp: str | os.PathLike[str], like: str | os.PathLike[str] | None = None) -> None:
    """Give the file or folder ``tmp`` (and everything under a folder) the permissions a plain ``open()`` or
    ``mkdir()`` would have: 0o666 (files; their execute bits kept) and 0o777 (folders) minus the umask, since
    ``mkstemp``, ``mkdtemp`` and some writers (safetensors) make them private. ``like``: the existing file or
    folder ``tmp`` will replace; ``tmp`` itself then gets its permission bits (setgid and group access kept).
    Links are left alone."""
    tmp = Path(tmp)
    umask = current_umask()

    def normal(path: str, is_dir: bool) -> None:
        if os.path.islink(path):
            return
        mode = 0o777 if is_dir else 0o666 | (os.stat(path).st_mode & 0o111)
        os.chmod(path, mode & ~umask)

    if tmp.is_dir() and not tmp.is_symlink():
        for root, dirs, files in os.walk(tmp):
            for name in dirs:
                normal(os.path.join(root, name), True)
            for name in files:
                normal(os.path.join(root, name), False)
    normal(str(tmp), tmp.is_dir())
    kept = _mode_of(Path(like)) if like is not None else None
    if kept is not None:
        os.chmod(tmp, kept)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], replace: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success rename it over ``target`` (atomic on POSIX).

    A crash or exception leaves ``target`` untouched and removes the temporary file. ``replace=False``: a file that
    appeared at ``target`` while the work ran (the command checked it was free when it started) is not replaced:
    the result is kept beside it (:func:`publish_new`) and a :class:`~recllm.errors.UserInputError` says where.
    The file gets the permissions ``open()`` would give it, or those of the file it replaces
    (:func:`give_normal_modes`).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    give_normal_modes(tmp_path, target if replace and target.is_file() else None)
    try:
        yield tmp_path
        if replace:
            os.replace(tmp_path, target)
        else:
            publish_new(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def publish_new(tmp: Path, target: Path) -> None:
    """Move the finished file ``tmp`` to ``target`` only if nothing is there (a hard link creates it or fails, so
    no file that appears meanwhile is replaced); if something is, keep ``tmp`` as ``<target>.new`` (or
    ``<target>.new-2``, ...) and raise a :class:`~recllm.errors.UserInputError` that names both."""
    from recllm.errors import UserInputError

    try:
        os.link(tmp, target)
    except FileExistsError:
        for n in range(1, 1000):
            kept = target.with_name(f"{target.name}.new" + (f"-{n}" if n > 1 else ""))
            try:
                os.link(tmp, kept)
            except FileExistsError:
                continue
            tmp.unlink()
            raise UserInputError(f"a file appeared at {target.name} while recllm was working; it is left as it is "
                                 f"and the result is in {kept.name}", str(target),
                                 "compare the two and rename the one to keep (or pass --overwrite next time)") from None
        raise
    except OSError:  # a file system without hard links: check, then rename (a short window, not none)
        if target.exists() or target.is_symlink():
            raise UserInputError(f"a file appeared at {target.name} while recllm was working; it is left as it is",
                                 str(target), "remove or rename it and run again, or pass --overwrite") from None
        os.replace(tmp, target)
        return
    tmp.unlink()


@contextlib.contextmanager
def folder_lock(target: str | os.PathLike[str]) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``target``'s folder (POSIX ``flock``; no lock where that is missing).

    Lets processes that share a store file (e.g. two benchmark shards) read, merge and rewrite it in turn
    without losing each other's entries, and without leaving lock files behind.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    folder = Path(target).parent
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def publish_folder(tmp: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
    """Rename the finished folder ``tmp`` onto ``target`` (same file system), replacing an older ``target``: that one
    is renamed aside onto a fresh empty placeholder made for it (``.<name>.old-<random>``, so no existing sibling is
    ever replaced or deleted), put back if the second rename fails, and deleted after. The folder gets the
    permissions ``mkdir()`` would give it, or those of the folder it replaces (:func:`give_normal_modes`)."""
    import shutil

    tmp, target = Path(tmp), Path(target)
    give_normal_modes(tmp, target if target.is_dir() else None)
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        try:
            os.replace(target, old)
        except BaseException:
            os.rmdir(old)
            raise
    try:
        os.replace(tmp, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)

def write_text_atomic(target: str | os.PathLike[str], text: str, replace: bool = True) -> None:
    """Write ``text`` to ``target`` atomically (temp file + rename; ``replace``: as :func:`atomic_path`)."""
    with atomic_path(target, replace) as tmp:
        tmp.write_text(text, encoding="utf-8")


def ends_with_newline(path: str | os.PathLike[str]) -> bool:
    """Whether the (non-empty) file ``path`` ends with a newline: an append-only JSON-lines file whose writer was
    stopped mid-line does not, and the next line must start on a line of its own."""
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def write_json_atomic(target: str | os.PathLike[str], obj: Any, replace: bool = True) -> None:
    """Write ``obj`` as indented JSON to ``target`` atomically (``replace``: as :func:`atomic_path`)."""
    write_text_atomic(target, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n", replace)


def is_integer(value: object) -> bool:
    """True for a Python or NumPy integer; False for a bool (``True`` is not a count), a float or a string."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_finite_number(value: object) -> bool:
    """True for a finite Python or NumPy int or float; False for a bool, a string (``"0.1"``), NaN or an infinity,
    so a config can refuse them by name instead of failing later in a comparison or silently passing ``nan``."""
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
            and math.isfinite(value))


def check_flag(value: object, where: str) -> None:
    """A ValueError naming ``where`` unless ``value`` is True or False (a truthy string such as ``"no"`` is not)."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{where} must be True or False, got {value!r}")


def check_device(device: object, where: str = "device") -> str:
    """``device`` if it is "auto" or a device torch knows ("cpu", "cuda", "cuda:1", "mps"), else a UserInputError
    naming ``where``: a misspelt device failed inside torch only once a model was built."""
    from recllm.errors import UserInputError

    if device == "auto":
        return device
    import torch

    try:
        torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise UserInputError(f"unknown device {device!r}", where, "use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
                             ) from None
    return device


def resolve_device(device: str = "auto") -> str:
    """Map ``"auto"`` to ``"cuda"`` when a GPU is visible, else ``"cpu"``; pass any other device torch knows
    through (an unknown one is a UserInputError, :func:`check_device`)."""
    if device != "auto":
        return check_device(device)
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
