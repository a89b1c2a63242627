"""Memory of a training step: gpuconv's estimate against the measured peak, with torchinfo-style and
accelerate-style figures computed beside it by their published formulas.

- measured: ``gpuconv.memory.compare`` (second step; numpy/emulated: tracemalloc; cupy: a memory
  hook's high-water mark of the pool's bytes in use, and the pool's reserved bytes).
- torchinfo-style: params + input + 2 x (sum of every layer's output bytes) ("forward/backward
  pass size"), its "Estimated Total Size".
- accelerate-style: ``accelerate estimate-memory``'s rule, weights only: training with Adam =
  4 x the parameter bytes (weights, gradients, two moments); it counts no activations.

    python benchmarks/bench_memory.py --backend numpy > benchmarks/results/memory-numpy-cpu-2core.md
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

import gpuconv as gc
from gpuconv.memory import compare, human
from gpuconv.models import resnet18, resnet50, vgg16

CASES = {
    "numpy": [("resnet18", resnet18, 1), ("resnet18", resnet18, 4), ("resnet50", resnet50, 1),
              ("resnet50", resnet50, 2), ("vgg16", vgg16, 1)],
    "cupy": [(name, make, batch) for name, make in (("resnet18", resnet18), ("resnet50", resnet50), ("vgg16", vgg16))
             for batch in (8, 32, 64)],
}


def torchinfo_style(report, input_shape) -> int:
    outputs = sum(int(np.prod(r.output_shape)) for r in report.rows) * np.dtype(report.dtype).itemsize
    return report.params + report.inputs + 2 * outputs


def accelerate_style(report) -> int:
    return 4 * report.params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--image", type=int, default=224)
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    args = parser.parse_args()
    be = gc.use(args.backend)
    print(f"# Memory of a training step: estimate vs measured ({be.name}, {args.image}x{args.image}, "
          f"{args.optimizer}, float32)\n")
    print(f"{platform.processor() or platform.machine()}, {platform.python_version()}, numpy {np.__version__}, "
          f"{time.strftime('%Y-%m-%d')}. Second step of `gpuconv.memory.compare` (optimizer state exists).\n")
    print("| model | batch | estimate | measured | est/meas | torchinfo-style | /meas | accelerate-style | /meas "
          "| peak phase |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, make, batch in CASES["cupy" if be.name == "cupy" else "numpy"]:
        gc.manual_seed(0)
        model = make()
        opt = (gc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9) if args.optimizer == "sgd"
               else gc.optim.Adam(model.parameters()))
        shape = (batch, 3, args.image, args.image)
        result = compare(model, shape, optimizer=opt, verbose=False)
        est, got = result.estimate, result.measured["peak"]
        ti, acc = torchinfo_style(est, shape), accelerate_style(est)
        print(f"| {name} | {batch} | {human(est.peak)} | {human(got)} | {est.peak / got:.3f} | {human(ti)} | "
              f"{ti / got:.2f} | {human(acc)} | {acc / got:.2f} | {est.peak_phase} |", flush=True)
        del model, opt, result


if __name__ == "__main__":
    main()
