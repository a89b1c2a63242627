"""What autograd costs per op on the host, and what it changes in a training step's kernels.

Per op (tiny tensors, emulated backend, every kernel stubbed so only the Python side is timed): the
op on plain arrays (no graph), the op on Tensors that require grad (records a node), and the op's
forward + backward through autograd against the forward + the op's ``*_backward`` called by hand:
the differences are autograd's own cost (target: at most 10 us per op). Then a ResNet-18 training
step on a (2, 3, 32, 32) batch: its Python side (kernels and GEMMs stubbed) and the number of kernel
launches (the emitted kernel sequence must not grow).

    python benchmarks/bench_autograd_overhead.py [--calls 300]

The step is bench_host_overhead.py's (the same model, batch and optimizer).
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

import gpuconv
import gpuconv.functional as F
from gpuconv.backend.kernel_stubs import stubbed_kernels

from bench_host_overhead import _model_step  # the same ResNet-18 step (this script's folder is on sys.path)


def _per_call(fn, calls: int, repeats: int = 5) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - start) / calls)
    return min(times) * 1e6


def _cases(be):
    rng = np.random.default_rng(0)

    def arr(*shape):
        return be.asarray(rng.standard_normal(shape).astype(np.float32))

    x, w, b = arr(2, 8, 8, 8), arr(8, 8, 3, 3), arr(8)
    rm, rv = arr(8), be.asarray(np.ones(8, np.float32))
    xt, wt, bt = (gpuconv.Tensor(a, requires_grad=True) for a in (x, w, b))
    dy = arr(2, 8, 8, 8)
    _, mean, invstd = F.batch_norm(x, rm, rv, b, b, training=True, return_stats=True)

    def by_hand_conv():
        F.conv2d(x, w, b, 1, 1)
        F.conv2d_backward(dy, x, w, 1, 1)

    def by_hand_bn():
        F.batch_norm(x, rm, rv, b, b, training=True, return_stats=True)
        F.batch_norm_backward(dy, x, b, mean, invstd)

    def by_hand_relu():
        y = F.relu(x)
        F.relu_backward(dy, y)

    def autograd(op):
        def run():
            xt.grad = wt.grad = bt.grad = None
            op().backward(dy)
        return run

    return [
        ("conv2d", lambda: F.conv2d(x, w, b, 1, 1), lambda: F.conv2d(xt, wt, bt, 1, 1), by_hand_conv,
         autograd(lambda: F.conv2d(xt, wt, bt, 1, 1))),
        ("batch_norm (train)", lambda: F.batch_norm(x, rm, rv, b, b, training=True),
         lambda: F.batch_norm(xt, rm, rv, bt, bt, training=True), by_hand_bn,
         autograd(lambda: F.batch_norm(xt, rm, rv, bt, bt, training=True))),
        ("relu", lambda: F.relu(x), lambda: F.relu(xt), by_hand_relu, autograd(lambda: F.relu(xt))),
        ("add (residual)", lambda: F.add(x, x), lambda: xt + xt, lambda: F.add(x, x), autograd(lambda: xt + xt)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    with gpuconv.backend("emulated") as be:
        print(f"# autograd's host cost per op, emulated backend with kernels stubbed (Python side only), "
              f"{platform.machine()}, best of 5 x {args.calls} calls (us)")
        print("| op | arrays | Tensors (records a node) | difference | fwd+bwd by hand | fwd+bwd autograd | difference |")
        print("|---|---|---|---|---|---|---|")
        with stubbed_kernels(be), np.errstate(all="ignore"):
            for name, plain, tensor, by_hand, through_autograd in _cases(be):
                a, t = _per_call(plain, args.calls), _per_call(tensor, args.calls)
                h, g = _per_call(by_hand, args.calls), _per_call(through_autograd, args.calls)
                print(f"| {name} | {a:.1f} | {t:.1f} | {t - a:+.1f} | {h:.1f} | {g:.1f} | {g - h:+.1f} |")
        step = _model_step(be)
        with stubbed_kernels(be, gemms=True) as counter, np.errstate(all="ignore"):
            step()
            counter.launches = 0
            step()
            launches = counter.launches
            ms = _per_call(step, 5, repeats=3) * 1e-3
        print(f"\nResNet-18 training step (2, 3, 32, 32), Python side with kernels and GEMMs stubbed: {ms:.2f} ms, "
              f"{launches} kernel launches")


if __name__ == "__main__":
    main()
