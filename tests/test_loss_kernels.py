"""kernels/loss.cu through F.cross_entropy on every backend, over random configurations beyond
tests/test_loss.py's: int32 and int64 targets, many classes, spatial targets, ignored rows, class
weights, label smoothing, every reduction; the target check; the one-block reductions' schedule
independence; fit()'s running loss and accuracy counts."""

from __future__ import annotations

import numpy as np
import pytest

import gpuconv
import gpuconv.functional as F
from tests import reference as ref
from tests.helpers import assert_close, assert_schedule_independent


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
