"""Training-step time of two checkouts of gpuconv, interleaved on one machine (numpy backend).

Each round runs, in a fresh process per checkout, the same step (zero_grad, forward, cross entropy,
backward, SGD with momentum) of a zoo model, best of ``--repeats`` after a warm-up; rounds alternate
between the checkouts so that a busy machine disturbs both alike. Reports each checkout's best time
over all rounds and the ratio. A checkout from before autograd (``model.backward(crit.backward())``)
is timed with its own API.

    python benchmarks/compare_checkouts.py OLD_CHECKOUT NEW_CHECKOUT [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, sys, time
import numpy as np
import gpuconv
from gpuconv import nn, optim
from gpuconv.models import lenet5, resnet18

name, batch, size, repeats = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
gpuconv.use("numpy")
gpuconv.manual_seed(0)
channels = 1 if name == "lenet5" else 3
model = lenet5(num_classes=10) if name == "lenet5" else resnet18(num_classes=10)
rng = np.random.default_rng(0)
x = rng.standard_normal((batch, channels, size, size)).astype(np.float32)
y = rng.integers(0, 10, batch)
crit = nn.CrossEntropyLoss()
opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

def step():
    opt.zero_grad()
    loss = crit(model(x), y)
    if hasattr(loss, "grad_fn"):
        loss.backward()
    else:
        model.backward(crit.backward(), input_grad=False)
    opt.step()

step(); step()
best = float("inf")
for _ in range(repeats):
    t = time.perf_counter()
    step()
    best = min(best, time.perf_counter() - t)
print(json.dumps({"best_ms": best * 1e3}))
"""

CASES = (("resnet18", 8, 64), ("lenet5", 64, 32))


def _time(checkout: str, name: str, batch: int, size: int, repeats: int) -> float:
    env = dict(os.environ, PYTHONPATH=checkout)
    out = subprocess.run([sys.executable, "-c", CHILD, name, str(batch), str(size), str(repeats)], env=env,
                         capture_output=True, text=True, check=True, cwd=checkout)
    return json.loads(out.stdout.strip().splitlines()[-1])["best_ms"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"| model, input | old (ms) | new (ms) | new / old |\n|---|---|---|---|")
    for name, batch, size in CASES:
        best = {"old": float("inf"), "new": float("inf")}
        for _ in range(args.rounds):
            for which in ("old", "new"):
                best[which] = min(best[which], _time(getattr(args, which), name, batch, size, args.repeats))
        print(f"| {name} ({batch}, {1 if name == 'lenet5' else 3}, {size}, {size}) | {best['old']:.1f} | "
              f"{best['new']:.1f} | {best['new'] / best['old']:.3f} |")


if __name__ == "__main__":
    main()
