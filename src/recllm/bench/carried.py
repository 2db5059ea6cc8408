"""A benchmark's model cache carried in the repository, so a benchmark spread over sessions on fresh machines does
not generate the same texts again.

:class:`CarriedCache` is a :class:`recllm.llm.cache.DiskCache` (the machine's sqlite cache) that also appends the
entries :data:`carry` selects (by default: generated texts, ``{"text": ...}`` values such as LLM-TRSR's summaries)
to a JSON-lines file beside the report (``<report>.texts.jsonl``), and reads that file back into the machine's
cache when it opens. An entry is keyed exactly as in the machine cache (model fingerprint with its precision, the
prompt templates, generation settings and the input), so a carried entry is reused only where the machine's own
cache would reuse it. The file is appended under the report folder's lock (two benchmark processes may share it),
and a line cut short by a stopped session is skipped when it is read.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from recllm.errors import UserInputError
from recllm.llm.cache import DiskCache

__all__ = ["CarriedCache", "is_generated_text"]


def is_generated_text(value: Any) -> bool:
    """True for a generated text's cache entry (``{"text": str, ...}`` with JSON-able parts)."""
    return isinstance(value, dict) and isinstance(value.get("text"), str)


class CarriedCache(DiskCache):
    """A :class:`DiskCache` whose entries selected by ``carry`` are also kept in the JSON-lines file ``carried``.

    ``path``/``namespace``: the machine cache's, as for :class:`DiskCache`. ``carried_`` after opening: how many
    entries the file held."""

    def __init__(self, carried: str | os.PathLike[str], path: str | os.PathLike[str] | None = None,
                 namespace: str = "default", carry: Callable[[Any], bool] = is_generated_text) -> None:
        super().__init__(path, namespace)
        self.carried = Path(carried)
        self.carry = carry
        entries = self.read_carried()
        self.carried_ = len(entries)
        present = self.get_many(entries)
        missing = {k: v for k, v in entries.items() if k not in present}
        if missing:
            super().put_many(missing)

    def read_carried(self) -> dict[str, Any]:
        """key -> value of every whole line of the carried file (none when it does not exist)."""
        out: dict[str, Any] = {}
        if self.carried.exists() and not self.carried.is_file():
            raise UserInputError("it is a folder, not the file of carried summaries", str(self.carried),
                                 "move it away or choose another --out")
        if not self.carried.is_file():
            return out
        try:
            with open(self.carried, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
        except UnicodeDecodeError:
            raise UserInputError("it is not UTF-8 text, so not a file of carried summaries", str(self.carried),
                                 "if recllm wrote it, delete it (the summaries are then generated again); if not, "
                                 "move it away or choose another --out") from None
        for line in lines:
            try:
                entry = json.loads(line)
                out[entry["k"]] = entry["v"]
            except (ValueError, KeyError, TypeError):  # a line cut short by a stopped session
                continue
        return out

    def put_many(self, mapping: Mapping[str, Any]) -> None:
        """Append the carried entries to the carried file (fsynced), then store everything in the machine cache
        (in this order, so a process stopped in between has lost nothing the file should hold)."""
        lines = [json.dumps({"k": k, "v": v}, sort_keys=True) for k, v in mapping.items() if self.carry(v)]
        if lines:
            self._append(lines)
        super().put_many(mapping)

    def _append(self, lines: list[str]) -> None:
        from recllm.utils import ends_with_newline, folder_lock

        self.carried.parent.mkdir(parents=True, exist_ok=True)
        with folder_lock(self.carried):
            with open(self.carried, "a", encoding="utf-8") as handle:
                if handle.tell() > 0 and not ends_with_newline(self.carried):
                    handle.write("\n")  # after a line cut short: start a whole new line
                handle.write("\n".join(lines) + "\n")
                handle.flush()
                os.fsync(handle.fileno())

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled (e.g. shipped to a Ray worker) as the plain machine cache: workers read and fill it, and this
        process carries what they made when it stores their outputs."""
        return DiskCache, (self.path, self.namespace, self.timeout)

