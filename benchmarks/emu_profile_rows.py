"""Memory-access profile of the row kernels (loss.cu, softmax.cu) and the strided copy, per case.

    python benchmarks/emu_profile_rows.py --json after.json [--before before.json --out table.md]

Runs each case below on the emulated backend inside ``gpuconv.backend.emulated.profile()``, one
profile per case, and records per kernel its global load and store requests, sectors per request
against the ideal, and the efficiency (ideal / actual sectors), plus shared-memory bank conflicts.
``--json`` keeps the numbers; given the numbers of another tree (``--before``), ``--out`` writes a
before/after table per case (benchmarks/results/emu-access-profile-row-kernels.md).
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

import gpuconv
import gpuconv.backend.emulated as emulated
import gpuconv.functional as F


def cases(rng: np.random.Generator) -> Iterator[tuple[str, Callable[[], object]]]:
    """(label, call): float32 inputs made before any profile starts."""
    def arr(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    backend = gpuconv.get_backend()
    for rows, classes in ((64, 100), (32, 1000)):
        logits, target = arr(rows, classes), rng.integers(0, classes, rows)
        target32 = target.astype(np.int32)
        yield f"cross_entropy + backward, logits ({rows}, {classes}), int64 targets", lambda l=logits, t=target: (
            F.cross_entropy(l, t), F.cross_entropy_backward(np.float32(1.0), l, t))
        yield (f"cross_entropy + backward, logits ({rows}, {classes}), int32 targets, label smoothing 0.1",
               lambda l=logits, t=target32: (F.cross_entropy(l, t, label_smoothing=0.1),
                                             F.cross_entropy_backward(np.float32(1.0), l, t, label_smoothing=0.1)))
        count = np.zeros(1, np.int64)
        yield f"count_correct ({rows}, {classes}), int64 and int32 targets", lambda l=logits, t=target, t32=target32: (
            backend.count_correct(l, t, count), backend.count_correct(l, t32, count))
        yield f"softmax / log_softmax + backwards, ({rows}, {classes}), dim 1", lambda l=logits: (
            F.softmax_backward(l, F.softmax(l, 1), 1), F.log_softmax_backward(l, F.log_softmax(l, 1), 1))
    spatial, starget = arr(4, 10, 8, 8), rng.integers(0, 10, (4, 8, 8))
    yield "cross_entropy + backward, logits (4, 10, 8, 8) (a row per pixel)", lambda: (
        F.cross_entropy(spatial, starget), F.cross_entropy_backward(np.float32(1.0), spatial, starget))
    yield "softmax + backward, (4, 10, 8, 8), dim 1", lambda: F.softmax_backward(spatial, F.softmax(spatial, 1), 1)
    for shape, axes in (((96, 64), (1, 0)), ((4, 33, 17), (0, 2, 1)), ((1, 32, 144), (0, 2, 1)),
                        ((2, 32, 28, 28), (0, 2, 1, 3)), ((2, 32, 14, 12), (1, 0, 3, 2))):
        x = arr(*shape)
        yield f"copy of x{shape}.transpose{axes}", lambda x=x, axes=axes: backend.contiguous(x.transpose(axes))
    xs = arr(40, 30)
    yield "copy of x(40, 30)[1:, ::2]", lambda: backend.copy_into(np.empty((39, 15), np.float32), xs[1:, ::2])


def measure() -> dict[str, dict[str, dict[str, float]]]:
    """{case: {kernel: numbers}} from one profile per case."""
    results = {}
    with gpuconv.backend("emulated"):
        ops = list(cases(np.random.default_rng(0)))
        for _, call in ops:
            call()  # compiles the modules outside the profile
        for label, call in ops:
            with emulated.profile() as table:
                call()
            results[label] = {name: _numbers(entry) for name, entry in sorted(table.kernels.items())}
    return results


def _numbers(entry: emulated.KernelAccesses) -> dict[str, float]:
    c = entry.counters
    return {
        "launches": entry.launches,
        "load_requests": c["global_load"]["requests"],
        "load_sectors": entry.per_request("global_load"),
        "load_ideal": entry.ideal_per_request("global_load"),
        "load_efficiency": entry.efficiency("global_load"),
        "store_requests": c["global_store"]["requests"],
        "store_sectors": entry.per_request("global_store"),
        "store_ideal": entry.ideal_per_request("global_store"),
        "store_efficiency": entry.efficiency("global_store"),
        "shared_requests": c["shared_load"]["requests"] + c["shared_store"]["requests"],
        "bank_conflicts": entry.bank_conflicts(),
    }


def _row(name: str, n: dict[str, float]) -> str:
    def side(kind):
        if not n[f"{kind}_requests"]:
            return "- | - | -"
        return (f"{n[f'{kind}_requests']} | {n[f'{kind}_sectors']:.2f} ({n[f'{kind}_ideal']:.2f}) "
                f"| {100 * n[f'{kind}_efficiency']:.0f}%")
    shared = f"{n['shared_requests']} / {n['bank_conflicts']}" if n["shared_requests"] else "-"
    return f"| {name} | {n['launches']} | {side('load')} | {side('store')} | {shared} |"


def _counterpart(kernel: str) -> str:
    """The kernel that did the same work before this change (one thread per row, one copy kernel)."""
    return kernel.replace("_warp", "").replace("_block", "").replace("copy_transpose", "copy_strided")


def summary(before: dict, after: dict) -> str:
    """One line per changed kernel and case: load / store efficiency before and after."""
    lines = ["| case | kernel before | load / store efficiency | kernel after | load / store efficiency |",
             "|---|---|---|---|---|"]
    for label, numbers in after.items():
        for name, n in numbers.items():
            old = before.get(label, {}).get(_counterpart(name))
            if old is None or not name.startswith(("cross_entropy_rows", "cross_entropy_backward", "softmax",
                                                   "count_correct", "copy_")):
                continue
            def eff(m):
                return " / ".join(f"{100 * m[f'{k}_efficiency']:.0f}%" if m[f"{k}_requests"] else "-"
                                  for k in ("load", "store"))
            lines.append(f"| {label} | {_counterpart(name)} | {eff(old)} | {name} | {eff(n)} |")
    return "\n".join(lines)


def report(before: dict, after: dict) -> str:
    header = ("| kernel | launches | load requests | sectors/request (ideal) | load efficiency | store requests "
              "| sectors/request (ideal) | store efficiency | shared requests / bank conflicts |")
    lines = ["## Summary", "", summary(before, after), "", "## Every kernel of each case", ""]
    for label in after:
        lines += [f"### {label}", ""]
        for title, numbers in (("before", before.get(label, {})), ("after", after[label])):
            lines += [f"{title}:", "", header, "|" + "---|" * header.count(" | ") + "---|"]
            lines += [_row(name, n) for name, n in numbers.items()] or ["| (no kernel launched) |"]
            lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the numbers of this tree here")
    parser.add_argument("--before", type=Path, help="numbers of the tree before the change (from --json)")
    parser.add_argument("--out", type=Path, help="write the before/after markdown table here (needs --before)")
    args = parser.parse_args(argv)
    after = measure()
    if args.json:
        args.json.write_text(json.dumps(after, indent=1))
    if args.before:
        text = report(json.loads(args.before.read_text()), after)
        header = (f"Date: {datetime.date.today()}; {platform.machine()}, Python {platform.python_version()}, "
                  f"NumPy {np.__version__} (the counts do not depend on the machine).\n\n")
        if args.out:
            args.out.write_text(header + text + "\n")
        print(text)
    else:
        print(json.dumps(after, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
