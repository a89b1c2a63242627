"""Shared helpers of the memory-bound benchmarks (bench_im2col.py, bench_pool.py, bench_batchnorm.py).

Figure of merit: GB/s counting each tensor the op reads or writes once, and its percentage of a
copy measured in the same run (a device-to-device cudaMemcpy timed with CUDA events on the GPU;
``np.copyto`` on the CPU). On the CPU the time ratio to PyTorch CPU, also measured in the same run.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np


def argument_parser(doc: str) -> argparse.ArgumentParser:
    """The options every memory-bound benchmark takes: --backend, --batch, --repeats, --torch-threads."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--torch-threads", type=int, default=0, help="PyTorch CPU threads (0: its default)")
    return parser


def timer(be):
    """measure(fn, repeats) -> median seconds per call, after one warm-up call."""
    if be.name == "cupy":
        import cupy

        def measure(fn, repeats):
            fn()
            cupy.cuda.get_current_stream().synchronize()
            times = []
            for _ in range(repeats):
                start, stop = cupy.cuda.Event(), cupy.cuda.Event()
                start.record()
                fn()
                stop.record()
                stop.synchronize()
                times.append(cupy.cuda.get_elapsed_time(start, stop) / 1e3)
            return statistics.median(times)
    else:
        def measure(fn, repeats):
            fn()
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
            return statistics.median(times)
    return measure


def copy_bandwidth(be, a, measure, repeats) -> float:
    """Bytes per second (read + written) of copying ``a`` once, on this backend."""
    scratch = be.empty(a.shape, a.dtype)
    if be.name == "cupy":
        import cupy

        kind = cupy.cuda.runtime.memcpyDeviceToDevice

        def copy():
            cupy.cuda.runtime.memcpyAsync(scratch.data.ptr, a.data.ptr, a.nbytes, kind,
                                          cupy.cuda.get_current_stream().ptr)
    else:
        def copy():
            np.copyto(scratch, a)
    return 2 * a.nbytes / measure(copy, repeats)


def load_torch(threads: int = 0):
    """(torch module or None, a line saying which); ``threads`` > 0 sets its CPU thread count."""
    try:
        import torch
    except ImportError:
        return None, "torch not installed: no PyTorch ratio"
    if threads > 0:
        torch.set_num_threads(threads)
    return torch, f"torch {torch.__version__}, {torch.get_num_threads()} threads"


def machine(be) -> str:
    if be.name == "cupy":
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        return f"GPU {props['name'].decode()}"
    import os

    return f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def header(be, torch_line: str) -> None:
    print(f"backend: {be.name}; {machine(be)}; {torch_line}")
    ratio = "  torch ms  ratio" if be.name != "cupy" else ""
    print(f"{'case':44s} {'ms':>9s} {'GB/s':>8s} {'% copy':>7s}{ratio}")


def row(name, seconds, nbytes, copy_bw, torch_seconds=None, show_torch=True) -> None:
    bandwidth = nbytes / seconds
    line = f"{name:44s} {seconds * 1e3:9.2f} {bandwidth / 1e9:8.2f} {100 * bandwidth / copy_bw:6.0f}%"
    if show_torch:
        if torch_seconds is None:
            line += "        -      -"
        else:
            line += f" {torch_seconds * 1e3:9.2f} {seconds / torch_seconds:6.2f}"
    print(line, flush=True)
