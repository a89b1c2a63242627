"""The tiled backward kernels of max and average pooling (v2, kernels/pool.cu "tiled backward
kernels") and their fallback (v1): random configurations against the float64 reference, bit for bit
against v1, every launch geometry (whole planes several per block, several tiles per plane, partial
tiles, tiles no window covers, strided plane groups), the launcher's shared-memory bound, races and
finite differences."""

from __future__ import annotations

import numpy as np
import pytest

import gpuconv
import gpuconv.functional as F
from gpuconv.backend.cuda import pool as pool_launch
from gpuconv.backend.emulated.backend import unavailable_reason

from tests import reference
from tests.helpers import (assert_close, assert_schedule_independent, finite_difference_check,
                           set_pool_launch_limits, tiled_and_untiled)
from tests.test_pool import distinct, larger_window_config

# The tests that run the kernels on the emulated backend (all but the launcher's geometry and the
# backend matrix, which skips by itself).
needs_emulator = pytest.mark.skipif(unavailable_reason() is not None,
                                    reason=f"emulated backend unavailable: {unavailable_reason()}")

# Launch settings that reach every path of the tiled backward on small inputs: the default (whole
# planes, several per block, or tiles of up to 1024 inputs), small tiles (several per plane and per
# row, partial tiles at the edges, several tiles per warp-sized block), and a plane-group grid smaller
# than the planes (grid.y strides).
TILE_SETTINGS = {
    "default": {},
    "small-tiles": dict(TILE_INPUTS=24, MIN_TILE_INPUTS=24, TILE_WIDTH=5),
    "strided-planes": dict(TILE_INPUTS=64, MIN_TILE_INPUTS=64, TILE_WIDTH=8, MAX_GRID_Y=2),
}


def _max_case(rng, dtype, shape, k, s, p, d, ceil):
    x = distinct(rng, shape, dtype)
    _, ref_idx = reference.max_pool2d(x, k, s, p, d, ceil)
    dy = rng.standard_normal(ref_idx.shape).astype(dtype)
    return x, dy, ref_idx, reference.max_pool2d_backward(dy, ref_idx, shape, k, s, p, d)


def _check_max(monkeypatch, dtype, x, dy, ref_idx, ref_dx, k, s, p, d, ceil):
    for index_dtype in (np.int64, np.int32):
        _, idx = F.max_pool2d(x, k, s, p, d, ceil, return_indices=True, index_dtype=index_dtype)
        np.testing.assert_array_equal(idx, ref_idx)
        dx, dx1 = tiled_and_untiled(monkeypatch, lambda: F.max_pool2d_backward(dy, x, idx, k, s, p, d, ceil))
        assert_close(dx, ref_dx, dtype)
        np.testing.assert_array_equal(dx, dx1)  # the same windows in the same order: the same bits


def _check_avg(monkeypatch, rng, dtype, shape, k, s, p, ceil):
    include_pad = bool(rng.integers(0, 2))
    divisor = None if rng.integers(0, 3) else int(rng.integers(1, 6))
    out = [reference.pool_out_size(shape[2 + a], k[a], s[a], p[a], 1, ceil) for a in range(2)]
    dy = rng.standard_normal((*shape[:2], *out)).astype(dtype)
    dx, dx1 = tiled_and_untiled(monkeypatch, lambda: F.avg_pool2d_backward(dy, shape, k, s, p, ceil, include_pad,
                                                                        divisor))
    assert_close(dx, reference.avg_pool2d_backward(dy, shape, k, s, p, ceil, include_pad, divisor), dtype)
    np.testing.assert_array_equal(dx, dx1)


@needs_emulator
@pytest.mark.parametrize("settings", TILE_SETTINGS, ids=list(TILE_SETTINGS))
def test_tiled_backward_matches_reference_and_v1(dtype, rng, monkeypatch, settings):
    """Random windows (odd sizes, ceil_mode, dilation, overlapping windows, stride > kernel) on planes
    up to 40x40, emulated: max pooling with int64 and int32 indices, average pooling with
    count_include_pad and divisor_override."""
    set_pool_launch_limits(monkeypatch, TILE_SETTINGS[settings])
    with gpuconv.backend("emulated"):
        for _ in range(10):
            shape, k, s, p, d, ceil = larger_window_config(rng)
            _check_max(monkeypatch, dtype, *_max_case(rng, dtype, shape, k, s, p, d, ceil), k, s, p, d, ceil)
            shape, k, s, p, _, ceil = larger_window_config(rng, dilation=False)
            _check_avg(monkeypatch, rng, dtype, shape, k, s, p, ceil)


# Windows the random configurations reach rarely: stride > kernel (input rows and columns, and with
# small tiles whole tiles, that no window covers), large overlapping dilated windows, ceil_mode's
# overhanging last window, a plane wider than TILE_WIDTH, ResNet's stem window on a 112x112 plane.
EDGE_CASES = [
    ((2, 3, 17, 23), (1, 2), (4, 3), (0, 1), (1, 1), False),
    ((1, 2, 19, 13), (2, 2), (5, 4), (1, 0), (1, 1), True),
    ((2, 2, 21, 18), (4, 5), (1, 2), (2, 2), (3, 2), False),
    ((1, 3, 9, 31), (3, 3), (2, 3), (1, 1), (2, 3), True),
    ((1, 1, 3, 300), (2, 3), (1, 2), (1, 1), (1, 2), True),
    ((1, 2, 112, 112), (3, 3), (2, 2), (1, 1), (1, 1), False),
]


@needs_emulator
@pytest.mark.parametrize("settings", ["default", "small-tiles"])
@pytest.mark.parametrize("case", EDGE_CASES, ids=[str(c[0]) + str(c[1:4]) for c in EDGE_CASES])
def test_tiled_backward_edge_windows(rng, monkeypatch, settings, case):
    set_pool_launch_limits(monkeypatch, TILE_SETTINGS[settings])
    shape, k, s, p, d, ceil = case
    with gpuconv.backend("emulated"):
        _check_max(monkeypatch, np.float32, *_max_case(rng, np.float32, shape, k, s, p, d, ceil), k, s, p, d, ceil)
        _check_avg(monkeypatch, rng, np.float64, shape, k, s, p, ceil)


def test_random_configs_on_every_backend(backend, dtype, rng):
    """The same comparisons with the reference on numpy and emulated (default launch settings)."""
    for _ in range(8):
        shape, k, s, p, d, ceil = larger_window_config(rng)
        x, dy, ref_idx, ref_dx = _max_case(rng, dtype, shape, k, s, p, d, ceil)
        _, idx = F.max_pool2d(gpuconv.asarray(x), k, s, p, d, ceil, return_indices=True)
        assert_close(F.max_pool2d_backward(gpuconv.asarray(dy), gpuconv.asarray(x), idx, k, s, p, d, ceil), ref_dx,
                     dtype)
        shape, k, s, p, _, ceil = larger_window_config(rng, dilation=False)
        out = [reference.pool_out_size(shape[2 + a], k[a], s[a], p[a], 1, ceil) for a in range(2)]
        dy = rng.standard_normal((*shape[:2], *out)).astype(dtype)
        assert_close(F.avg_pool2d_backward(gpuconv.asarray(dy), shape, k, s, p, ceil, False),
                     reference.avg_pool2d_backward(dy, shape, k, s, p, ceil, False, None), dtype)


@needs_emulator
def test_shared_memory_limit_picks_v1_per_configuration(rng, monkeypatch):
    """A limit between the needs of two windows: the small one runs tiled, the large one v1; both
    correct. With the default limit, a window whose one-row tile passes 48 KB runs v1."""
    monkeypatch.setattr(pool_launch, "TILE_SHARED_BYTES", 3000)
    small = ((1, 2, 30, 30), (2, 2), (2, 2), (0, 0), (1, 1), False)
    large = ((1, 2, 30, 30), (9, 9), (1, 1), (4, 4), (2, 2), True)
    for shape, k, s, p, d, ceil in (small, large):
        tile = pool_launch.pool_backward_tile(shape[0] * shape[1], shape[2:], (15, 15) if k == (2, 2) else (30, 30),
                                              (k, s, d), 4, 4)
        assert (tile is None) == (k == (9, 9))
    with gpuconv.backend("emulated"):
        for shape, k, s, p, d, ceil in (small, large):
            x, dy, ref_idx, ref_dx = _max_case(rng, np.float32, shape, k, s, p, d, ceil)
            _, idx = F.max_pool2d(x, k, s, p, d, ceil, return_indices=True)
            assert_close(F.max_pool2d_backward(dy, x, idx, k, s, p, d, ceil), ref_dx, np.float32)
    monkeypatch.undo()
    assert pool_launch.pool_backward_tile(4, (300, 300), (300, 300), ((200, 200), (1, 1), (1, 1)), 4, 4) is None


def _staged_block(i0: int, i1: int, pad: int, k: int, s: int, d: int, out: int) -> int:
    """Windows covering positions i0..i1 at a tap, counted from the first to the last (0: none)."""
    covering = [o for o in range(out) for i in range(i0, i1 + 1) if 0 <= i + pad - o * s <= (k - 1) * d
                and (i + pad - o * s) % d == 0]
    return max(covering) - min(covering) + 1 if covering else 0


@pytest.mark.parametrize("itemsize, index_bytes", [(4, 4), (8, 4), (4, 0), (8, 0)])
def test_pool_backward_tile_layout(rng, itemsize, index_bytes):
    """The launcher's geometry: the grid covers the input, the block is whole warps, shared memory
    within the limit and as the kernel lays it out, the dilation steps right, and every tile's
    staged outputs (first to last window covering it, computed here by brute force) fit in the rows
    and columns the launcher sized."""
    for _ in range(40):
        planes = int(rng.integers(1, 300))
        in_size = tuple(int(v) for v in rng.integers(1, 150, 2))
        k = tuple(int(v) for v in rng.integers(1, 8, 2))
        s = tuple(int(v) for v in rng.integers(1, 5, 2))
        d = tuple(int(v) for v in rng.integers(1, 4, 2))
        p = tuple(int(rng.integers(0, kk // 2 + 1)) for kk in k)
        ceil = bool(rng.integers(0, 2))
        out = tuple(reference.pool_out_size(in_size[a], k[a], s[a], p[a], d[a], ceil) for a in range(2))
        if min(out) < 1:
            continue
        tile = pool_launch.pool_backward_tile(planes, in_size, out, (k, s, d), itemsize, index_bytes)
        assert tile is not None
        grid, block, shared, (tile_h, tile_w, tiles_x, tpb), steps, (row_words, plane_words) = tile
        assert grid[0] == -(-in_size[0] // tile_h) * tiles_x and (tiles_x - 1) * tile_w < in_size[1] <= tiles_x * tile_w
        assert grid[1] == min(-(-planes // tpb), pool_launch.MAX_GRID_Y)
        assert block[0] % 32 == 0 and block[0] <= pool_launch.BLOCK and block[0] < tpb * tile_h * tile_w + 32
        assert tpb == 1 or (tile_h, tile_w) == in_size
        assert shared == tpb * plane_words * (itemsize + index_bytes) + 8 * (tile_h + tile_w + 32)
        assert shared <= pool_launch.TILE_SHARED_BYTES and plane_words % row_words == 0
        for a, step in enumerate(steps):
            assert step == min(m for m in range(1, d[a] + 1) if m * s[a] % d[a] == 0)
        for y0 in range(0, in_size[0], tile_h):
            rows = _staged_block(y0, min(y0 + tile_h, in_size[0]) - 1, p[0], k[0], s[0], d[0], out[0])
            assert rows <= plane_words // row_words
        for x0 in range(0, in_size[1], tile_w):
            assert _staged_block(x0, min(x0 + tile_w, in_size[1]) - 1, p[1], k[1], s[1], d[1], out[1]) <= row_words


@needs_emulator
@pytest.mark.parametrize("settings", TILE_SETTINGS, ids=list(TILE_SETTINGS))
def test_tiled_backward_is_schedule_independent(rng, monkeypatch, settings):
    """The staged rows and window ends are complete before any thread reads them, and the next plane
    group does not overwrite them early, under every emulator schedule."""
    set_pool_launch_limits(monkeypatch, TILE_SETTINGS[settings])
    with gpuconv.backend("emulated"):
        x = distinct(rng, (2, 3, 17, 14), np.float32)
        _, idx = F.max_pool2d(x, 3, 2, 1, 2, True, return_indices=True)
        _, idx32 = F.max_pool2d(x, 3, 2, 1, 2, True, return_indices=True, index_dtype=np.int32)
        dy = rng.standard_normal(idx.shape).astype(np.float32)
        dya = rng.standard_normal((2, 3, 9, 7)).astype(np.float32)
        assert_schedule_independent(lambda: (F.max_pool2d_backward(dy, x, idx, 3, 2, 1, 2, True),
                                             F.max_pool2d_backward(dy, x, idx32, 3, 2, 1, 2, True),
                                             F.avg_pool2d_backward(dya, x.shape, 3, 2, 1, False, False)))


@needs_emulator
@pytest.mark.parametrize("settings", ["default", "small-tiles"])
def test_tiled_backward_finite_differences(rng, monkeypatch, settings):
    """Max pooling (dilation, ceil_mode, overlapping windows) and average pooling (count_include_pad
    off, divisor_override) gradients by central differences, float64, emulated."""
    set_pool_launch_limits(monkeypatch, TILE_SETTINGS[settings])
    x = distinct(rng, (1, 2, 11, 9), np.float64)
    cases = ((F.max_pool2d, dict(kernel_size=3, stride=(1, 2), padding=1, dilation=(2, 1), ceil_mode=True)),
             (F.avg_pool2d, dict(kernel_size=(3, 2), stride=(2, 1), padding=1, ceil_mode=True,
                                 count_include_pad=False)),
             (F.avg_pool2d, dict(kernel_size=3, stride=2, padding=1, divisor_override=5)))
    with gpuconv.backend("emulated"):
        for op, kw in cases:
            weights = rng.standard_normal(op(x, **kw).shape)

            def loss(x, op=op, kw=kw):
                return float(np.sum(op(x, **kw) * weights))

            if op is F.max_pool2d:
                _, idx = F.max_pool2d(x, **kw, return_indices=True)
                dx = F.max_pool2d_backward(weights, x, idx, **kw)
            else:
                dx = F.avg_pool2d_backward(weights, x.shape, **kw)
            finite_difference_check(loss, {"x": x.copy()}, {"x": dx}, rng=rng, samples=25)


@needs_emulator
def test_index_outside_the_plane_never_matches(rng):
    """An int64 index that is a plane position plus 2^32 (equal to it in 32 bits) passes no gradient
    on and is reported, as in v1: the kernel stages it as 'no position', not truncated."""
    x = distinct(rng, (1, 1, 8, 8), np.float32)
    with gpuconv.backend("emulated"):
        _, idx = F.max_pool2d(x, 2, 2, return_indices=True)
        bad = idx.copy()
        bad[0, 0, 1, 2] += 2**32
        dy = np.ones(idx.shape, np.float32)
        dx, valid = gpuconv.get_backend().max_pool2d_backward(dy, bad, x.shape, (2, 2), (2, 2), (0, 0), (1, 1))
        assert not valid
        want = F.max_pool2d_backward(dy, x, idx, 2, 2)
        want.flat[idx[0, 0, 1, 2]] = 0
        np.testing.assert_array_equal(dx, want)
        with pytest.raises(ValueError, match="indices"):
            F.max_pool2d_backward(dy, x, bad, 2, 2)


def _names_a_tap(index: int, oy: int, ox: int, shape, k, s, p, d) -> bool:
    """Whether ``index`` is an element of window (oy, ox) at a tap, or the window has no element."""
    h, w = shape[2:]
    taps = {(oy * s[0] - p[0] + i * d[0]) * w + ox * s[1] - p[1] + j * d[1]
            for i in range(k[0]) for j in range(k[1])
            if 0 <= oy * s[0] - p[0] + i * d[0] < h and 0 <= ox * s[1] - p[1] + j * d[1] < w}
    return not taps or index in taps


@needs_emulator
@pytest.mark.parametrize("settings", ["default", "small-tiles"])
def test_tiled_backward_checks_indices_as_v1(rng, monkeypatch, settings):
    """The tiled kernel checks the indices it stages: one index replaced by a random value (outside
    the plane, another element, a dilation gap, another tap of its window, plus 2^32) is reported
    exactly when it names no tap of its window, as the v1 check kernel reports it."""
    set_pool_launch_limits(monkeypatch, TILE_SETTINGS[settings])
    backend_calls = 0
    with gpuconv.backend("emulated"):
        backend = gpuconv.get_backend()
        for _ in range(12):
            shape, k, s, p, d, ceil = larger_window_config(rng)
            x = distinct(rng, shape, np.float32)
            _, idx = F.max_pool2d(x, k, s, p, d, ceil, return_indices=True)
            dy = rng.standard_normal(idx.shape).astype(np.float32)
            for _ in range(3):
                bad = idx.copy()
                n, c, oy, ox = (int(rng.integers(0, v)) for v in idx.shape)
                plane, width = shape[2] * shape[3], shape[3]
                y0, x0 = max(oy * s[0] - p[0], 0), max(ox * s[1] - p[1], 0)
                past = [(oy * s[0] - p[0] + k[0] * d[0]) * width + x0, y0 * width + ox * s[1] - p[1] + k[1] * d[1]]
                value = int(rng.choice([rng.integers(-2, plane + 2), idx[n, c, oy, ox] + rng.integers(-3, 4),
                                        idx[n, c, oy, ox] + 2**32, *past]))  # past: the tap after the last
                bad[n, c, oy, ox] = value
                want = _names_a_tap(value, oy, ox, shape, k, s, p, d)
                for index_dtype in (np.int64, np.int32):
                    if index_dtype == np.int32 and not -2**31 <= value < 2**31:
                        continue
                    args = (dy, bad.astype(index_dtype), shape, k, s, p, d)
                    (dx, valid), (dx1, valid1) = tiled_and_untiled(monkeypatch,
                                                                lambda: backend.max_pool2d_backward(*args))
                    assert valid == valid1 == want, (shape, k, s, p, d, ceil, (oy, ox), value)
                    np.testing.assert_array_equal(dx, dx1)
                    backend_calls += 1
    assert backend_calls >= 36


# ---- adaptive pooling: the same tiled kernel over PyTorch's bins ---------------------------------
def _adaptive_case(rng):
    """Planes up to 40x40, outputs from 1 to a few more than the input (bins of one element that
    several outputs share)."""
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(1, 41)), int(rng.integers(1, 41)))
    out = (int(rng.integers(1, shape[2] + 4)), int(rng.integers(1, shape[3] + 4)))
    return shape, out


@needs_emulator
@pytest.mark.parametrize("settings", TILE_SETTINGS, ids=list(TILE_SETTINGS))
def test_tiled_adaptive_backward_matches_reference_and_v1(dtype, rng, monkeypatch, settings):
    set_pool_launch_limits(monkeypatch, TILE_SETTINGS[settings])
    with gpuconv.backend("emulated"):
        for _ in range(10):
            shape, out = _adaptive_case(rng)
            dy = rng.standard_normal((*shape[:2], *out)).astype(dtype)
            dx, dx1 = tiled_and_untiled(monkeypatch, lambda: F.adaptive_avg_pool2d_backward(dy, shape, out))
            assert_close(dx, reference.adaptive_avg_pool2d_backward(dy, shape), dtype)
            np.testing.assert_array_equal(dx, dx1)
            x = distinct(rng, shape, dtype)
            _, ref_idx = reference.adaptive_max_pool2d(x, out)
            for index_dtype in (np.int64, np.int32):
                _, idx = F.adaptive_max_pool2d(x, out, return_indices=True, index_dtype=index_dtype)
                np.testing.assert_array_equal(idx, ref_idx)
                dx, dx1 = tiled_and_untiled(monkeypatch, lambda: F.adaptive_max_pool2d_backward(dy, x, idx, out))
                assert_close(dx, reference.index_backward(dy, ref_idx, shape), dtype)
                np.testing.assert_array_equal(dx, dx1)


@needs_emulator
@pytest.mark.parametrize("settings", ["default", "small-tiles"])
def test_tiled_adaptive_backward_checks_indices_as_v1(rng, monkeypatch, settings):
    """One index replaced by a random value is reported exactly when it is not an element of its bin,
    by the tiled kernel as by v1's check kernel."""
    set_pool_launch_limits(monkeypatch, TILE_SETTINGS[settings])
    with gpuconv.backend("emulated"):
        backend = gpuconv.get_backend()
        for _ in range(10):
            shape, out = _adaptive_case(rng)
            x = distinct(rng, shape, np.float32)
            _, idx = F.adaptive_max_pool2d(x, out, return_indices=True)
            dy = rng.standard_normal(idx.shape).astype(np.float32)
            rows, cols = reference.adaptive_bins(shape[2], out[0]), reference.adaptive_bins(shape[3], out[1])
            for _ in range(3):
                bad = idx.copy()
                n, c, oy, ox = (int(rng.integers(0, v)) for v in idx.shape)
                plane, width = shape[2] * shape[3], shape[3]
                value = int(rng.choice([rng.integers(-1, plane + 1), idx[n, c, oy, ox] + rng.integers(-2, 3),
                                        idx[n, c, oy, ox] + width, idx[n, c, oy, ox] + 2**32]))
                bad[n, c, oy, ox] = value
                (y0, y1), (x0, x1) = rows[oy], cols[ox]
                want = 0 <= value < plane and y0 <= value // width < y1 and x0 <= value % width < x1
                (dx, valid), (dx1, valid1) = tiled_and_untiled(
                    monkeypatch, lambda: backend.adaptive_max_pool2d_backward(dy, bad, shape))
                assert valid == valid1 == want, (shape, out, (oy, ox), value)
                np.testing.assert_array_equal(dx, dx1)


@pytest.mark.parametrize("itemsize, index_bytes", [(4, 4), (8, 0)])
def test_adaptive_tile_layout(rng, itemsize, index_bytes):
    """Every tile's staged bins (first to last bin containing one of its rows or columns, by brute
    force) fit in the rows and columns the launcher sized, whatever the input and output sizes."""
    for _ in range(60):
        planes = int(rng.integers(1, 300))
        in_size = tuple(int(v) for v in rng.integers(1, 150, 2))
        out = tuple(int(rng.integers(1, 2 * v + 3)) for v in in_size)
        tile = pool_launch.pool_backward_tile(planes, in_size, out, None, itemsize, index_bytes)
        assert tile is not None
        grid, block, shared, (tile_h, tile_w, tiles_x, tpb), steps, (row_words, plane_words) = tile
        assert steps == (1, 1) and shared <= pool_launch.TILE_SHARED_BYTES
        for axis, tile_len, staged in ((0, tile_h, plane_words // row_words), (1, tile_w, row_words)):
            bins = reference.adaptive_bins(in_size[axis], out[axis])
            for v0 in range(0, in_size[axis], tile_len):
                v1 = min(v0 + tile_len, in_size[axis]) - 1
                covering = [o for o, (a, b) in enumerate(bins) if a <= v1 and b > v0]
                assert max(covering) - min(covering) + 1 <= staged


@needs_emulator
def test_tiled_adaptive_backward_is_schedule_independent(rng, monkeypatch):
    set_pool_launch_limits(monkeypatch, TILE_SETTINGS["small-tiles"])
    with gpuconv.backend("emulated"):
        x = distinct(rng, (2, 3, 17, 14), np.float32)
        _, idx = F.adaptive_max_pool2d(x, (5, 9), return_indices=True)
        dy = rng.standard_normal(idx.shape).astype(np.float32)
        assert_schedule_independent(lambda: (F.adaptive_max_pool2d_backward(dy, x, idx, (5, 9)),
                                             F.adaptive_avg_pool2d_backward(dy, x.shape, (5, 9))))
