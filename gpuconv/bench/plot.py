"""``--plot FILE.png``: the report drawn with matplotlib (the optional ``plot`` extra).

conv: grouped bars of the median time per implementation per layer, one panel per direction,
and on a GPU a roofline panel (arithmetic intensity against achieved GFLOP/s, under the device's
peak FLOP/s and bandwidth: from :data:`GPU_PEAKS` for known GPUs, else the copy bandwidth measured
in the run). pool/bn/im2col/elementwise: % of a copy per op. model: images/s, and with PyTorch compared, a second
panel of gpuconv's time over PyTorch's (median and best). memory: estimated vs measured.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .conv import DIRECTIONS
from .suites import ConvShape

# name substring -> (FP32 FLOP/s, TF32 dense FLOP/s, memory bytes/s): vendors' datasheets (CUDA-NOTES.md).
GPU_PEAKS = {"H200": (66.9e12, 495e12, 4.8e12), "H100": (66.9e12, 495e12, 3.35e12),
             "A100": (19.5e12, 156e12, 2.0e12), "L4": (30.3e12, 60e12, 0.3e12)}


def gpu_peaks(name: str | None, tf32: bool, copy_bytes_per_s: float | None) -> tuple[float | None, float | None]:
    """(peak FLOP/s, bandwidth bytes/s) of GPU ``name``; the measured copy bandwidth for unknown GPUs."""
    for key, (fp32, tf32_peak, bandwidth) in GPU_PEAKS.items():
        if name and key in name:
            return (tf32_peak if tf32 else fp32), bandwidth
    return None, copy_bytes_per_s


def arithmetic_intensity(spec: str, itemsize: int) -> float:
    """FLOPs per byte of a convolution's forward (x and w read, y written once)."""
    values = [int(v) for v in spec.split(",")]
    shape = ConvShape("", *values)
    oh, ow = shape.out_size
    elements = (shape.n * shape.c * shape.h * shape.w + shape.k * (shape.c // shape.groups) * shape.r * shape.s
                + shape.n * shape.k * oh * ow)
    return shape.forward_flops / (elements * itemsize)


def _bars(ax: Any, labels: list[str], series: dict[str, list[float]], ylabel: str, log: bool = False) -> None:
    width = 0.8 / max(1, len(series))
    x = np.arange(len(labels))
    for i, (name, values) in enumerate(series.items()):
        ax.bar(x + i * width - 0.4 + width / 2, [np.nan if v is None else v for v in values], width, label=name)
    ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=7)


def _series(rows: list[dict], label_key: str, series_key: str, value_key: str) -> tuple[list[str], dict]:
    labels = list(dict.fromkeys(r[label_key] for r in rows))
    names = list(dict.fromkeys(r[series_key] for r in rows))
    table = {(r[label_key], r[series_key]): r.get(value_key) for r in rows}
    return labels, {n: [table.get((label, n)) for label in labels] for n in names}


def _conv(fig_factory: Any, report: dict, path: Path) -> None:
    rows = [r for r in report["rows"] if r["status"] == "ok" and "median_ms" in r]
    header = report["header"]
    on_gpu = header["gpu"] is not None
    panels = len(DIRECTIONS) + (1 if on_gpu else 0)
    fig, axes = fig_factory(panels, 1, figsize=(max(8, len({r["case"] for r in rows}) * 0.8), 4 * panels))
    axes = np.atleast_1d(axes)
    for ax, direction in zip(axes, DIRECTIONS):
        chosen = [r for r in rows if r["direction"] == direction]
        torch_rows = {r["case"]: r["torch_ms"] for r in chosen if "torch_ms" in r}
        labels, series = _series(chosen, "case", "impl", "median_ms")
        if torch_rows:
            series["PyTorch"] = [torch_rows.get(label) for label in labels]
        _bars(ax, labels, series, "median ms", log=True)
        ax.set_title(direction)
    if on_gpu:
        ax = axes[-1]
        itemsize = np.dtype(header["settings"]["dtype"]).itemsize
        measured = header.get("copy_gbps")
        peak, bandwidth = gpu_peaks(header["gpu"], bool(header["settings"].get("tf32")),
                                    measured * 1e9 if measured else None)
        for impl in dict.fromkeys(r["impl"] for r in rows):
            points = [(arithmetic_intensity(r["shape"], itemsize), r["gflops"]) for r in rows if r["impl"] == impl]
            ax.scatter(*zip(*points), label=impl, s=12)
        intensity = np.logspace(-1, 4, 100)
        if bandwidth:
            roof = intensity * bandwidth / 1e9
            if peak:
                roof = np.minimum(roof, peak / 1e9)
            ax.plot(intensity, roof, "k-", label="roofline")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("arithmetic intensity (FLOP/byte)")
        ax.set_ylabel("GFLOP/s")
        ax.set_title(f"roofline, {header['gpu']}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def _model(fig_factory: Any, report: dict, path: Path) -> None:
    rows = [r for r in report["rows"] if r["status"] == "ok" and "median_ms" in r]
    ratios = [r for r in rows if "ratio_torch" in r]
    fig, axes = fig_factory(1 + bool(ratios), 1, figsize=(8, 4 * (1 + bool(ratios))))
    axes = np.atleast_1d(axes)
    labels, series = _series(rows, "mode", "impl", "images_per_s")
    _bars(axes[0], labels, series, "images/s")
    axes[0].set_title(f"gpuconv-bench model ({report['header']['backend']})")
    if ratios:
        labels = [f"{r['case']} {r['mode']}" for r in ratios]
        _bars(axes[1], labels, {"median": [r["ratio_torch"] for r in ratios],
                                "best": [r.get("ratio_torch_best") for r in ratios]}, "gpuconv time / PyTorch time")
        axes[1].axhline(1.0, color="k", linewidth=0.8)
        axes[1].set_title("ratio to PyTorch (< 1: gpuconv is faster)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def plot(report: dict, path: Path) -> None:
    """Draws ``report`` (see schema.py) into ``path`` (PNG, or any format matplotlib knows by suffix)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    command = report["header"]["command"]
    if command == "conv":
        _conv(plt.subplots, report, path)
        plt.close("all")
        return
    if command == "model":
        _model(plt.subplots, report, path)
        plt.close("all")
        return
    rows = [r for r in report["rows"] if r["status"] == "ok"]
    fig, ax = plt.subplots(figsize=(max(8, len(rows) * 0.4), 5))
    if command in ("pool", "bn", "im2col", "elementwise"):
        labels = [f"{r['case']}: {r['op']}" for r in rows]
        _bars(ax, labels, {"% of a copy": [r.get("pct_copy") for r in rows]}, "% of a copy's GB/s")
    else:
        labels = [f"{r['case']} {r['mode']}" for r in rows]
        series = {"measured": [r["peak_measured_bytes"] / 2**20 for r in rows],
                  "estimated": [r.get("peak_estimated_bytes", np.nan) / 2**20 for r in rows]}
        _bars(ax, labels, series, "peak MiB")
    ax.set_title(f"gpuconv-bench {command} ({report['header']['backend']})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close("all")
