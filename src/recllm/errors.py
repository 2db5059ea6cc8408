"""Errors a user can act on.

``UserInputError`` is bad input (an argument, a file, a column, a row): the command line prints it as one line,
``recllm <command>: error: <what> (<where>); <what to do>``, and exits 2, never with a traceback.
"""

from __future__ import annotations

__all__ = ["UserInputError"]


class UserInputError(ValueError):
    """Bad input the user can fix: ``what`` went wrong, ``where`` (file, column, row, argument), ``todo``."""

    def __init__(self, what: str, where: str | None = None, todo: str | None = None) -> None:
        self.what, self.where, self.todo = what, where, todo
        message = what + (f" ({where})" if where else "") + (f"; {todo}" if todo else "")
        super().__init__(message)
