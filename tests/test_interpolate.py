"""Resizing (gpuconv/functional/interpolate.py, nn.Upsample): F.interpolate and its backward against
the float64 loops of tests/reference.py on every backend (nearest and bilinear, size and
scale_factor, align_corners, recompute_scale_factor); the argument checks; the module by
``check_layer`` of test_nn (forward, output_shape, backward by finite differences in float64). The
module and F.interpolate against PyTorch: tests/test_nn.py's test_layers_against_torch."""

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


INTERPOLATE_CASES = [
    # (x shape, size, scale_factor, mode, align_corners, recompute_scale_factor)
    ((2, 3, 4, 5), None, 2, "nearest", None, None),
    ((1, 2, 5, 3), (7, 4), None, "nearest", None, None),
    ((1, 1, 6, 7), (4, 3), None, "nearest", None, None),           # downsampling
    ((2, 2, 3, 4), None, (1.5, 2.7), "nearest", None, None),
    ((2, 3, 4, 5), None, 2, "bilinear", False, None),
    ((2, 3, 4, 5), None, 2, "bilinear", True, None),
    ((1, 2, 5, 3), (7, 8), None, "bilinear", False, None),
    ((1, 2, 5, 3), (7, 8), None, "bilinear", True, None),
    ((1, 1, 6, 7), (3, 2), None, "bilinear", False, None),
    ((1, 1, 6, 7), (1, 2), None, "bilinear", True, None),          # one output row
    ((2, 1, 3, 4), None, (1.7, 0.6), "bilinear", False, None),
    ((2, 1, 3, 4), None, (1.7, 2.3), "bilinear", False, True),
    ((1, 1, 1, 1), (3, 2), None, "bilinear", False, None),
    ((1, 2, 3, 5), None, 1.2, "nearest", None, None),               # 3 -> 3: copied, whatever the scale
    ((1, 2, 3, 5), None, (2.2, 1.1), "nearest", None, None),        # 3 -> 6: o // 2; 5 -> 5: copied
    ((1, 2, 3, 5), None, (1.2, 2.2), "bilinear", False, None),      # 3 -> 3: copied
]


def _scale_pair(scale_factor, recompute):
    if scale_factor is None or recompute:
        return (None, None)
    return (float(scale_factor),) * 2 if np.isscalar(scale_factor) else tuple(map(float, scale_factor))


@pytest.mark.parametrize("case", INTERPOLATE_CASES, ids=[f"{c[3]}-{i}" for i, c in enumerate(INTERPOLATE_CASES)])
def test_interpolate_against_reference(backend, dtype, rng, case):
    shape, size, scale_factor, mode, align_corners, recompute = case
    kwargs = dict(size=size, scale_factor=scale_factor, mode=mode, align_corners=align_corners,
                  recompute_scale_factor=recompute)
    x = rng.standard_normal(shape)
    y = F.interpolate(g(x.astype(dtype)), **kwargs)
    out_size = tuple(y.shape[2:])
    scales = _scale_pair(scale_factor, recompute)
    assert_close(y, ref.interpolate(x, out_size, scales, mode, bool(align_corners)), dtype)
    dy = rng.standard_normal(y.shape)
    dx = F.interpolate_backward(g(dy.astype(dtype)), shape, **kwargs)
    assert_close(dx, ref.interpolate_backward(dy, shape, scales, mode, bool(align_corners)), dtype)


def test_interpolate_bad_arguments(backend):
    x = g(np.ones((1, 1, 2, 2)))
    with pytest.raises(ValueError, match="exactly one of size and scale_factor"):
        F.interpolate(x)
    with pytest.raises(ValueError, match="exactly one of size and scale_factor"):
        F.interpolate(x, size=3, scale_factor=2)
    with pytest.raises(ValueError, match="mode must be one of"):
        F.interpolate(x, scale_factor=2, mode="bicubic")
    with pytest.raises(ValueError, match="align_corners can only be set with mode='bilinear'"):
        F.interpolate(x, scale_factor=2, align_corners=True)
    with pytest.raises(ValueError, match="makes the 2x2 input empty"):
        F.interpolate(x, scale_factor=0.3)
    with pytest.raises(ValueError, match="input must be 4-D"):
        F.interpolate(g(np.ones((2, 2))), scale_factor=2)
    with pytest.raises(ValueError, match="size must be positive"):
        nn.Upsample(size=(0, 2))


@pytest.mark.parametrize("mode,kwargs", [("nearest", dict(scale_factor=2)), ("nearest", dict(size=(3, 7))),
                                         ("bilinear", dict(scale_factor=1.5, align_corners=False)),
                                         ("bilinear", dict(size=(5, 2), align_corners=True))])
def test_upsample_module(numpy_f64, rng, mode, kwargs):
    layer = nn.Upsample(mode=mode, **kwargs)
    x = rng.standard_normal((2, 3, 4, 5))
    y = check_layer(layer, x, lambda x: F.interpolate(x, mode=mode, **kwargs), rng=rng)
    assert y.shape == layer.output_shape(x.shape)


@pytest.mark.parametrize("scale", [float("inf"), (2.0, float("inf")), float("nan"), -1.0, 0.0])
def test_upsample_refuses_a_non_finite_or_non_positive_scale_factor(backend, scale):
    with pytest.raises(ValueError, match=r"scale_factor must be a positive finite number or a pair of them, got"):
        nn.Upsample(scale_factor=scale)
    x = gpuconv.asarray(np.ones((1, 1, 2, 2), np.float32))
    with pytest.raises(ValueError, match="scale_factor must be a positive finite number"):
        F.interpolate(x, scale_factor=scale)
