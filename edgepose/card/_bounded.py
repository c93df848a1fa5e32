"""Bounds on card JSON, which is untrusted input: its size, its depth, its values.

:data:`MAX_CARD_BYTES` and :data:`MAX_CARD_DEPTH` are checked on the text
before it is parsed (:func:`_check_json_size_and_depth`) and again on the
values a card is built from (:func:`_freeze`, which also makes them
read-only); :func:`_thaw` turns frozen values back into plain JSON.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

#: The largest card, in bytes of UTF-8 JSON, in any model format.
MAX_CARD_BYTES = 1 << 20
#: The deepest nesting of JSON arrays and objects in a card.
MAX_CARD_DEPTH = 32


def _freeze(where: str, value: Any, depth: int = 1) -> Any:
    """A deep immutable copy of a JSON value: mappings -> MappingProxyType, lists -> tuples.

    Raises ValueError beyond :data:`MAX_CARD_DEPTH` levels of nesting."""
    if isinstance(value, (Mapping, list, tuple)) and depth > MAX_CARD_DEPTH:
        raise ValueError(f"{where} nests deeper than {MAX_CARD_DEPTH} levels of arrays and "
                         "objects.")
    if isinstance(value, np.generic) and not isinstance(value, np.bool_):
        value = value.item()
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)  # an IntEnum becomes the plain int JSON gives back
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} must be finite (JSON has no NaN or inf), got {value}.")
        return value
    if isinstance(value, Mapping):
        frozen = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where} keys must be strings, got {key!r}.")
            frozen[key] = _freeze(f"{where}[{key!r}]", item, depth + 1)
        return MappingProxyType(frozen)
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(f"{where}[{i}]", item, depth + 1) for i, item in enumerate(value))
    raise ValueError(
        f"{where} must hold only JSON values (str, int, float, bool, None, lists, "
        f"string-keyed mappings), got {type(value).__name__}.")


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _thaw(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [_thaw(item) for item in value]
    return value


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


def _check_json_size_and_depth(text: str | bytes) -> None:
    """Rejects card text over :data:`MAX_CARD_BYTES` or nesting deeper than
    :data:`MAX_CARD_DEPTH`, before it is parsed (the parser recurses per level)."""
    size = len(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    if size > MAX_CARD_BYTES:
        raise ValueError(f"The card is {size} bytes; a card is at most {MAX_CARD_BYTES} bytes "
                         "(edgepose.card.MAX_CARD_BYTES).")
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    if deepest > MAX_CARD_DEPTH:
        raise ValueError(f"The card nests arrays and objects {deepest} levels deep; at most "
                         f"{MAX_CARD_DEPTH} are allowed (edgepose.card.MAX_CARD_DEPTH).")
