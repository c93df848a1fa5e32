"""The assignment solver and the similarities of edgepose.video.assignment.

The solver is checked against brute force on small matrices, and against
``scipy.optimize.linear_sum_assignment`` where SciPy is installed (it is not
a dependency). The IoU and OKS matrices are checked against plain loops
over the COCO formulas.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from edgepose.video.assignment import iou_matrix, match_by_cost, oks_matrix, solve_assignment

try:
    from scipy.optimize import linear_sum_assignment
except ImportError:  # SciPy is optional: brute force still checks the solver
    linear_sum_assignment = None

needs_scipy = pytest.mark.skipif(linear_sum_assignment is None, reason="SciPy is not installed")

# --- the assignment solver ------------------------------------------------------------------

SHAPES = [(0, 0), (0, 3), (3, 0), (1, 1), (1, 6), (6, 1), (5, 5), (4, 7), (7, 4), (12, 12),
          (20, 31), (31, 20)]


def _solve(cost, *, feasible):
    """solve_assignment(cost), which must raise its "infeasible" error
    exactly when no complete assignment avoids the +inf pairs (then None)."""
    if feasible:
        return solve_assignment(cost)
    with pytest.raises(ValueError, match="cost matrix is infeasible"):
        solve_assignment(cost)
    return None


def _total(cost, rows, cols):
    return float(np.asarray(cost, dtype=np.float64)[rows, cols].sum())


@pytest.mark.parametrize("shape", SHAPES)
@needs_scipy
def test_solve_assignment_equals_scipy_on_random_matrices(shape):
    rng = np.random.default_rng(sum(shape))
    for _ in range(20):
        cost = rng.uniform(-5, 10, shape)
        rows, cols = solve_assignment(cost)
        ref_rows, ref_cols = linear_sum_assignment(cost)
        # Continuous costs: the optimum is unique, so the pairs are identical.
        np.testing.assert_array_equal(rows, ref_rows)
        np.testing.assert_array_equal(cols, ref_cols)
        assert rows.dtype == np.intp and cols.dtype == np.intp


@pytest.mark.parametrize("shape", SHAPES)
@needs_scipy
def test_solve_assignment_with_forbidden_pairs_equals_scipy(shape):
    rng = np.random.default_rng(100 + sum(shape))
    feasible = 0
    for _ in range(40):
        cost = rng.uniform(0, 1, shape)
        cost[rng.uniform(size=shape) < 0.4] = np.inf
        try:
            ref_rows, ref_cols = linear_sum_assignment(cost)
        except ValueError:
            _solve(cost, feasible=False)
            continue
        feasible += 1
        rows, cols = _solve(cost, feasible=True)
        np.testing.assert_array_equal(rows, ref_rows)
        np.testing.assert_array_equal(cols, ref_cols)
    assert feasible > 0


@pytest.mark.parametrize("shape", [(6, 6), (5, 9), (9, 5)])
@needs_scipy
def test_solve_assignment_with_ties_reaches_scipys_optimum(shape):
    rng = np.random.default_rng(7)
    for _ in range(50):
        cost = rng.integers(0, 3, shape)            # many ties: compare totals
        rows, cols = solve_assignment(cost)
        ref = linear_sum_assignment(cost)
        assert _total(cost, rows, cols) == _total(cost, *ref)
        assert len(set(rows)) == len(rows) == len(set(cols)) == min(shape)


@needs_scipy
def test_solve_assignment_maximize_and_inputs_untouched():
    rng = np.random.default_rng(3)
    base = rng.uniform(0, 1, (9, 14))
    view = base[::2, ::3]                                # non-contiguous
    view.setflags(write=False)
    before = view.copy()
    rows, cols = solve_assignment(view, maximize=True)
    ref = linear_sum_assignment(view, maximize=True)
    np.testing.assert_array_equal(cols, ref[1])
    np.testing.assert_array_equal(view, before)
    bools = rng.uniform(size=(4, 4)) > 0.5
    assert _total(bools, *solve_assignment(bools)) == _total(bools, *linear_sum_assignment(bools))


@pytest.mark.parametrize("cost, error, message", [
    (np.array([[np.nan, 1.0]]), ValueError, "must not contain NaN or -inf"),
    (np.array([[-np.inf, 1.0]]), ValueError, "must not contain NaN or -inf"),
    (np.zeros(3), ValueError, r"cost must be a 2-D matrix \(rows, columns\), got shape \(3,\)"),
    (np.array([["a"]]), TypeError, "cost must be a numeric matrix"),
])
def test_solve_assignment_rejects_bad_input(cost, error, message):
    with pytest.raises(error, match=message):
        solve_assignment(cost)


def _brute_complete(cost):
    """The least total of a complete assignment of the smaller side, by
    trying every one; inf when every one takes a forbidden pair."""
    n, m = cost.shape
    if n > m:
        return _brute_complete(cost.T)
    return min((cost[np.arange(n), list(cols)].sum()
                for cols in itertools.permutations(range(m), n)), default=0.0)


@pytest.mark.parametrize("shape", [(1, 1), (2, 2), (3, 3), (2, 5), (5, 2), (4, 4), (3, 6), (6, 3)])
def test_solve_assignment_is_optimal_by_brute_force(shape):
    rng = np.random.default_rng(200 + 10 * shape[0] + shape[1])
    feasible = 0
    for trial in range(60):
        cost = (rng.integers(0, 4, shape) if trial % 3 == 0 else rng.uniform(-2, 5, shape))
        cost = cost.astype(np.float64)
        if trial % 2:
            cost[rng.uniform(size=shape) < 0.35] = np.inf
        best = _brute_complete(cost)
        solved = _solve(cost, feasible=bool(np.isfinite(best)))
        if solved is None:
            continue
        feasible += 1
        rows, cols = solved
        assert len(rows) == min(shape) and (np.diff(rows) > 0).all()
        assert len(set(cols.tolist())) == len(cols)
        assert _total(cost, rows, cols) == pytest.approx(best, abs=1e-12)
        if np.isfinite(cost).all():
            rows, cols = solve_assignment(cost, maximize=True)
            assert _total(cost, rows, cols) == pytest.approx(-_brute_complete(-cost), abs=1e-12)
    assert feasible > 0


def _brute_partial(cost, limit):
    n, m = cost.shape
    best = np.inf
    for k in range(min(n, m) + 1):
        for rows in itertools.combinations(range(n), k):
            for cols in itertools.permutations(range(m), k):
                c = cost[list(rows), list(cols)]
                if (c > limit).any():
                    continue
                best = min(best, c.sum() + limit / 2 * (n + m - 2 * k))
    return best


def test_match_by_cost_is_the_best_partial_matching():
    rng = np.random.default_rng(11)
    for trial in range(150):
        n, m = rng.integers(0, 5, 2)
        cost = rng.uniform(0, 1, (n, m))
        if trial % 2:
            cost[rng.uniform(size=(n, m)) < 0.3] = np.inf
        limit = float(rng.uniform(0.05, 1.0))
        rows, cols = match_by_cost(cost, limit)
        assert (cost[rows, cols] <= limit).all()
        assert len(set(rows)) == len(rows) and len(set(cols)) == len(cols)
        got = _total(cost, rows, cols) + limit / 2 * (n + m - 2 * len(rows))
        assert got == pytest.approx(_brute_partial(cost, limit), abs=1e-12)


@needs_scipy
def test_match_by_cost_against_scipy_on_larger_matrices():
    # The same "cost limit" extension solved by SciPy.
    rng = np.random.default_rng(12)
    for shape in [(15, 22), (22, 15), (30, 30)]:
        cost = rng.uniform(0, 1, shape)
        limit = 0.3
        n, m = shape
        big = np.full((n + m, m + n), 1e9)
        big[:n, :m] = np.where(cost <= limit, cost, 1e9)
        big[np.arange(n), m + np.arange(n)] = limit / 2
        big[n + np.arange(m), np.arange(m)] = limit / 2
        big[n:, m:] = 0
        r, c = linear_sum_assignment(big)
        keep = (r < n) & (c < m)
        rows, cols = match_by_cost(cost, limit)
        np.testing.assert_array_equal(rows, r[keep])
        np.testing.assert_array_equal(cols, c[keep])


def test_match_by_cost_needs_a_finite_limit():
    with pytest.raises(ValueError, match="max_cost must be finite"):
        match_by_cost(np.zeros((2, 2)), np.inf)
    rows, cols = match_by_cost(np.zeros((0, 4)), 1.0)
    assert rows.shape == cols.shape == (0,)



# --- similarities ----------------------------------------------------------------------------------

def _iou_loop(a, b):
    out = np.zeros((len(a), len(b)))
    for i, p in enumerate(a):
        for j, q in enumerate(b):
            w = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
            h = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
            union = (max(0.0, p[2] - p[0]) * max(0.0, p[3] - p[1])
                     + max(0.0, q[2] - q[0]) * max(0.0, q[3] - q[1]) - w * h)
            out[i, j] = w * h / union if union > 0 else 0.0
    return out


@pytest.mark.parametrize("p, q", [(0, 0), (0, 3), (1, 1), (4, 6)])
def test_iou_matrix_equals_the_formula(p, q):
    rng = np.random.default_rng(p * 10 + q)
    lo_a, lo_b = rng.uniform(0, 50, (p, 2)), rng.uniform(0, 50, (q, 2))
    a = np.concatenate([lo_a, lo_a + rng.uniform(0, 40, (p, 2))], axis=1)
    b = np.concatenate([lo_b, lo_b + rng.uniform(0, 40, (q, 2))], axis=1)
    if q:
        b[0] = a[0] if p else b[0]                      # identical boxes: IoU 1
        b[-1] = [5, 5, 5, 9]                            # no area
    got = iou_matrix(a, b)
    assert got.shape == (p, q)
    np.testing.assert_allclose(got, _iou_loop(a, b), rtol=1e-12, atol=1e-15)
    if p and q > 1:
        assert got[0, 0] == pytest.approx(1.0) and (got[:, -1] == 0).all()


def _oks_loop(track_kp, track_valid, area, kp, valid, sigmas):
    """COCO's OKS, the track as ground truth: mean over its valid keypoints
    of exp(-d^2 / (2 s^2 k^2)), s^2 the area, k = 2 sigma."""
    out = np.zeros((len(track_kp), len(kp)))
    for i in range(len(track_kp)):
        n = track_valid[i].sum()
        for j in range(len(kp)):
            total = 0.0
            for k in range(len(sigmas)):
                if track_valid[i, k] and valid[j, k]:
                    d2 = ((track_kp[i, k] - kp[j, k]) ** 2).sum()
                    total += np.exp(-d2 / (2 * area[i] * (2 * sigmas[k]) ** 2))
            out[i, j] = total / n if n else 0.0
    return out


@pytest.mark.parametrize("t, c", [(0, 2), (2, 0), (1, 1), (3, 4)])
def test_oks_matrix_equals_cocos_formula(t, c):
    rng = np.random.default_rng(t * 10 + c)
    k = 17
    sigmas = rng.uniform(0.025, 0.11, k)
    base = rng.uniform(0, 200, (max(t, c), k, 2))
    track_kp = base[:t]
    kp = base[:c] + rng.normal(0, 5, (c, k, 2))
    track_valid = rng.uniform(size=(t, k)) > 0.2
    valid = rng.uniform(size=(c, k)) > 0.2
    if t:
        track_valid[0] = False                           # a track with no valid keypoint: 0
    area = rng.uniform(500, 5000, t)
    got = oks_matrix(track_kp, track_valid, area, kp, valid, sigmas)
    assert got.shape == (t, c)
    np.testing.assert_allclose(got, _oks_loop(track_kp, track_valid, area, kp, valid, sigmas),
                               rtol=1e-9, atol=1e-12)
    if t and c:
        assert (got[0] == 0).all()
    if t > 1 and c > 1:
        assert got[1, 1] > 0.3                           # the same person, 5 px of noise


def test_oks_matrix_ignores_keypoints_not_found():
    # NaN keypoints (not found, marked invalid) add exactly 0, as in the loop;
    # no NaN reaches the matrix.
    rng = np.random.default_rng(11)
    k = 17
    sigmas = rng.uniform(0.025, 0.11, k)
    track_kp = rng.uniform(0, 200, (3, k, 2))
    kp = track_kp[[2, 0, 1, 1]] + rng.normal(0, 4, (4, k, 2))
    track_kp[0, :5] = np.nan
    kp[1, 3:9] = np.nan
    kp[3] = np.nan                                       # a candidate with nothing found
    track_valid = np.isfinite(track_kp).all(-1)
    valid = np.isfinite(kp).all(-1)
    area = rng.uniform(500, 5000, 3)
    got = oks_matrix(track_kp, track_valid, area, kp, valid, sigmas)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, _oks_loop(track_kp, track_valid, area, kp, valid, sigmas),
                               rtol=1e-9, atol=1e-12)
    assert (got[:, 3] == 0).all() and got[0, 1] > 0.3
