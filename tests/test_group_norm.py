"""Group normalization (gpuconv/functional/group_norm.py, nn.GroupNorm) against the float64 loops of
tests/reference.py on every backend, forward and backward; the argument checks (eps as batch norm
takes it); the module by ``check_layer`` of test_nn (forward, output_shape, backward by finite
differences in float64). The module against torch.nn.GroupNorm: tests/test_nn.py's
test_layers_against_torch."""

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


@pytest.mark.parametrize("shape,groups,affine", [((2, 6, 3, 4), 3, True), ((3, 4), 2, False), ((1, 4, 5), 4, True),
                                                 ((2, 3, 2, 2), 1, True), ((2, 8, 1, 3, 2), 2, True)])
def test_group_norm_against_reference(backend, dtype, rng, shape, groups, affine):
    x = rng.standard_normal(shape) * 3 + 1
    weight = rng.standard_normal(shape[1]) if affine else None
    bias = rng.standard_normal(shape[1]) if affine else None
    gw = None if weight is None else g(weight.astype(dtype))
    gb = None if bias is None else g(bias.astype(dtype))
    y, mean, invstd = F.group_norm(g(x.astype(dtype)), groups, gw, gb, 1e-5, return_stats=True)
    assert_close(y, ref.group_norm(x, groups, weight, bias), dtype, **({"rtol": 1e-4, "atol": 1e-4}
                                                                        if dtype == np.float32 else {}))
    assert mean.shape == invstd.shape == (shape[0], groups)
    dy = rng.standard_normal(shape)
    dx, dw, db = F.group_norm_backward(g(dy.astype(dtype)), g(x.astype(dtype)), groups, gw, mean, invstd)
    rdx, rdw, rdb = ref.group_norm_backward(dy, x, groups, weight)
    tol = {"rtol": 1e-4, "atol": 1e-4} if dtype == np.float32 else {"rtol": 1e-9, "atol": 1e-10}
    assert_close(dx, rdx, dtype, **tol)
    assert_close(dw, rdw, dtype, **tol)
    assert_close(db, rdb, dtype, **tol)


def test_group_norm_bad_arguments(backend):
    with pytest.raises(ValueError, match="num_groups=4 must divide the channels of x, got C=6"):
        F.group_norm(g(np.ones((2, 6, 2))), 4)
    with pytest.raises(ValueError, match=r"weight must have shape \(6,\)"):
        F.group_norm(g(np.ones((2, 6, 2))), 3, g(np.ones(3)))
    with pytest.raises(ValueError, match="GroupNorm expects input shape"):
        nn.GroupNorm(2, 4)(g(np.ones((2, 6, 2), np.float32)))
    with pytest.raises(ValueError, match="must divide num_channels"):
        nn.GroupNorm(4, 6)


def test_group_norm_module(numpy_f64, rng):
    for layer, shape in ((nn.GroupNorm(2, 4, dtype=np.float64), (3, 4, 2, 3)),
                         (nn.GroupNorm(3, 3, affine=False, dtype=np.float64), (2, 3, 5))):
        if layer.affine:
            layer.weight.data[...] = rng.standard_normal(layer.num_channels)
            layer.bias.data[...] = rng.standard_normal(layer.num_channels)
        w = None if layer.weight is None else layer.weight.data
        b = None if layer.bias is None else layer.bias.data
        check_layer(layer, rng.standard_normal(shape), lambda x: ref.group_norm(x, layer.num_groups, w, b), rng=rng)


@pytest.mark.parametrize("eps", [-1.0, 0.0, 0])
def test_group_norm_refuses_eps_that_is_not_positive_as_batch_norm_does(backend, eps):
    with pytest.raises(ValueError, match=rf"eps must be a positive finite number, got {eps!r}"):
        nn.GroupNorm(2, 4, eps=eps)
    x = gpuconv.asarray(np.ones((1, 4, 2, 2), np.float32))  # constant groups: variance 0
    with pytest.raises(ValueError, match=rf"eps must be > 0, got {float(eps)!r}"):
        F.group_norm(x, 2, eps=eps)
    with pytest.raises(ValueError, match="eps must be"):
        F.batch_norm(x, None, None, training=True, eps=eps)  # the rule group norm now follows
