"""Field checkers shared by the model card and the head parameters.

Each checker takes the field's name as the user wrote it (e.g.
``"head_params.split_ratio"``), the value, and the allowed domain; it returns
the value coerced to a plain Python type or raises ValueError naming the
field, the value and what is allowed. JSON gives ``int`` and ``float``;
NumPy scalars are accepted too. ``bool`` is never a number here (JSON's
``true`` is not 1).
"""
from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["is_int", "is_real", "integer", "real", "probability", "choice", "text",
           "int_tuple", "int_pairs", "check_keys"]


def is_int(value: Any) -> bool:
    """An int (or NumPy integer), but not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_real(value: Any) -> bool:
    """An int or float (or NumPy number), but not a bool."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def integer(field: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """An integer in ``[low, high]`` (either bound may be None)."""
    if not is_int(value) or (low is not None and value < low) or (
            high is not None and value > high):
        if low is not None and high is not None:
            domain = f"an integer from {low} to {high}"
        elif low is not None:
            domain = f"an integer >= {low}"
        else:
            domain = "an integer"
        raise ValueError(f"{field} must be {domain}, got {_short(value)}.")
    return int(value)


def real(field: str, value: Any, *, low: float | None = None, high: float | None = None,
         low_open: bool = False) -> float:
    """A finite number in ``[low, high]`` (``(low, high]`` with ``low_open``)."""
    ok = is_real(value) and math.isfinite(float(value))
    if ok:
        v = float(value)
        if low is not None and (v <= low if low_open else v < low):
            ok = False
        if high is not None and v > high:
            ok = False
    if not ok:
        left = "(" if low_open else "["
        if low is not None and high is not None:
            domain = f"a finite number in {left}{low:g}, {high:g}]"
        elif low is not None:
            domain = f"a finite number {'>' if low_open else '>='} {low:g}"
        else:
            domain = "a finite number"
        raise ValueError(f"{field} must be {domain}, got {_short(value)}.")
    return float(value)


def probability(field: str, value: Any) -> float:
    """A finite number in [0, 1]."""
    return real(field, value, low=0.0, high=1.0)


def choice(field: str, value: Any, choices: tuple[Any, ...]) -> Any:
    """One of ``choices`` (compared with ``==``, bools never match ints)."""
    if isinstance(value, (list, dict)) or not any(
            type(value) is type(c) and value == c for c in choices):
        raise ValueError(
            f"{field} must be one of {', '.join(map(repr, choices))}, got {_short(value)}.")
    return value


def text(field: str, value: Any) -> str:
    """A non-empty string."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{field} must be a non-empty string, got {_short(value)}.")
    return value


def _items(field: str, value: Any, what: str) -> tuple:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)):
        raise ValueError(f"{field} must be a list of {what}, got {_short(value)}.")
    return tuple(value)


def int_tuple(field: str, value: Any, *, low: int = 0, high: int, min_len: int = 0,
              max_len: int | None = None, unique: bool = False) -> tuple[int, ...]:
    """A list of integers in ``[low, high]``, ``min_len`` to ``max_len`` long."""
    what = f"integers from {low} to {high}"
    items = _items(field, value, what)
    if len(items) < min_len or (max_len is not None and len(items) > max_len) or not all(
            is_int(v) and low <= v <= high for v in items):
        count = (f"{min_len} to {max_len}" if max_len is not None and max_len != min_len
                 else str(min_len) if max_len is not None else f"at least {min_len}")
        raise ValueError(f"{field} must be a list of {count} {what}, got {_short(value)}.")
    out = tuple(int(v) for v in items)
    if unique and len(set(out)) != len(out):
        dupes = sorted({v for v in out if out.count(v) > 1})
        raise ValueError(f"{field} must not repeat a value, got {dupes} more than once.")
    return out


def int_pairs(field: str, value: Any, *, high: int, max_len: int,
              distinct: bool = False) -> tuple[tuple[int, int], ...]:
    """A list of ``[a, b]`` integer pairs in ``[0, high]`` (``a != b`` with ``distinct``)."""
    what = f"[a, b] pairs of integers from 0 to {high}"
    items = _items(field, value, what)
    if len(items) > max_len:
        raise ValueError(f"{field} must have at most {max_len} rows, got {len(items)}.")
    pairs = []
    for i, row in enumerate(items):
        if (not isinstance(row, (list, tuple)) or len(row) != 2
                or not all(is_int(v) and 0 <= v <= high for v in row)):
            raise ValueError(f"{field} must be a list of {what}; row {i} is {_short(row)}.")
        if distinct and row[0] == row[1]:
            raise ValueError(f"{field} row {i} joins {row[0]} to itself; a row must join two "
                             "different values.")
        pairs.append((int(row[0]), int(row[1])))
    return tuple(pairs)


def check_keys(where: str, data: Mapping[str, Any], required: tuple[str, ...],
               optional: tuple[str, ...]) -> None:
    """Raises ValueError for missing required keys or unknown keys of ``data``;
    an unknown key names the closest valid one."""
    missing = [k for k in required if k not in data]
    if missing:
        raise ValueError(f"{where} is missing required field(s) {', '.join(map(repr, missing))}.")
    valid = required + optional
    for key in data:
        if key not in valid:
            close = difflib.get_close_matches(str(key), valid, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"{where} has an unknown field {_short(key)}.{hint} Valid fields: "
                f"{', '.join(valid) if valid else '(none)'}.")
