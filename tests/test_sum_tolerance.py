"""tests.helpers.sum_tolerance and assert_sums_close: the bound holds for sums in different orders
and rejects what exceeds it."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import assert_sums_close, sum_tolerance


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sums_in_different_orders_stay_within_the_bound(dtype):
    rng = np.random.default_rng(0)
    length = 4096
    a, b = rng.standard_normal((64, length)).astype(dtype), rng.standard_normal(length).astype(dtype)
    forward = np.array([np.add.reduce(row * b) for row in a])          # numpy's pairwise order
    sequential = np.array([_sequential_sum(row * b) for row in a], dtype)  # one term at a time
    blocked = sum(a[:, i:i + 256] @ b[i:i + 256] for i in range(0, length, 256))  # BLAS per block
    magnitude = np.abs(a).astype(np.float64) @ np.abs(b)
    exact = a.astype(np.float64) @ b
    for result in (forward, sequential, blocked):
        assert_sums_close(result, exact, length, magnitude, dtype)
    assert_sums_close(sequential, blocked, length, magnitude, dtype)


def _sequential_sum(terms):
    total = terms.dtype.type(0)
    for t in terms:
        total = total + t
    return total


def test_a_difference_beyond_the_bound_or_nan_fails():
    bound = sum_tolerance(10, 1.0, np.float32)
    assert bound == pytest.approx(11 * np.finfo(np.float32).eps)
    assert_sums_close(np.float32([1.0]), np.float64([1.0]) + bound, 10, 1.0, np.float32)
    with pytest.raises(AssertionError, match=r"y\[1\].*float32 sum of 10 terms"):
        assert_sums_close(np.float32([1.0, 2.0]), np.float64([1.0, 2.0]) + [0, 2 * bound], 10, 1.0, np.float32, "y")
    with pytest.raises(AssertionError):
        assert_sums_close(np.float32([np.nan]), np.float64([1.0]), 10, 1.0, np.float32)
    with pytest.raises(AssertionError, match="shape"):
        assert_sums_close(np.zeros(2), np.zeros(3), 10, 1.0, np.float32)
