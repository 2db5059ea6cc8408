"""Fetch publisher files over HTTP(S), check sha256, and place them atomically (temp file + rename).

A file with a published hash that does not match is refused (the temporary copy is deleted). Where no hash
is known the observed one is reported and recorded in ``DOWNLOADS.json`` beside the data, so the next user
can compare.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

from recllm.data.dataset import DataError
from recllm.utils import atomic_path, write_json_atomic

MANIFEST = "DOWNLOADS.json"
CHUNK = 1 << 20


class DataWarning(UserWarning):
    """A data file differs from the publisher's known bytes, or its hash could not be checked."""


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch(url: str, target: Path, timeout: float, show_progress: bool) -> None:
    """Stream ``url`` into ``target`` (a temporary path); HTTP and network errors become DataError."""
    try:
        response = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 - publisher URLs or a user override
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DataError(f"download of {url} failed: {getattr(exc, 'reason', exc)}") from None
    with response, open(target, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        bar = None
        if show_progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"download {url.rsplit('/', 1)[-1]}", leave=False)
        try:
            for block in iter(lambda: response.read(CHUNK), b""):
                out.write(block)
                if bar is not None:
                    bar.update(len(block))
        except OSError as exc:
            raise DataError(f"download of {url} was interrupted: {exc}") from None
        finally:
            if bar is not None:
                bar.close()


def _accept(path: Path, name: str, expected: str | None, url: str) -> str:
    """Check a downloaded file against its published hash; return the observed hash."""
    observed = sha256_file(path)
    if expected is not None and observed != expected:
        raise DataError(
            f"downloaded {name} from {url} but its sha256 is {observed}, not the published {expected}; the server "
            f"returned different bytes (a changed release or a broken transfer). Nothing was written. Retry later, "
            f"or place the publisher's original {name} in the data folder yourself"
        )
    return observed


def _warn_unpublished(entries: Mapping[str, dict[str, object]]) -> None:
    """One warning listing every downloaded file that has no published hash, with the hash observed."""
    unknown = [f"{name} sha256 {e['sha256']} (from {e['url']})" for name, e in entries.items()
               if not e["sha256_published"]]
    if unknown:
        warnings.warn(f"no published sha256 is known for these downloaded files; observed: {'; '.join(unknown)} "
                      f"(recorded in {MANIFEST} beside them)", DataWarning, stacklevel=4)


def _record(folder: Path, entries: Mapping[str, dict[str, object]]) -> None:
    manifest = folder / MANIFEST
    data: dict[str, object] = {}
    if manifest.exists():
        try:
            data = json.loads(manifest.read_text())
        except (OSError, json.JSONDecodeError):
            data = {}
    data.update(entries)
    write_json_atomic(manifest, data)


def _staging() -> Path:
    """A private temporary folder for downloads in flight (the data folder is touched only on success)."""
    from recllm.utils import cache_dir

    return Path(tempfile.mkdtemp(prefix="download.", dir=cache_dir("downloads")))


def _place(source: Path, target: Path) -> None:
    """Copy a verified file into the data folder atomically (temp file beside the target + rename)."""
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def download_files(
    folder: Path, files: Mapping[str, tuple[str, str | None]], timeout: float = 60.0, show_progress: bool = True
) -> dict[str, str]:
    """Download each ``name -> (url, sha256 or None)`` into ``folder``; return ``name -> observed sha256``.

    Every file is fetched and verified before any is placed, so a failure leaves ``folder`` as it was.
    """
    staging = _staging()
    observed: dict[str, str] = {}
    try:
        for name, (url, expected) in files.items():
            _fetch(url, staging / name, timeout, show_progress)
            observed[name] = _accept(staging / name, name, expected, url)
        for name in files:
            _place(staging / name, folder / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    entries = {name: _entry(url, observed[name], expected) for name, (url, expected) in files.items()}
    _record(folder, entries)
    _warn_unpublished(entries)
    return observed


def download_archive(
    folder: Path,
    url: str,
    members: Mapping[str, tuple[str, str | None]],
    timeout: float = 60.0,
    show_progress: bool = True,
) -> dict[str, str]:
    """Download a zip from ``url`` and extract ``name -> (member path, sha256 or None)`` into ``folder``.

    A member is found by its exact path or, failing that, by its base name anywhere in the archive. Every
    member is extracted and verified before any is placed; the zip itself is not kept.
    """
    staging = _staging()
    archive = staging / "archive.zip"
    observed: dict[str, str] = {}
    entries: dict[str, dict[str, object]] = {}
    try:
        _fetch(url, archive, timeout, show_progress)
        try:
            zf = zipfile.ZipFile(archive)
        except zipfile.BadZipFile:
            raise DataError(f"download of {url} is not a valid zip archive (truncated, or an error page)") from None
        with zf:
            names = zf.namelist()
            for name, (member, expected) in members.items():
                found = member if member in names else next((n for n in names if n.rsplit("/", 1)[-1] == name), None)
                if found is None:
                    raise DataError(f"the archive {url} has no member {member!r} (it holds {names[:20]})")
                with zf.open(found) as src, open(staging / name, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
                observed[name] = _accept(staging / name, name, expected, f"{url} ({found})")
                entries[name] = _entry(f"{url}#{found}", observed[name], expected)
        for name in members:
            _place(staging / name, folder / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _record(folder, entries)
    _warn_unpublished(entries)
    return observed


def _entry(url: str, observed: str, expected: str | None) -> dict[str, object]:
    return {
        "url": url,
        "sha256": observed,
        "sha256_published": expected is not None,
        "downloaded": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
