"""The One-Euro filter: against a scalar reference of the published algorithm,
its exact lag on a ramp, jitter and RMSE against ground truth, and time taken
from timestamps rather than frame counts."""
from __future__ import annotations

import math

import numpy as np
import pytest

from edgepose.video.smoothing import OneEuroFilter, OneEuroParams, one_euro_step


class ReferenceOneEuro:
    """One scalar signal, as the authors' reference implementation
    (Casiez and Roussel, OneEuroFilter.cc): the derivative is taken from the
    previous raw value, the first sample passes through."""

    def __init__(self, min_cutoff: float, beta: float, d_cutoff: float) -> None:
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.x_raw = self.x_hat = self.dx_hat = self.t = None

    @staticmethod
    def alpha(cutoff: float, te: float) -> float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / te)

    def __call__(self, x: float, t: float) -> float:
        if self.t is None:
            self.x_raw, self.x_hat, self.dx_hat, self.t = x, x, 0.0, t
            return x
        te = t - self.t
        dx = (x - self.x_raw) / te
        a_d = self.alpha(self.d_cutoff, te)
        self.dx_hat = a_d * dx + (1 - a_d) * self.dx_hat
        cutoff = self.min_cutoff + self.beta * abs(self.dx_hat)
        a = self.alpha(cutoff, te)
        self.x_hat = a * x + (1 - a) * self.x_hat
        self.x_raw, self.t = x, t
        return self.x_hat


def _run(params, points, times, valid=None):
    f = OneEuroFilter(params)
    if valid is None:
        return np.array([f(p, t) for p, t in zip(points, times)])
    return np.array([f(p, t, valid=v) for p, t, v in zip(points, times, valid)])


def _rmse(a, b):
    return float(np.sqrt(((a - b) ** 2).sum(axis=-1).mean()))


# --- parameters ------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"min_cutoff": 0.0}, "min_cutoff must be a positive frequency in Hz, got 0.0"),
    ({"d_cutoff": -1.0}, "d_cutoff must be a positive frequency in Hz"),
    ({"beta": -0.1}, r"beta must be >= 0 \(1/px\)"),
    ({"min_cutoff": float("nan")}, "min_cutoff must be finite"),
    ({"beta": float("inf")}, "beta must be finite"),
])
def test_params_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        OneEuroParams(**kwargs)


def test_params_must_be_numbers():
    with pytest.raises(TypeError, match="beta must be a number, got str"):
        OneEuroParams(beta="0.1")
    with pytest.raises(TypeError, match="params must be a OneEuroParams"):
        OneEuroFilter({"beta": 0.1})


# --- the algorithm -------------------------------------------------------------------

@pytest.mark.parametrize("params", [OneEuroParams(), OneEuroParams(0.3, 0.2, 2.0),
                                    OneEuroParams(2.0, 0.0, 0.5)])
def test_matches_the_scalar_reference_for_motion_along_one_axis(params):
    # Moving along x only, the speed norm is |dx|: the 2D filter must equal
    # the published scalar filter on x (and leave y alone).
    rng = np.random.default_rng(0)
    times = np.cumsum(rng.uniform(0.01, 0.06, 200))            # irregular frame times
    xs = np.cumsum(rng.normal(0, 4, 200)) + 100
    ref = ReferenceOneEuro(params.min_cutoff, params.beta, params.d_cutoff)
    expected = np.array([ref(x, t) for x, t in zip(xs, times)])
    points = np.stack([xs, np.full_like(xs, 7.0)], axis=1)
    got = _run(params, points, times)
    np.testing.assert_allclose(got[:, 0], expected, rtol=0, atol=1e-9)
    np.testing.assert_allclose(got[:, 1], 7.0, rtol=0, atol=1e-12)


def test_two_dimensional_step_uses_the_speed_norm():
    p = OneEuroParams(1.0, 0.1, 1.0)
    x = np.array([[13.0, 24.0]])
    prev_raw, prev_hat, prev_dx, dt = np.array([[10.0, 20.0]]), np.array([[9.0, 19.0]]), \
        np.array([[50.0, -20.0]]), 0.04
    a_d = 1 / (1 + 1 / (2 * math.pi * p.d_cutoff) / dt)
    dx = a_d * (x - prev_raw) / dt + (1 - a_d) * prev_dx
    cutoff = p.min_cutoff + p.beta * np.hypot(*dx[0])
    a = 1 / (1 + 1 / (2 * math.pi * cutoff) / dt)
    x_hat, dx_hat = one_euro_step(x, prev_raw, prev_hat, prev_dx, dt, p)
    np.testing.assert_allclose(dx_hat, dx, rtol=1e-12)
    np.testing.assert_allclose(x_hat, a * x + (1 - a) * prev_hat, rtol=1e-12)


def test_vectorized_over_people_and_keypoints_equals_one_filter_per_point():
    rng = np.random.default_rng(1)
    times = np.arange(50) / 30.0
    points = rng.normal(100, 10, (50, 3, 17, 2))
    together = _run(OneEuroParams(), points, times)
    for n in (0, 2):
        for k in (0, 5, 16):
            alone = _run(OneEuroParams(), points[:, n, k], times)
            np.testing.assert_allclose(together[:, n, k], alone, rtol=0, atol=1e-12)


def test_step_checks_its_inputs():
    p = OneEuroParams()
    z = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 2\)"):
        one_euro_step(np.zeros((3, 3)), z, z, z, 0.1, p)
    with pytest.raises(ValueError, match="must have the shape of x"):
        one_euro_step(z, np.zeros((2, 2)), z, z, 0.1, p)
    with pytest.raises(ValueError, match="dt_s must be positive and finite"):
        one_euro_step(z, z, z, z, 0.0, p)


def test_inputs_are_not_modified():
    x, raw, hat, dx = (np.ones((4, 2)) * v for v in (3.0, 1.0, 2.0, 5.0))
    x.setflags(write=False)
    copies = [a.copy() for a in (x, raw, hat, dx)]
    one_euro_step(x, raw, hat, dx, np.full(4, 0.03), OneEuroParams())
    for a, c in zip((x, raw, hat, dx), copies):
        np.testing.assert_array_equal(a, c)


# --- lag, jitter, accuracy ----------------------------------------------------------------

@pytest.mark.parametrize("fps", [15, 30, 60])
@pytest.mark.parametrize("speed", [30.0, 300.0, 3000.0])
def test_ramp_lag_is_the_stated_bound_at_any_frame_rate(fps, speed):
    # On a constant-velocity ramp the filter settles to a lag of exactly
    # v / (2 pi (min_cutoff + beta v)) px, whatever the frame rate (time comes
    # from the timestamps), and below 1 / (2 pi beta) = 3.18 px at the default
    # beta = 0.05 at any speed: 2.98 px at 300 px/s.
    params = OneEuroParams()
    times = np.arange(0, 4, 1 / fps)
    points = np.stack([speed * times, np.zeros_like(times)], axis=1)
    lag = points[-1, 0] - _run(params, points, times)[-1, 0]
    assert lag == pytest.approx(params.lag_bound_px(speed), rel=1e-6)
    assert lag < 1 / (2 * math.pi * params.beta) < 3.2


def test_lag_depends_on_time_not_on_frame_count():
    # The same motion sampled at 30 fps, and with two of every three frames
    # dropped: the smoothed positions agree at the common times.
    params = OneEuroParams(min_cutoff=1.0, beta=0.02)
    t = np.arange(0, 3, 1 / 30)
    points = np.stack([200 + 80 * np.sin(2 * np.pi * 0.5 * t), 100 + 40 * t], axis=1)
    full = _run(params, points, t)
    sparse = _run(params, points[::3], t[::3])
    assert np.abs(full[::3][10:] - sparse[10:]).max() < 2.0
    # A filter counting frames instead (dt fixed at 1/30 s) would lag three
    # times as far on the sparse stream.
    fixed = _run(params, points[::3], np.arange(len(t[::3])) / 30)
    assert np.abs(full[::3][10:] - fixed[10:]).max() > 3 * np.abs(full[::3][10:] - sparse[10:]).max()


def test_still_point_jitter_drops_below_half():
    # Ground truth still, observations with 2 px noise (per axis) at 30 fps:
    # RMSE to the truth drops from 2.8 px to about 1.2 px at the defaults.
    rng = np.random.default_rng(2)
    t = np.arange(0, 10, 1 / 30)
    truth = np.full((len(t), 17, 2), 200.0)
    noisy = truth + rng.normal(0, 2.0, truth.shape)
    smooth = _run(OneEuroParams(), noisy, t)
    assert _rmse(smooth[30:], truth[30:]) < 0.5 * _rmse(noisy[30:], truth[30:])


def test_squat_like_motion_rmse_and_jitter_drop():
    # Keypoints moving 60 px up and down at 0.25 Hz (a slow squat), observed
    # with 3 px noise per axis: RMSE to the truth drops by more than 30 %
    # (4.2 -> 2.6 px) and frame-to-frame jitter (the RMS second difference)
    # by more than 3x, lag included.
    rng = np.random.default_rng(3)
    t = np.arange(0, 10, 1 / 30)
    truth = np.stack([np.full_like(t, 320.0), 240 + 30 * np.sin(2 * np.pi * 0.25 * t)], axis=1)
    truth = np.repeat(truth[:, None], 17, axis=1)
    noisy = truth + rng.normal(0, 3.0, truth.shape)
    smooth = _run(OneEuroParams(), noisy, t)
    assert _rmse(smooth[30:], truth[30:]) < 0.7 * _rmse(noisy[30:], truth[30:])
    jitter = lambda a: float(np.sqrt((np.diff(a, 2, axis=0) ** 2).sum(axis=-1).mean()))  # noqa: E731
    assert jitter(smooth) < jitter(noisy) / 3


# --- state --------------------------------------------------------------------------------

def test_first_sample_passes_through_and_invalid_points_restart():
    f = OneEuroFilter(OneEuroParams())
    a = np.array([[10.0, 10.0], [50.0, 50.0]])
    np.testing.assert_array_equal(f(a, 0.0), a)
    out = f(a + 5, 0.033)
    assert (out < a + 5).all() and (out > a).all()           # smoothed
    # Point 1 goes missing: passed through as it is, then starts afresh.
    missing = np.array([[15.0, 15.0], [-1.0, -1.0]])
    out = f(missing, 0.066, valid=[True, False])
    np.testing.assert_array_equal(out[1], [-1.0, -1.0])
    back = np.array([[15.0, 15.0], [90.0, 90.0]])
    np.testing.assert_array_equal(f(back, 0.1)[1], [90.0, 90.0])
    # NaN is never smoothed into the state.
    out = f(np.array([[np.nan, 15.0], [91.0, 91.0]]), 0.133)
    assert np.isnan(out[0, 0]) and np.isfinite(f(back, 0.166)).all()


def test_time_must_increase_and_reset_forgets():
    f = OneEuroFilter()
    f(np.zeros((1, 2)), 1.0)
    with pytest.raises(ValueError, match="t_s must increase: got 1.0 after 1.0"):
        f(np.zeros((1, 2)), 1.0)
    f.reset()
    np.testing.assert_array_equal(f(np.full((1, 2), 9.0), 0.5), [[9.0, 9.0]])
    with pytest.raises(ValueError, match="valid must have shape"):
        f(np.zeros((1, 2)), 0.6, valid=[True, True])


def test_a_keypoint_not_found_passes_through_and_restarts_without_touching_the_others():
    # Point 1 is NaN (not found) in frames 3-5: it comes out NaN, its filter
    # restarts when it is back (that sample is passed through as it is), and
    # point 0 is filtered exactly as by a filter of its own (NumPy reference:
    # the same filter on point 0 alone).
    rng = np.random.default_rng(8)
    pts = np.cumsum(rng.normal(0, 3, (10, 2, 2)), axis=0) + 100
    pts[3:6, 1] = np.nan
    pts[7, 1, 1] = np.nan                                # one coordinate is enough
    both, alone = OneEuroFilter(OneEuroParams()), OneEuroFilter(OneEuroParams())
    for f in range(10):
        t = f / 30
        out = both(pts[f], t)
        np.testing.assert_array_equal(out[0], alone(pts[f][:1], t)[0])
        if f in (3, 4, 5, 7):
            assert np.isnan(out[1]).any() and np.isnan(out[1]).tolist() == np.isnan(pts[f, 1]).tolist()
        if f in (6, 8, 0):                               # back (or first): passed through
            np.testing.assert_array_equal(out[1], pts[f, 1])
        if f in (1, 2, 9):                               # filtered
            assert np.isfinite(out[1]).all() and (out[1] != pts[f, 1]).any()
