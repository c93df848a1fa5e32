"""The base of every head's parameters: ``head_params`` of the model card, typed.

A head's parameters are a frozen dataclass whose fields are the JSON keys of
``head_params``; :meth:`HeadParams.from_dict` checks the keys (an unknown key
names the closest valid one; a missing required key is named), each value's
type and range, and what depends on the rest of the card (the keypoint
count, the output roles). Every error is a ValueError naming the field
(``head_params.split_ratio``), the value and what is allowed.

Bounds that keep a hostile card from exhausting memory or time live here as
module constants (see the card's documentation for the input size bound).
"""
from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Callable, ClassVar

import numpy as np

from edgepose import _validate as v

__all__ = ["HeadParams", "KeypointHeadParams", "MAX_CHANNEL", "MAX_OFFSET_PX", "MAX_KERNEL",
           "check_kernel_in_map", "select_channels", "take_channels", "sigmoid",
           "mark_not_found"]

#: The largest output channel index a card may name.
MAX_CHANNEL = 4095
#: The largest absolute ``offset`` (input pixels) a card may give.
MAX_OFFSET_PX = 1024.0
#: The largest odd kernel (blur / refinement window) size.
MAX_KERNEL = 101
#: Bounds of a dequantization table entry (scale, zero point).
MAX_ZERO_POINT = 65535

FIELD = "head_params"


def offset(name: str, value: Any) -> float:
    return v.real(f"{FIELD}.{name}", value, low=-MAX_OFFSET_PX, high=MAX_OFFSET_PX)


def odd_kernel(name: str, value: Any, *, allow_zero: bool = False) -> int:
    k = v.integer(f"{FIELD}.{name}", value, low=0 if allow_zero else 1, high=MAX_KERNEL)
    if k != 0 and k % 2 == 0:
        raise ValueError(
            f"{FIELD}.{name} must be odd (a window centred on a pixel)"
            f"{' or 0' if allow_zero else ''}, got {k}.")
    return k


def check_kernel_in_map(name: str, kernel: int, map_hw: tuple[int, int]) -> None:
    """Decode time: a kernel must fit a map of ``map_hw`` (at most 2 * min(h, w) - 1)."""
    largest = 2 * min(map_hw) - 1
    if kernel > largest:
        raise ValueError(
            f"{FIELD}.{name} = {kernel} does not fit the model's {map_hw[0]}x{map_hw[1]} map: "
            f"it must be at most {largest}. Lower it in the card.")


def select_channels(channels: tuple[int, ...] | None, available: int) -> None:
    """Decode time: the card's ``channels`` must exist in an output of ``available`` channels."""
    if channels is not None and max(channels) >= available:
        raise ValueError(
            f"{FIELD}.channels names channel {max(channels)}, but the model's output has "
            f"{available} channels (0 to {available - 1}). Fix the card's channels.")


def _dequantize(value: Any) -> Mapping[str, tuple[float, int]]:
    name = f"{FIELD}.dequantize"
    if not isinstance(value, Mapping):
        raise ValueError(
            f"{name} must be an object of output role -> [scale, zero_point], got {value!r}.")
    table = {}
    for role, entry in value.items():
        v.text(f"{name} role", role)
        if not isinstance(entry, (list, tuple)) or len(entry) != 2:
            raise ValueError(f"{name}[{role!r}] must be [scale, zero_point], got {entry!r}.")
        scale = v.real(f"{name}[{role!r}] scale", entry[0], low=0.0, low_open=True, high=1e6)
        zero = v.integer(f"{name}[{role!r}] zero_point", entry[1], low=-MAX_ZERO_POINT,
                         high=MAX_ZERO_POINT)
        table[role] = (scale, zero)
    return MappingProxyType(table)


@dataclasses.dataclass(frozen=True, kw_only=True)
class HeadParams:
    """Parameters every head takes.

    Attributes:
        dequantize: output role -> ``(scale, zero_point)`` for integer
            outputs of conversions that dropped the quantization
            (applied by :class:`edgepose.model.LoadedModel`).
    """

    dequantize: Mapping[str, tuple[float, int]] = dataclasses.field(
        default_factory=dict, hash=False)
    #: The card's keypoint count (set by from_dict; None when unknown):
    #: decoders check that they produce this many keypoints.
    keypoint_count: int | None = dataclasses.field(
        default=None, init=False, compare=False, repr=False)

    #: Output roles the head reads: (required, optional); any other role is refused.
    OUTPUT_ROLES: ClassVar[tuple[tuple[str, ...], tuple[str, ...]]] = ((), ())
    #: Keys that must be present in head_params.
    REQUIRED: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        for name, check in self._checkers().items():
            object.__setattr__(self, name, check(name, getattr(self, name)))
        self._check_together()

    @classmethod
    def _checkers(cls) -> dict[str, Callable[[str, Any], Any]]:
        """Field name -> checker(name, value) -> coerced value."""
        return {"dequantize": lambda name, value: _dequantize(value)}

    def _check_together(self) -> None:
        """Checks that involve several fields."""

    def check_context(self, num_keypoints: int | None, roles: tuple[str, ...] | None) -> None:
        """Checks against the rest of the card: the keypoint count (None for
        detectors) and the output roles."""
        if roles is not None:
            self.check_roles(roles, required=False)

    def output_roles(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return self.OUTPUT_ROLES

    def check_roles(self, roles: tuple[str, ...], *, required: bool = True) -> None:
        """Unknown output roles fail (naming the closest); with ``required``,
        so do missing ones."""
        need, optional = self.output_roles()
        known = need + optional
        for role in roles:
            if role not in known:
                close = difflib.get_close_matches(role, known, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ValueError(
                    f"outputs has an unknown role {role!r} for this head.{hint} Roles: "
                    f"{', '.join(known) if known else '(none)'}.")
        if required:
            missing = [r for r in need if r not in roles]
            if missing:
                raise ValueError(
                    f"outputs is missing the role(s) {', '.join(map(repr, missing))} this head "
                    f"decodes; the card maps {sorted(roles)}.")

    @classmethod
    def from_dict(cls, data: Any, *, num_keypoints: int | None = None,
                  roles: tuple[str, ...] | None = None) -> HeadParams:
        """Parses and validates ``head_params``.

        Args:
            data: the JSON object.
            num_keypoints: the card's keypoint count, when it has a keypoint set.
            roles: the card's output roles, when known.

        Raises:
            ValueError: not an object, an unknown or missing key, or a value
                out of its domain (the message names ``head_params.<key>``).
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"{FIELD} must be a JSON object (a mapping), got {data!r}.")
        common = ("channels", "dequantize")
        names = tuple(f.name for f in dataclasses.fields(cls) if f.init and f.name not in common)
        names += tuple(n for n in common if n in {f.name for f in dataclasses.fields(cls)})
        v.check_keys(FIELD, data, cls.REQUIRED,
                     tuple(n for n in names if n not in cls.REQUIRED))
        params = cls(**dict(data))
        params.check_context(num_keypoints, roles)
        object.__setattr__(params, "keypoint_count", num_keypoints)
        return params


def _channels(name: str, value: Any) -> tuple[int, ...] | None:
    if value is None:
        return None
    return v.int_tuple(f"{FIELD}.{name}", value, low=0, high=MAX_CHANNEL, min_len=1,
                       max_len=MAX_CHANNEL + 1, unique=True)


@dataclasses.dataclass(frozen=True, kw_only=True)
class KeypointHeadParams(HeadParams):
    """Parameters of the top-down and single-person heads.

    Attributes:
        channels: which output channels are the keypoints, in keypoint-set
            order (one per keypoint, no repeats), or None for all in order.
    """

    channels: tuple[int, ...] | None = None

    @classmethod
    def _checkers(cls):
        return {**super()._checkers(), "channels": _channels}

    def check_context(self, num_keypoints, roles):
        super().check_context(num_keypoints, roles)
        if (self.channels is not None and num_keypoints is not None
                and len(self.channels) != num_keypoints):
            raise ValueError(
                f"{FIELD}.channels must give one channel per keypoint ({num_keypoints}), got "
                f"{len(self.channels)}.")


def take_channels(keypoints, scores, channels: tuple[int, ...] | None):
    """``(keypoints (N, C, 2), scores (N, C))`` restricted to ``channels``
    (all when None), after checking they exist."""
    if channels is None:
        return keypoints, scores
    select_channels(channels, keypoints.shape[1])
    idx = np.asarray(channels, dtype=np.intp)
    return keypoints[:, idx], scores[:, idx]


def sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


def mark_not_found(keypoints: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``(N, K, 2)`` float32 keypoints with NaN coordinates where the
    keypoint was not found: its score is not > 0 (<= 0 or NaN) or its
    location is not finite. This translates the C core's marks ((-1, -1),
    SimCC's ``-1 / split_ratio``) to the decoders' NaN; a new array."""
    kp = np.asarray(keypoints, dtype=np.float32)
    sc = np.asarray(scores, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        found = (sc > 0) & np.isfinite(sc) & np.isfinite(kp).all(axis=-1)
    return np.where(found[..., None], kp, np.float32(np.nan)).astype(np.float32)
