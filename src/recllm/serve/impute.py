"""``POST /impute``: fill the gaps of JSON rows with a classic imputer fitted at start-up on a table.

``--imputer METHOD:TABLE`` (e.g. ``mean:data/users.csv``) reads the table as ``recllm impute`` does (only empty cells
are gaps) and fits ``METHOD`` (``zero``, ``mean``, ``knn`` or ``mice``) on it once. recllm.impute has no saved-model
format yet, and fitting these imputers takes seconds; an LLM imputer is not served (its fine-tuning is a batch job).
A row's observed cells are returned exactly as sent: only the cells sent as ``null`` (or left out) are filled. A
numeric column takes JSON numbers; a text column JSON strings, as the table writes them (``true`` or ``1.0`` would
have to be guessed into the table's spelling, e.g. ``"TRUE"`` or ``"1"``, so they are refused).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from recllm.errors import UserInputError

__all__ = ["SERVED_METHODS", "TableImputer", "check_spec"]

SERVED_METHODS = ("zero", "mean", "knn", "mice")


def check_spec(spec: str) -> tuple[str, Path]:
    """``METHOD:TABLE`` checked (a served method, an existing .csv/.parquet file) -> (method, path); a leading ``~``
    of TABLE is the home folder (the shell leaves ``mean:~/t.csv`` as it is)."""
    from recllm.data import DataError
    from recllm.impute.table_io import table_kind

    method, sep, path = spec.partition(":")
    if not sep or method not in SERVED_METHODS or not path:
        raise UserInputError(f"--imputer {spec!r} is not METHOD:TABLE", "--imputer",
                             f"give e.g. mean:users.csv, METHOD one of {', '.join(SERVED_METHODS)}")
    table = Path(path).expanduser()
    table_kind(table)
    if not table.is_file():
        raise DataError("no such file", path, "check the --imputer table's path")
    return method, table


class TableImputer:
    """A classic imputer fitted on a table; ``fill(rows)`` returns the rows with their gaps filled."""

    def __init__(self, imputer: Any, columns: list[str], numeric: set[str], method: str, table: Path) -> None:
        self.imputer, self.columns, self.numeric, self.method, self.table = imputer, columns, numeric, method, table

    @classmethod
    def from_spec(cls, spec: str) -> "TableImputer":
        """``METHOD:TABLE`` -> the imputer fitted on that table."""
        from recllm.impute.registry import make_imputer
        from recllm.impute.table_io import declare_kinds, read_table

        method, path = check_spec(spec)
        table = read_table(path, options=False)  # recllm serve has no --sep or --encoding to suggest
        imputer = declare_kinds(make_imputer(method), table).fit(table.frame)
        return cls(imputer, list(table.frame.columns), set(table.numeric), method, path)

    def fill(self, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
        """The rows with every missing cell (``null`` or absent) filled -> (rows, number of cells filled)."""
        known = set(self.columns)
        frame_rows = []
        for r, row in enumerate(rows):
            unknown = sorted(set(row) - known)
            if unknown:
                raise UserInputError(f"row {r} has unknown column(s) {unknown}", f"rows[{r}]",
                                     f"use the columns of the fitted table: {self.columns}")
            cells = {}
            for col in self.columns:
                value = row.get(col)
                if value is None:
                    cells[col] = math.nan
                elif isinstance(value, float) and not math.isfinite(value):  # would be taken as a gap, left unfilled
                    raise UserInputError(f"row {r}, column {col!r} holds the non-finite number {value!r}",
                                         f"rows[{r}].{col}", "send a finite number, or null for a gap")
                elif col in self.numeric:
                    if isinstance(value, bool) or not isinstance(value, (int, float)):
                        raise UserInputError(f"row {r}, column {col!r} holds {value!r}, not a number",
                                             f"rows[{r}].{col}", "send a number or null")
                    try:
                        cells[col] = float(value)
                    except OverflowError:  # a JSON integer beyond float64
                        raise UserInputError(f"row {r}, column {col!r} holds an integer too large for a float",
                                             f"rows[{r}].{col}", "send a number within float64's range, or null"
                                             ) from None
                elif not isinstance(value, str):  # str(True) is "True", str(1.0) "1.0": not the table's own text
                    raise UserInputError(f"row {r}, column {col!r} holds {json.dumps(value)}, but {col!r} is a text "
                                         f"column of {self.table.name} (its cells are compared as text)",
                                         f"rows[{r}].{col}", "send the cell as a JSON string, written as the table "
                                         "writes it, or null")
                else:
                    cells[col] = value
            frame_rows.append(cells)
        frame = pd.DataFrame(frame_rows, columns=self.columns)
        for col in self.columns:
            frame[col] = frame[col].astype("float64" if col in self.numeric else object)
        filled = self.imputer.transform(frame)
        out, n = [], 0
        for r, row in enumerate(rows):
            new = dict(row)
            for col in self.columns:
                if row.get(col) is None:
                    value = filled[col].iloc[r]
                    value = value.item() if hasattr(value, "item") else value
                    new[col] = None if isinstance(value, float) and math.isnan(value) else value
                    n += 1
            out.append(new)
        return out, n
