"""Keypoint smoothing for video: the One-Euro filter.

The One-Euro filter (Casiez, Roussel and Vogel, "1 Euro Filter: A Simple
Speed-based Low-pass Filter for Noisy Input in Interactive Systems", CHI 2012)
is a first-order low-pass filter whose cutoff frequency rises with the
signal's speed: slow movements are smoothed hard (little jitter), fast ones
lightly (little lag). Per step, with ``dt`` the time since the previous
sample in seconds::

    alpha(fc) = 1 / (1 + tau / dt),   tau = 1 / (2 pi fc)
    dx      = (x - x_prev) / dt                              # px/s, raw samples
    dx_hat  = alpha(d_cutoff) * dx + (1 - alpha(d_cutoff)) * dx_hat_prev
    fc      = min_cutoff + beta * |dx_hat|
    x_hat   = alpha(fc) * x + (1 - alpha(fc)) * x_hat_prev

The speed is the difference of the raw samples, as in the authors' reference
implementation (``OneEuroFilter.cc``, Casiez and Roussel). Here a sample is a
2D point, and ``|dx_hat|`` is its speed (the norm over x and y), so both
coordinates of a keypoint share one cutoff and the filter does not depend on
the direction of motion. Positions are pixels, so ``beta`` is in 1/px (Hz
per px/s) and depends on the video's resolution.

Lag, exactly: on a point moving at constant speed ``v`` px/s the filter
settles to a lag of ``v / (2 pi (min_cutoff + beta v))`` px behind the
input, which is below ``1 / (2 pi beta)`` px at any speed (3.2 px at the
default ``beta = 0.05``). Jitter: at rest the cutoff falls towards
``min_cutoff`` Hz (the noise itself raises it a little through the speed
estimate); with 2 px of noise on a still point at 30 fps the defaults cut
the error to about 0.4 of the raw one.

Time comes from frame timestamps, not frame counts: cutoffs are in hertz and
the lag is the same at 15, 30 or 60 fps, and with dropped frames.

:func:`one_euro_step` is the vectorized update (any number of people and
keypoints in one call); :class:`OneEuroFilter` keeps the state of one stream
of ``(..., 2)`` points. :class:`edgepose.video.PoseTracker` smooths each
track's keypoints with it (``smoothing=OneEuroParams(...)``) and restarts a
track's filter when the track is lost.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from edgepose._validate import is_real
from edgepose.results import found_mask

__all__ = ["OneEuroParams", "OneEuroFilter", "one_euro_step"]


@dataclass(frozen=True)
class OneEuroParams:
    """Parameters of the One-Euro filter.

    Attributes:
        min_cutoff: cutoff frequency (Hz) of a still point; lower is smoother
            at rest.
        beta: speed coefficient (1/px): the cutoff rises by ``beta`` Hz per
            px/s of speed; higher lags less when moving. The steady lag on a
            constant-speed point is below ``1 / (2 pi beta)`` px.
        d_cutoff: cutoff frequency (Hz) of the speed estimate.

    Raises:
        ValueError: a non-finite value, ``min_cutoff`` or ``d_cutoff`` not
            positive, or a negative ``beta``.
    """

    min_cutoff: float = 1.0
    beta: float = 0.05
    d_cutoff: float = 1.0

    def __post_init__(self) -> None:
        for name in ("min_cutoff", "beta", "d_cutoff"):
            value = getattr(self, name)
            if not is_real(value):
                raise TypeError(f"{name} must be a number, got {type(value).__name__}.")
            value = float(value)
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value}.")
            object.__setattr__(self, name, value)
        if self.min_cutoff <= 0:
            raise ValueError(f"min_cutoff must be a positive frequency in Hz, got {self.min_cutoff}.")
        if self.d_cutoff <= 0:
            raise ValueError(f"d_cutoff must be a positive frequency in Hz, got {self.d_cutoff}.")
        if self.beta < 0:
            raise ValueError(f"beta must be >= 0 (1/px), got {self.beta}.")

    def lag_bound_px(self, speed_px_s: float) -> float:
        """The steady-state lag (px) on a point moving at ``speed_px_s``:
        ``v / (2 pi (min_cutoff + beta v))``."""
        v = abs(float(speed_px_s))
        return v / (2.0 * math.pi * (self.min_cutoff + self.beta * v))


def _alpha(cutoff_hz: np.ndarray | float, dt_s: np.ndarray) -> np.ndarray:
    tau = 1.0 / (2.0 * np.pi * cutoff_hz)
    return 1.0 / (1.0 + tau / dt_s)


def one_euro_step(
    x: ArrayLike,
    prev_raw: ArrayLike,
    prev_hat: ArrayLike,
    prev_dx: ArrayLike,
    dt_s: ArrayLike,
    params: OneEuroParams,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """One One-Euro update of many 2D points at once.

    Args:
        x: ``(..., 2)`` new raw points (pixels).
        prev_raw: ``(..., 2)`` the previous raw points.
        prev_hat: ``(..., 2)`` the previous filtered points.
        prev_dx: ``(..., 2)`` the previous filtered velocities (px/s).
        dt_s: seconds since the previous sample, > 0; any shape that
            broadcasts against ``x[..., 0]`` (a scalar, or ``(N, 1)`` for
            ``(N, K, 2)`` points).
        params: the filter parameters.

    Returns:
        ``(x_hat, dx_hat)``: the filtered points and velocities, float64
        ``(..., 2)``, new arrays.

    Raises:
        ValueError: points that do not end in 2 or disagree in shape, or a
            ``dt_s`` that is not positive and finite.
    """
    xa = np.asarray(x, dtype=np.float64)
    xr = np.asarray(prev_raw, dtype=np.float64)
    xp = np.asarray(prev_hat, dtype=np.float64)
    dp = np.asarray(prev_dx, dtype=np.float64)
    if xa.ndim < 1 or xa.shape[-1] != 2:
        raise ValueError(f"x must have shape (..., 2) as (x, y), got {xa.shape}.")
    if not xr.shape == xp.shape == dp.shape == xa.shape:
        raise ValueError(f"prev_raw, prev_hat and prev_dx must have the shape of x {xa.shape}, "
                         f"got {xr.shape}, {xp.shape} and {dp.shape}.")
    dt = np.asarray(dt_s, dtype=np.float64)
    if not (np.isfinite(dt).all() and (dt > 0).all()):
        raise ValueError("dt_s must be positive and finite (seconds since the previous sample).")
    return _step(xa, xr, xp, dp, dt, params)


def _step(x: np.ndarray, prev_raw: np.ndarray, prev_hat: np.ndarray, prev_dx: np.ndarray,
          dt_s: np.ndarray, params: OneEuroParams) -> tuple[np.ndarray, np.ndarray]:
    """:func:`one_euro_step` on float64 arrays already checked."""
    dt = dt_s[..., None]  # broadcast over (x, y)
    a_d = _alpha(params.d_cutoff, dt)
    dx = (x - prev_raw) / dt
    dx_hat = a_d * dx + (1.0 - a_d) * prev_dx
    speed = np.sqrt((dx_hat ** 2).sum(axis=-1, keepdims=True))
    a = _alpha(params.min_cutoff + params.beta * speed, dt)
    x_hat = a * x + (1.0 - a) * prev_hat
    return x_hat, dx_hat


class OneEuroFilter:
    """A One-Euro filter over one stream of ``(..., 2)`` points (e.g. the
    ``(K, 2)`` keypoints of one person, or ``(N, K, 2)`` of a fixed group).

    Each point has its own state. A point that was not found (NaN
    coordinates, :func:`edgepose.results.found_mask`) or is marked not
    ``valid`` is passed through unfiltered (a NaN point stays NaN; no NaN
    enters the state or another point) and its state is cleared, so the
    filter restarts from its next valid sample instead of dragging it
    towards a stale position. The first sample of a point is
    returned as it is.

    Args:
        params: the filter parameters (default :class:`OneEuroParams`).

    Example::

        f = OneEuroFilter(OneEuroParams(min_cutoff=1.0, beta=0.05))
        for keypoints, t_ms in stream:           # (K, 2) pixels, milliseconds
            smooth = f(keypoints, t_ms / 1000)
    """

    def __init__(self, params: OneEuroParams | None = None) -> None:
        self.params = OneEuroParams() if params is None else params
        if not isinstance(self.params, OneEuroParams):
            raise TypeError(f"params must be a OneEuroParams, got {type(self.params).__name__}.")
        self.reset()

    def reset(self) -> None:
        """Forgets every point's state."""
        self._raw: np.ndarray | None = None
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._ready: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, x: ArrayLike, t_s: float, *, valid: ArrayLike | None = None) -> NDArray[np.float64]:
        """Filters one sample.

        Args:
            x: ``(..., 2)`` points in pixels; the same shape every call
                (a new shape restarts the filter).
            t_s: the sample's time in seconds, increasing.
            valid: optional ``(...)`` bool, False for points to pass through
                and restart (default: every point that was found is valid).

        Returns:
            ``(..., 2)`` float64 filtered points (a new array).

        Raises:
            ValueError: a time that does not increase, or shapes that disagree.
        """
        xa = np.asarray(x, dtype=np.float64)
        if xa.ndim < 1 or xa.shape[-1] != 2:
            raise ValueError(f"x must have shape (..., 2) as (x, y), got {xa.shape}.")
        ok = found_mask(xa)
        if valid is not None:
            v = np.asarray(valid, dtype=bool)
            if v.shape != xa.shape[:-1]:
                raise ValueError(f"valid must have shape {xa.shape[:-1]}, got {v.shape}.")
            ok &= v
        t = float(t_s)
        if not math.isfinite(t):
            raise ValueError(f"t_s must be finite, got {t_s}.")
        if self._x is None or self._x.shape != xa.shape:
            self._raw = np.zeros_like(xa)
            self._x = np.zeros_like(xa)
            self._dx = np.zeros_like(xa)
            self._ready = np.zeros(xa.shape[:-1], bool)
        elif self._t is not None and t <= self._t:
            raise ValueError(f"t_s must increase: got {t} after {self._t}.")
        run = ok & self._ready
        if run.any():
            ready = self._ready[..., None]
            x_hat, dx_hat = _step(xa, np.where(ready, self._raw, xa), np.where(ready, self._x, xa),
                                  np.where(ready, self._dx, 0.0), np.asarray(t - self._t),
                                  self.params)
            out = np.where(run[..., None], x_hat, xa)
            self._dx = np.where(run[..., None], dx_hat, 0.0)
        else:  # every point starts (again): passed through
            out = xa.copy()
            self._dx = np.zeros_like(xa)
        self._raw = np.where(ok[..., None], xa, 0.0)
        self._x = np.where(ok[..., None], out, 0.0)
        self._ready = ok
        self._t = t
        return out
