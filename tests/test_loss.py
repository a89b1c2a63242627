"""Losses (gpuconv/functional/loss.py), forward and backward, against the float64 references on every
backend: cross_entropy and mse_loss; nll_loss, binary_cross_entropy, binary_cross_entropy_with_logits
and smooth_l1_loss over random configurations, backward against finite differences of the reference;
the modules (saved bytes, state dict keys); PyTorch where installed.

kernels/loss.cu through F.cross_entropy on every backend, over random configurations: int32 and
int64 targets, many classes, spatial targets, ignored rows, class weights, label smoothing, every
reduction; row lengths around the warp / block switch and rows looping over a small grid; the target
check; schedule independence of the reductions and the row kernels; fit()'s running loss and
accuracy counts (ties, NaN, -inf)."""

from __future__ import annotations

import numpy as np
import pytest

import gpuconv
import gpuconv.functional as F
from gpuconv import nn
from tests import reference as ref
from tests.helpers import assert_close, assert_schedule_independent, finite_difference_check

CE_SHAPES = [(4, 5), (1, 3), (3, 4, 2), (2, 3, 2, 2), (6,)]


def _ce_case(rng, shape, dtype, weighted, ignore):
    logits = (rng.standard_normal(shape) * 2).astype(dtype)
    classes = shape[0] if len(shape) == 1 else shape[1]
    tshape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    target = rng.integers(0, classes, tshape).astype(np.int64)
    if ignore and target.size > 1:
        target.reshape(-1)[rng.integers(target.size)] = ignore
    weight = rng.uniform(0.2, 2.0, classes).astype(dtype) if weighted else None
    return logits, target, weight


@pytest.mark.parametrize("shape", CE_SHAPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted,ignore_index,smoothing", [(False, -100, 0.0), (True, -100, 0.0),
                                                             (False, -100, 0.25), (True, 1, 0.1)])
def test_cross_entropy(backend, dtype, rng, shape, reduction, weighted, ignore_index, smoothing):
    logits, target, weight = _ce_case(rng, shape, dtype, weighted, ignore_index if ignore_index >= 0 else 0)
    if ignore_index < 0:
        pass
    elif len(shape) == 1:
        target[...] = (ignore_index + 1) % shape[0]      # one sample: keep it counted
    g = gpuconv.asarray
    kwargs = dict(ignore_index=ignore_index, reduction=reduction, label_smoothing=smoothing)
    gw = None if weight is None else g(weight)
    loss = F.cross_entropy(g(logits), g(target), gw, **kwargs)
    expected = ref.cross_entropy(logits, target, weight, **kwargs)
    assert loss.dtype == dtype and loss.shape == expected.shape
    assert_close(loss, expected)
    dloss = rng.standard_normal(expected.shape).astype(dtype) if reduction == "none" else float(rng.uniform(0.5, 2))
    dlogits = F.cross_entropy_backward(g(dloss) if reduction == "none" else dloss, g(logits), g(target), gw, **kwargs)
    assert dlogits.dtype == dtype
    assert_close(dlogits, ref.cross_entropy_backward(dloss, logits, target, weight, **kwargs))


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_all_ignored(backend, smoothing):
    # PyTorch: the mean over no targets is NaN, and the gradient is zero.
    logits, target = gpuconv.asarray(np.ones((2, 3))), gpuconv.asarray(np.array([-100, -100]))
    loss = F.cross_entropy(logits, target, label_smoothing=smoothing)
    assert np.isnan(gpuconv.to_numpy(loss))
    grad = F.cross_entropy_backward(1.0, logits, target, label_smoothing=smoothing)
    np.testing.assert_array_equal(gpuconv.to_numpy(grad), np.zeros((2, 3)))


def test_cross_entropy_huge_logits_are_stable(backend, dtype):
    logits = np.array([[1000.0, 0.0, -1000.0], [0.0, 2000.0, 1.0]], dtype=dtype)
    target = np.array([0, 2])
    with np.errstate(over="raise", invalid="raise"):
        loss = F.cross_entropy(gpuconv.asarray(logits), gpuconv.asarray(target))
    assert_close(loss, ref.cross_entropy(logits, target))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted,smoothing", [(False, 0.0), (True, 0.3)])
def test_cross_entropy_finite_differences(backend, rng, reduction, weighted, smoothing):
    logits, target, weight = _ce_case(rng, (3, 4, 2), np.float64, weighted, 0)
    probe = rng.standard_normal(target.shape) if reduction == "none" else np.array(1.7)
    kwargs = dict(reduction=reduction, label_smoothing=smoothing)
    gw = None if weight is None else gpuconv.asarray(weight)

    def f(logits):
        loss = F.cross_entropy(gpuconv.asarray(logits), gpuconv.asarray(target), gw, **kwargs)
        return float(np.sum(gpuconv.to_numpy(loss) * probe))

    grad = F.cross_entropy_backward(gpuconv.asarray(probe), gpuconv.asarray(logits), gpuconv.asarray(target), gw,
                                    **kwargs)
    finite_difference_check(f, {"logits": logits}, {"logits": gpuconv.to_numpy(grad)}, rng=rng)


def test_cross_entropy_bad_inputs(backend):
    g = gpuconv.asarray
    logits = g(np.ones((2, 3)))
    with pytest.raises(ValueError, match="target values must be in \\[0, 2\\].*got 3"):
        F.cross_entropy(logits, g(np.array([0, 3])))
    with pytest.raises(ValueError, match="target values.*got -1"):
        F.cross_entropy_backward(1.0, logits, g(np.array([-1, 0])))
    with pytest.raises(TypeError, match="target must hold integer"):
        F.cross_entropy(logits, g(np.array([0.0, 1.0])))
    with pytest.raises(ValueError, match="target must have shape"):
        F.cross_entropy(logits, g(np.array([0, 1, 2])))
    with pytest.raises(ValueError, match="weight"):
        F.cross_entropy(logits, g(np.array([0, 1])), g(np.ones(4)))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(logits, g(np.array([0, 1])), reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(logits, g(np.array([0, 1])), label_smoothing=1.5)
    with pytest.raises(ValueError, match="dloss"):
        F.cross_entropy_backward(g(np.ones(3)), logits, g(np.array([0, 1])), reduction="none")
    with pytest.raises(ValueError, match="logits"):
        F.cross_entropy(g(np.array(1.0)), g(np.array(0)))


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 2, 2)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss(backend, dtype, rng, shape, reduction):
    a, b = rng.standard_normal(shape).astype(dtype), rng.standard_normal(shape).astype(dtype)
    g = gpuconv.asarray
    loss = F.mse_loss(g(a), g(b), reduction)
    expected = ref.mse_loss(a, b, reduction)
    assert loss.dtype == dtype
    assert_close(loss, expected)
    dloss = rng.standard_normal(shape).astype(dtype) if reduction == "none" else np.array(1.3, dtype=dtype)
    assert_close(F.mse_loss_backward(g(dloss), g(a), g(b), reduction), ref.mse_loss_backward(dloss, a, b, reduction))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_finite_differences(backend, rng, reduction):
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    probe = rng.standard_normal((3, 4)) if reduction == "none" else np.array(0.7)

    def f(a):
        return float(np.sum(gpuconv.to_numpy(F.mse_loss(gpuconv.asarray(a), gpuconv.asarray(b), reduction)) * probe))

    grad = F.mse_loss_backward(gpuconv.asarray(probe), gpuconv.asarray(a), gpuconv.asarray(b), reduction)
    finite_difference_check(f, {"a": a}, {"a": gpuconv.to_numpy(grad)}, rng=rng)


def test_mse_loss_bad_inputs(backend):
    g = gpuconv.asarray
    with pytest.raises(ValueError, match="target must have the shape"):
        F.mse_loss(g(np.ones((2, 3))), g(np.ones((3, 2))))
    with pytest.raises(ValueError, match="reduction"):
        F.mse_loss(g(np.ones(2)), g(np.ones(2)), reduction="max")
    with pytest.raises(ValueError, match="dloss"):
        F.mse_loss_backward(g(np.ones(2)), g(np.ones(2)), g(np.ones(2)), reduction="mean")


def test_against_torch(rng):
    torch = pytest.importorskip("torch")
    logits, target, weight = _ce_case(rng, (4, 5, 3), np.float64, True, 2)
    with gpuconv.backend("numpy"):
        for reduction in ("mean", "sum", "none"):
            kwargs = dict(ignore_index=2, reduction=reduction, label_smoothing=0.2)
            t_logits = torch.tensor(logits, requires_grad=True)
            t_loss = torch.nn.functional.cross_entropy(t_logits, torch.tensor(target), torch.tensor(weight), **kwargs)
            probe = rng.standard_normal(t_loss.shape)
            t_loss.backward(torch.tensor(probe))
            np.testing.assert_allclose(F.cross_entropy(logits, target, weight, **kwargs), t_loss.detach().numpy(),
                                       rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(F.cross_entropy_backward(probe, logits, target, weight, **kwargs),
                                       t_logits.grad.numpy(), rtol=1e-12, atol=1e-14)
        x = rng.standard_normal((3, 4, 5))
        w, b = rng.standard_normal((4, 5)), rng.standard_normal((4, 5))
        np.testing.assert_allclose(F.layer_norm(x, (4, 5), w, b),
                                   torch.nn.functional.layer_norm(torch.tensor(x), (4, 5), torch.tensor(w),
                                                                  torch.tensor(b)).numpy(), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(F.log_softmax(x, 1), torch.log_softmax(torch.tensor(x), 1).numpy(), rtol=1e-12)


def test_elementwise_ops_against_torch(rng):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    x = rng.standard_normal((4, 6)) * 3
    w, b = rng.standard_normal((5, 6)), rng.standard_normal(5)
    t_x = torch.tensor(x)
    with gpuconv.backend("numpy"):
        pairs = [
            (F.relu(x), tf.relu(t_x)), (F.leaky_relu(x, 0.2), tf.leaky_relu(t_x, 0.2)),
            (F.sigmoid(x), torch.sigmoid(t_x)), (F.tanh(x), torch.tanh(t_x)), (F.softmax(x, 0), torch.softmax(t_x, 0)),
            (F.linear(x, w, b), tf.linear(t_x, torch.tensor(w), torch.tensor(b))),
            (F.mse_loss(x, x[::-1].copy()), tf.mse_loss(t_x, torch.tensor(x[::-1].copy()))),
        ]
        for ours, theirs in pairs:
            np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-13, atol=1e-15)
        # Dropout: same keep probability semantics and inverted scaling as PyTorch (masks differ: other RNG).
        y = F.dropout(np.ones((100, 100), dtype=np.float32), 0.25, generator=np.random.default_rng(0))
        assert set(np.unique(y)) == set(np.unique(tf.dropout(torch.ones(100, 100), 0.25).numpy()))


# ---- nll_loss, binary_cross_entropy (on probabilities and on logits), smooth_l1_loss --------------------------

REDUCTIONS = ("mean", "sum", "none")


def _check(op, op_backward, reference, x, t, kwargs, ref_kwargs, reduction, dtype, rng, extra=None):
    """Forward vs the reference in ``dtype``; in float64 also backward vs finite differences of the
    reference (so the check does not rely on our forward)."""
    g = gpuconv.asarray
    extra = extra or {}
    args = {k: (None if v is None else g(np.asarray(v, dtype=dtype))) for k, v in extra.items()}
    xt, tt = g(x.astype(dtype)), g(t if t.dtype.kind in "iu" else t.astype(dtype))
    out = op(xt, tt, reduction=reduction, **kwargs, **args)
    expected = reference(x, t, reduction=reduction, **ref_kwargs, **extra)
    assert_close(out, expected, dtype)
    assert out.dtype == dtype and gpuconv.get_backend().is_native(out)
    if dtype != np.float64:
        return
    probe = rng.standard_normal(np.shape(expected))
    dloss = g(probe) if reduction == "none" else float(probe)
    grad = op_backward(dloss, xt, tt, reduction=reduction, **kwargs, **args)
    assert grad.shape == x.shape and grad.dtype == dtype

    def f(x):
        return float(np.sum(reference(x, t, reduction=reduction, **ref_kwargs, **extra) * probe))

    finite_difference_check(f, {"x": x.copy()}, {"x": gpuconv.to_numpy(grad)}, rng=rng, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("case", range(6))
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss(backend, dtype, rng, case, reduction):
    shape = [(5, 4), (3, 6, 2), (2, 3, 2, 3), (4,), (1, 1), (6, 3)][case]
    logp = np.log(rng.uniform(0.05, 1.0, shape))
    classes = shape[0] if len(shape) == 1 else shape[1]
    target_shape = () if len(shape) == 1 else (shape[0],) + shape[2:]
    target = rng.integers(0, classes, target_shape)
    weight = rng.uniform(0.5, 2.0, classes) if case % 2 else None
    ignore = int(target.reshape(-1)[0]) if case in (2, 5) and target.size > 1 else -100
    kwargs = dict(ignore_index=ignore)
    _check(F.nll_loss, F.nll_loss_backward, ref.nll_loss, logp, target, kwargs, kwargs, reduction, dtype, rng,
           extra={"weight": weight})


@pytest.mark.parametrize("case", range(4))
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy(backend, dtype, rng, case, reduction):
    shape = [(4, 3), (2, 3, 2), (7,), (1, 1)][case]
    x = rng.uniform(0.05, 0.95, shape)
    t = rng.uniform(0, 1, shape) if case % 2 else rng.integers(0, 2, shape).astype(np.float64)
    weight = rng.uniform(0.5, 2.0, shape[-1:]) if case in (1, 2) else None
    _check(F.binary_cross_entropy, F.binary_cross_entropy_backward, ref.binary_cross_entropy, x, t, {}, {},
           reduction, dtype, rng, extra={"weight": weight})


@pytest.mark.parametrize("case", range(4))
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_with_logits(backend, dtype, rng, case, reduction):
    shape = [(4, 3), (2, 3, 2), (7,), (1, 1)][case]
    x = rng.standard_normal(shape) * 3
    t = rng.uniform(0, 1, shape) if case % 2 else rng.integers(0, 2, shape).astype(np.float64)
    extra = {"weight": rng.uniform(0.5, 2.0, shape) if case in (0, 2) else None,
             "pos_weight": rng.uniform(0.5, 3.0, shape[-1:]) if case in (1, 2) else None}
    _check(F.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits_backward,
           ref.binary_cross_entropy_with_logits, x, t, {}, {}, reduction, dtype, rng, extra=extra)


@pytest.mark.parametrize("beta", [1.0, 0.3, 0.0, 2.5])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_smooth_l1_loss(backend, dtype, rng, beta, reduction):
    x = rng.standard_normal((3, 4, 2)) * 2
    t = rng.standard_normal((3, 4, 2))
    kwargs = dict(beta=beta)
    _check(F.smooth_l1_loss, F.smooth_l1_loss_backward, ref.smooth_l1_loss, x, t, kwargs, kwargs, reduction,
           dtype, rng)


def test_bce_clamps_logs_and_extreme_logits_stay_finite():
    with gpuconv.backend("numpy"):
        x = np.array([0.0, 1.0, 0.5])
        t = np.array([1.0, 0.0, 1.0])
        np.testing.assert_allclose(F.binary_cross_entropy(x, t, reduction="none"), [100.0, 100.0, np.log(2)])
        big = np.array([1000.0, -1000.0])
        np.testing.assert_allclose(F.binary_cross_entropy_with_logits(big, np.array([0.0, 1.0]), reduction="none"),
                                   [1000.0, 1000.0])
        np.testing.assert_allclose(F.binary_cross_entropy_with_logits_backward(
            np.ones(2), big, np.array([0.0, 1.0]), reduction="none"), [1.0, -1.0])


def test_bad_inputs(backend):
    g = gpuconv.asarray
    x = g(np.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="probabilities in \\[0, 1\\].*with_logits"):
        F.binary_cross_entropy(g(np.full((2, 3), 1.5)), x)
    with pytest.raises(ValueError, match="target must have the shape of input"):
        F.binary_cross_entropy(x, g(np.zeros((3, 2))))
    with pytest.raises(ValueError, match=r"pos_weight of shape \(2,\) does not broadcast"):
        F.binary_cross_entropy_with_logits(x, x, pos_weight=g(np.ones(2)))
    with pytest.raises(ValueError, match="beta must be non-negative"):
        F.smooth_l1_loss(x, x, beta=-1.0)
    with pytest.raises(ValueError, match=r"target must have shape \(2,\) for input"):
        F.nll_loss(x, g(np.zeros(3, dtype=np.int64)))
    with pytest.raises(ValueError, match="target values must be in"):
        F.nll_loss(x, g(np.array([0, 3])))
    with pytest.raises(ValueError, match="reduction"):
        F.smooth_l1_loss(x, x, reduction="avg")


# ---- modules ---------------------------------------------------------------------------------------------------

def _modules(rng):
    logits = rng.standard_normal((4, 3))
    probs = 1 / (1 + np.exp(-logits))
    labels = rng.integers(0, 3, 4)
    binary = rng.integers(0, 2, (4, 3)).astype(np.float64)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return [
        (nn.NLLLoss(weight=np.array([1.0, 2.0, 0.5])), logp, labels,
         lambda: ref.nll_loss(logp, labels, np.array([1.0, 2.0, 0.5]))),
        (nn.BCELoss(), probs, binary, lambda: ref.binary_cross_entropy(probs, binary)),
        (nn.BCEWithLogitsLoss(pos_weight=np.array([1.0, 2.0, 3.0])), logits, binary,
         lambda: ref.binary_cross_entropy_with_logits(logits, binary, pos_weight=np.array([1.0, 2.0, 3.0]))),
        (nn.SmoothL1Loss(beta=0.5), logits, binary, lambda: ref.smooth_l1_loss(logits, binary, beta=0.5)),
    ]


def test_loss_modules(rng):
    with gpuconv.backend("numpy"):
        for crit, x, t, expected in _modules(rng):
            xt = gpuconv.tensor(x, requires_grad=True)
            loss = crit(xt, t)
            np.testing.assert_allclose(loss.item(), expected(), rtol=1e-12)
            assert crit.output_shape(x.shape) == ()
            loss.backward()
            assert xt.grad.shape == x.shape
            with pytest.raises(RuntimeError, match="retain_graph=True"):
                loss.backward()
        assert list(nn.BCEWithLogitsLoss(pos_weight=np.ones(3)).state_dict()) == ["pos_weight"]
        assert list(nn.NLLLoss(weight=np.ones(3)).state_dict()) == ["weight"]
        assert list(nn.BCELoss().state_dict()) == []
        assert repr(nn.SmoothL1Loss(beta=0.5)) == "SmoothL1Loss(beta=0.5)"
        crit = nn.SmoothL1Loss(reduction="none")
        x = gpuconv.tensor(rng.standard_normal((2, 3)), requires_grad=True)
        loss = crit(x, x.detach() * 0)
        assert loss.shape == (2, 3) == crit.output_shape((2, 3))
        loss.backward(np.ones((2, 3)))
        assert x.grad.shape == (2, 3)


def test_nll_bce_smooth_l1_against_torch(rng):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    with gpuconv.backend("numpy"):
        for reduction in REDUCTIONS:
            logits = rng.standard_normal((5, 4, 3)) * 3
            labels = rng.integers(0, 4, (5, 3))
            labels[0, 0] = 2
            weight = rng.uniform(0.5, 2, 4)
            logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
            binary = rng.uniform(0, 1, logits.shape)
            probs = 1 / (1 + np.exp(-logits))
            pos_weight = rng.uniform(0.5, 2, 3)
            cases = [
                (lambda x: F.nll_loss(x, labels, weight, 2, reduction),
                 lambda x, d: F.nll_loss_backward(d, x, labels, weight, 2, reduction),
                 lambda x: tf.nll_loss(x, torch.tensor(labels), torch.tensor(weight), ignore_index=2,
                                       reduction=reduction), logp),
                (lambda x: F.binary_cross_entropy(x, binary, reduction=reduction),
                 lambda x, d: F.binary_cross_entropy_backward(d, x, binary, reduction=reduction),
                 lambda x: tf.binary_cross_entropy(x, torch.tensor(binary), reduction=reduction), probs),
                (lambda x: F.binary_cross_entropy_with_logits(x, binary, reduction=reduction, pos_weight=pos_weight),
                 lambda x, d: F.binary_cross_entropy_with_logits_backward(d, x, binary, reduction=reduction,
                                                                          pos_weight=pos_weight),
                 lambda x: tf.binary_cross_entropy_with_logits(x, torch.tensor(binary), reduction=reduction,
                                                               pos_weight=torch.tensor(pos_weight)), logits),
                (lambda x: F.smooth_l1_loss(x, binary, reduction=reduction, beta=0.7),
                 lambda x, d: F.smooth_l1_loss_backward(d, x, binary, reduction=reduction, beta=0.7),
                 lambda x: tf.smooth_l1_loss(x, torch.tensor(binary), reduction=reduction, beta=0.7), logits),
            ]
            for ours, ours_backward, theirs, x in cases:
                t_x = torch.tensor(x, requires_grad=True)
                t_loss = theirs(t_x)
                probe = rng.standard_normal(t_loss.shape)
                t_loss.backward(torch.tensor(probe))
                np.testing.assert_allclose(ours(x), t_loss.detach().numpy(), rtol=1e-12, atol=1e-14)
                d = probe if reduction == "none" else float(probe)
                np.testing.assert_allclose(ours_backward(x, d), t_x.grad.numpy(), rtol=1e-12, atol=1e-14)


# ---- kernels/loss.cu: random configurations, row lengths and schedules, fit()'s running counts ---------------

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
