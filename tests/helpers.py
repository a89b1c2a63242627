"""Assertions shared by the tests."""

from __future__ import annotations

import contextlib
import os

import numpy as np

import gpuconv

SCHEDULES = ("forward", "reverse", "shuffle:1", "shuffle:2")

# Tolerances for comparing against the float64 references in tests/reference.py.
TOLERANCE = {np.dtype(np.float32): dict(rtol=2e-5, atol=2e-5), np.dtype(np.float64): dict(rtol=1e-10, atol=1e-12)}


def assert_close(actual, expected, dtype=None, **overrides):
    """Compares a backend result with a reference, after moving it to the host; checks the shape."""
    actual = gpuconv.to_numpy(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, f"shape {actual.shape} != expected {expected.shape}"
    tolerance = dict(TOLERANCE[np.dtype(dtype or actual.dtype)])
    tolerance.update(overrides)
    np.testing.assert_allclose(actual, expected, **tolerance)


def sum_tolerance(length: int, magnitude, dtype):
    """How far two evaluations in ``dtype`` of the same sum of ``length`` products may differ when
    they add in different orders (BLAS kernels, chunks, tiles, a float64 reference).

    ``magnitude`` is the sum of the terms' absolute values (sum |x||w| of a dot product), a scalar
    or one value per output element. Recursive summation in any order is within
    ``length * u * magnitude`` of the exact sum (u = eps / 2, Higham's gamma_n), and rounding the
    inputs to ``dtype`` adds ``eps * magnitude``; the two evaluations together stay within
    ``(length + 1) * eps * magnitude``. Returns float64, shaped like ``magnitude``.
    """
    return (length + 1) * np.finfo(np.dtype(dtype)).eps * np.asarray(magnitude, dtype=np.float64)


def assert_sums_close(actual, expected, length: int, magnitude, dtype, name: str = "result") -> None:
    """Fails where ``actual`` and ``expected`` differ by more than :func:`sum_tolerance` allows for
    a sum of ``length`` terms of total absolute value ``magnitude`` (per element), naming the worst
    element."""
    actual = np.asarray(gpuconv.to_numpy(actual), dtype=np.float64)
    expected = np.asarray(gpuconv.to_numpy(expected), dtype=np.float64)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != expected {expected.shape}"
    bound = np.broadcast_to(sum_tolerance(length, magnitude, dtype), actual.shape)
    excess = np.abs(actual - expected) - bound
    if not np.all(excess <= 0):  # also fails on NaN
        worst = np.unravel_index(np.nanargmax(np.where(np.isnan(excess), np.inf, excess)), excess.shape)
        raise AssertionError(f"{name}{[int(i) for i in worst]}: {actual[worst]:.9g} != {expected[worst]:.9g} (difference "
                             f"{abs(actual[worst] - expected[worst]):.3g}, allowed {bound[worst]:.3g} for a "
                             f"{np.dtype(dtype).name} sum of {length} terms)")


def conv_sum_bounds(g, x, weight, dy, bias=None):
    """[(length, magnitude)] of the sums behind conv2d's y, dx, dweight and dbias for geometry
    ``g`` (gpuconv.functional.conv_geometry): the most terms one element of each adds (the bias
    counts as one) and, per element, the sum of their absolute values (the reference convolutions
    of |x|, |weight|, |dy|), for :func:`assert_sums_close`. Pass the operands as the computation
    sees them (rounded to TF32 where it rounds)."""
    from tests import reference

    args = (g.stride, g.padding, g.dilation, g.groups)
    c_out, cg, kh, kw = np.shape(weight)
    y_mag = reference.conv2d(np.abs(x), np.abs(weight), None if bias is None else np.abs(bias), *args)
    dx_mag, dw_mag, db_mag = reference.conv2d_backward(np.abs(dy), np.abs(x), np.abs(weight), *args)
    pixels = g.n * g.out_size[0] * g.out_size[1]
    return [(cg * kh * kw + 1, y_mag), (c_out // g.groups * kh * kw, dx_mag), (pixels, dw_mag), (pixels, db_mag)]


@contextlib.contextmanager
def emulator_schedule(schedule: str):
    """Runs the block with the emulator's thread schedule set (see GPUCONV_EMU_SCHEDULE)."""
    previous = os.environ.get("GPUCONV_EMU_SCHEDULE")
    os.environ["GPUCONV_EMU_SCHEDULE"] = schedule
    try:
        yield
    finally:
        if previous is None:
            del os.environ["GPUCONV_EMU_SCHEDULE"]
        else:
            os.environ["GPUCONV_EMU_SCHEDULE"] = previous


def assert_schedule_independent(run, schedules=SCHEDULES):
    """Runs ``run()`` (returning an array or a tuple of arrays) under each emulator schedule and
    fails if any result differs bit for bit from the forward schedule's: that is a race."""
    results = {}
    for schedule in schedules:
        with emulator_schedule(schedule):
            out = run()
        results[schedule] = [np.array(gpuconv.to_numpy(a), copy=True) for a in (out if isinstance(out, tuple) else (out,))]
    first = results[schedules[0]]
    for schedule in schedules[1:]:
        for index, (a, b) in enumerate(zip(first, results[schedule], strict=True)):
            if not np.array_equal(a, b, equal_nan=True):
                raise AssertionError(f"output {index} differs between schedules {schedules[0]!r} and {schedule!r}: "
                                     "the kernel has a race")
    return first


def finite_difference_check(f, inputs: dict, grads: dict, eps: float = 1e-6, samples: int = 12, rng=None,
                            rtol: float = 1e-5, atol: float = 1e-7):
    """Checks analytic gradients of the scalar function ``f(**inputs)`` by central differences.

    ``inputs`` and ``grads`` map names to float64 NumPy arrays; ``samples`` random entries of each
    input are perturbed (all entries when there are fewer).
    """
    rng = rng or np.random.default_rng(0)
    for name, value in inputs.items():
        flat = value.reshape(-1)
        picks = np.arange(flat.size) if flat.size <= samples else rng.choice(flat.size, samples, replace=False)
        for index in picks:
            original = flat[index]
            flat[index] = original + eps
            up = float(f(**inputs))
            flat[index] = original - eps
            down = float(f(**inputs))
            flat[index] = original
            numeric = (up - down) / (2 * eps)
            analytic = float(np.asarray(grads[name]).reshape(-1)[index])
            assert abs(numeric - analytic) <= atol + rtol * max(abs(numeric), abs(analytic)), (
                f"d/d{name}[{index}]: finite difference {numeric:.10g} != analytic {analytic:.10g}")



def tiled_and_untiled(monkeypatch, run):
    """(run() with the tiled pooling kernels (v2), run() with v1): v1 runs where a tile would not fit
    in shared memory, here forced by allowing tiles none."""
    from gpuconv.backend.cuda import pool as pool_launch

    tiled = run()
    with monkeypatch.context() as m:
        m.setattr(pool_launch, "TILE_SHARED_BYTES", 0)
        untiled = run()
    return tiled, untiled


def gem_finite_difference_check(rng, kernel_size, stride, shape, samples: int = 12) -> None:
    """GeM's analytic dx and dp (F.gem_backward) against central differences of a random weighting
    of F.gem's output, at p = 2.5 over positive inputs of ``shape``, on the current backend."""
    import gpuconv.functional as F

    x = rng.uniform(0.1, 2.0, shape)
    p = np.array([2.5])
    y_shape = gpuconv.to_numpy(F.gem(gpuconv.asarray(x), 2.5, 1e-6, kernel_size, stride)).shape
    weights = rng.standard_normal(y_shape)

    def loss(x, p):
        y = F.gem(gpuconv.asarray(x), gpuconv.asarray(p), 1e-6, kernel_size, stride)
        return float(np.sum(gpuconv.to_numpy(y) * weights))

    dx, dp = F.gem_backward(gpuconv.asarray(weights), gpuconv.asarray(x), gpuconv.asarray(p), 1e-6, kernel_size, stride)
    finite_difference_check(loss, {"x": x, "p": p}, {"x": gpuconv.to_numpy(dx), "p": gpuconv.to_numpy(dp)},
                            rng=rng, samples=samples)


def set_pool_launch_limits(monkeypatch, limits: dict) -> None:
    """Sets the pooling launcher's module constants (tile sizes, grid limits) named in ``limits`` for
    one test, so that small inputs reach the launch paths that large ones take."""
    from gpuconv.backend.cuda import pool as pool_launch

    for name, value in limits.items():
        monkeypatch.setattr(pool_launch, name, value)
