"""Benchmark of gpuconv's conv2d against PyTorch on ResNet-18 and VGG-16 layers (batch 8).

CPU (numpy backend):  python benchmarks/bench_conv.py --device cpu
    gpuconv (im2col + BLAS) vs PyTorch CPU, forward and forward+backward, in the same run; the
    table gives times, GFLOP/s and the ratio gpuconv time / PyTorch time (lower is better).
GPU (cupy backend):   python benchmarks/bench_conv.py --device gpu
    gpuconv im2col vs gpuconv direct vs PyTorch/cuDNN, fp32 with TF32 off and on (each setting in
    a subprocess, because CuPy reads CUPY_TF32 at import), CUDA-event timing, GFLOP/s and % of peak.

Times are medians of --repeats timed runs after --warmup untimed runs. Without PyTorch the
comparison columns say "torch not installed".
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# (name, C_in, C_out, H=W, kernel, stride, padding) of ResNet-18 and VGG-16 at 224x224.
LAYERS = [
    ("resnet18.conv1", 3, 64, 224, 7, 2, 3),
    ("resnet18.layer1.conv", 64, 64, 56, 3, 1, 1),
    ("resnet18.layer2.0.conv1", 64, 128, 56, 3, 2, 1),
    ("resnet18.layer2.0.downsample", 64, 128, 56, 1, 2, 0),
    ("resnet18.layer2.conv", 128, 128, 28, 3, 1, 1),
    ("resnet18.layer3.0.conv1", 128, 256, 28, 3, 2, 1),
    ("resnet18.layer3.conv", 256, 256, 14, 3, 1, 1),
    ("resnet18.layer4.0.conv1", 256, 512, 14, 3, 2, 1),
    ("resnet18.layer4.conv", 512, 512, 7, 3, 1, 1),
    ("vgg16.conv1_2", 64, 64, 224, 3, 1, 1),
    ("vgg16.conv2_2", 128, 128, 112, 3, 1, 1),
    ("vgg16.conv3_3", 256, 256, 56, 3, 1, 1),
    ("vgg16.conv4_3", 512, 512, 28, 3, 1, 1),
    ("vgg16.conv5_3", 512, 512, 14, 3, 1, 1),
]
BATCH = 8
# Peak FP32 / TF32 dense TFLOP/s (CUDA-NOTES.md); other GPUs get no % of peak.
PEAKS = {"H100": (66.9, 495.0), "H200": (66.9, 495.0)}


def forward_flops(n, c_in, c_out, size, k, s, p):
    out = (size + 2 * p - k) // s + 1
    return 2.0 * n * c_out * out * out * c_in * k * k


def median_time(fn, warmup, repeats, timer):
    for _ in range(warmup):
        fn()
    return statistics.median(timer(fn) for _ in range(repeats))


def interleaved_times(timed_fns, warmup, repeats, pause=0.0):
    """(best, median) seconds of each callable (which runs once and returns its own time), timing
    them in turn within each repeat, so that a machine whose speed drifts (a shared or throttled
    CPU) slows all of them alike.

    ``pause`` seconds of sleep before each timed call let the previous library's worker threads
    stop spinning (OpenBLAS and OpenMP threads busy-wait after a call), so that neither library
    runs with a core taken by the other's idle threads.
    """
    for fn in timed_fns:
        for _ in range(warmup):
            fn()
    times = [[] for _ in timed_fns]
    for _ in range(repeats):
        for fn, bucket in zip(timed_fns, times):
            time.sleep(pause)
            bucket.append(fn())
    return [(min(bucket), statistics.median(bucket)) for bucket in times]


def _torch_cpu_worker(conn):
    """Child process that times PyTorch CPU calls on request: ``(layer, index)`` -> seconds.

    PyTorch runs in a process of its own because loading and running it in the benchmark's process
    slowed gpuconv's NumPy copies several-fold afterwards (measured: 36 ms -> 250 ms for VGG
    conv1_2's im2col copies), which would make the comparison about their coexistence.
    """
    torch, reason = torch_or_reason()
    conn.send(reason if torch is None else ("ok", torch.__version__))
    if torch is None:
        return
    torch.set_num_threads(os.cpu_count() or 1)
    cached = {}
    while (message := conn.recv()) is not None:
        layer, index = message
        if layer not in cached:
            cached.clear()
            cached[layer] = torch_callables(torch, layer, "cpu")
        conn.send(cpu_timer(cached[layer][index]))


class TorchCpu:
    """Handle on the PyTorch child process; ``available`` is False (with ``reason``) without torch."""

    def __init__(self):
        import multiprocessing
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_torch_cpu_worker, args=(child,), daemon=True)
        self.process.start()
        status = self.conn.recv()
        self.available = isinstance(status, tuple)
        self.version = status[1] if self.available else None
        self.reason = None if self.available else status

    def timed(self, layer, index):
        def run():
            self.conn.send((layer, index))
            return self.conn.recv()
        return run

    def close(self):
        if self.available:
            self.conn.send(None)
        self.process.join(timeout=30)


def cpu_timer(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def make_cuda_timer(cupy):
    def timer(fn):
        start, stop = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        return cupy.cuda.get_elapsed_time(start, stop) / 1e3
    return timer


def torch_or_reason():
    try:
        import torch
    except ImportError:
        return None, "torch not installed"
    return torch, None


def torch_callables(torch, layer, device, dtype_name="float32"):
    _, c_in, c_out, size, k, s, p = layer
    dtype = getattr(torch, dtype_name)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, c_in, size, size, generator=gen, dtype=dtype).to(device)
    w = torch.randn(c_out, c_in, k, k, generator=gen, dtype=dtype).to(device) * (1.0 / math.sqrt(c_in * k * k))
    b = torch.randn(c_out, generator=gen, dtype=dtype).to(device)
    x.requires_grad_(True)
    w.requires_grad_(True)
    b.requires_grad_(True)
    conv = torch.nn.functional.conv2d

    def forward():
        with torch.no_grad():
            conv(x, w, b, s, p)

    def forward_backward():
        y = conv(x, w, b, s, p)
        torch.autograd.grad(y, (x, w, b), torch.ones_like(y))

    return forward, forward_backward


def gpuconv_callables(layer, algo):
    import gpuconv
    import gpuconv.functional as F
    _, c_in, c_out, size, k, s, p = layer
    rng = np.random.default_rng(0)
    x = gpuconv.asarray(rng.standard_normal((BATCH, c_in, size, size), dtype=np.float32))
    w = gpuconv.asarray(rng.standard_normal((c_out, c_in, k, k), dtype=np.float32) / np.float32(math.sqrt(c_in * k * k)))
    b = gpuconv.asarray(rng.standard_normal(c_out, dtype=np.float32))
    out = (size + 2 * p - k) // s + 1
    dy = gpuconv.asarray(np.ones((BATCH, c_out, out, out), dtype=np.float32))

    def forward():
        F.conv2d(x, w, b, s, p, algo=algo)

    def forward_backward():
        F.conv2d(x, w, b, s, p, algo=algo)
        F.conv2d_backward(dy, x, w, s, p, algo=algo)

    return forward, forward_backward


def geomean(values):
    values = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def run_cpu(args) -> str:
    import gpuconv
    gpuconv.use("numpy")
    theirs = TorchCpu()
    rows, ratios, median_ratios = [], {"fwd": [], "fwd+bwd": []}, {"fwd": [], "fwd+bwd": []}
    for layer in selected_layers(args):
        flops = forward_flops(BATCH, *layer[1:])
        ours = gpuconv_callables(layer, "auto")
        cells = [layer[0]]
        for label, index, mult in (("fwd", 0, 1.0), ("fwd+bwd", 1, 3.0)):
            fns = [lambda fn=ours[index]: cpu_timer(fn)] + ([theirs.timed(layer, index)] if theirs.available else [])
            (t_ours, m_ours), *other = interleaved_times(fns, args.warmup, args.repeats, args.pause)
            cells += [f"{t_ours * 1e3:.1f}", f"{mult * flops / t_ours / 1e9:.0f}"]
            if other:
                (t_torch, m_torch), = other
                ratios[label].append(t_ours / t_torch)
                median_ratios[label].append(m_ours / m_torch)
                cells += [f"{t_torch * 1e3:.1f}", f"{mult * flops / t_torch / 1e9:.0f}", f"{t_ours / t_torch:.2f}",
                          f"{m_ours / m_torch:.2f}"]
            else:
                cells += [theirs.reason, "", "", ""]
        rows.append(cells)
        print(" | ".join(cells), file=sys.stderr, flush=True)
    theirs.close()
    torch = theirs if theirs.available else None
    header = ["layer (batch 8, fp32)", "fwd gpuconv ms", "GFLOP/s", "fwd torch ms", "GFLOP/s", "ratio",
              "ratio of medians", "fwd+bwd gpuconv ms", "GFLOP/s", "fwd+bwd torch ms", "GFLOP/s", "ratio",
              "ratio of medians"]
    lines = [f"# conv2d, CPU: gpuconv numpy backend vs PyTorch {torch.version if torch else '(not installed)'}",
             "", f"Machine: {args.machine}. Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC. "
             f"NumPy {np.__version__}, {platform.python_implementation()} {platform.python_version()}. "
             f"Times are the best of {args.repeats} runs after {args.warmup} warm-up (the least disturbed by other "
             "work on a shared machine; the ratio of the medians is given too). gpuconv and PyTorch are timed in "
             "turn within each repeat, PyTorch in a child process of its own (in the same process it slowed "
             f"NumPy's copies several-fold), with {args.pause} s of sleep before each timed call so that neither "
             "library's spinning worker threads slow the other. algo='auto' (im2col + BLAS on the numpy "
             "backend). fwd+bwd = conv2d + conv2d_backward (dx, dweight, dbias); GFLOP/s counts 3x the forward "
             "FLOPs for it. ratio = gpuconv time / PyTorch time (lower is better).", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    if torch is not None:
        for name, values in (("best times", ratios), ("medians", median_ratios)):
            lines += ["", f"Geometric mean of the ratio of {name}: forward {geomean(values['fwd']):.2f}, "
                          f"forward+backward {geomean(values['fwd+bwd']):.2f}, "
                          f"all {geomean(values['fwd'] + values['fwd+bwd']):.2f}."]
    return "\n".join(lines) + "\n"


def run_gpu_setting(args) -> str:
    """One TF32 setting (CUPY_TF32 is already set in this process's environment)."""
    import cupy

    import gpuconv
    gpuconv.use("cupy")
    tf32 = os.environ.get("CUPY_TF32") == "1"
    timer = make_cuda_timer(cupy)
    name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"].decode()
    peak = next((v[1 if tf32 else 0] for k, v in PEAKS.items() if k in name), None)
    torch, reason = torch_or_reason()
    if torch is not None:
        if not torch.cuda.is_available():
            torch, reason = None, "torch has no CUDA"
        else:
            torch.backends.cudnn.allow_tf32 = tf32
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.benchmark = True
    lines = [f"## {name}, fp32, TF32 {'on' if tf32 else 'off'}", "",
             "| layer | pass | im2col ms | GFLOP/s | % peak | direct ms | GFLOP/s | % peak | torch ms | GFLOP/s | % peak |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]

    def cell(t, flops):
        if t is None:
            return ["-", "-", "-"]
        rate = flops / t / 1e9
        return [f"{t * 1e3:.3f}", f"{rate:.0f}", f"{100 * rate / 1e3 / peak:.1f}" if peak else "n/a"]

    for layer in selected_layers(args):
        flops = forward_flops(BATCH, *layer[1:])
        fns = {algo: gpuconv_callables(layer, algo) for algo in ("im2col", "direct")}
        theirs = torch_callables(torch, layer, "cuda") if torch is not None else None
        for label, index, mult in (("fwd", 0, 1.0), ("fwd+bwd", 1, 3.0)):
            cells = [layer[0], label]
            for algo in ("im2col", "direct"):
                cells += cell(median_time(fns[algo][index], args.warmup, args.repeats, timer), mult * flops)
            if theirs is not None:
                cells += cell(median_time(theirs[index], args.warmup, args.repeats, timer), mult * flops)
            else:
                cells += [reason, "", ""]
            lines.append("| " + " | ".join(cells) + " |")
            print(lines[-1], file=sys.stderr, flush=True)
    return "\n".join(lines) + "\n"


def run_gpu(args) -> str:
    header = [f"# conv2d, GPU: gpuconv im2col / direct vs PyTorch/cuDNN (batch {BATCH}, fp32)", "",
              f"Machine: {args.machine}. Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC. "
              f"CUDA events, median of {args.repeats} after {args.warmup} warm-up. fwd+bwd counts 3x the forward "
              "FLOPs. % peak against 66.9 TFLOP/s FP32 or 495 TFLOP/s TF32 (H100/H200).", ""]
    parts = []
    for tf32 in ("0", "1"):
        env = dict(os.environ, CUPY_TF32=tf32)
        cmd = [sys.executable, __file__, "--device", "gpu-setting", "--repeats", str(args.repeats), "--warmup",
               str(args.warmup)] + (["--layers", args.layers] if args.layers else [])
        parts.append(subprocess.run(cmd, env=env, check=True, stdout=subprocess.PIPE, text=True).stdout)
    return "\n".join(header) + "\n" + "\n".join(parts)


def selected_layers(args):
    if not args.layers:
        return LAYERS
    wanted = args.layers.split(",")
    return [layer for layer in LAYERS if any(w in layer[0] for w in wanted)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "gpu", "gpu-setting"], default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--pause", type=float, default=0.3,
                        help="CPU: seconds of sleep before each timed call (lets BLAS/OpenMP threads go idle)")
    parser.add_argument("--layers", default="", help="comma-separated substrings of layer names (default: all)")
    parser.add_argument("--machine", default=f"{platform.machine()}, {os.cpu_count()} CPU cores")
    parser.add_argument("--output", help="also write the table to this Markdown file")
    args = parser.parse_args()
    if args.device == "gpu-setting":
        sys.stdout.write(run_gpu_setting(args))
        return
    text = run_cpu(args) if args.device == "cpu" else run_gpu(args)
    sys.stdout.write(text)
    if args.output:
        Path(args.output).write_text(text)


if __name__ == "__main__":
    main()
