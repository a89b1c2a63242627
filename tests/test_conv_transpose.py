"""Transposed convolution (gpuconv/functional/conv_transpose.py, nn.ConvTranspose2d) against the
float64 loops of tests/reference.py over random configurations on every backend, with each conv2d
algorithm, forward and backward; the adjoint identity with conv2d; the argument checks; the module by
``check_layer`` of test_nn (forward, output_shape, backward by finite differences in float64). The
module against torch.nn.ConvTranspose2d: tests/test_nn.py's test_layers_against_torch."""

from __future__ import annotations

import numpy as np
import pytest

import gpuconv
import gpuconv.functional as F
from gpuconv import nn
from tests import reference as ref
from tests.helpers import assert_close
from tests.test_nn import check_layer

g = gpuconv.asarray


def _transpose_case(rng, index):
    """(x shape, weight shape, stride, padding, output_padding, groups, dilation), drawn per index."""
    fixed = [
        ((2, 3, 4, 5), (3, 2, 3, 3), (2, 2), (1, 1), (1, 0), 1, (1, 1)),
        ((1, 4, 3, 3), (4, 3, 1, 1), (1, 1), (0, 0), (0, 0), 1, (1, 1)),      # pointwise: gemm
        ((2, 4, 3, 4), (4, 1, 2, 3), (1, 2), (0, 1), (0, 1), 2, (2, 1)),      # groups, dilation
        ((1, 1, 1, 1), (1, 1, 2, 2), (3, 3), (0, 0), (2, 2), 1, (1, 1)),      # a single pixel
    ]
    if index < len(fixed):
        return fixed[index]
    groups = int(rng.choice([1, 2]))
    c_in = groups * int(rng.integers(1, 3))
    cog = int(rng.integers(1, 3))
    kh, kw = (int(v) for v in rng.integers(1, 4, 2))
    stride = tuple(int(v) for v in rng.integers(1, 4, 2))
    dilation = tuple(int(v) for v in rng.integers(1, 3, 2))
    padding = tuple(int(rng.integers(0, dilation[k] * ((kh, kw)[k] - 1) // 2 + 1)) for k in range(2))
    output_padding = tuple(int(rng.integers(0, s)) for s in stride)
    x_shape = (int(rng.integers(1, 3)), c_in, int(rng.integers(1, 5)), int(rng.integers(1, 5)))
    return x_shape, (c_in, cog, kh, kw), stride, padding, output_padding, groups, dilation


@pytest.mark.parametrize("index", range(8))
@pytest.mark.parametrize("algo", ["auto", "im2col", "direct", "gemm"])
def test_conv_transpose2d_against_reference(backend, dtype, rng, index, algo):
    x_shape, w_shape, stride, padding, output_padding, groups, dilation = _transpose_case(rng, index)
    if algo == "gemm" and not (w_shape[2:] == (1, 1) and stride == (1, 1) and padding == (0, 0)
                               and dilation == (1, 1)):
        pytest.skip("gemm needs a pointwise convolution")
    x = rng.standard_normal(x_shape)
    weight = rng.standard_normal(w_shape)
    bias = rng.standard_normal(w_shape[1] * groups) if index % 2 == 0 else None
    args = (stride, padding, output_padding, groups, dilation)
    expected = ref.conv_transpose2d(x, weight, bias, *args)
    y = F.conv_transpose2d(g(x.astype(dtype)), g(weight.astype(dtype)), None if bias is None else g(bias.astype(dtype)),
                           *args, algo=algo)
    assert_close(y, expected, dtype)
    assert F.conv_transpose2d_output_shape(x_shape, w_shape, *args) == expected.shape
    dy = rng.standard_normal(expected.shape)
    dx, dw, db = F.conv_transpose2d_backward(g(dy.astype(dtype)), g(x.astype(dtype)), g(weight.astype(dtype)), *args,
                                             algo=algo)
    rdx, rdw, rdb = ref.conv_transpose2d_backward(dy, x, weight, stride, padding, groups, dilation)
    assert_close(dx, rdx, dtype)
    assert_close(dw, rdw, dtype)
    assert_close(db, rdb, dtype)
    only_dw = F.conv_transpose2d_backward(g(dy.astype(dtype)), g(x.astype(dtype)), g(weight.astype(dtype)), *args,
                                          algo=algo, needs=(False, True, False))
    assert only_dw[0] is None and only_dw[2] is None
    assert_close(only_dw[1], rdw, dtype)


def test_conv_transpose2d_is_the_adjoint_of_conv2d(rng):
    """<conv2d(a), b> == <a, conv_transpose2d(b)> for the same weight and arguments."""
    with gpuconv.backend("numpy"):
        weight = rng.standard_normal((3, 2, 3, 3))        # conv2d: 2 -> 3 channels; transposed: 3 -> 2
        a = rng.standard_normal((2, 2, 7, 8))
        conv = F.conv2d(a, weight, stride=2, padding=1)
        b = rng.standard_normal(conv.shape)
        op = 7 - ((conv.shape[2] - 1) * 2 - 2 + 3), 8 - ((conv.shape[3] - 1) * 2 - 2 + 3)
        back = F.conv_transpose2d(b, weight, stride=2, padding=1, output_padding=op)
        assert back.shape == a.shape
        np.testing.assert_allclose(np.sum(conv * b), np.sum(a * back), rtol=1e-12)


def test_conv_transpose2d_bad_arguments(backend):
    x, w = g(np.ones((1, 2, 3, 3))), g(np.ones((2, 1, 3, 3)))
    with pytest.raises(ValueError, match="x has 3 channels but weight"):
        F.conv_transpose2d(g(np.ones((1, 3, 3, 3))), w)
    with pytest.raises(ValueError, match="output_padding .* smaller than stride"):
        F.conv_transpose2d(x, w, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="would be empty"):
        F.conv_transpose2d(g(np.ones((1, 2, 1, 1))), g(np.ones((2, 1, 1, 1))), padding=1)
    with pytest.raises(ValueError, match="bias must have C_out = 1"):
        F.conv_transpose2d(x, w, g(np.ones(2)))
    with pytest.raises(ValueError, match="dy must have the conv_transpose2d output shape"):
        F.conv_transpose2d_backward(g(np.ones((1, 1, 4, 4))), x, w)
    with pytest.raises(TypeError, match="weight has dtype float32"):
        F.conv_transpose2d(x, g(np.ones((2, 1, 3, 3), np.float32)))


def test_conv_transpose2d_module(numpy_f64, rng):
    for kwargs, x_shape in ((dict(stride=2, padding=1, output_padding=1), (2, 4, 3, 3)),
                            (dict(groups=2, dilation=2, bias=False), (1, 4, 4, 3))):
        layer = nn.ConvTranspose2d(4, 6, 3, dtype=np.float64, **kwargs)
        assert layer.weight.shape == (4, 3 if "groups" in kwargs else 6, 3, 3)
        x = rng.standard_normal(x_shape)
        args = (layer.stride, layer.padding, layer.output_padding, layer.groups, layer.dilation)
        check_layer(layer, x, lambda x: ref.conv_transpose2d(
            x, layer.weight.data, None if layer.bias is None else layer.bias.data, *args), rng=rng)
