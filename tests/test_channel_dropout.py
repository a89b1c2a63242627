"""Channel dropout (gpuconv/functional/channel_dropout.py, nn.Dropout2d): whole channels dropped or kept
and scaled by 1/(1-p), the gradient through the same mask, eval as identity, (C, H, W) input, the
argument checks, and the module by ``check_layer`` of test_nn (backward by finite differences with a
fixed seed). Against torch.nn.Dropout2d: tests/test_nn.py's test_containers_and_dropout2d_against_torch;
the autograd form and in-place use: tests/test_autograd_functional.py, tests/test_autograd_inplace.py."""

from __future__ import annotations

import numpy as np
import pytest

import gpuconv
from gpuconv import nn
from tests.test_nn import check_layer


def test_dropout2d(numpy_f64, rng):
    layer = nn.Dropout2d(0.4)
    x = rng.standard_normal((6, 5, 3, 4)) + 10           # no zero in the input
    xt = gpuconv.tensor(x, requires_grad=True)
    y = layer(xt)
    out = y.detach().numpy()
    dropped = np.all(out == 0, axis=(2, 3))
    kept = np.all(np.isclose(out, x / 0.6, rtol=1e-14), axis=(2, 3))
    assert np.all(dropped ^ kept) and 0 < dropped.sum() < 30, "each channel is dropped or kept whole"
    dy = rng.standard_normal(x.shape)
    y.backward(dy)
    np.testing.assert_array_equal(xt.grad.numpy(), np.where(dropped[:, :, None, None], 0.0, dy / 0.6))
    check_layer(nn.Dropout2d(0.3), rng.standard_normal((2, 4, 2, 2)), seed=3, rng=rng)
    layer.eval()
    assert layer(x) is x
    three = nn.Dropout2d(0.5)(rng.standard_normal((4, 3, 3)) + 10)
    assert set(np.all(three == 0, axis=(1, 2))) <= {True, False}
    with pytest.raises(ValueError, match="p must be in"):
        nn.Dropout2d(1.5)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\) or \(C, H, W\)"):
        nn.Dropout2d()(np.ones((2, 3)))
