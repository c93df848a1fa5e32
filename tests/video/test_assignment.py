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


def _total(cost, rows, cols):
    return float(np.asarray(cost, dtype=np.float64)[rows, cols].sum())


@pytest.mark.parametrize("shape", SHAPES)
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
def test_solve_assignment_with_forbidden_pairs_equals_scipy(shape):
    rng = np.random.default_rng(100 + sum(shape))
    feasible = infeasible = 0
    for _ in range(40):
        cost = rng.uniform(0, 1, shape)
        cost[rng.uniform(size=shape) < 0.4] = np.inf
        try:
            ref_rows, ref_cols = linear_sum_assignment(cost)
        except ValueError:
            infeasible += 1
            with pytest.raises(ValueError, match="cost matrix is infeasible"):
                solve_assignment(cost)
            continue
        feasible += 1
        rows, cols = solve_assignment(cost)
        np.testing.assert_array_equal(rows, ref_rows)
        np.testing.assert_array_equal(cols, ref_cols)
    assert feasible > 0


@pytest.mark.parametrize("shape", [(6, 6), (5, 9), (9, 5)])
def test_solve_assignment_with_ties_reaches_scipys_optimum(shape):
    rng = np.random.default_rng(7)
    for _ in range(50):
        cost = rng.integers(0, 3, shape)            # many ties: compare totals
        rows, cols = solve_assignment(cost)
        ref = linear_sum_assignment(cost)
        assert _total(cost, rows, cols) == _total(cost, *ref)
        assert len(set(rows)) == len(rows) == len(set(cols)) == min(shape)


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

