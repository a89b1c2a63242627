"""gpuconv.data.DataLoader: batching, shuffling with a seed, drop_last, backend placement, bad input."""

from __future__ import annotations

import numpy as np
import pytest

import gpuconv
from gpuconv.data import DataLoader


def _collect(loader):
    return [tuple(gpuconv.to_numpy(a) for a in (batch if isinstance(batch, tuple) else (batch,)))
            for batch in loader]


@pytest.mark.parametrize("n,batch_size,drop_last", [(10, 3, False), (10, 3, True), (9, 3, True), (4, 10, False),
                                                    (4, 10, True), (1, 1, False)])
def test_batches_in_order(backend, n, batch_size, drop_last):
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    y = np.arange(n) * 10
    loader = DataLoader(x, y, batch_size=batch_size, drop_last=drop_last)
    batches = _collect(loader)
    expected = n // batch_size if drop_last else -(-n // batch_size)
    assert len(loader) == len(batches) == expected
    seen = np.concatenate([b[0] for b in batches]) if batches else np.zeros((0, 2))
    np.testing.assert_array_equal(seen, x[:len(seen)])
    for xb, yb in batches:
        assert xb.dtype == np.float32 and len(xb) == len(yb) <= batch_size
        np.testing.assert_array_equal(yb, xb[:, 0] * 5)
    for xb, yb in loader:
        assert backend.is_native(xb) and backend.is_native(yb)


def test_shuffle_is_seeded_and_reshuffles_each_epoch(backend):
    x = np.arange(50, dtype=np.float64)[:, None]
    a, b = DataLoader(x, batch_size=8, shuffle=True, seed=3), DataLoader(x, batch_size=8, shuffle=True, seed=3)
    a1, a2 = _collect(a), _collect(a)
    b1, b2 = _collect(b), _collect(b)
    for first, second in ((a1, b1), (a2, b2)):
        for u, v in zip(first, second, strict=True):
            np.testing.assert_array_equal(u[0], v[0])
    order1, order2 = np.concatenate([t[0] for t in a1])[:, 0], np.concatenate([t[0] for t in a2])[:, 0]
    assert sorted(order1) == sorted(order2) == list(range(50))      # a permutation: each sample once
    assert not np.array_equal(order1, order2) and not np.array_equal(order1, np.arange(50))
    other = np.concatenate([t[0] for t in _collect(DataLoader(x, batch_size=8, shuffle=True, seed=4))])[:, 0]
    assert not np.array_equal(order1, other)


def test_shuffle_without_seed_follows_manual_seed(backend):
    x = np.arange(20)[:, None]
    gpuconv.manual_seed(11)
    first = np.concatenate(list(map(gpuconv.to_numpy, DataLoader(x, batch_size=4, shuffle=True))))
    gpuconv.manual_seed(11)
    again = np.concatenate(list(map(gpuconv.to_numpy, DataLoader(x, batch_size=4, shuffle=True))))
    np.testing.assert_array_equal(first, again)


def test_batches_are_copies(backend):
    x = np.ones((4, 2))
    for xb in DataLoader(x, batch_size=2):
        xb[...] = 5
    assert np.all(x == 1)


def test_bad_arguments():
    x = np.zeros((5, 2))
    with pytest.raises(ValueError, match="same number of samples"):
        DataLoader(x, np.zeros(4))
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="batch_size"):
            DataLoader(x, batch_size=bad)
    with pytest.raises(ValueError, match="seed"):
        DataLoader(x, seed=-3)
    with pytest.raises(ValueError, match="x must have a sample dimension"):
        DataLoader(np.float64(1.0))
