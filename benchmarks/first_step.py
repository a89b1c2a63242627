"""How long a fresh process takes to its first ResNet-18 training step (issue 16's cold-start check).

Prints one JSON object: the backend's own start-up (on cupy: CUDA's initialisation, a context, one
allocation and a synchronize), the first training step (kernel loading or compiling, CuPy's first-use
costs, cuBLAS handles), the second step (steady state), and the difference of the two: the first
use's cost beyond CUDA's initialisation. Run it in a fresh process with empty caches to see a first
use on the machine:

    CUPY_CACHE_DIR=$(mktemp -d) GPUCONV_KERNEL_CACHE=$(mktemp -d) \
        python benchmarks/first_step.py --backend cupy

It runs on every backend (numpy and emulated for a check of the script; their times say nothing
about a GPU).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="cupy", help="numpy, cupy or emulated (default cupy)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--num-classes", type=int, default=1000)
    args = parser.parse_args()

    started = time.perf_counter()
    import gpuconv
    from gpuconv import nn, optim
    from gpuconv.models import resnet18
    imported = time.perf_counter()

    gpuconv.use(args.backend)
    backend = gpuconv.get_backend()
    # The backend's own start-up: on cupy the CUDA context, the first allocation and a sync.
    probe = gpuconv.asarray(np.zeros(1, np.float32))
    backend.synchronize()
    del probe
    initialised = time.perf_counter()

    rng = np.random.default_rng(0)
    x = gpuconv.asarray(rng.standard_normal((args.batch, 3, args.image_size, args.image_size), dtype=np.float32))
    y = gpuconv.asarray(rng.integers(0, args.num_classes, args.batch))
    gpuconv.manual_seed(0)
    model = resnet18(num_classes=args.num_classes)
    criterion = nn.CrossEntropyLoss()
    optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    backend.synchronize()
    model_ready = time.perf_counter()

    def step() -> float:
        t0 = time.perf_counter()
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        backend.synchronize()
        float(loss)
        return time.perf_counter() - t0

    first = step()
    second = step()
    print(json.dumps({
        "backend": backend.name,
        "batch": args.batch,
        "image_size": args.image_size,
        "import_s": round(imported - started, 3),
        "backend_init_s": round(initialised - imported, 3),
        "model_and_data_s": round(model_ready - initialised, 3),
        "first_step_s": round(first, 3),
        "second_step_s": round(second, 3),
        "first_use_cost_s": round(first - second, 3),
    }))


if __name__ == "__main__":
    main()
