"""Run by tests/test_ddp.py on 2 MPI ranks: ``fit`` under DistributedDataParallel with a
DistributedSampler; progress on rank 0 only, the history over every rank's samples, a non-finite
loss on one rank raised on all, checkpoints written by rank 0. argv[1]: a folder for checkpoints.
Prints ``OK <checks>`` per rank."""

import contextlib
import io
import os
import sys

import numpy as np

import gpuconv as gc
import gpuconv.distributed as dist
from gpuconv import nn
from gpuconv.data import DataLoader, DistributedSampler
from gpuconv.nn.parallel import DistributedDataParallel
from gpuconv.train import NonFiniteLossError, fit

SAMPLES, CLASSES = 22, 3  # 22 samples: 11 per rank, batches of 4, 4 and 3


class RecordingLoss(nn.CrossEntropyLoss):
    """Cross-entropy that also keeps this rank's sum of sample losses and count, per epoch."""

    def __init__(self, nan_at_call=None):
        super().__init__()
        self.sums, self.counts, self.calls, self.nan_at_call = [], [], 0, nan_at_call

    def forward(self, outputs, targets):
        value = super().forward(outputs, targets)
        self.calls += 1
        if self.calls == self.nan_at_call:
            return value * float("nan")
        if outputs.requires_grad:  # training batches only
            self.sums.append(float(value.item()) * outputs.shape[0])
            self.counts.append(int(outputs.shape[0]))
        return value


def model():
    gc.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, CLASSES, 1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten()).to(dtype=np.float64)


def main():
    folder = sys.argv[1]
    dist.init_process_group(backend="mpi", timeout=120)
    rank = dist.get_rank()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((SAMPLES, 1, 6, 6))
    y = rng.integers(0, CLASSES, SAMPLES)
    sampler = DistributedSampler(x, seed=1)
    loader = DataLoader(x, y, batch_size=4, sampler=sampler)
    ddp = DistributedDataParallel(nn.SyncBatchNorm.convert_sync_batchnorm(model()))
    loss = RecordingLoss()
    optimizer = gc.optim.SGD(ddp.parameters(), lr=0.05, momentum=0.9)
    checks = 0

    shown = io.StringIO()
    with contextlib.redirect_stderr(shown):
        history = fit(ddp, loss, optimizer, loader, epochs=1, progress=True)
    assert ("epoch 1/1" in shown.getvalue()) == (rank == 0), (rank, shown.getvalue())
    everyone = dist.all_gather_object(history)
    assert everyone[0] == everyone[1], everyone  # loss, accuracy, images/s and seconds are over both ranks
    totals = dist.all_reduce(np.array([sum(loss.sums), sum(loss.counts)]), op="sum")
    assert totals[1] == SAMPLES
    assert abs(history[0]["loss"] - totals[0] / totals[1]) <= 1e-12 * abs(history[0]["loss"]), (history, totals)
    checks += 2

    # A NaN loss on rank 1 only (its second batch): both ranks raise at that batch, naming rank 1.
    nan_loss = RecordingLoss(nan_at_call=2 if rank == 1 else None)
    try:
        fit(ddp, nan_loss, optimizer, loader, epochs=1, progress=False)
    except NonFiniteLossError as error:
        assert "epoch 1, batch 2 on rank(s) 1:" in str(error), error
    else:
        raise AssertionError(f"rank {rank}: fit went on after a NaN loss on rank 1")
    checks += 1

    # Checkpoints: every rank calls save, rank 0 alone writes; every rank loads it.
    gc.save(os.path.join(folder, f"by_rank_{rank}.npz"), ddp.module)
    dist.barrier()
    assert os.path.exists(os.path.join(folder, "by_rank_0.npz"))
    assert not os.path.exists(os.path.join(folder, "by_rank_1.npz"))
    restored = model()
    gc.load(os.path.join(folder, "by_rank_0.npz"), restored)
    for (name, want), got in zip(ddp.module.state_dict().items(), restored.state_dict().values()):
        assert np.array_equal(gc.to_numpy(getattr(got, "data", got)), gc.to_numpy(getattr(want, "data", want))), name
    checks += 1

    dist.destroy_process_group()
    print(f"OK {checks} checks on rank {rank}", flush=True)


if __name__ == "__main__":
    main()
