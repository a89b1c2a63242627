"""gpuconv.transforms against direct NumPy formulas (torchvision's semantics): crops are windows of
the padded image, flips mirror the last axis, Normalize is per channel; seeding and bad input."""

from __future__ import annotations

import numpy as np
import pytest

import gpuconv
from gpuconv import transforms as T


def _windows(padded, th, tw):
    h, w = padded.shape[-2:]
    return [padded[..., i:i + th, j:j + tw] for i in range(h - th + 1) for j in range(w - tw + 1)]


@pytest.mark.parametrize("padding,mode", [(None, "constant"), (1, "constant"), ((2, 1), "edge"),
                                          ((1, 0, 2, 3), "reflect"), (2, "symmetric")])
def test_random_crop_is_a_window_of_the_padded_image(rng, padding, mode):
    img = rng.standard_normal((3, 5, 6)).astype(np.float32)
    crop = T.RandomCrop((4, 3), padding=padding, fill=7.0, padding_mode=mode)
    if padding is None:
        padded = img
    else:
        left, top, right, bottom = {1: (1,) * 4, 2: (2,) * 4, (2, 1): (2, 1, 2, 1)}.get(padding, padding)
        widths = ((0, 0), (top, bottom), (left, right))
        padded = np.pad(img, widths, mode=mode, **({"constant_values": 7.0} if mode == "constant" else {}))
    windows = _windows(padded, 4, 3)
    positions = set()
    gpuconv.manual_seed(3)
    for _ in range(60):
        out = crop(img)
        assert out.shape == (3, 4, 3) and out.dtype == np.float32
        matches = [k for k, win in enumerate(windows) if np.array_equal(win, out)]
        assert matches, "the crop is not a window of the padded image"
        positions.add(matches[0])
    assert len(windows) == 1 or len(positions) > 1       # the position is random


def test_random_crop_pad_if_needed_and_errors(rng):
    img = rng.standard_normal((2, 3))
    out = T.RandomCrop(5, pad_if_needed=True)(img)
    assert out.shape == (5, 5)
    assert np.isclose(out.sum(), img.sum())                    # zero padding around the whole image
    with pytest.raises(ValueError, match=r"crop size \(5, 5\) is larger than the \(padded\) image \(2, 3\)"):
        T.RandomCrop(5)(img)
    with pytest.raises(ValueError, match="padding must be"):
        T.RandomCrop(2, padding=(1, 2, 3))
    with pytest.raises(ValueError, match="padding_mode"):
        T.RandomCrop(2, padding_mode="wrap")
    with pytest.raises(ValueError, match="size must be"):
        T.RandomCrop(0)
    with pytest.raises(TypeError, match="RandomCrop expects a NumPy image"):
        T.RandomCrop(2)([[1, 2], [3, 4]])


def test_horizontal_flip(rng):
    img = rng.standard_normal((2, 3, 4))
    np.testing.assert_array_equal(T.RandomHorizontalFlip(p=1.0)(img), img[..., ::-1])
    same = T.RandomHorizontalFlip(p=0.0)(img)
    np.testing.assert_array_equal(same, img)
    assert same is not img
    gpuconv.manual_seed(0)
    flips = [np.array_equal(T.RandomHorizontalFlip()(img), img[..., ::-1]) for _ in range(400)]
    assert 150 < sum(flips) < 250
    with pytest.raises(ValueError, match="p must be a probability"):
        T.RandomHorizontalFlip(1.5)


def test_normalize_per_channel(rng):
    img = rng.standard_normal((3, 4, 5)).astype(np.float32)
    mean, std = [0.1, 0.2, 0.3], [0.5, 2.0, 4.0]
    out = T.Normalize(mean, std)(img)
    expected = (img - np.array(mean, np.float32)[:, None, None]) / np.array(std, np.float32)[:, None, None]
    np.testing.assert_allclose(out, expected, rtol=1e-6)
    assert out.dtype == np.float32
    batch = rng.standard_normal((2, 3, 4, 5))
    np.testing.assert_allclose(T.Normalize(mean, std)(batch)[1], (batch[1] - np.array(mean)[:, None, None])
                               / np.array(std)[:, None, None])
    one = T.Normalize(0.5, 0.25)(img)
    np.testing.assert_allclose(one, (img - 0.5) / 0.25, rtol=1e-6)
    copy = img.copy()
    assert T.Normalize(mean, std, inplace=True)(copy) is copy
    np.testing.assert_allclose(copy, expected, rtol=1e-6)
    with pytest.raises(ValueError, match="mean has 2 values but the image has 3 channels"):
        T.Normalize([0, 0], [1, 1])(img)
    with pytest.raises(TypeError, match="float image, got dtype uint8"):
        T.Normalize(0, 1)(np.zeros((1, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="std must not contain zeros"):
        T.Normalize(0, [1, 0])


def test_compose_and_seeding(rng):
    img = rng.standard_normal((1, 8, 8))
    aug = T.Compose([T.RandomCrop(6, padding=2), T.RandomHorizontalFlip(), T.Normalize([0.5], [2.0])])
    assert "RandomCrop" in repr(aug) and "Normalize" in repr(aug)
    gpuconv.manual_seed(5)
    first = [aug(img) for _ in range(5)]
    gpuconv.manual_seed(5)
    again = [aug(img) for _ in range(5)]
    with T.random_source(np.random.default_rng(5)):
        own = [aug(img) for _ in range(5)]
    with T.random_source(np.random.default_rng(5)):
        own_again = [aug(img) for _ in range(5)]
    for a, b, c, d in zip(first, again, own, own_again, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(c, d)
    assert not all(np.array_equal(a, first[0]) for a in first)
    with pytest.raises(TypeError, match="transforms\\[1\\] must be callable"):
        T.Compose([T.RandomHorizontalFlip(), 3])
