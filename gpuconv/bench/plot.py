"""``--plot FILE.png``: the report drawn with matplotlib (the optional ``plot`` extra).

conv: grouped bars (linear, from zero) per implementation per layer, one panel per direction:
the time relative to PyTorch's (1.0 marked) when PyTorch was timed, else the median time; and on
a GPU a roofline panel (arithmetic intensity against achieved GFLOP/s, under the device's
peak FLOP/s and bandwidth: from :data:`GPU_PEAKS` for known GPUs, else the copy bandwidth measured
in the run). pool/bn/im2col/elementwise: % of a copy per op. model: images/s. memory: estimated vs measured.
Without timings (the emulated backend): each op's checked error against the numpy path.
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


def _bars(ax: Any, labels: list[str], series: dict[str, list[float]], ylabel: str) -> None:
    """Grouped bars on a linear axis from zero (a cut-off or log axis exaggerates differences)."""
    width = 0.8 / max(1, len(series))
    x = np.arange(len(labels))
    for i, (name, values) in enumerate(series.items()):
        ax.bar(x + i * width - 0.4 + width / 2, [np.nan if v is None else v for v in values], width, label=name)
    ax.set_xticks(x, labels, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    ax.set_ylim(bottom=0)
    _legend(ax)


def _legend(ax: Any) -> None:
    """A legend when something has a label (matplotlib warns about an empty one)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


def _series(rows: list[dict], label_key: str, series_key: str, value_key: str) -> tuple[list[str], dict]:
    labels = list(dict.fromkeys(r[label_key] for r in rows))
    names = list(dict.fromkeys(r[series_key] for r in rows))
    table = {(r[label_key], r[series_key]): r.get(value_key) for r in rows}
    return labels, {n: [table.get((label, n)) for label in labels] for n in names}


def _row_label(row: dict) -> str:
    parts = [row.get("case"), row.get("direction") or row.get("op") or row.get("mode"), row.get("impl")]
    return " ".join(str(p) for p in parts if p)


def _correctness(ax: Any, report: dict) -> None:
    """Without timings (the emulated backend): each checked op's max relative error against the
    numpy path, on a log axis (points, not bars), with the bench's tolerance; or, with nothing
    checked either, a panel that says so."""
    checked = [r for r in report["rows"] if r.get("max_error") is not None]
    backend = report["header"]["backend"]
    if not checked:
        _message(ax, f"no timings and no checked results on the {backend} backend")
        return
    x = np.arange(len(checked))
    ok = [r["status"] == "ok" for r in checked]
    errors = np.array([max(r["max_error"], 1e-17) for r in checked])  # an exact 0 shown at the axis' floor
    ax.scatter(x[ok], errors[ok], s=14, label="ok")
    if not all(ok):
        ax.scatter(x[[not o for o in ok]], errors[[not o for o in ok]], s=14, color="red", label="FAILED")
    tolerance = report["header"]["settings"].get("tolerance")
    if tolerance:
        ax.axhline(tolerance, color="k", linestyle="--", label="tolerance")
    ax.set_yscale("log")
    ax.set_xticks(x, [_row_label(r) for r in checked], rotation=60, ha="right", fontsize=6)
    ax.set_ylabel("max relative error vs numpy (float64)")
    ax.set_title(f"{backend}: correctness only (no timings on this backend)")
    _legend(ax)


def _message(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, wrap=True)
    ax.set_axis_off()


def _conv_direction(ax: Any, rows: list[dict], direction: str) -> None:
    """One direction's times: time / PyTorch per case and implementation when PyTorch was timed
    (1.0 marked), else the median ms; bars from zero."""
    torch_ms = {r["case"]: r["torch_ms"] for r in rows if "torch_ms" in r}
    if torch_ms:
        labels, series = _series(rows, "case", "impl", "ratio_torch")
        _bars(ax, labels, series, "time / PyTorch's (lower is faster)")
        ax.axhline(1.0, color="k", linewidth=1, label="PyTorch = 1.0")
        _legend(ax)
    else:
        labels, series = _series(rows, "case", "impl", "median_ms")
        _bars(ax, labels, series, "median ms")
    ax.set_title(direction)


def _conv(fig_factory: Any, report: dict) -> Any:
    rows = [r for r in report["rows"] if r["status"] == "ok" and "median_ms" in r]
    header = report["header"]
    if not rows:
        fig, ax = fig_factory(1, 1, figsize=(max(8, len(report["rows"]) * 0.3), 5))
        _correctness(ax, report)
        return fig
    on_gpu = header["gpu"] is not None and any("gflops" in r for r in rows)
    directions = [d for d in DIRECTIONS if any(r["direction"] == d for r in rows)]
    panels = len(directions) + (1 if on_gpu else 0)
    fig, axes = fig_factory(panels, 1, figsize=(max(8, len({r["case"] for r in rows}) * 0.8), 4 * panels))
    axes = np.atleast_1d(axes)
    for ax, direction in zip(axes, directions):
        _conv_direction(ax, [r for r in rows if r["direction"] == direction], direction)
    if on_gpu:
        ax = axes[-1]
        itemsize = np.dtype(header["settings"]["dtype"]).itemsize
        measured = header.get("copy_gbps")
        peak, bandwidth = gpu_peaks(header["gpu"], bool(header["settings"].get("tf32")),
                                    measured * 1e9 if measured else None)
        for impl in dict.fromkeys(r["impl"] for r in rows if "gflops" in r):
            points = [(arithmetic_intensity(r["shape"], itemsize), r["gflops"]) for r in rows
                      if r["impl"] == impl and "gflops" in r]
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
        _legend(ax)
    return fig


# The value each non-conv command draws, and its axis label.
_VALUES = {"pool": ("pct_copy", "% of a copy's GB/s"), "bn": ("pct_copy", "% of a copy's GB/s"),
           "im2col": ("pct_copy", "% of a copy's GB/s"), "elementwise": ("pct_copy", "% of a copy's GB/s"),
           "model": ("images_per_s", "images/s"), "memory": ("peak_measured_bytes", "peak MiB")}


def figure(report: dict) -> Any:
    """The matplotlib Figure of ``report`` (see schema.py): every panel draws something (bars,
    points, or a sentence saying why there is nothing to draw)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    command = report["header"]["command"]
    if command == "conv":
        return _conv(plt.subplots, report)
    rows = [r for r in report["rows"] if r["status"] == "ok"]
    value_key, ylabel = _VALUES[command]
    drawn = [r for r in rows if r.get(value_key) is not None]
    fig, ax = plt.subplots(figsize=(max(8, len(rows) * 0.4), 5))
    if not drawn:
        _correctness(ax, report)
        return fig
    if command == "model":
        labels, series = _series(drawn, "mode", "impl", value_key)
        _bars(ax, labels, series, ylabel)
    elif command == "memory":
        labels = [f"{r['case']} {r['mode']}" for r in drawn]
        series = {"measured": [r["peak_measured_bytes"] / 2**20 for r in drawn],
                  "estimated": [r.get("peak_estimated_bytes", np.nan) / 2**20 for r in drawn]}
        _bars(ax, labels, series, ylabel)
    else:
        labels = [f"{r['case']}: {r['op']}" for r in drawn]
        _bars(ax, labels, {"% of a copy": [r[value_key] for r in drawn]}, ylabel)
        ax.axhline(100, color="k", linewidth=1, label="a copy = 100%")
        _legend(ax)
    ax.set_title(f"gpuconv-bench {command} ({report['header']['backend']})")
    return fig


def plot(report: dict, path: Path) -> None:
    """Draws ``report`` (see schema.py) into ``path`` (PNG, or any format matplotlib knows by suffix)."""
    import matplotlib.pyplot as plt

    fig = figure(report)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
