"""Reading recllm's own output folders back (LEARN artifacts, TRSR runs), the read side of :mod:`recllm.outputs`.

Every problem with a file of such a folder, whether missing, not valid JSON, the wrong format, cut short
(a truncated safetensors or ``.npy``), holding NaN or infinite numbers, or inconsistent with another file, raises one
:class:`~recllm.errors.UserInputError` naming the folder and the file and saying what to do (usually: write the
folder again with the command that made it). No library traceback reaches the user.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from recllm.errors import UserInputError

__all__ = ["MissingRunFileError", "RunFolder"]

_JSON_TYPES = {dict: "an object", list: "a list", str: "a string"}


class MissingRunFileError(UserInputError, FileNotFoundError):
    """A run folder or one of its files does not exist (a FileNotFoundError too, for callers that catch one)."""

    __str__ = Exception.__str__  # OSError's would print (errno, strerror)


class RunFolder:
    """Checked reads from the output folder ``folder`` of kind ``kind`` (e.g. "LEARN artifact").

    ``todo`` says how to get a sound folder (e.g. "retrain with `recllm learn train --out DIR`"); every error
    carries it, with the file's path as the place.
    """

    def __init__(self, folder: str | os.PathLike[str], kind: str, todo: str) -> None:
        self.folder = Path(folder).expanduser()
        self.kind, self.todo = kind, todo

    @staticmethod
    def reason(exc: BaseException) -> str:
        """The first line of a library's error message (its type name when it has none), for a one-line error."""
        text = str(exc).strip()
        return text.splitlines()[0] if text else type(exc).__name__

    def path(self, name: str | os.PathLike[str]) -> Path:
        return self.folder / name

    def error(self, name: str | os.PathLike[str], what: str) -> UserInputError:
        """The error for file ``name`` of this folder: ``<kind> <folder>: <name> <what> (<path>); <todo>``."""
        return UserInputError(f"broken {self.kind} {self.folder}: {Path(name).as_posix()} {what}",
                              str(self.path(name)), self.todo)

    def check(self, ok: bool, name: str | os.PathLike[str], what: str) -> None:
        """Raise :meth:`error` unless ``ok``."""
        if not ok:
            raise self.error(name, what)

    def require(self, *names: str | os.PathLike[str]) -> None:
        """The folder exists and holds every file in ``names``."""
        if not self.folder.is_dir():
            what = "is a file, not a folder" if self.folder.exists() else "does not exist"
            raise MissingRunFileError(f"{self.folder} {what}, so it is not a {self.kind}", str(self.folder),
                                      self.todo)
        missing = [Path(n).as_posix() for n in names if not self.path(n).is_file()]
        if missing:
            raise MissingRunFileError(f"{self.folder} is not a complete {self.kind}: {', '.join(missing)} "
                                      f"{'is' if len(missing) == 1 else 'are'} missing",
                                      str(self.path(missing[0])), self.todo)

    def json(self, name: str | os.PathLike[str], kind: type = dict) -> Any:
        """The JSON value of file ``name``, which must be of type ``kind`` (dict, list or str)."""
        try:
            value = json.loads(self.path(name).read_text(encoding="utf-8"))
        except FileNotFoundError:
            self.require(name)
            raise
        except UnicodeDecodeError:
            raise self.error(name, "is not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise self.error(name, f"is not valid JSON ({exc}; a cut or hand-edited file)") from None
        except OSError as exc:
            raise self.error(name, f"cannot be read ({exc.strerror or exc})") from None
        if not isinstance(value, kind):
            raise self.error(name, f"holds a JSON {type(value).__name__}, not {_JSON_TYPES.get(kind, kind.__name__)}")
        return value

    def check_safetensors(self, name: str | os.PathLike[str]) -> dict[str, Any]:
        """The header of safetensors file ``name`` (tensor name -> dtype, shape, offsets), checked against the
        file size so that a cut file is reported before any library reads it."""
        path = self.path(name)
        try:
            size = path.stat().st_size
            with open(path, "rb") as handle:
                head = handle.read(8)
                if len(head) < 8:
                    raise self.error(name, f"is cut short ({size} bytes; a safetensors file starts with an 8-byte "
                                           "header length)")
                n = int.from_bytes(head, "little")
                if 8 + n > size:
                    raise self.error(name, f"is cut short or not a safetensors file ({size} bytes, but its header "
                                           f"alone would be {8 + n})")
                header = json.loads(handle.read(n).decode("utf-8"))
        except FileNotFoundError:
            self.require(name)
            raise
        except OSError as exc:
            raise self.error(name, f"cannot be read ({exc.strerror or exc})") from None
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise self.error(name, "is not a safetensors file (its header is not JSON)") from None
        if not isinstance(header, dict):
            raise self.error(name, "is not a safetensors file (its header is not a JSON object)")
        try:
            end = max((int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"), default=0)
        except (TypeError, KeyError, IndexError, ValueError):
            raise self.error(name, "is not a safetensors file (a tensor entry lacks its data offsets)") from None
        if 8 + n + end != size:
            state = "cut short" if 8 + n + end > size else "longer than its header says"
            raise self.error(name, f"is {state} ({size} bytes; its header describes {8 + n + end})")
        return header

    def safetensors(self, name: str | os.PathLike[str]) -> dict[str, Any]:
        """The tensors (torch) of safetensors file ``name``, after :meth:`check_safetensors`; a float tensor holding
        NaN or infinity is an error (:meth:`check_finite`)."""
        import torch
        from safetensors.torch import load_file

        self.check_safetensors(name)
        try:
            tensors = load_file(str(self.path(name)))
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types; all mean a bad file
            raise self.error(name, f"cannot be read as safetensors ({self.reason(exc)})") from None
        for key, tensor in tensors.items():
            if tensor.is_floating_point():
                self.check_finite(name, int((~torch.isfinite(tensor)).sum()), tensor.numel(), key)
        return tensors

    def npy(self, name: str | os.PathLike[str]) -> np.ndarray:
        """The array in ``.npy`` file ``name`` (no pickles); a cut or foreign file, or a float array holding NaN or
        infinity (:meth:`check_finite`), is an error."""
        try:
            array = np.load(self.path(name), allow_pickle=False)
        except FileNotFoundError:
            self.require(name)
            raise
        except (ValueError, EOFError, OSError) as exc:
            raise self.error(name, f"cannot be read as a .npy array, it is cut short or not one "
                                   f"({self.reason(exc)})") from None
        if np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.complexfloating):
            self.check_finite(name, int(array.size - np.count_nonzero(np.isfinite(array))), array.size)
        return array

    def check_finite(self, name: str | os.PathLike[str], bad: int, total: int, key: str | None = None) -> None:
        """:meth:`error` when ``bad`` of the ``total`` numbers of file ``name`` (its tensor ``key``) are NaN or
        infinite: recllm never writes those, and they would score every item NaN (no results, no error)."""
        inside = f" (tensor {key!r})" if key is not None else ""
        self.check(bad == 0, name, f"holds {bad} NaN or infinite numbers of {total}{inside}: a damaged file")
