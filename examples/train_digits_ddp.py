"""examples/train_digits.py on several processes: data-parallel training with MPI (or NCCL on GPUs).

    mpiexec -n 2 python examples/train_digits_ddp.py               # 2 processes on this machine
    mpiexec -n 4 python examples/train_digits_ddp.py               # a node with 4 GPUs: one per rank
    srun -N 2 --ntasks-per-node=4 python examples/train_digits_ddp.py   # Slurm, 2 nodes x 4 GPUs

Each rank trains on its share of every epoch (DistributedSampler) with the model wrapped in
DistributedDataParallel (gradients averaged across ranks during backward) and BatchNorm replaced
by SyncBatchNorm (statistics over every rank's batch). Rank 0 prints; the last line printed is
``test accuracy: 0.xxxx``. ``--batch-size`` is per rank: the global batch is world_size times it.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import gpuconv
import gpuconv.distributed as dist
from gpuconv import nn, optim, transforms
from gpuconv.data import DataLoader, DistributedSampler
from gpuconv.nn.parallel import DistributedDataParallel
from gpuconv.train import evaluate, fit
from train_digits import lenet_digits  # the same network as the single-process example


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=32, help="per rank")
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", default=None, help="auto, numpy, cupy or emulated (default: GPUCONV_BACKEND or auto)")
    parser.add_argument("--dist-backend", default="auto", help="auto (nccl on the cupy backend), mpi or nccl")
    parser.add_argument("--timeout", type=float, default=300, help="seconds before a dead or stuck rank is an error")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args()

    if args.backend is not None:
        gpuconv.use(args.backend)
    dist.init_process_group(args.dist_backend, timeout=args.timeout)
    rank, world = dist.get_rank(), dist.get_world_size()
    gpuconv.manual_seed(args.seed)  # the same on every rank; DDP broadcasts rank 0's weights anyway

    digits = load_digits()
    x = (digits.images / 16.0)[:, None]
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=args.seed, stratify=y)
    normalize = transforms.Normalize([x_train.mean()], [x_train.std()])
    augment = transforms.Compose([transforms.RandomCrop(8, padding=1), normalize])
    sampler = DistributedSampler(x_train, seed=args.seed)
    # The loader's own seed differs per rank: it drives the random crops of this rank's samples.
    train_loader = DataLoader((x_train, y_train), batch_size=args.batch_size, sampler=sampler, seed=args.seed + rank,
                              transform=augment, dtype=np.float32)
    # Every rank evaluates the whole test set: evaluate() all-reduces, so the figure is the test set's.
    test_loader = DataLoader((x_test, y_test), batch_size=256, transform=normalize, dtype=np.float32)

    model = DistributedDataParallel(nn.SyncBatchNorm.convert_sync_batchnorm(lenet_digits()))
    crit = nn.CrossEntropyLoss()
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    if rank == 0:
        print(f"{world} ranks on the {dist.get_backend_name()} engine, backend {gpuconv.get_backend().name}: "
              f"{len(x_train)} training images ({len(sampler)} per rank per epoch), global batch "
              f"{args.batch_size * world}")

    start = time.perf_counter()
    # fit calls sampler.set_epoch each epoch: a new shuffle, the same on every rank.
    fit(model, crit, optimizer, train_loader, args.epochs, progress=not args.no_progress, scheduler=scheduler)
    result = evaluate(model, crit, test_loader, progress=False)
    if rank == 0:
        print(f"trained {args.epochs} epochs in {time.perf_counter() - start:.1f} s")
        print(f"test accuracy: {result['accuracy']:.4f}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
