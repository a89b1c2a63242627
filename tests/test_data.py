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


# ---- datasets, transforms, collate_fn, threads, dtype (issue 14) --------------------------------

class SquaresDataset:
    """A map-style Dataset: sample i is (an image filled with i, the label i % 3)."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return np.full((1, 2, 3), float(i)), i % 3


def test_tuple_of_arrays_dataset_and_list_give_the_same_batches(backend, rng):
    x = rng.standard_normal((11, 1, 2, 3))
    y = rng.integers(0, 3, 11)
    reference = _collect(DataLoader(x, y, batch_size=4))
    pairs = [(x[i], int(y[i])) for i in range(11)]
    for dataset in ((x, y), pairs):
        batches = _collect(DataLoader(dataset, batch_size=4))
        assert len(batches) == len(reference) == 3
        for (xb, yb), (xr, yr) in zip(batches, reference, strict=True):
            np.testing.assert_array_equal(xb, xr)
            np.testing.assert_array_equal(yb, yr)
    three = _collect(DataLoader((x, y, y * 2), batch_size=5))
    np.testing.assert_array_equal(three[0][2], y[:5] * 2)


def test_dataset_object_with_drop_last(backend):
    loader = DataLoader(SquaresDataset(7), batch_size=3, drop_last=True)
    batches = _collect(loader)
    assert len(loader) == len(batches) == 2
    xb, yb = batches[1]
    assert xb.shape == (3, 1, 2, 3)
    np.testing.assert_array_equal(xb[:, 0, 0, 0], [3, 4, 5])
    np.testing.assert_array_equal(yb, [0, 1, 2])
    for xb, yb in loader:
        assert backend.is_native(xb) and backend.is_native(yb)


def test_transform_and_target_transform_apply_per_sample(backend, rng):
    x = rng.standard_normal((6, 2, 3))
    y = np.arange(6)
    seen = []

    def transform(img):
        seen.append(img.shape)
        return img[::-1] * 2

    batches = _collect(DataLoader((x, y), batch_size=4, transform=transform, target_transform=lambda t: t + 10))
    assert seen == [(2, 3)] * 6
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), x[:, ::-1] * 2)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y + 10)
    assert np.all(x == x)  # the dataset itself is untouched
    plain = _collect(DataLoader(x, batch_size=6, transform=lambda img: img + 1))
    np.testing.assert_array_equal(plain[0][0], x + 1)


def test_collate_fn(backend):
    def collate(samples):
        images = np.stack([s[0] for s in samples])
        return {"image": images, "label": np.array([s[1] for s in samples]), "count": len(samples)}

    batches = list(DataLoader(SquaresDataset(5), batch_size=2, collate_fn=collate))
    assert [b["count"] for b in batches] == [2, 2, 1]
    assert backend.is_native(batches[0]["image"])
    np.testing.assert_array_equal(gpuconv.to_numpy(batches[2]["label"]), [1])


def test_threads_give_the_same_batches_with_random_transforms(backend, rng):
    from gpuconv import transforms

    x = rng.standard_normal((37, 1, 6, 6))
    y = rng.integers(0, 10, 37)
    aug = transforms.Compose([transforms.RandomCrop(4, padding=1), transforms.RandomHorizontalFlip()])

    def epochs(workers):
        loader = DataLoader((x, y), batch_size=5, shuffle=True, seed=7, transform=aug, num_workers=workers)
        return [_collect(loader) for _ in range(2)]

    serial = epochs(0)
    for workers in (1, 3):
        threaded = epochs(workers)
        for epoch_a, epoch_b in zip(serial, threaded, strict=True):
            for (xa, ya), (xb, yb) in zip(epoch_a, epoch_b, strict=True):
                np.testing.assert_array_equal(xa, xb)
                np.testing.assert_array_equal(ya, yb)
    # The two epochs differ (new order and new crops), and crops differ between samples.
    assert not np.array_equal(serial[0][0][0], serial[1][0][0])
    # Stopping early leaves no thread behind.
    for i, _ in enumerate(DataLoader((x, y), batch_size=2, transform=aug, num_workers=2)):
        if i == 1:
            break


def test_dtype_casts_inputs_and_float_targets(backend):
    x = np.arange(24, dtype=np.float64).reshape(4, 6)
    for y, target_dtype in ((np.arange(4), np.int64), (np.linspace(0, 1, 4), np.float32)):
        for workers in (0, 2):
            xb, yb = next(iter(DataLoader(x, y, batch_size=4, dtype=np.float32, num_workers=workers)))
            assert xb.dtype == np.float32 and yb.dtype == target_dtype
            np.testing.assert_array_equal(gpuconv.to_numpy(xb), x.astype(np.float32))
    images = np.zeros((3, 1, 2, 2), dtype=np.uint8)
    (xb,) = [b for b in DataLoader(images, batch_size=3, dtype="float64")]
    assert xb.dtype == np.float64
    xb, yb = next(iter(DataLoader(SquaresDataset(3), batch_size=3, dtype=np.float32)))
    assert xb.dtype == np.float32 and yb.dtype.kind == "i"


def test_unsupported_inputs_are_clear_errors():
    with pytest.raises(TypeError, match="dataset must be an array, a tuple of arrays .* got generator"):
        DataLoader((i for i in range(3)))
    with pytest.raises(TypeError, match="got dict"):
        DataLoader({"x": np.zeros(3)})
    with pytest.raises(TypeError, match="got int"):
        DataLoader(5)
    with pytest.raises(TypeError, match="y must be an array of targets .* batch_size= by keyword"):
        DataLoader(np.zeros((4, 2)), 32)
    with pytest.raises(TypeError, match="tuple must hold arrays"):
        DataLoader(([1, 2], [3, 4]))
    with pytest.raises(ValueError, match=r"same number of samples, got \[3, 2\]"):
        DataLoader((np.zeros(3), np.zeros(2)))
    with pytest.raises(TypeError, match="y must be None when dataset is a Dataset"):
        DataLoader(SquaresDataset(3), np.zeros(3))
    with pytest.raises(TypeError, match="transform must be a callable"):
        DataLoader(np.zeros(3), transform="flip")
    for bad in (-1, 1.5):
        with pytest.raises(ValueError, match="num_workers"):
            DataLoader(np.zeros(3), num_workers=bad)
    with pytest.raises(ValueError, match="x holds samples of different shapes"):
        DataLoader([[1.0, 2.0], [3.0]], [0, 1])
    ragged = [(np.zeros(3), 0), (np.zeros(4), 1)]
    with pytest.raises(ValueError, match=r"sample 0 has shape \(3,\), sample 1 has shape \(4,\).*collate_fn"):
        list(DataLoader(ragged, batch_size=2))
    with pytest.raises(TypeError, match="sample 1 of the batch is a str"):
        list(DataLoader([(np.zeros(2), 0), "oops"], batch_size=2))
    with pytest.raises(TypeError, match="target_transform needs samples that are"):
        list(DataLoader(np.zeros((2, 3)), target_transform=lambda t: t))
