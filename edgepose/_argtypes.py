"""argparse ``type=`` converters shared by the command lines."""
from __future__ import annotations

import argparse

__all__ = ["positive_int", "non_negative_int"]


def _int_at_least(text: str, minimum: int) -> int:
    try:
        n = int(text)
    except ValueError:
        n = minimum - 1
    if n < minimum:
        raise argparse.ArgumentTypeError(f"expected an int >= {minimum}, got {text!r}")
    return n


def positive_int(text: str) -> int:
    """An int >= 1."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """An int >= 0."""
    return _int_at_least(text, 0)
