"""Trains a LeNet-style CNN on scikit-learn's handwritten digits (1,797 8x8 images shipped inside
scikit-learn: no download) and prints the test accuracy.

    python examples/train_digits.py                 # GPU when one is usable, else NumPy
    GPUCONV_BACKEND=numpy python examples/train_digits.py --epochs 20

The last line printed is ``test accuracy: 0.xxxx``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import gpuconv
from gpuconv import nn, optim, transforms
from gpuconv.data import DataLoader
from gpuconv.train import evaluate, fit


def lenet_digits(num_classes: int = 10) -> nn.Sequential:
    """LeNet-5's layout scaled to 8x8 inputs: conv-relu-pool twice (8x8 -> 4x4 -> 2x2), then three
    fully connected layers (120, 84, classes)."""
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 2 * 2, 120), nn.ReLU(inplace=True), nn.Dropout(0.2),
        nn.Linear(120, 84), nn.ReLU(inplace=True),
        nn.Linear(84, num_classes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="threads preparing batches (augmentation)")
    parser.add_argument("--backend", default=None, help="auto, numpy, cupy or emulated (default: GPUCONV_BACKEND or auto)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args()

    if args.backend is not None:
        gpuconv.use(args.backend)
    backend = gpuconv.get_backend()
    gpuconv.manual_seed(args.seed)

    digits = load_digits()
    x = (digits.images / 16.0)[:, None]  # (1797, 1, 8, 8) float64 in [0, 1]; the loaders cast to float32
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=args.seed, stratify=y)
    normalize = transforms.Normalize([x_train.mean()], [x_train.std()])
    # Augmentation: shifts by up to one pixel (pad by 1, crop back to 8x8). No flips: a mirrored
    # digit is another symbol.
    augment = transforms.Compose([transforms.RandomCrop(8, padding=1), normalize])
    train_loader = DataLoader((x_train, y_train), batch_size=args.batch_size, shuffle=True, seed=args.seed,
                              transform=augment, num_workers=args.workers, dtype=np.float32)
    test_loader = DataLoader((x_test, y_test), batch_size=256, transform=normalize, dtype=np.float32)

    model = lenet_digits()
    crit = nn.CrossEntropyLoss()
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
    print(f"backend {backend.name}: {len(x_train)} training and {len(x_test)} test images, "
          f"{sum(p.numel() for p in model.parameters()):,} parameters")

    start = time.perf_counter()
    fit(model, crit, optimizer, train_loader, args.epochs, progress=not args.no_progress, scheduler=scheduler)
    result = evaluate(model, crit, test_loader, progress=False)
    print(f"trained {args.epochs} epochs in {time.perf_counter() - start:.1f} s")
    print(f"test accuracy: {result['accuracy']:.4f}")


if __name__ == "__main__":
    main()
