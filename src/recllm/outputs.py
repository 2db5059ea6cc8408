"""The one place that decides where recllm may write: output folders and output files named by the user.

Rules (users' data is sacred):

- An output **folder** (``--out`` of ``recllm learn train``, ``recllm trsr train``) is written only when it is
  absent, empty, or holds recllm's marker file ``.recllm-output.json`` of the same kind (e.g. ``"learn-artifact"``,
  ``"trsr-run"``) and a format version this recllm can write (the same or an older one). A folder is replaced only
  after a complete new one was built beside it, and the old one is deleted only because its marker says recllm made
  it and lists every file in it (a published folder's marker records the files recllm wrote); a folder that also
  holds files recllm did not write (a service's database, the user's notes) is refused, before any work when its
  marker lists its files; any other folder is refused with an error that tells the user to choose a new ``--out``
  or remove it.
- An output **file** (``--out`` of ``recllm impute``, ``recllm trsr summarize``, ``recllm bench *``) must have an
  allowed suffix and must not be a folder. An existing file is **never replaced unless the user passes
  ``--overwrite``** (``overwrite=True``); recllm's own generated reports (:func:`check_report_file`) are the one
  exception, since re-running a benchmark is how a report is updated. Files are written atomically
  (:func:`recllm.utils.atomic_path`), so a crash leaves the old file (or nothing) in place.
- Every check runs before any data or model is loaded and creates nothing, so a mistake costs no work and leaves
  the disk untouched.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from recllm.errors import UserInputError

__all__ = ["MARKER", "check_output_dir", "check_output_file", "check_plot_files", "check_report_file",
           "is_generated_plot", "is_generated_report", "mark_output_dir", "publish_output_dir", "read_marker"]

MARKER = ".recllm-output.json"
_NEW_OUT = "choose a new --out folder or remove it yourself"


def read_marker(folder: str | os.PathLike[str]) -> dict | None:
    """The marker recllm wrote into ``folder`` (``{"kind", "version", ...}``), or None when there is none."""
    path = Path(folder) / MARKER
    try:
        marker = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or not isinstance(marker.get("kind"), str) or \
            not isinstance(marker.get("version"), int):
        return None
    return marker


def _is_ours(folder: Path, kind: str, version: int) -> bool:
    marker = read_marker(folder)
    return marker is not None and marker["kind"] == kind and marker["version"] <= version


def _entries(folder: Path) -> tuple[set[str], set[str], set[str]]:
    """(files and links, folders, folders that cannot be read) under ``folder``, as relative POSIX paths, recllm's
    marker aside; links to folders are not followed."""
    files: set[str] = set()
    folders: set[str] = set()
    unreadable: set[str] = set()

    def relative(path: str) -> str:
        return Path(os.path.relpath(path, folder)).as_posix()

    for root, dirs, names in os.walk(folder, onerror=lambda err: unreadable.add(relative(err.filename))):
        for name in dirs:
            (files if os.path.islink(os.path.join(root, name)) else folders).add(relative(os.path.join(root, name)))
        files.update(relative(os.path.join(root, name)) for name in names)
    files.discard(MARKER)
    return files, folders, unreadable


def _files(folder: Path) -> set[str]:
    """Every file (and link) under ``folder`` as a relative POSIX path, recllm's marker aside."""
    return _entries(folder)[0]


def _not_written_by_us(folder: Path, recorded: object, also: Iterable[str] = ()) -> list[str]:
    """What ``folder`` holds that neither its marker's file list (``recorded``) nor ``also`` names: files, folders
    holding no file at all (shown with a trailing /), folders that cannot be read."""
    listed = (set(recorded) if isinstance(recorded, list) else set()) | set(also)
    files, folders, unreadable = _entries(folder)
    holding = {str(parent) for name in listed | files for parent in Path(name).parents if str(parent) != "."}
    foreign = (files - listed) | {f"{d}/" for d in folders - holding}
    foreign |= {f"{d}/ (unreadable)" if d != "." else "(the folder cannot be read)" for d in unreadable}
    return sorted(foreign)


def _foreign_files_error(folder: Path, foreign: list[str], where: str, after_work: bool) -> UserInputError:
    shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
    outcome = "it was left as it was and the new output was not saved" if after_work else \
        "recllm will not replace it"
    return UserInputError(f"the output folder holds files recllm did not write there ({shown}); {outcome}", where,
                          "move those files out of the folder, or choose a new --out folder")


def _nearest_existing(path: Path) -> Path:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def can_write_in(folder: Path) -> bool:
    """Whether a file can be created in ``folder``: a real probe (a temporary file made and removed at once), since
    ``os.access`` says yes to root for any folder, read-only mounts and ``/proc`` included."""
    try:
        handle, name = tempfile.mkstemp(prefix=".recllm-write-probe-", dir=folder)
    except OSError:
        return False
    os.close(handle)
    with contextlib.suppress(OSError):
        os.unlink(name)
    return True


def _check_parent(path: Path, what: str, option: str = "--out") -> None:
    """The folder that will hold ``path`` exists or can be created, and is writable (``option``: the one naming it)."""
    ancestor = _nearest_existing(path.parent)
    if not ancestor.is_dir():
        raise UserInputError(f"cannot create {what}: {ancestor} is a file, not a folder", str(path),
                             f"give {option} a path inside a folder")
    if not can_write_in(ancestor):
        raise UserInputError(f"cannot write {what}: no write permission in {ancestor}", str(path),
                             f"give {option} a path in a folder you can write to")


def check_output_dir(path: str | os.PathLike[str], kind: str, version: int,
                     legacy: Callable[[Path], bool] | None = None, known: Iterable[str] | None = None) -> Path:
    """``path`` as a Path when recllm may write a ``kind`` output folder there, else :class:`UserInputError`.

    Allowed: absent, an empty folder, or a folder holding recllm's marker of the same ``kind`` with a version
    ``<= version`` (our own earlier output: replaced, or resumed). ``legacy`` may recognise this kind's folders
    written before markers existed; they are accepted for writing in place (:func:`mark_output_dir`), never
    deleted (:func:`publish_output_dir` ignores ``legacy``). A folder of ours must hold only what recllm wrote
    there: the files its marker lists, or, under a marker from before markers listed files, names in ``known`` (the
    files this kind's output may hold; not checked when None). Refused: a file, any other folder, a place that
    cannot be written. Creates nothing.
    """
    target = Path(path).expanduser()
    where = str(path)
    if target.is_symlink():  # a folder is published by renames, which would replace the link, not its folder
        pointed = Path(os.path.realpath(target))
        raise UserInputError("the output path is a symbolic link; recllm writes an output folder by renaming it "
                             "into place, which would replace the link", where,
                             f"give the folder it points to ({pointed}) or a new --out folder")
    if target.exists():
        if not target.is_dir():
            raise UserInputError("the output path is an existing file, not a folder", where, _NEW_OUT)
        if any(target.iterdir()):
            written = read_marker(target)  # None for a legacy folder (written in place, never deleted)
            marker = written
            if marker is None and legacy is not None and legacy(target):
                marker = {"kind": kind, "version": version}
            if marker is None:
                raise UserInputError("the output folder is not empty and was not made by recllm; recllm will not "
                                     "write into it or replace it", where, _NEW_OUT)
            if marker["kind"] != kind:
                raise UserInputError(f"the output folder holds a recllm {marker['kind']!r} output, not a {kind!r} "
                                     "one", where, _NEW_OUT)
            if marker["version"] > version:
                raise UserInputError(f"the output folder was written by a newer recllm (format {marker['version']}, "
                                     f"this one writes {version})", where, f"upgrade recllm or {_NEW_OUT}")
            if written is not None and ("files" in written or known is not None):
                # a folder of ours must hold only what recllm wrote there
                foreign = _not_written_by_us(target, written.get("files"), () if "files" in written else known)
                if foreign:
                    raise _foreign_files_error(target, foreign, where, after_work=False)
        if not can_write_in(target):
            raise UserInputError("cannot write the output folder: no write permission", where,
                                 "choose an --out folder you can write to")
    _check_parent(target, "the output folder")
    return target


def _write_marker(folder: Path, kind: str, version: int, files: list[str] | None = None) -> None:
    """Write recllm's marker into ``folder``; ``files``: the files recllm wrote there (a published folder's)."""
    from recllm.utils import write_json_atomic

    try:
        from importlib.metadata import version as _version

        recllm_version = _version("recllm")
    except Exception:  # noqa: BLE001 - a missing distribution only loses an informative field
        recllm_version = "unknown"
    write_json_atomic(folder / MARKER, {
        "kind": kind, "version": version, "recllm": recllm_version,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "note": "written by recllm: recllm may replace or resume this folder; it never touches folders without it",
        **({"files": files} if files is not None else {}),
    })


def mark_output_dir(path: str | os.PathLike[str], kind: str, version: int,
                    legacy: Callable[[Path], bool] | None = None) -> Path:
    """Create (or reuse) a ``kind`` output folder that recllm writes in place (e.g. a resumable run) and mark it.

    Checks ``path`` with :func:`check_output_dir` first; returns the folder.
    """
    target = check_output_dir(path, kind, version, legacy)
    target.mkdir(parents=True, exist_ok=True)
    marker = read_marker(target)
    if marker is None or marker["version"] != version:
        _write_marker(target, kind, version)
    return target


def publish_output_dir(tmp: str | os.PathLike[str], target: str | os.PathLike[str], kind: str,
                       version: int, known: Iterable[str] | None = None) -> Path:
    """Mark the finished folder ``tmp`` and rename it onto ``target`` atomically; returns ``target``.

    ``tmp`` must be on the same file system (build it beside ``target``). An existing ``target`` is replaced only
    when it is empty or recllm's own ``kind`` output holding only files recllm wrote there (checked again now, after
    the work): it is renamed aside to a hidden sibling, ``tmp`` is renamed in, and the aside copy is deleted because
    its marker proves it is ours; if the second rename fails the old folder is put back. The new marker lists the
    files of ``tmp``. A folder whose marker predates file lists may hold only names in ``known`` (this kind's
    possible files) or that the new output also has. Anything else raises :class:`UserInputError` and leaves
    ``target`` untouched (``tmp`` is left for the caller to remove).

    Files and folders get the permissions a plain write would give them (:func:`recllm.utils.give_normal_modes`);
    a replaced folder's permission bits are kept. An empty folder the user made is kept, not replaced
    (:func:`_fill_empty_dir`): its permissions, group and inode stay the user's.
    """
    from recllm.utils import give_normal_modes

    tmp, target = Path(tmp), check_output_dir(target, kind, version, known=known)
    written = _files(tmp)
    _write_marker(tmp, kind, version, sorted(written))
    target.parent.mkdir(parents=True, exist_ok=True)
    give_normal_modes(tmp, target if target.is_dir() else None)
    if not target.exists():
        os.replace(tmp, target)
        return target
    if not any(target.iterdir()):
        try:
            if not _fill_empty_dir(tmp, target):  # no hard links here: rename over it (fails if it filled meanwhile)
                os.replace(tmp, target)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            raise UserInputError("the output folder filled while recllm was working; it was left as it was and "
                                 "the new output was not saved", str(target), _NEW_OUT) from None
        return target
    aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    try:
        os.replace(target, aside)  # onto the empty placeholder: atomic, and no existing sibling is ever touched
    except BaseException:
        os.rmdir(aside)
        raise
    if not _is_ours(aside, kind, version):  # changed between the check and the rename: put it back, refuse
        os.replace(aside, target)
        raise UserInputError("the output folder changed while recllm was working and is no longer recllm's own",
                             str(target), _NEW_OUT)
    recorded = (read_marker(aside) or {}).get("files")
    foreign = _not_written_by_us(aside, recorded, () if isinstance(recorded, list) else written | set(known or ()))
    if foreign:  # files recllm did not write there (added after it, or beside an old marker): keep them all
        os.replace(aside, target)
        raise _foreign_files_error(target, foreign, str(target), after_work=True)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(aside, target)
        raise
    shutil.rmtree(aside)
    return target


def _fill_empty_dir(tmp: Path, target: Path) -> bool:
    """Move the finished folder ``tmp``'s content into the empty folder ``target`` and remove ``tmp``; False (nothing
    done) where the file system has no hard links.

    Each file is hard-linked into place, which never replaces a file that appeared there meanwhile (that raises
    FileExistsError after undoing every link made); recllm's marker comes first, so a crash halfway leaves a folder
    of recllm's own that lists its files (a reader finds it incomplete, a rerun replaces it), never a half-written
    file. Files take ``target``'s group when it is a setgid (shared) folder, as files written into it would."""
    share = target.stat()
    gid = share.st_gid if share.st_mode & stat.S_ISGID else None
    names = [MARKER, *sorted(_entries(tmp)[1]), *sorted(_files(tmp))]  # marker, folders (parents first), files
    made: list[Path] = []
    try:
        for name in names:
            src, dst = tmp / name, target / name
            if src.is_dir() and not src.is_symlink():
                dst.mkdir()
            else:
                try:
                    os.link(src, dst, follow_symlinks=False)
                except FileExistsError:
                    raise
                except OSError:
                    if made:
                        raise
                    return False  # no hard links on this file system (checked on the first, the marker)
                if gid is not None:
                    with contextlib.suppress(OSError):  # only to a group the user is in; else the folder's default
                        os.chown(dst, -1, gid, follow_symlinks=False)
            made.append(dst)
    except BaseException:
        for dst in reversed(made):
            with contextlib.suppress(OSError):
                if dst.is_dir() and not dst.is_symlink():
                    dst.rmdir()
                else:
                    dst.unlink()
        raise
    shutil.rmtree(tmp)
    return True


def check_output_file(path: str | os.PathLike[str], suffixes: tuple[str, ...], overwrite: bool = False,
                      option: str = "--out") -> Path:
    """``path`` as a Path when recllm may write an output file there, else :class:`UserInputError`.

    The suffix (case-insensitive) must be one of ``suffixes``; the path must not be a folder; its folder must
    exist or be creatable, and be writable. An existing file is refused unless ``overwrite`` (the user's
    explicit ``--overwrite``). ``option`` is the option that names the file (``--out``, ``--report``), for the
    messages. Creates nothing.
    """
    allowed = tuple(s.lower() for s in suffixes)
    if not str(path).strip():  # '' would be the working folder, not a file
        raise UserInputError("no file name given", option, f"give a file name ending in {' or '.join(allowed)}")
    target = Path(path).expanduser()
    where = str(path)
    if target.suffix.lower() not in allowed:
        shown = repr(target.suffix) if target.suffix else "no suffix"
        raise UserInputError(f"unsupported output file type ({shown})", where,
                             f"use a name ending in {' or '.join(allowed)}")
    if target.is_dir():
        raise UserInputError("the output path is a folder, not a file", where, f"give a file name for {option}")
    if target.exists() or target.is_symlink():
        if not overwrite:
            raise UserInputError("the output file already exists", where,
                                 f"choose a new {option} file, or pass --overwrite to replace it")
        if not can_write_in(target.parent):
            raise UserInputError("cannot replace the output file: no write permission in its folder", where,
                                 f"give {option} a path in a folder you can write to")
    _check_parent(target, "the output file", option)
    return target


def is_generated_report(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a report recllm generated (its first lines carry the "generated" note)."""
    from recllm.eval.report import GENERATED_NOTE

    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            head = handle.read(2000)
    except OSError:
        return False
    return GENERATED_NOTE in head


PLOT_SOFTWARE = "recllm (generated)"  # the PNG "Software" text of recllm's plots (recllm.eval.report.save_plot)


def is_generated_plot(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a PNG plot recllm saved (its "Software" text says so, see :data:`PLOT_SOFTWARE`)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    return head.startswith(b"\x89PNG") and b"Software\x00" + PLOT_SOFTWARE.encode() in head


def check_plot_files(paths: Iterable[str | os.PathLike[str]], overwrite: bool = False) -> None:
    """Each of ``paths`` (the plots a report links, written beside it) is absent, recllm's own earlier plot, or
    ``overwrite`` (the user's ``--overwrite``); else a :class:`UserInputError` naming it. Creates nothing."""
    for path in paths:
        target = Path(path)
        if target.is_dir():
            raise UserInputError("a folder has the name of a plot the report writes beside it", str(target),
                                 "move it away or choose another --out")
        if (target.exists() or target.is_symlink()) and not overwrite and not is_generated_plot(target):
            raise UserInputError("a file that recllm did not generate has the name of a plot the report writes "
                                 "beside it", str(target),
                                 "move it away, choose another --out, or pass --overwrite to replace it")


def check_report_file(path: str | os.PathLike[str], overwrite: bool = False) -> Path:
    """A benchmark report path (``.md``): a new file, recllm's own earlier report (rerunning updates it), or any
    file with ``overwrite``."""
    return check_output_file(path, (".md",), overwrite=overwrite or is_generated_report(Path(path).expanduser()))
