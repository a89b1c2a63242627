"""Run by tests/test_ddp.py on 2 MPI ranks: DistributedDataParallel against one process.

Each rank trains its half of every batch with DDP; every rank also trains, alone, the same model
on the whole batch (the reference). After 5 SGD-momentum steps the parameters (and the BatchNorm
running statistics) must agree: float64 to 1e-10, float32 to 1e-5. argv[1] is the dtype, argv[2]
the engine (mpi, or nccl on the cupy backend: there one rank, as NCCL refuses two on one GPU).
Prints ``OK <checks>`` per rank.
"""

import sys

import numpy as np

import gpuconv as gc
import gpuconv.distributed as dist
from gpuconv import nn
from gpuconv.nn.parallel import DistributedDataParallel

STEPS = 5
BATCH_PER_RANK = 3
CLASSES = 5


def resnet_style(dtype, seed):
    """Conv-BN-ReLU stem, two residual blocks (one downsampling), a 1x1-conv head."""
    gc.manual_seed(seed)
    downsample = nn.Sequential(nn.Conv2d(8, 12, 1, stride=2, bias=False), nn.BatchNorm2d(12))
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        nn.BasicBlock(8, 8), nn.BasicBlock(8, 12, stride=2, downsample=downsample),
        nn.Conv2d(12, CLASSES, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()).to(dtype=dtype)


class WithUnusedBranch(nn.Module):
    """``unused`` is never called in forward."""

    def __init__(self, width=6):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.unused = nn.Conv2d(width, width, 3, padding=1)
        self.head = nn.Sequential(nn.Conv2d(width, CLASSES, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x):
        return self.head(self.features(x))


def unused_branch(dtype, seed, width=6):
    gc.manual_seed(seed)
    return WithUnusedBranch(width).to(dtype=dtype)


def batches(dtype, world, steps=STEPS):
    rng = np.random.default_rng(1234)
    for _ in range(steps):
        x = rng.standard_normal((world * BATCH_PER_RANK, 3, 8, 8)).astype(dtype)
        y = rng.integers(0, CLASSES, size=world * BATCH_PER_RANK)
        yield x, y


def train(model, data, rank=None):
    """SGD with momentum and weight decay; ``rank`` set: train on that rank's rows of each batch."""
    optimizer = gc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    criterion = nn.CrossEntropyLoss()
    for x, y in data:
        if rank is not None:
            rows = slice(rank * BATCH_PER_RANK, (rank + 1) * BATCH_PER_RANK)
            x, y = x[rows], y[rows]
        optimizer.zero_grad()
        criterion(model(gc.asarray(x)), gc.asarray(y)).backward()
        optimizer.step()
    return model


def state(model):
    return {k: gc.to_numpy(getattr(v, "data", v)).copy() for k, v in model.state_dict().items()}


def assert_states_close(ddp_state, reference_state, tolerance, what):
    for key, want in reference_state.items():
        got = ddp_state["module." + key]
        if want.dtype.kind in "iu":
            assert np.array_equal(got, want), (what, key, got, want)
            continue
        error = np.abs(got - want).max(initial=0) / max(1.0, np.abs(want).max(initial=0))
        assert error <= tolerance, f"{what}: {key} differs by {error:.3g} (tolerance {tolerance:g})"


def check_models_must_match(rank):
    model = unused_branch("float64", seed=0, width=6 if rank == 0 else 7)
    try:
        DistributedDataParallel(model)
    except ValueError as error:
        assert "rank 0 has parameter 'features.0.weight' of shape (6, 3, 3, 3) float64 where rank 1 has parameter " \
               "'features.0.weight' of shape (7, 3, 3, 3) float64" in str(error), error
    else:
        raise AssertionError("DDP accepted different models on the ranks")


def check_matches_one_process(dtype, rank, world, tolerance):
    checks = 0
    # ResNet-style with BatchNorm: SyncBatchNorm over the ranks equals BatchNorm on the whole batch.
    # Rank 1 starts from other weights: the wrap broadcasts rank 0's.
    reference = train(resnet_style(dtype, seed=0), batches(dtype, world))
    model = nn.SyncBatchNorm.convert_sync_batchnorm(resnet_style(dtype, seed=rank))
    assert sum(isinstance(m, nn.SyncBatchNorm) for m in model.modules()) == 6
    ddp = train(DistributedDataParallel(model, bucket_cap_mb=0.002), batches(dtype, world), rank)
    assert len(ddp.bucket_sizes()) > 3  # several buckets, started during backward
    assert_states_close(state(ddp), state(reference), tolerance, f"resnet-style {dtype}")
    checks += 1

    # A parameter the forward never uses: find_unused_parameters counts it ready; it keeps no grad.
    reference = train(unused_branch(dtype, seed=0), batches(dtype, world))
    ddp = DistributedDataParallel(unused_branch(dtype, seed=rank), bucket_cap_mb=0.001, find_unused_parameters=True)
    train(ddp, batches(dtype, world), rank)
    assert ddp.module.unused.weight.grad is None
    assert_states_close(state(ddp), state(reference), tolerance, f"unused branch {dtype}")
    checks += 1
    return checks


def check_no_sync_accumulates(dtype, rank, world, tolerance):
    """Two micro-batches, the first under no_sync: the gradients equal one process's sum over both."""
    first, second = list(batches(dtype, world, steps=2))
    reference = unused_branch(dtype, seed=0)
    criterion = nn.CrossEntropyLoss()
    for x, y in (first, second):
        criterion(reference(gc.asarray(x)), gc.asarray(y)).backward()
    ddp = DistributedDataParallel(unused_branch(dtype, seed=0), find_unused_parameters=True)
    rows = slice(rank * BATCH_PER_RANK, (rank + 1) * BATCH_PER_RANK)
    with ddp.no_sync():
        criterion(ddp(gc.asarray(first[0][rows])), gc.asarray(first[1][rows])).backward()
    local = gc.to_numpy(ddp.module.head[0].weight.grad.data).copy()
    everyone = dist.all_gather(local)
    assert world == 1 or not np.allclose(everyone[0], everyone[1]), "no_sync must not average"
    criterion(ddp(gc.asarray(second[0][rows])), gc.asarray(second[1][rows])).backward()
    for (name, p), q in zip(ddp.module.named_parameters(), reference.parameters()):
        if q.grad is None:
            assert p.grad is None, name
            continue
        want = gc.to_numpy(q.grad.data)
        error = np.abs(gc.to_numpy(p.grad.data) - want).max() / max(1.0, np.abs(want).max())
        assert error <= tolerance, f"no_sync {dtype}: {name} grad differs by {error:.3g}"
    return 1


def check_unused_without_flag_raises(rank):
    ddp = DistributedDataParallel(unused_branch("float64", seed=0))
    x = gc.asarray(np.ones((2, 3, 8, 8)))
    y = gc.asarray(np.zeros(2, dtype=np.int64))
    nn.CrossEntropyLoss()(ddp(x), y).backward()
    try:
        ddp(x)
    except RuntimeError as error:
        assert "produced no gradient for unused.bias, unused.weight" in str(error), error
        assert "find_unused_parameters=True" in str(error)
    else:
        raise AssertionError("a forward after a backward that missed parameters must raise")
    return 1


def main():
    dtype = sys.argv[1]
    tolerance = {"float64": 1e-10, "float32": 1e-5}[dtype]
    engine = sys.argv[2]
    dist.init_process_group(backend=engine, timeout=120)
    assert dist.get_backend_name() == engine
    rank, world = dist.get_rank(), dist.get_world_size()
    checks = check_matches_one_process(dtype, rank, world, tolerance)
    checks += check_no_sync_accumulates(dtype, rank, world, tolerance)
    if dtype == "float64" and world == 2:
        check_models_must_match(rank)
        checks += 1 + check_unused_without_flag_raises(rank)
    dist.destroy_process_group()
    print(f"OK {checks} checks on rank {rank}", flush=True)


if __name__ == "__main__":
    main()
