"""The ``list`` subcommand: what this machine can benchmark."""

from __future__ import annotations

from typing import Any

from gpuconv.backend import NAMES, unavailable_reason

from .capabilities import has_module
from .conv import algorithms
from .suites import SUITES


_ALGORITHMS = {
    "im2col": "columns + GEMM (cuBLAS on the GPU, BLAS on the CPU)",
    "direct": "kernels/conv_direct.cu; on the numpy backend the im2col code",
    "gemm": "1x1 kernel, stride 1, no padding only",
    "implicit_gemm": "kernels/conv_implicit_gemm.cu: GEMM tiles gathered from the input, no column buffer "
                     "(TF32 tensor cores with --tf32); on the numpy backend the im2col code",
    "auto": "what F.choose_algo picks",
}


def _row(case: str, kind: str, detail: str, ok: bool = True) -> dict[str, Any]:
    return {"case": case, "kind": kind, "status": "ok" if ok else "unavailable", "detail": detail}


def rows(be: Any) -> list[dict[str, Any]]:
    """One row per backend, algorithm, optional feature, suite and layer."""
    out = []
    for name in (n for n in NAMES if n != "auto"):
        reason = unavailable_reason(name)
        out.append(_row(name, "backend", reason or ("current" if be.name == name else "usable"), reason is None))
    for algo in algorithms() + ["auto"]:
        out.append(_row(algo, "algorithm", _ALGORITHMS.get(algo, "")))
    out.append(_row("tuned", "algorithm", "the autotuner's choice (cupy backend)"))
    out.append(_row("estimator", "feature", "gpuconv.memory"))
    for module, use in (("torch", "PyTorch comparison"), ("matplotlib", "--plot")):
        found = has_module(module)
        out.append(_row(module, "optional", use if found else f"not installed: no {use}", found))
    for suite, layers in SUITES.items():
        out.append(_row(suite, "suite", f"{len(layers)} layers"))
        for layer in layers:
            out.append(_row(layer.name, "layer", f"--shape {layer.spec} (N = --batch)"))
    return out
