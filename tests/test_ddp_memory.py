"""estimate(..., world_size=...) and summary(..., world_size=...): DistributedDataParallel's
gradient buckets per rank (no process group needed)."""

from __future__ import annotations

import numpy as np
import pytest

import gpuconv as gc
from gpuconv import nn
from gpuconv.nn.parallel.reducer import plan_buckets


def small_model():
    gc.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten())


def test_world_size_adds_the_buckets_to_every_rank():
    model = small_model()
    optimizer = gc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    alone = gc.memory.estimate(model, (4, 3, 16, 16), optimizer=optimizer)
    ranked = gc.memory.estimate(model, (4, 3, 16, 16), optimizer=optimizer, world_size=2, bucket_cap_mb=0.0005)
    grads = sum(p.nbytes for p in model.parameters())
    assert (alone.world_size, alone.communication) == (1, 0)
    assert ranked.world_size == 2 and ranked.communication == grads
    # The buckets live through the whole step: the peak grows by exactly their size.
    assert ranked.peak == alone.peak + grads
    assert "communication" in ranked.table(rows=False) and "communication" not in alone.table(rows=False)
    text = str(gc.memory.summary(model, (4, 3, 16, 16), optimizer=optimizer, world_size=2, verbose=False))
    assert "per rank of 2" in text and "gradient buckets" in text
    # Inference has no gradients to reduce.
    assert gc.memory.estimate(model, (4, 3, 16, 16), training=False, world_size=2).communication == 0


@pytest.mark.parametrize("world_size", [0, -1, 1.5, True])
def test_world_size_must_be_a_positive_int(world_size):
    with pytest.raises(ValueError, match="world_size must be a positive int"):
        gc.memory.estimate(small_model(), (2, 3, 8, 8), world_size=world_size)


def test_buckets_hold_one_dtype_in_reverse_order_up_to_the_cap():
    class P:
        def __init__(self, n, dtype):
            self.data = np.zeros(n, dtype=dtype)

    params = [P(10, np.float32), P(10, np.float64), P(300, np.float32), P(5, np.float32), P(5, np.float32)]
    buckets = plan_buckets(params, cap_bytes=100)
    assert buckets == [[4, 3], [2], [1], [0]]
    for bucket in buckets:
        assert len({params[i].data.dtype for i in bucket}) == 1
        assert bucket == sorted(bucket, reverse=True)
