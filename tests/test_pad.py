"""F.pad / pad_backward (gpuconv.functional.pad) against the element-by-element reference and
PyTorch, on every backend; nn.Conv2d's padding modes against torch.nn.Conv2d."""

from __future__ import annotations

import numpy as np
import pytest

import gpuconv
from gpuconv import nn
from gpuconv.functional.pad import pad, pad_backward
from tests import reference
from tests.helpers import assert_close, finite_difference_check

MODES = ("constant", "reflect", "replicate", "circular")


def _random_case(rng, mode):
    """A shape of 2-5 dimensions and a pad of 1-3 pairs within PyTorch's limits for ``mode``."""
    pairs = int(rng.integers(1, 4))
    ndim = pairs + int(rng.integers(1, 3)) if mode != "constant" else int(rng.integers(pairs, 5))
    ndim = max(ndim, 1)
    shape = tuple(int(v) for v in rng.integers(1, 6, size=ndim))
    pads = []
    for k in range(pairs):
        size = shape[ndim - 1 - k]
        low, high = {"reflect": (0, size - 1), "circular": (0, size), "replicate": (0, 4),
                     "constant": (-(size // 2), 4)}[mode]
        pads += [int(rng.integers(low, high + 1)), int(rng.integers(low, high + 1))]
    return shape, tuple(pads)


@pytest.mark.parametrize("mode", MODES)
def test_matches_reference_forward_and_backward(backend, dtype, mode, rng):
    for _ in range(12):
        shape, pads = _random_case(rng, mode)
        x = rng.standard_normal(shape)
        extra = {"value": 0.75} if mode == "constant" else {}
        y = pad(gpuconv.asarray(x.astype(dtype)), pads, mode, **extra)
        assert_close(y, reference.pad(x.astype(dtype), pads, mode, **extra), dtype, rtol=0, atol=0)
        dy = rng.standard_normal(tuple(y.shape))
        dx = pad_backward(gpuconv.asarray(dy.astype(dtype)), pads, mode)
        # each input element sums at most 1 + 2 * 4 copies (replicate) of dy
        expected = reference.pad_backward(dy.astype(dtype), shape, pads, mode)
        tolerance = 9 * np.finfo(dtype).eps * reference.pad_backward(np.abs(dy.astype(dtype)), shape, pads, mode)
        assert np.all(np.abs(gpuconv.to_numpy(dx) - expected) <= tolerance), (shape, pads)
        assert gpuconv.to_numpy(dx).dtype == dtype


@pytest.mark.parametrize("mode", MODES)
def test_matches_torch(mode, rng):
    torch = pytest.importorskip("torch")
    for _ in range(20):
        shape, pads = _random_case(rng, mode)
        x = rng.standard_normal(shape)
        t = torch.tensor(x, requires_grad=True)
        extra = {"value": -2.5} if mode == "constant" else {}
        ty = torch.nn.functional.pad(t, pads, mode=mode, **extra)
        with gpuconv.backend("numpy"):
            y = pad(x, pads, mode, **extra)
            np.testing.assert_array_equal(y, ty.detach().numpy())
            dy = rng.standard_normal(y.shape)
            ty.backward(torch.tensor(dy))
            np.testing.assert_allclose(pad_backward(dy, pads, mode), t.grad.numpy(), rtol=1e-14, atol=1e-14)


def test_integer_images_keep_their_dtype():
    x = np.arange(12, dtype=np.uint8).reshape(1, 1, 3, 4)
    with gpuconv.backend("numpy"):
        for mode in MODES:
            y = pad(x, (1, 1, 1, 1), mode)
            assert y.dtype == np.uint8 and y.shape == (1, 1, 5, 6)
            np.testing.assert_array_equal(y, reference.pad(x, (1, 1, 1, 1), mode).astype(np.uint8))


def test_bad_arguments_name_themselves():
    x = np.zeros((1, 1, 3, 3))
    with gpuconv.backend("numpy"):
        with pytest.raises(ValueError, match="mode must be one of 'constant', 'reflect'.*got 'mirror'"):
            pad(x, (1, 1), "mirror")
        with pytest.raises(ValueError, match="even number"):
            pad(x, (1, 1, 1))
        with pytest.raises(TypeError, match=r"pad\[1\] must be an int, got 1.5"):
            pad(x, (1, 1.5))
        with pytest.raises(ValueError, match="mode='reflect'.*smaller than its size 3"):
            pad(x, (3, 0, 0, 0), "reflect")
        with pytest.raises(ValueError, match="mode='circular'.*at most its size 3"):
            pad(x, (0, 4, 0, 0), "circular")
        with pytest.raises(ValueError, match="non-negative"):
            pad(x, (-1, 0, 0, 0), "replicate")
        with pytest.raises(ValueError, match="4 pairs need a 5-D or 6-D input|pads the last 1, 2 or 3"):
            pad(x, (1, 1, 1, 1, 1, 1, 1, 1), "reflect")
        with pytest.raises(ValueError, match="value applies to mode='constant' only"):
            pad(x, (1, 1, 1, 1), "reflect", value=1.0)
        with pytest.raises(TypeError, match="dy must be float32 or float64"):
            pad_backward(np.zeros((1, 1, 3, 5), np.int32), (1, 1))


@pytest.mark.parametrize("padding_mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", [1, (2, 1), "same"])
def test_conv2d_padding_modes_match_torch(backend, padding_mode, padding, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 3, 7, 6))
    module = nn.Conv2d(3, 4, (3, 4) if padding == "same" else 3, padding=padding, padding_mode=padding_mode,
                       dtype=np.float64)
    theirs = torch.nn.Conv2d(3, 4, (3, 4) if padding == "same" else 3, padding=padding, padding_mode=padding_mode,
                             dtype=torch.float64)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(gpuconv.to_numpy(module.weight.data)))
        theirs.bias.copy_(torch.tensor(gpuconv.to_numpy(module.bias.data)))
    tx = torch.tensor(x, requires_grad=True)
    ty = theirs(tx)
    dy = rng.standard_normal(tuple(ty.shape))
    ty.backward(torch.tensor(dy))
    module.to(np.float64)
    xt = gpuconv.tensor(gpuconv.asarray(x), requires_grad=True)
    y = module(xt)
    assert_close(y.data, ty.detach().numpy())
    y.backward(gpuconv.asarray(dy))
    assert_close(xt.grad.data, tx.grad.numpy())
    assert_close(module.weight.grad.data, theirs.weight.grad.numpy())
    assert_close(module.bias.grad.data, theirs.bias.grad.numpy())
    assert padding_mode in repr(module)


def test_conv2d_padding_mode_gradient_by_finite_differences(rng):
    with gpuconv.backend("numpy"):
        module = nn.Conv2d(2, 3, 3, padding=(1, 2), padding_mode="reflect", dtype=np.float64)
        x = rng.standard_normal((1, 2, 5, 5))
        probe = rng.standard_normal(module(x).shape)
        xt = gpuconv.tensor(x, requires_grad=True)
        module(xt).backward(probe)
        dx = xt.grad.numpy()

        def f(x):
            with gpuconv.no_grad():
                return float((np.asarray(module.eval()(x)) * probe).sum())
        finite_difference_check(f, {"x": x}, {"x": dx}, rng=rng)


def test_conv2d_refuses_unknown_padding_modes():
    with pytest.raises(ValueError, match="padding_mode must be one of 'zeros', 'reflect', 'replicate', 'circular'"):
        nn.Conv2d(1, 1, 3, padding_mode="mirror")
