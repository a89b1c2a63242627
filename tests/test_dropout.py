"""Dropout (gpuconv/functional/dropout.py) on every backend: with a NumPy generator the documented
host draw, y and dx against float64 expressions; the default generator's seeding and drop rate; the
device draw's mask followed exactly by y and dx; eval as identity; the argument checks. The module
(nn.Dropout): tests/test_nn.py; channel dropout: tests/test_channel_dropout.py."""

from __future__ import annotations

import numpy as np
import pytest

import gpuconv
import gpuconv.functional as F
from tests.helpers import assert_close


@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 0.9, 1.0])
def test_dropout(backend, dtype, rng, p):
    x = (rng.standard_normal((4, 50)) + 3).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    seed = int(rng.integers(1 << 30))
    y, mask = F.dropout(gpuconv.asarray(x), p, generator=np.random.default_rng(seed), return_mask=True)
    y, mask = gpuconv.to_numpy(y), gpuconv.to_numpy(mask)
    assert y.dtype == dtype and mask.shape == x.shape
    expected_mask = np.random.default_rng(seed).random(x.shape) >= p   # the documented draw
    np.testing.assert_array_equal(mask, expected_mask)
    scale = 0.0 if p == 1 else 1.0 / (1.0 - p)
    assert_close(y, np.where(expected_mask, x.astype(np.float64) * scale, 0.0))
    dx = F.dropout_backward(gpuconv.asarray(dy), gpuconv.asarray(mask), p)
    assert_close(dx, np.where(expected_mask, dy.astype(np.float64) * scale, 0.0))
    if p == 1.0:
        assert not np.any(y)
    if 0 < p < 1:
        assert 0 < mask.sum() < mask.size


def test_dropout_statistics_and_seeding(backend):
    x = gpuconv.asarray(np.ones((200, 200)))
    gpuconv.manual_seed(123)
    a = gpuconv.to_numpy(F.dropout(x, 0.3))
    gpuconv.manual_seed(123)
    b = gpuconv.to_numpy(F.dropout(x, 0.3))
    c = gpuconv.to_numpy(F.dropout(x, 0.3))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(b, c)
    assert abs((a == 0).mean() - 0.3) < 0.01          # 40,000 draws: 5 sigma is about 0.011
    assert abs(a.mean() - 1.0) < 0.02                 # inverted scaling keeps the expectation


def test_dropout_eval_is_identity(backend, rng):
    x = gpuconv.asarray(rng.standard_normal((3, 4)))
    assert F.dropout(x, 0.5, training=False) is x
    y, mask = F.dropout(x, 0.7, training=False, return_mask=True)
    assert y is x and gpuconv.to_numpy(mask).all()


def test_dropout_bad_inputs(backend):
    x = gpuconv.asarray(np.ones((2, 3)))
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError, match="p"):
            F.dropout(x, p)
    with pytest.raises(TypeError, match="p"):
        F.dropout(x, "half")
    with pytest.raises(TypeError, match="generator"):
        F.dropout(x, 0.5, generator=np.random.RandomState(0))
    with pytest.raises(ValueError, match="mask"):
        F.dropout_backward(x, gpuconv.asarray(np.ones((3, 2), dtype=bool)), 0.5)


@pytest.mark.parametrize("p", [0.1, 0.5, 1.0])
def test_dropout_default_generator_mask_matches_output(backend, dtype, rng, p):
    """Without a generator (drawn on the device on the kernel backends): y and dx follow the
    returned mask exactly, NaN inputs stay NaN where dropped (x * 0), and the drop rate is p."""
    x = (rng.standard_normal((64, 80)) + 3).astype(dtype)
    x[0, :4] = np.nan
    gpuconv.manual_seed(int(rng.integers(1 << 30)))
    y, mask = F.dropout(gpuconv.asarray(x), p, return_mask=True)
    y, mask = gpuconv.to_numpy(y), gpuconv.to_numpy(mask)
    assert mask.dtype == np.bool_ and y.dtype == dtype
    scale = 0.0 if p == 1 else 1.0 / (1.0 - p)
    assert_close(y, x.astype(np.float64) * np.where(mask, scale, 0.0), equal_nan=True)
    assert abs((~mask).mean() - p) < 0.035  # 5120 draws: 5 sigma is at most 0.035 (p = 0.5)
    dy = rng.standard_normal(x.shape).astype(dtype)
    assert_close(F.dropout_backward(gpuconv.asarray(dy), gpuconv.asarray(mask), p), np.where(mask, dy * scale, 0.0))
