"""One rank of ``gpuconv-bench ddp`` (run under ``mpiexec`` by :mod:`gpuconv.bench.ddp`).

Trains a small ResNet with DistributedDataParallel on random data (``--batch`` images per rank)
and prints, on rank 0, one JSON line: the median and best step times, images per second over all
ranks, and the milliseconds per step that backward spent starting and waiting for the gradient
all-reduces (the communication not hidden behind computation) on the last rank to get there.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

import gpuconv
import gpuconv.distributed as dist
from gpuconv import nn, optim
from gpuconv.nn.parallel import DistributedDataParallel

CLASSES = 10


def small_resnet(dtype: np.dtype) -> nn.Module:
    """ResNet-style for 32x32 images: a 16-channel stem and three BasicBlocks (16, 32, 64 planes)."""
    def down(inplanes: int, planes: int) -> nn.Module:
        return nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=2, bias=False), nn.BatchNorm2d(planes))

    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.BasicBlock(16, 16), nn.BasicBlock(16, 32, stride=2, downsample=down(16, 32)),
        nn.BasicBlock(32, 64, stride=2, downsample=down(32, 64)),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, CLASSES)).to(dtype=dtype)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="numpy")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--batch", type=int, default=16, help="images per rank")
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()

    gpuconv.use(args.backend)
    dist.init_process_group("auto")
    rank, world = dist.get_rank(), dist.get_world_size()
    dtype = np.dtype(args.dtype)
    gpuconv.manual_seed(0)
    model = DistributedDataParallel(small_resnet(dtype))
    optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    rng = np.random.default_rng(rank)
    x = gpuconv.asarray(rng.standard_normal((args.batch, 3, args.image_size, args.image_size)).astype(dtype))
    y = gpuconv.asarray(rng.integers(0, CLASSES, args.batch))
    be = gpuconv.get_backend()
    steps, communication = [], []
    for step in range(args.warmup + args.steps):
        dist.barrier()
        start = time.perf_counter()
        optimizer.zero_grad()
        criterion(model(x), y).backward()
        optimizer.step()
        be.synchronize()
        if step >= args.warmup:
            steps.append(time.perf_counter() - start)
            communication.append(model.last_communication_s)
    # The slowest rank sets the pace. Every other rank's all-reduce also waits for the last one to
    # arrive; the last one's own wait is the communication itself: the minimum over the ranks.
    steps = dist.all_reduce(np.array(steps), op="max")
    communication = dist.all_reduce(np.array(communication), op="min")
    if rank == 0:
        median = statistics.median(steps.tolist())
        print(json.dumps({"ranks": world, "median_ms": 1e3 * median, "best_ms": 1e3 * float(steps.min()),
                          "images_per_s": world * args.batch / median,
                          "allreduce_ms": 1e3 * statistics.median(communication.tolist()),
                          "engine": dist.get_backend_name()}), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
