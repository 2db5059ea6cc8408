"""What every loader shares: where files live, download when missing, verify sha256, cache the parse.

A :class:`DatasetLoader` names its source files (with the publisher's sha256 where known) and a ``parse``
function from the data folder to a :class:`RecDataset`. Calling the loader finds (or downloads) the files,
checks their hashes, and returns the parsed data set, from a parquet cache keyed by the files' sha256, the
loader's version and the source of ``recllm.data`` when it was parsed before (so a changed reader never gets a parse
made by the old one).

What every loader checks is in :mod:`recllm.data.loaders.readers` (cut files, empty ids, negative timestamps,
ratings off the publisher's scale are errors naming file and line). Exact duplicate interactions are kept as
the publisher ships them (RecBole's default too), counted in ``info["exact_duplicate_interactions"]`` and
reported by one warning line naming the file on every load.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from recllm.data.dataset import DataError, RecDataset
from recllm.data.loaders.download import DataWarning, download_archive, download_files, sha256_file
from recllm.data.loaders.readers import duplicates_warning
from recllm.utils import package_source_sha256

DATA_ENV = "RECLLM_DATA"  # folder holding one sub-folder per data set
URL_ENV = "RECLLM_DATA_URL"  # a mirror serving the publishers' relative paths, replacing every publisher's server
VERIFY = ("warn", "strict", "off")


def data_home() -> Path:
    """The folder holding one sub-folder per data set: ``$RECLLM_DATA`` or ``~/.cache/recllm/data``."""
    return Path(os.environ.get(DATA_ENV) or Path.home() / ".cache" / "recllm" / "data").expanduser()


def data_root(name: str) -> Path:
    """Where the files of data set ``name`` are looked for (and downloaded to): ``data_home() / name``."""
    return data_home() / name


@dataclass(frozen=True)
class SourceFile:
    """One publisher file: its name in the data folder, its published sha256 (None when unknown),
    its path relative to the download base URL (direct files) or inside the archive (archive data sets)."""

    name: str
    sha256: str | None = None
    remote: str | None = None


@dataclass(frozen=True)
class DatasetLoader:
    """A named data set: source files, how to fetch them, and how to parse them into a RecDataset.

    ``base_url`` + ``archive`` is a zip holding every file (MovieLens, MIND); without ``archive`` each file is
    fetched from ``base_url`` + its ``remote`` path (Amazon). ``base_url=None``: no known upstream, the user
    places the files (``manual_hint`` says how). ``version`` changes whenever the parse output changes, which
    invalidates the parquet cache.
    """

    name: str
    files: tuple[SourceFile, ...]
    parse: Callable[[Path], RecDataset]
    version: int
    base_url: str | None = None
    archive: str | None = None
    homepage: str = ""
    manual_hint: str = ""
    mismatch_hint: str = ""

    def __post_init__(self) -> None:
        if not self.files:
            raise ValueError(f"loader {self.name!r} needs at least one source file")
        if self.version < 1:
            raise ValueError(f"loader {self.name!r}: version must be >= 1")

    # --------------------------------------------------------------------------------------------- files
    def url_of(self, file: SourceFile, base_url: str | None = None) -> str | None:
        """The download URL of ``file`` (the archive's URL for archive data sets); None without upstream."""
        base = base_url or os.environ.get(URL_ENV) or self.base_url
        if base is None:
            return None
        base = base if base.endswith("/") else base + "/"
        return base + (self.archive if self.archive else (file.remote or file.name))

    def missing_files(self, folder: Path) -> list[SourceFile]:
        """The source files absent from ``folder``; a DataError when one is there but is no file (e.g. a folder of
        that name): recllm neither downloads over it nor reports it as missing."""
        blocked = [folder / f.name for f in self.files if (folder / f.name).exists() and not (folder / f.name).is_file()]
        if blocked:
            raise DataError(f"data set {self.name!r}: {blocked[0]} is a folder (or other non-file), not the data file "
                            f"{blocked[0].name}. Fix: move it away and place the publisher's {blocked[0].name} there, "
                            f"or set {DATA_ENV} to another folder.")
        return [f for f in self.files if not (folder / f.name).is_file()]

    def fetch(self, folder: Path, base_url: str | None = None, show_progress: bool = True) -> None:
        """Download the files missing from ``folder``; a failure says what is missing, where, and what to do."""
        missing = self.missing_files(folder)
        if not missing:
            return
        urls = {f.name: self.url_of(f, base_url) for f in missing}
        if None in urls.values():
            raise self._missing_error(folder, missing, urls, None)
        try:
            if self.archive:
                members = {f.name: (f.remote or f.name, f.sha256) for f in self.files if f in missing}
                download_archive(folder, next(iter(urls.values())), members, show_progress=show_progress)
            else:
                download_files(folder, {f.name: (urls[f.name], f.sha256) for f in missing}, show_progress=show_progress)
        except (DataError, OSError) as exc:  # OSError: the data folder cannot be written
            raise self._missing_error(folder, missing, urls, str(exc)) from None

    def _missing_error(self, folder: Path, missing: list[SourceFile], urls: dict, reason: str | None) -> DataError:
        names = ", ".join(f.name for f in missing)
        where = f"{folder}" + ("" if folder.exists() else " (the folder does not exist)")
        if self.base_url is None:
            get = self.manual_hint or "this data set has no known download URL"
        else:
            get = "get them from " + ", ".join(sorted({u for u in urls.values() if u})) + (
                f" (see {self.homepage})" if self.homepage else "")
        why = f" Download failed: {reason}." if reason else ""
        return DataError(
            f"data set {self.name!r}: file(s) {names} not found in {where}.{why} Fix: place {names} in {folder} "
            f"({get}), or set {DATA_ENV} to a folder whose sub-folder {self.name}/ holds these files."
        )

    def verify(self, folder: Path, mode: str = "warn") -> dict[str, str]:
        """sha256 of every source file; a mismatch with the published hash warns ("warn") or raises ("strict")."""
        if mode not in VERIFY:
            raise ValueError(f"verify must be one of {VERIFY}, got {mode!r}")
        observed = {f.name: sha256_file(folder / f.name) for f in self.files}
        if mode == "off":
            return observed
        wrong = [f for f in self.files if f.sha256 is not None and observed[f.name] != f.sha256]
        if wrong:
            detail = "; ".join(f"{folder / f.name} has sha256 {observed[f.name]}, not the publisher's {f.sha256}"
                               for f in wrong)
            msg = f"data set {self.name!r}: {detail}. A different or altered copy. {self.mismatch_hint}".strip()
            if mode == "strict":
                raise DataError(msg + " Delete the file(s) to re-download, or place the publisher's original.")
            warnings.warn(msg + " Parsing it anyway.", DataWarning, stacklevel=3)
        return observed

    # --------------------------------------------------------------------------------------------- loading
    def __call__(
        self,
        root: str | Path | None = None,
        download: bool = True,
        base_url: str | None = None,
        verify: str = "warn",
        use_cache: bool = True,
        show_progress: bool = True,
    ) -> RecDataset:
        """Load the data set from ``root`` (default ``data_root(name)``), downloading missing files."""
        folder = Path(root).expanduser() if root is not None else data_root(self.name)
        if download:
            self.fetch(folder, base_url, show_progress)
        elif missing := self.missing_files(folder):
            raise self._missing_error(folder, missing, {f.name: self.url_of(f, base_url) for f in missing}, None)
        with warnings.catch_warnings(record=True) as mismatch:  # shown once the files parse: a file that does
            warnings.simplefilter("always", DataWarning)        # not gets one error line, not a warning too
            hashes = self.verify(folder, verify)
        key = self.cache_key(hashes)
        cached = _cache_folder(self.name, key) if use_cache else None
        if cached is not None and (cached / "dataset.json").is_file():
            try:
                return _with_notes(RecDataset.load(cached), folder, mismatch)
            except (OSError, ValueError, KeyError, json.JSONDecodeError):
                pass  # an unreadable cache entry is rebuilt below
        dataset = self.parse(folder)
        for part in ("interactions", "items", "users"):
            setattr(dataset, part, string_columns(getattr(dataset, part)))
        dataset.info.update({"loader_version": self.version, "files_sha256": hashes, "cache_key": key})
        if cached is not None:
            try:
                dataset.save(cached)
            except OSError as exc:
                warnings.warn(f"could not cache {self.name!r} in {cached}: {exc}", DataWarning, stacklevel=2)
        return _with_notes(dataset, folder, mismatch)

    def cache_key(self, hashes: dict[str, str]) -> str:
        """Key of the parsed cache: the loader's name and version, every source file's sha256 and the source hash
        of ``recllm.data`` (the readers, the checks and the data set type)."""
        blob = json.dumps({"name": self.name, "version": self.version, "files": hashes,
                           "code": package_source_sha256("recllm.data")}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:20]


def string_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Give object columns that hold only strings (and NaN) pandas' string dtype, as a parquet round trip does,
    so a fresh parse and a cached one are identical."""
    for col in frame.columns:
        values = frame[col]
        if values.dtype == object and values.dropna().map(type).eq(str).all():
            frame[col] = values.astype("str")
    return frame


def _with_notes(dataset: RecDataset, folder: Path, held: list[warnings.WarningMessage]) -> RecDataset:
    """Warn, on every load (parsed or cached), about what a user should know: the warnings ``held`` back while
    the files were parsed (a sha256 mismatch) and what the loader kept (exact duplicates)."""
    for record in held:
        warnings.warn(record.message, record.category, stacklevel=4)
    note = duplicates_warning(dataset.info, str(folder))
    if note:
        warnings.warn(note, DataWarning, stacklevel=4)
    return dataset


def _cache_folder(name: str, key: str) -> Path | None:
    from recllm.utils import cache_dir

    try:
        return cache_dir("parsed", name) / key
    except OSError as exc:
        warnings.warn(f"no parsed-data cache (cannot create the cache folder: {exc})", DataWarning, stacklevel=3)
        return None

