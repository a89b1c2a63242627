"""kernels/loss.cu through F.cross_entropy on every backend, over random configurations beyond
tests/test_loss.py's: int32 and int64 targets, many classes, spatial targets, ignored rows, class
weights, label smoothing, every reduction; row lengths around the warp / block switch and rows
looping over a small grid; the target check; schedule independence of the reductions and the row
kernels; fit()'s running loss and accuracy counts (ties, NaN, -inf)."""

from __future__ import annotations

import numpy as np
import pytest

import gpuconv
import gpuconv.functional as F
from tests import reference as ref
from tests.helpers import assert_close, assert_schedule_independent, finite_difference_check


def _case(rng, dtype):
    ndim = int(rng.integers(1, 5))
    if ndim == 1:
        shape = (int(rng.integers(1, 40)),)
    else:
        shape = (int(rng.integers(1, 9)), int(rng.integers(1, 300 if ndim == 2 else 12))) \
            + tuple(int(rng.integers(1, 5)) for _ in range(ndim - 2))
    classes = shape[0] if ndim == 1 else shape[1]
    tshape = () if ndim == 1 else (shape[0],) + shape[2:]
    logits = (rng.standard_normal(shape) * rng.uniform(0.5, 8)).astype(dtype)
    target = rng.integers(0, classes, tshape).astype(rng.choice([np.int32, np.int64]))
    ignore_index = int(rng.choice([-100, 0, classes - 1]))
    if ndim == 1 and target == ignore_index:
        ignore_index = -100  # keep the single sample counted
    weight = rng.uniform(0.2, 2.0, classes).astype(dtype) if rng.random() < 0.5 else None
    smoothing = float(rng.choice([0.0, 0.0, 0.1, 0.7]))
    return logits, target, weight, ignore_index, smoothing


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_random_configurations(backend, dtype, seed, reduction):
    rng = np.random.default_rng(seed)
    logits, target, weight, ignore_index, smoothing = _case(rng, dtype)
    g = gpuconv.asarray
    kwargs = dict(ignore_index=ignore_index, reduction=reduction, label_smoothing=smoothing)
    gw = None if weight is None else g(weight)
    loss = F.cross_entropy(g(logits), g(target), gw, **kwargs)
    expected = ref.cross_entropy(logits, target.astype(np.int64), weight, **kwargs)
    assert loss.dtype == dtype
    assert_close(loss, expected, rtol=1e-4 if dtype == np.float32 else 1e-10)
    dloss = rng.standard_normal(expected.shape).astype(dtype) if reduction == "none" else float(rng.uniform(0.5, 2))
    dlogits = F.cross_entropy_backward(g(dloss) if reduction == "none" else dloss, g(logits), g(target), gw, **kwargs)
    assert dlogits.dtype == dtype and dlogits.shape == logits.shape
    assert_close(dlogits, ref.cross_entropy_backward(dloss, logits, target.astype(np.int64), weight, **kwargs))


def test_cross_entropy_of_an_empty_batch(backend, dtype):
    logits = gpuconv.asarray(np.zeros((0, 4), dtype))
    target = gpuconv.asarray(np.zeros(0, np.int64))
    assert float(F.cross_entropy(logits, target, reduction="sum")) == 0.0
    assert np.isnan(float(F.cross_entropy(logits, target)))  # 0/0, as in PyTorch
    assert F.cross_entropy(logits, target, reduction="none").shape == (0,)
    assert F.cross_entropy_backward(1.0, logits, target).shape == (0, 4)


def test_nan_logits_propagate_to_their_row(backend, dtype):
    logits = np.array([[0.0, np.nan, 1.0], [0.5, 0.25, 2.0]], dtype)
    losses = gpuconv.to_numpy(F.cross_entropy(gpuconv.asarray(logits), gpuconv.asarray(np.array([0, 2])),
                                              reduction="none"))
    assert np.isnan(losses[0]) and np.isfinite(losses[1])


@pytest.mark.parametrize("target_dtype", [np.int32, np.int64, np.uint8])
def test_a_bad_target_is_named(backend, target_dtype):
    logits = gpuconv.asarray(np.zeros((4, 3), np.float32))
    target = gpuconv.asarray(np.array([0, 2, 7, 9], target_dtype))
    with pytest.raises(ValueError, match=r"target values must be in \[0, 2\] \(C = 3\) or equal ignore_index -100; "
                                         r"got 7"):
        F.cross_entropy(logits, target)
    assert float(F.cross_entropy(logits, gpuconv.asarray(np.array([0, 2, 1, 1], target_dtype)))) == \
        pytest.approx(np.log(3), rel=1e-6)


def test_the_reductions_are_schedule_independent(rng):
    logits = rng.standard_normal((300, 7)).astype(np.float32)
    target = rng.integers(0, 7, 300)
    target[::5] = -100
    with gpuconv.backend("emulated") as be:
        g = be.asarray
        assert_schedule_independent(lambda: (F.cross_entropy(g(logits), g(target), label_smoothing=0.1),
                                             F.cross_entropy_backward(1.0, g(logits), g(target))))


def test_running_loss_and_correct_count(backend, dtype, rng):
    outputs = rng.standard_normal((37, 5)).astype(dtype)
    outputs[3, 2] = np.nan  # numpy.argmax: the first NaN
    target = rng.integers(0, 5, 37)
    target[3] = 2
    count = backend.zeros((1,), np.int64)
    backend.count_correct(backend.asarray(outputs), backend.asarray(target), count)
    backend.count_correct(backend.asarray(outputs), backend.asarray(target.astype(np.int32)), count)
    assert int(gpuconv.to_numpy(count)[0]) == 2 * int((np.argmax(outputs, axis=1) == target).sum())
    total = backend.zeros((1,), np.float64)
    losses = rng.standard_normal(300).astype(dtype)
    backend.accumulate_loss(total, backend.asarray(losses), 1.0)
    backend.accumulate_loss(total, backend.asarray(losses[:1].reshape(())), 32.0)
    assert float(gpuconv.to_numpy(total)[0]) == pytest.approx(losses.astype(np.float64).sum() + 32.0 * losses[0],
                                                              rel=1e-12)


# Row lengths around a warp (32) and the warp/block switch (WARP_ROW_LIMIT = 256), and wide rows.
ROW_LENGTHS = [1, 31, 32, 33, 256, 257, 1000, 1025]


def _backward64(dloss, logits, target, weight, ignore_index, reduction, smoothing):
    """float64 NumPy dlogits of (N, C) logits in closed form, s * (softmax * Q - q) with
    q[c] = (1 - eps) * w[t] * [c == t] + eps / C * w[c] (tests/reference.py's Jacobian loops are
    quadratic in C; test_cross_entropy_random_configurations checks this form against them)."""
    x = logits.astype(np.float64)
    rows, classes = x.shape
    w = np.ones(classes) if weight is None else weight.astype(np.float64)
    kept = target != ignore_index
    t = np.where(kept, target, 0)
    p = np.exp(x - x.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    q = np.broadcast_to(smoothing / classes * w, x.shape).copy()
    q[np.arange(rows), t] += (1 - smoothing) * w[t]
    if reduction == "none":
        s = np.asarray(dloss, np.float64).reshape(-1)
    else:
        s = np.full(rows, float(dloss) / (w[t][kept].sum() if reduction == "mean" else 1.0))
    return np.where(kept[:, None], s[:, None] * (p * q.sum(axis=1, keepdims=True) - q), 0.0)


@pytest.mark.parametrize("classes", ROW_LENGTHS)
def test_cross_entropy_rows_of_every_length(backend, dtype, classes):
    """(N, C) logits (the warp and block kernels) with 1..300 rows of every length, some rows far
    from 0, ignored rows, class weights, label smoothing, int32 and int64 targets, every reduction."""
    rng = np.random.default_rng(classes)
    rows = int(rng.integers(1, 301 if classes <= 256 else 41))
    logits = rng.standard_normal((rows, classes)) * rng.uniform(0.5, 20)
    logits[::4] += rng.choice([-1e3, 1e3])
    logits = logits.astype(dtype)
    ignore_index = int(rng.choice([-100, 0, classes - 1]))
    target = rng.integers(0, classes, rows)
    target[rng.random(rows) < 0.2] = ignore_index
    g = gpuconv.asarray
    for target_dtype in (np.int32, np.int64):
        weight = rng.uniform(0.2, 2.0, classes).astype(dtype) if target_dtype is np.int64 else None
        gw = None if weight is None else g(weight)
        for smoothing in (0.0, 0.3):
            for reduction in ("mean", "sum", "none"):
                kwargs = dict(ignore_index=ignore_index, reduction=reduction, label_smoothing=smoothing)
                gt = g(target.astype(target_dtype))
                loss = F.cross_entropy(g(logits), gt, gw, **kwargs)
                assert_close(loss, ref.cross_entropy(logits, target, weight, **kwargs),
                             rtol=1e-4 if dtype == np.float32 else 1e-10)
                dloss = rng.standard_normal(rows).astype(dtype) if reduction == "none" else 1.5
                dlogits = F.cross_entropy_backward(g(dloss) if reduction == "none" else dloss, g(logits), gt, gw,
                                                   **kwargs)
                assert_close(dlogits, _backward64(dloss, logits, target, weight, ignore_index, reduction, smoothing))


def test_wide_rows_against_the_reference_jacobian(backend, rng):
    """The block kernel's gradient against tests/reference.py's Jacobian loops (two rows of 1025)."""
    logits = rng.standard_normal((2, 1025)) * 4
    target = np.array([3, 1024])
    weight = rng.uniform(0.2, 2.0, 1025)
    g = gpuconv.asarray
    kwargs = dict(label_smoothing=0.2)
    loss = F.cross_entropy(g(logits), g(target), g(weight), **kwargs)
    assert_close(loss, ref.cross_entropy(logits, target, weight, **kwargs))
    dlogits = F.cross_entropy_backward(0.7, g(logits), g(target), g(weight), **kwargs)
    assert_close(dlogits, ref.cross_entropy_backward(0.7, logits, target, weight, **kwargs))


def test_wide_rows_by_finite_differences(rng):
    """d loss / d logits of the block kernels (300 classes) by central differences, float64."""
    logits = rng.standard_normal((3, 300))
    target = np.array([5, -100, 299])
    weight = rng.uniform(0.5, 1.5, 300)
    with gpuconv.backend("emulated") as be:
        g = be.asarray
        kwargs = dict(label_smoothing=0.1)
        dlogits = gpuconv.to_numpy(F.cross_entropy_backward(1.0, g(logits), g(target), g(weight), **kwargs))
        finite_difference_check(lambda x: gpuconv.to_numpy(F.cross_entropy(g(x), g(target), g(weight), **kwargs)),
                                {"x": logits}, {"x": dlogits}, rng=rng)


@pytest.mark.parametrize("classes", [33, 1000])
def test_rows_loop_over_a_small_grid(monkeypatch, rng, classes):
    """Fewer blocks than rows: each warp / block loops over several rows."""
    from gpuconv.backend.cuda import softmax as launch

    monkeypatch.setattr(launch, "MAX_GRID", 2)
    logits = rng.standard_normal((70, classes))
    target = rng.integers(0, classes, 70)
    target[::7] = -100
    with gpuconv.backend("emulated") as be:
        g = be.asarray
        kwargs = dict(reduction="none", label_smoothing=0.1)
        assert_close(F.cross_entropy(g(logits), g(target), **kwargs), ref.cross_entropy(logits, target, **kwargs))
        dloss = rng.standard_normal(70)
        assert_close(F.cross_entropy_backward(g(dloss), g(logits), g(target), **kwargs),
                     _backward64(dloss, logits, target, None, -100, "none", 0.1))


@pytest.mark.parametrize("classes", [33, 1025])
def test_row_kernels_are_schedule_independent(rng, classes):
    logits = rng.standard_normal((20, classes)).astype(np.float32)
    target = rng.integers(0, classes, 20)
    target[::5] = -100
    weight = rng.uniform(0.5, 1.5, classes).astype(np.float32)
    with gpuconv.backend("emulated") as be:
        g = be.asarray
        assert_schedule_independent(lambda: (
            F.cross_entropy(g(logits), g(target), g(weight), label_smoothing=0.1, reduction="none"),
            F.cross_entropy_backward(1.0, g(logits), g(target), g(weight), label_smoothing=0.1)))


@pytest.mark.parametrize("classes", ROW_LENGTHS)
def test_correct_count_of_every_row_length(backend, dtype, classes):
    """count_correct's warp per row: ties (the first maximum wins), NaN (the first NaN wins), rows
    of -inf, as numpy.argmax."""
    rng = np.random.default_rng(classes)
    rows = int(rng.integers(1, 301 if classes <= 256 else 41))
    outputs = rng.integers(-3, 4, (rows, classes)).astype(dtype)  # many ties
    outputs[1::5, rng.integers(0, classes)] = np.nan
    outputs[2::5, :] = -np.inf
    outputs[3::5, rng.integers(0, classes, 2)] = np.nan
    expected = np.argmax(outputs, axis=1)
    target = np.where(rng.random(rows) < 0.7, expected, rng.integers(0, classes, rows))
    count = backend.zeros((1,), np.int64)
    for target_dtype in (np.int32, np.int64):
        backend.count_correct(backend.asarray(outputs), backend.asarray(target.astype(target_dtype)), count)
    assert int(gpuconv.to_numpy(count)[0]) == 2 * int((expected == target).sum())
