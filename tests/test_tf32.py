"""gpuconv.flags.allow_tf32: TF32 rounding (emulated backend) of the convolution GEMMs."""

from __future__ import annotations

import numpy as np
import pytest

import gpuconv
import gpuconv.functional as F
from gpuconv.backend.cuda.tf32 import round_to_tf32
from tests import reference
from tests.helpers import assert_close, assert_sums_close, conv_sum_bounds


def test_rounding_keeps_ten_mantissa_bits_to_nearest_ties_away():
    one, ulp = np.float32(1.0), 2.0**-10
    values = np.array([1 + 2**-12, 1 + 2**-11, 1 + 3 * 2**-12, -(1 + 2**-11), 3.0, 0.0, -0.0, np.inf, -np.inf],
                      dtype=np.float32)
    expected = np.array([1, 1 + ulp, 1 + ulp, -(1 + ulp), 3.0, 0.0, -0.0, np.inf, -np.inf], dtype=np.float32)
    np.testing.assert_array_equal(round_to_tf32(values), expected)
    assert np.isnan(round_to_tf32(np.array([np.nan], dtype=np.float32)))[0]
    x = np.random.default_rng(0).standard_normal(10000).astype(np.float32) * 1e3
    r = round_to_tf32(x)
    assert (r.view(np.uint32) & 0x1FFF == 0).all()
    assert np.abs(r / x - 1).max() <= 2.0**-11
    assert one == round_to_tf32(np.array([one]))[0]


CASES = [((2, 6, 9, 8), (5, 6, 3, 3), dict(padding=1)), ((2, 8, 5, 7), (6, 4, 3, 2), dict(stride=2, groups=2)),
         ((3, 16, 4, 5), (8, 16, 1, 1), dict())]


@pytest.mark.parametrize("case", CASES, ids=["3x3", "groups", "1x1"])
def test_gemm_algorithms_round_their_operands_on_the_emulated_backend(case):
    """With TF32 on, y, dx and dweight of the GEMM algorithms are the float32 results of the rounded
    operands (x, weight, dy), and differ from the full float32 results by TF32's error."""
    if gpuconv.backend.unavailable_reason("emulated"):
        pytest.skip("emulated backend unavailable")
    x_shape, w_shape, kwargs = case
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal(x_shape).astype(np.float32), rng.standard_normal(w_shape).astype(np.float32)
    g = F.conv_geometry(x_shape, w_shape, **kwargs)
    dy = rng.standard_normal((g.n, g.c_out) + g.out_size).astype(np.float32)
    args = (g.stride, g.padding, g.dilation, g.groups)
    rx, rw, rdy = (round_to_tf32(a).astype(np.float64) for a in (x, w, dy))
    want_y = reference.conv2d(rx, rw, None, *args)
    want_dx, want_dw, _ = reference.conv2d_backward(rdy, rx, rw, *args)
    exact_y = reference.conv2d(x, w, None, *args)
    sums = conv_sum_bounds(g, rx, rw, rdy)
    exact_y_sum = conv_sum_bounds(g, x, w, dy)[0]
    algos = ["im2col"] + (["gemm"] if g.is_pointwise else [])
    with gpuconv.backend("emulated"):
        for algo in algos:
            with gpuconv.flags(allow_tf32=True):
                y = F.conv2d(x, w, **kwargs, algo=algo)
                dx, dw, _ = F.conv2d_backward(dy, x, w, **kwargs, algo=algo)
            for name, actual, want, (length, magnitude) in zip(("y", "dx", "dweight"), (y, dx, dw),
                                                                (want_y, want_dx, want_dw), sums):
                assert_sums_close(actual, want, length, magnitude, np.float32, name)
            # TF32 is visibly less precise than float32 (inputs carry 10 instead of 23 bits) ...
            assert np.abs(y - exact_y).max() > 1e-4
            # ... and within its error bound: each product off by at most about 2 * 2^-11.
            assert_close(y, exact_y, rtol=0, atol=4 * 2.0**-11 * np.abs(x).max() * np.abs(w).max() * x.shape[1] * 9)
            y_off = F.conv2d(x, w, **kwargs, algo=algo)
            assert_sums_close(y_off, exact_y, *exact_y_sum, np.float32, "y without tf32")


def test_direct_float64_and_numpy_ignore_tf32(backend):
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((2, 3, 6, 7)), rng.standard_normal((4, 3, 3, 3))
    unaffected = [(np.float64, "im2col"), (np.float32, "direct")]
    if backend.name == "numpy":
        unaffected.append((np.float32, "im2col"))  # BLAS on the CPU has no TF32
    for dtype, algo in unaffected:
        X, W = gpuconv.asarray(x.astype(dtype)), gpuconv.asarray(w.astype(dtype))
        off = gpuconv.to_numpy(F.conv2d(X, W, algo=algo))
        with gpuconv.flags(allow_tf32=True):
            on = gpuconv.to_numpy(F.conv2d(X, W, algo=algo))
        np.testing.assert_array_equal(on, off)


@pytest.mark.gpu
def test_cupy_switches_cublas_to_tf32_per_call():
    """On a GPU: the TF32 results carry TF32's rounding error, float32 ones do not, and the cuBLAS
    math mode is restored after each call."""
    reason = gpuconv.backend.unavailable_reason("cupy")
    if reason is not None:
        pytest.skip(f"cupy backend unavailable: {reason}")
    from cupy_backends.cuda.libs import cublas
    rng = np.random.default_rng(3)
    x, w = rng.standard_normal((2, 64, 16, 16)), rng.standard_normal((32, 64, 3, 3))
    exact = reference.conv2d(x, w, None, (1, 1), (1, 1, 1, 1), (1, 1), 1)
    with gpuconv.backend("cupy") as be:
        X, W = be.asarray(x.astype(np.float32)), be.asarray(w.astype(np.float32))
        handle = be.xp.cuda.device.get_cublas_handle()
        mode = cublas.getMathMode(handle)
        off = gpuconv.to_numpy(F.conv2d(X, W, padding=1, algo="im2col"))
        with gpuconv.flags(allow_tf32=True):
            on = gpuconv.to_numpy(F.conv2d(X, W, padding=1, algo="im2col"))
        assert cublas.getMathMode(handle) == mode
    scale = np.abs(exact).max()
    assert np.abs(off - exact).max() / scale < 1e-5
    assert 1e-5 < np.abs(on - exact).max() / scale < 1e-2
