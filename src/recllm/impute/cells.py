"""How the imputers write a filled value into the caller's column: in the column's own representation.

The models read a copy of the table whose numeric columns are floats; their answers are written back into a copy of
the caller's frame, one missing cell at a time, so observed cells and dtypes stay as given. :class:`CellFormat` is
what ``fit`` learns about how a column writes its values (``"02582"``, ``"1.50"``, Python ints in an object
column); :func:`represent` turns a filled value into that form; :func:`write_cells` writes the cells.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from recllm.data.dataset import DataError
from recllm.impute.serialize import format_value


def is_number(value: Any) -> bool:
    """A real number (not a bool)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _whole(value: Any) -> int:
    """A number as a Python int: integers exactly (a float would round 10000000000000315), others rounded."""
    return int(value) if isinstance(value, (int, np.integer)) else int(np.rint(value))


_PLAIN_NUMBER = r"^-?(\d+)(?:\.(\d+))?$"


@dataclass(frozen=True)
class CellFormat:
    """How a column writes its values, learned in ``fit`` from its observed cells; see :func:`represent`."""

    text: bool = False  # every observed value is a str (a str/string column, or object/categorical of str)
    number_type: type | None = None  # the one type of the column's numbers (object columns); None if they mix
    decimals: int | None = None  # number-like text in plain notation: the most decimals seen; None otherwise
    width: int = 0  # number-like text with leading zeros: integer digits to zero-pad to (``"02582"``: 5)

    @classmethod
    def of(cls, series: pd.Series, numeric: bool) -> "CellFormat":
        """The format of ``series``'s observed values (the text layout of numbers only when ``numeric``)."""
        dtype = series.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            values = pd.Series(dtype.categories, dtype=object)
        elif dtype == object or isinstance(dtype, pd.StringDtype):
            values = series.dropna()
        else:  # numeric, bool and datetime dtypes say themselves how they hold a value
            return cls()
        types = {str} if isinstance(dtype, pd.StringDtype) else set(map(type, values))
        numbers = [t for t in types if issubclass(t, (int, float, np.integer, np.floating))
                   and not issubclass(t, (bool, np.bool_))]
        number_type = numbers[0] if len(numbers) == 1 else None
        if types != {str}:
            return cls(number_type=number_type)
        if not numeric:
            return cls(text=True)
        parts = values.astype(object).str.extract(_PLAIN_NUMBER)
        if parts[0].isna().any():  # "1e5", "1,000", " 12": not plain decimal notation
            return cls(text=True)
        whole = parts[0]
        padded = whole[(whole.str.len() > 1) & whole.str.startswith("0")]
        return cls(text=True, decimals=int(parts[1].str.len().fillna(0).max()),
                   width=int(padded.str.len().max()) if len(padded) else 0)

    def number_text(self, value: Any) -> str:
        """``value`` written like the column's numbers: its decimals, its zero-padding (shortest form if unknown)."""
        if self.decimals is None:
            return format_value(value)
        if isinstance(value, (int, np.integer)):
            text = str(abs(int(value))) + ("." + "0" * self.decimals if self.decimals else "")
        else:
            text = f"{abs(float(value)):.{self.decimals}f}"
        negative = value < 0 and text.strip("0.") != ""  # no "-0"
        whole, dot, decimals = text.partition(".")
        return ("-" if negative else "") + whole.zfill(self.width) + dot + decimals


def represent(value: Any, dtype: Any, fmt: CellFormat) -> Any:
    """A filled ``value`` as a column of ``dtype`` (format ``fmt``) writes its values; observed cells are untouched.

    - A value that is not a number (a category, a text, a label) goes in as it is.
    - A number goes into an integer column (nullable Int*, or integer categories) rounded to the nearest integer,
      into a float column as a float, into a datetime / timedelta column as the time it encodes (in the column's
      unit, as ``pandas.to_numeric`` reads it).
    - Into a text column (str / string dtype, or object / categorical whose values are all str) as text written
      like the column's numbers seen in ``fit``: as many decimals as the most seen, the integer part zero-padded to
      the width of the values written with leading zeros (a zip code column gets ``"06292"``), plain notation; a
      column whose numbers are not plain decimals (``"1e5"``) gets the shortest form (``"2.5"``, ``"100000"``).
    - Into another object column as the one type its numbers have (ints: rounded), or as a Python number when
      they mix types.
    """
    if not is_number(value):
        return value
    if isinstance(dtype, pd.CategoricalDtype):
        dtype = dtype.categories.dtype  # a new category is written as the existing ones are
    if pd.api.types.is_integer_dtype(dtype):
        return _whole(value)
    if pd.api.types.is_float_dtype(dtype):
        return float(value)
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        unit = np.datetime_data(dtype)[0] if isinstance(dtype, np.dtype) else dtype.unit
        if pd.api.types.is_timedelta64_dtype(dtype):
            return pd.Timedelta(_whole(value), unit=unit)
        return pd.Timestamp(_whole(value), unit=unit, tz=getattr(dtype, "tz", None))
    if fmt.text or isinstance(dtype, pd.StringDtype):
        return fmt.number_text(value)
    if fmt.number_type is not None:
        kind = fmt.number_type
        return kind(_whole(value)) if issubclass(kind, (int, np.integer)) else kind(value)
    return value.item() if isinstance(value, np.generic) else value


def write_cells(frame: pd.DataFrame, col: str, rows: np.ndarray, values: Any, fmt: CellFormat) -> None:
    """Write ``values`` into the cells ``rows`` of column ``col`` of ``frame`` (a copy), each as :func:`represent`
    says; the column keeps its dtype (a categorical one gains the new categories) and its other cells."""
    series = frame[col]
    dtype = series.dtype
    cells = np.empty(len(rows), dtype=object)  # filled element-wise: numpy would unpack a tuple value
    for i, value in enumerate(values):
        cells[i] = represent(value, dtype, fmt)
    arr = series.array.copy()
    if isinstance(dtype, pd.CategoricalDtype):
        new = [v for v in dict.fromkeys(cells) if v not in dtype.categories]
        if new:
            arr = arr.add_categories(new)
    try:
        arr[rows] = cells if dtype == object else list(cells)  # (a typed array refuses an object ndarray)
    except (TypeError, ValueError):
        bad = next((v for v in cells if _cannot_hold(dtype, v)), cells[0])
        raise DataError(
            f"column {col!r} ({dtype}) cannot hold the filled value {bad!r}; declare the column's kind "
            "(categorical / numeric / text) to match its dtype, or cast the column to object"
        ) from None
    frame[col] = pd.Series(arr, index=series.index, name=col, dtype=arr.dtype)  # (pandas would infer str)


def _cannot_hold(dtype: Any, value: Any) -> bool:
    """Whether a column of ``dtype`` refuses ``value`` (to name the culprit in the error)."""
    try:
        pd.array([value], dtype=dtype)
    except (TypeError, ValueError):
        return True
    return False
