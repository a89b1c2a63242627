"""Windowed GeM on the tiled kernels (gem_forward_v2, gem_backward_coef_v2): against the float64
references in tests/reference.py on numpy and emulated, bit for bit against v1 where the math
promises it (y, dx), finite differences of dx and dp, and race checks on the emulator."""

from __future__ import annotations

import numpy as np
import pytest

import gpuconv
import gpuconv.functional as F
from gpuconv.backend.cuda import pool as pool_launch

from tests import reference
from tests.helpers import (assert_close, assert_schedule_independent, gem_finite_difference_check,
                           set_pool_launch_limits, tiled_and_untiled)

# Tile settings as in test_pool.py: the default (whole planes, several per block), small tiles
# (several tiles per plane, partial tiles at the edges, one output per thread), and a plane-group
# grid smaller than the planes (grid.y strides, so a block accumulates dp over several groups).
TILE_SETTINGS = {
    "default": {},
    "small-tiles": dict(TILE_OUTPUTS=24, MIN_TILE_OUTPUTS=24, TILE_WIDTH=5),
    "strided-planes": dict(TILE_OUTPUTS=64, MIN_TILE_OUTPUTS=64, TILE_WIDTH=8, MAX_GRID_Y=2),
}


def windowed_config(rng, max_size: int = 40):
    """(shape, kernel_size, stride) of a windowed GeM (more than one output per plane) on planes up
    to max_size x max_size with odd sizes and strides 1..4, non-square windows included."""
    while True:
        shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(2, max_size + 1)),
                 int(rng.integers(2, max_size + 1)))
        k = (int(rng.integers(1, min(shape[2], 6) + 1)), int(rng.integers(1, min(shape[3], 6) + 1)))
        s = (int(rng.integers(1, 5)), int(rng.integers(1, 5)))
        out = ((shape[2] - k[0]) // s[0] + 1, (shape[3] - k[1]) // s[1] + 1)
        if out != (1, 1):
            return shape, k, s


def gem_inputs(rng, shape, dtype):
    # Mostly positive; about one in ten below eps, to exercise the clamp.
    return rng.uniform(-0.2, 2.0, shape).astype(dtype)


class KernelSpy:
    """Records the names of the pool.cu entry points the current backend looks up."""

    def __init__(self, monkeypatch):
        self.names: list[str] = []
        be = gpuconv.get_backend()
        original = be.kernel

        def kernel(filename, op, dtype, defines=None):
            self.names.append(op)
            return original(filename, op, dtype, defines)

        monkeypatch.setattr(be, "kernel", kernel)
        be.__dict__.pop("_pool_plans", None)  # cached plans would skip the lookup


@pytest.mark.parametrize("settings", ["default", "small-tiles"])
def test_windowed_gem_matches_reference(backend, dtype, rng, monkeypatch, settings):
    """y, dx and dp of windowed GeM against the float64 reference, p a float or a learnable (1,)
    array, eps tiny or large enough to clamp many inputs."""
    set_pool_launch_limits(monkeypatch, TILE_SETTINGS[settings])
    tol = {} if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)
    for _ in range(8):
        shape, k, s = windowed_config(rng, 24)
        x = gem_inputs(rng, shape, dtype)
        p = float(rng.uniform(0.5, 6.0))
        eps = 1e-6 if rng.integers(0, 2) else 0.05
        p_arg = p if rng.integers(0, 2) else gpuconv.asarray(np.array([p], dtype=dtype))
        p_used = float(np.asarray(p, dtype=dtype))
        y = F.gem(gpuconv.asarray(x), p_arg, eps, k, s)
        ref_y = reference.gem(x, p_used, eps, k, s)
        assert_close(y, ref_y, dtype, **tol)
        dy = rng.standard_normal(ref_y.shape).astype(dtype)
        dx, dp = F.gem_backward(gpuconv.asarray(dy), gpuconv.asarray(x), p_arg, eps, k, s)
        ref_dx, ref_dp = reference.gem_backward(dy, x, p_used, eps, k, s)
        assert_close(dx, ref_dx, dtype, **tol)
        assert gpuconv.to_numpy(dp).dtype == dtype
        assert_close(dp, ref_dp, dtype, **(dict(rtol=1e-4, atol=1e-4) if tol else dict(rtol=1e-9, atol=1e-10)))


@pytest.mark.parametrize("settings", list(TILE_SETTINGS))
def test_tiled_gem_matches_v1(dtype, rng, monkeypatch, settings):
    """On the emulated backend v2 gives v1's y and dx bit for bit (the same window arithmetic in the
    same order; v1 a thread per output, as v2), and dp to rounding (summed per tile instead of per
    thread stride); both agree with the reference; v2 really ran and v1 really ran."""
    set_pool_launch_limits(monkeypatch, TILE_SETTINGS[settings])
    monkeypatch.setattr(pool_launch, "WARP_MIN_WINDOW", 10**9)  # v1 a thread per output, as v2
    with gpuconv.backend("emulated"):
        spy = KernelSpy(monkeypatch)
        for _ in range(10):
            shape, k, s = windowed_config(rng)
            x = gem_inputs(rng, shape, dtype)
            p = gpuconv.asarray(np.array([rng.uniform(0.5, 6.0)], dtype=dtype))
            dy = rng.standard_normal(((shape[2] - k[0]) // s[0] + 1, (shape[3] - k[1]) // s[1] + 1)).astype(dtype)
            dy = np.broadcast_to(dy, (*shape[:2], *dy.shape)).copy() * rng.uniform(0.5, 1.5, (*shape[:2], 1, 1))
            dy = dy.astype(dtype)

            def run():
                return tuple(gpuconv.to_numpy(a)
                             for a in (F.gem(x, p, 1e-6, k, s), *F.gem_backward(dy, x, p, 1e-6, k, s)))

            spy.names.clear()
            (y, dx, dp), (y1, dx1, dp1) = tiled_and_untiled(monkeypatch, run)
            assert spy.names.count("gem_forward_v2") == 1 and spy.names.count("gem_forward") == 1
            assert spy.names.count("gem_backward_coef_v2") == 1 and spy.names.count("gem_backward_coef") == 1
            np.testing.assert_array_equal(y, y1)
            np.testing.assert_array_equal(dx, dx1)
            tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
            assert_close(dp, dp1, dtype, **tol)
            p_used = float(gpuconv.to_numpy(p)[0])
            ref_dx, ref_dp = reference.gem_backward(dy, x, p_used, 1e-6, k, s)
            assert_close(y, reference.gem(x, p_used, 1e-6, k, s), dtype, rtol=1e-4 if dtype == np.float32 else 1e-9)
            assert_close(dp, ref_dp, dtype, **tol)


def test_global_gem_keeps_v1_and_large_windows_use_v2(rng, monkeypatch):
    """One window per plane stays on v1's warp-per-output path; a large window (beyond
    WARP_MIN_WINDOW) with several outputs takes v2 and agrees with v1's warp path to rounding."""
    with gpuconv.backend("emulated"):
        spy = KernelSpy(monkeypatch)
        x = rng.uniform(0.0, 2.0, (2, 3, 11, 9))
        F.gem(x, 3.0)
        F.gem_backward(np.ones((2, 3, 1, 1)), x, 3.0)
        assert "gem_forward_v2" not in spy.names and "gem_backward_coef_v2" not in spy.names
        spy.names.clear()
        dy = np.ones((2, 3, 4, 2))

        def run():
            return tuple(gpuconv.to_numpy(a) for a in (F.gem(x, 3.0, 1e-6, (5, 4), (2, 3)),
                                                        *F.gem_backward(dy, x, 3.0, 1e-6, (5, 4), (2, 3))))

        (y, dx, dp), (y1, dx1, dp1) = tiled_and_untiled(monkeypatch, run)
        assert "gem_forward_v2" in spy.names and "gem_backward_coef_v2" in spy.names
        for a, b in ((y, y1), (dx, dx1), (dp, dp1)):
            assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_tiled_gem_large_p_and_zeros(dtype, rng, monkeypatch):
    """The window maximum is factored out in v2 as in v1: p = 50 on inputs up to 10 stays finite in
    float32, and windows of zeros give y = eps, dx = 0, dp = 0."""
    set_pool_launch_limits(monkeypatch, TILE_SETTINGS["small-tiles"])
    with gpuconv.backend("emulated"):
        x = rng.uniform(0.0, 10.0, (2, 2, 9, 12)).astype(dtype)
        x[1] = 0.0
        y = gpuconv.to_numpy(F.gem(x, 50.0, 1e-6, 3, 2))
        assert np.isfinite(y).all()
        assert_close(y[0], reference.gem(x[:1], 50.0, 1e-6, (3, 3), (2, 2))[0], dtype, rtol=1e-4)
        np.testing.assert_array_equal(y[1], np.full_like(y[1], np.dtype(dtype).type(1e-6)))
        dy = np.zeros(y.shape, dtype)
        dy[1] = 1.0
        dx, dp = F.gem_backward(dy, x, 50.0, 1e-6, 3, 2)
        assert not gpuconv.to_numpy(dx).any() and gpuconv.to_numpy(dp)[0] == 0.0


@pytest.mark.parametrize("settings", ["default", "small-tiles"])
def test_tiled_gem_finite_differences(backend, rng, monkeypatch, settings):
    set_pool_launch_limits(monkeypatch, TILE_SETTINGS[settings])
    for kernel_size, stride, shape in (((3, 3), (2, 2), (2, 2, 11, 9)), ((2, 3), (1, 2), (1, 3, 7, 10)),
                                       ((4, 2), (3, 1), (2, 1, 13, 6))):
        gem_finite_difference_check(rng, kernel_size, stride, shape, samples=20)


@pytest.mark.parametrize("settings", list(TILE_SETTINGS))
def test_tiled_gem_is_schedule_independent(rng, monkeypatch, settings):
    """The staged tile is complete before any thread reads it, and no plane group overwrites it
    while another reads it; dp's partial sums are a fixed tree: bit-identical under every schedule."""
    set_pool_launch_limits(monkeypatch, TILE_SETTINGS[settings])
    with gpuconv.backend("emulated"):
        x = gpuconv.asarray(rng.uniform(-0.1, 2.0, (3, 3, 17, 14)).astype(np.float32))
        dy = gpuconv.asarray(rng.standard_normal((3, 3, 8, 6)).astype(np.float32))
        y, dx, dp = assert_schedule_independent(lambda: (F.gem(x, 3.0, 1e-6, 3, 2),
                                                         *F.gem_backward(dy, x, 3.0, 1e-6, 3, 2)))
        ref_dx, ref_dp = reference.gem_backward(gpuconv.to_numpy(dy), gpuconv.to_numpy(x), 3.0, 1e-6, (3, 3), (2, 2))
        assert_close(y, reference.gem(gpuconv.to_numpy(x), 3.0, 1e-6, (3, 3), (2, 2)), rtol=1e-5, atol=1e-6)
        assert_close(dx, ref_dx, rtol=1e-4, atol=1e-5)
        assert_close(dp, ref_dp, rtol=1e-4, atol=1e-4)


def test_gem_tile_falls_back_to_v1_when_it_does_not_fit(rng, monkeypatch):
    """A tile that would need more shared memory than allowed runs v1 (forward and backward alike);
    the backward reserves its reduction buffer, so it falls back before the forward does."""
    x = rng.uniform(0.0, 2.0, (1, 2, 10, 12))
    with gpuconv.backend("emulated"):
        spy = KernelSpy(monkeypatch)
        # One output row per tile; shared memory for the forward's tile but not for the backward's
        # tile plus its reduction buffer.
        monkeypatch.setattr(pool_launch, "TILE_OUTPUTS", 10)
        monkeypatch.setattr(pool_launch, "MIN_TILE_OUTPUTS", 10)
        grid, _, shared, geometry = pool_launch.pool_tile(2, (8, 10), (3, 3), (1, 1), (1, 1), 8)
        assert geometry[:2] == (1, 10) and geometry[3] == 1
        monkeypatch.setattr(pool_launch, "TILE_SHARED_BYTES", shared + pool_launch.REDUCE_BLOCK * 8 - 1)
        y = F.gem(x, 3.0, 1e-6, 3, 1)
        dy = np.ones(y.shape)
        dx, dp = F.gem_backward(dy, x, 3.0, 1e-6, 3, 1)
        assert "gem_forward_v2" in spy.names
        assert "gem_backward_coef_v2" not in spy.names and "gem_backward_coef" in spy.names
        ref_dx, ref_dp = reference.gem_backward(dy, x, 3.0, 1e-6, (3, 3), (1, 1))
        assert_close(y, reference.gem(x, 3.0, 1e-6, (3, 3), (1, 1)))
        assert_close(dx, ref_dx)
        assert_close(dp, ref_dp, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("window", ["global, warp per output", "global, thread per output", "windowed"])
def test_gem_of_a_window_holding_inf_is_inf_as_in_avg_and_max_pooling(backend, dtype, rng, monkeypatch, window):
    """With the window's maximum factored out, +inf / +inf made the whole window NaN."""
    x = rng.uniform(0.1, 2.0, (2, 3, 9, 8)).astype(dtype)
    x[0, 1, 4, 5] = np.inf
    x[1, 2, 0, 0] = np.inf
    kernel, stride = ((9, 8), (1, 1)) if window.startswith("global") else ((3, 3), (2, 2))
    if window == "global, thread per output":
        from gpuconv.backend.cuda import pool as launch
        monkeypatch.setattr(launch, "WARP_MIN_WINDOW", 10 ** 6)
    expected = reference.gem(x, 3.0, 1e-6, kernel, stride)  # mean(c^p)^(1/p): inf in those windows
    assert np.isinf(expected).any() and np.isfinite(expected).any()

    def run():
        return gpuconv.to_numpy(F.gem(gpuconv.asarray(x), 3.0, 1e-6, kernel, stride))

    results = tiled_and_untiled(monkeypatch, run) if window == "windowed" else (run(),)
    for y in results:
        assert np.array_equal(np.isinf(y), np.isinf(expected)) and not np.isnan(y).any()
        assert_close(y[np.isfinite(expected)], expected[np.isfinite(expected)].astype(dtype))
