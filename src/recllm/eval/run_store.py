"""Finished benchmark runs kept beside their report, so a benchmark longer than one sitting resumes.

A :class:`RunStore` is a JSON-lines file of ``{"key": ..., "row": ...}`` records. The key is a hash of
everything that decides the row (see :meth:`recllm.llm.cache.DiskCache.key`), so a changed setting misses the
store and is recomputed. The file is rewritten atomically after every :meth:`RunStore.put`, and it is committed
with the report: a fresh machine reuses the runs a previous one finished.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class RunStore:
    """Key -> JSON-able row, persisted as JSON lines at ``path`` (missing file: an empty store)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._rows: dict[str, Any] = self._read()

    def _read(self) -> dict[str, Any]:
        rows: dict[str, Any] = {}
        if not self.path.is_file():
            return rows
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                rows[record["key"]] = record["row"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise ValueError(f"{self.path}, line {number}: not a stored run ({exc}); delete the file "
                                 "to recompute every run") from exc
        return rows

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, key: str) -> bool:
        return key in self._rows

    def get(self, key: str) -> Any:
        """A copy of the stored row (the caller may change it), or None."""
        row = self._rows.get(key)
        return None if row is None else json.loads(json.dumps(row))

    def put(self, key: str, row: Any) -> None:
        """Store ``row`` under ``key`` and rewrite the file atomically, keeping rows another process stored
        meanwhile (re-read and merged under a folder lock)."""
        from recllm.utils import folder_lock, write_text_atomic

        with folder_lock(self.path):
            self._rows = {**self._read(), **self._rows, key: row}
            lines = [json.dumps({"key": k, "row": v}, sort_keys=True) for k, v in self._rows.items()]
            write_text_atomic(self.path, "\n".join(lines) + "\n")
