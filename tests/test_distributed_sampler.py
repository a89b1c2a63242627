"""gpuconv.data.DistributedSampler: each rank's share of an epoch, and DataLoader(sampler=...)."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from gpuconv.data import DataLoader, DistributedSampler


def shares(n, replicas, **kwargs):
    return [list(DistributedSampler(range(n), num_replicas=replicas, rank=r, **kwargs)) for r in range(replicas)]


@pytest.mark.parametrize("n, replicas", [(12, 2), (11, 2), (10, 3), (7, 4), (1, 3), (0, 2), (5, 1)])
@pytest.mark.parametrize("shuffle", [True, False])
def test_ranks_cover_the_dataset_once_per_epoch(n, replicas, shuffle):
    parts = shares(n, replicas, shuffle=shuffle, seed=5)
    sizes = {len(p) for p in parts}
    assert sizes == {-(-n // replicas)}, sizes  # the same number of steps on every rank
    counts = Counter(i for p in parts for i in p)
    assert set(counts) == set(range(n))  # every sample, on some rank
    # Only the padding repeats: fewer than `replicas` extra samples, spread as evenly as possible
    # (indices repeat from the start of the order, wrapping when n < replicas).
    total = len(parts[0]) * replicas
    assert sum(counts.values()) - n == total - n < replicas
    assert max(counts.values(), default=0) == (-(-total // n) if n else 0)


@pytest.mark.parametrize("n, replicas", [(12, 2), (11, 2), (10, 3), (7, 4)])
def test_drop_last_gives_disjoint_equal_shares(n, replicas):
    parts = shares(n, replicas, drop_last=True, seed=1)
    flat = [i for p in parts for i in p]
    assert len(flat) == len(set(flat)) == (n // replicas) * replicas
    assert {len(p) for p in parts} == {n // replicas}


def test_shuffle_changes_with_the_epoch_and_agrees_across_ranks():
    samplers = [DistributedSampler(range(40), num_replicas=2, rank=r, seed=7) for r in range(2)]
    epochs = []
    for epoch in range(3):
        for s in samplers:
            s.set_epoch(epoch)
        epochs.append([list(s) for s in samplers])
        assert sorted(epochs[-1][0] + epochs[-1][1]) == list(range(40))
    assert epochs[0] != epochs[1] != epochs[2]
    again = DistributedSampler(range(40), num_replicas=2, rank=0, seed=7)
    again.set_epoch(1)
    assert list(again) == epochs[1][0]  # the order is a function of (seed, epoch)
    other_seed = DistributedSampler(range(40), num_replicas=2, rank=0, seed=8)
    other_seed.set_epoch(1)
    assert list(other_seed) != epochs[1][0]


def test_without_shuffle_rank_r_takes_every_replicas_th_index():
    assert shares(7, 3, shuffle=False) == [[0, 3, 6], [1, 4, 0], [2, 5, 1]]


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(num_replicas=2, rank=2), ValueError, "rank must be an int in [0, num_replicas=2), got 2"),
    (dict(num_replicas=0, rank=0), ValueError, "num_replicas must be a positive int, got 0"),
    (dict(num_replicas=2, rank=-1), ValueError, "rank must be an int in [0, num_replicas=2), got -1"),
    (dict(num_replicas=2, rank=0, seed=-1), ValueError, "seed must be a non-negative int, got -1"),
    (dict(), ValueError, "call gpuconv.distributed.init_process_group() first, or pass both"),
])
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        DistributedSampler(range(4), **kwargs)


def test_dataloader_iterates_the_samplers_share_in_its_order():
    x = np.arange(22, dtype=np.float64).reshape(11, 2)
    y = np.arange(11)
    sampler = DistributedSampler(x, num_replicas=2, rank=1, seed=3)
    sampler.set_epoch(4)
    loader = DataLoader(x, y, batch_size=4, sampler=sampler)
    assert len(loader) == 2 and loader.num_samples == 6
    seen = np.concatenate([np.asarray(yb) for _, yb in loader])
    assert seen.tolist() == list(sampler)
    for xb, yb in loader:
        np.testing.assert_array_equal(np.asarray(xb), x[np.asarray(yb)])


def test_dataloader_checks_the_sampler():
    x = np.zeros((4, 1))
    with pytest.raises(ValueError, match="shuffle must be False when a sampler is given"):
        DataLoader(x, batch_size=2, shuffle=True, sampler=DistributedSampler(x, num_replicas=1, rank=0))
    with pytest.raises(TypeError, match="sampler must be an iterable of sample indices with __len__"):
        DataLoader(x, batch_size=2, sampler=5)
    with pytest.raises(IndexError, match="the sampler yielded index 9, outside the dataset of 4 samples"):
        list(DataLoader(x, batch_size=2, sampler=[0, 9]))
