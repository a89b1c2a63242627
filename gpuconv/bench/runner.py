"""The loop every timed subcommand shares: check each op on a slice, then time it against PyTorch.

A case holds host (NumPy) inputs and groups of ops. Each op is first run on a slice of the batch
on the benchmark's backend and compared with the numpy path in float64 on the same slice; a
mismatch makes its row FAILED and it is not timed. The ops of a group (e.g. every algorithm of one
direction) and their PyTorch twin are then timed in turn within each repeat.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

import gpuconv

from .progress import bar
from .timing import Stats, copy_function, interleaved, timed_call
from .torch_child import TorchChild

Inputs = dict[str, Any]
# What a failing or vanished PyTorch child raises: reported as one line, the run goes on.
CHILD_ERRORS = (RuntimeError, EOFError, OSError)


@dataclass
class Op:
    """One benchmarked call: ``run(inputs)`` on the current backend; ``fields`` go into its row."""

    fields: dict[str, Any]
    run: Callable[[Inputs], Any]
    reference: Callable[[Inputs], Any] | None = None  # the numpy-path call to compare with (default: run)


@dataclass
class Group:
    """Ops timed together (interleaved) with an optional PyTorch twin ``torch``.

    ``flops`` or ``nbytes`` (work per call) give GFLOP/s or GB/s columns.
    """

    ops: list[Op]
    torch: str | None = None
    flops: float | None = None
    nbytes: float | None = None


@dataclass
class Case:
    """Inputs shared by its groups; ``batch_keys`` name the inputs sliced along the batch for the check."""

    name: str
    inputs: dict[str, np.ndarray]
    groups: list[Group]
    batch_keys: tuple[str, ...]
    fields: dict[str, Any] = field(default_factory=dict)
    torch_spec: dict | None = None
    copy_of: str | None = None  # input whose copy bandwidth is the reference of the GB/s
    slicer: Callable[[dict[str, np.ndarray], int], dict[str, np.ndarray]] | None = None  # replaces batch_keys


@dataclass
class Settings:
    """What the runner needs from the command line."""

    warmup: int
    repeats: int
    pause: float
    check_images: int
    tolerance: float
    timing: bool  # False on the emulated backend: correctness only
    quiet: bool = False  # no progress bar on stderr


def _outputs(result: Any) -> list[np.ndarray]:
    items = result if isinstance(result, (tuple, list)) else (result,)
    return [gpuconv.to_numpy(a) for a in items if a is not None]


def relative_error(got: Any, want: Any) -> float:
    """max |got - want| / max |want| over every output; inf when shapes or integer outputs differ."""
    got_arrays, want_arrays = _outputs(got), _outputs(want)
    if len(got_arrays) != len(want_arrays):
        return float("inf")
    worst = 0.0
    for g, w in zip(got_arrays, want_arrays, strict=True):
        if g.shape != w.shape:
            return float("inf")
        if not np.issubdtype(w.dtype, np.floating):
            if not np.array_equal(g, w):
                return float("inf")
            continue
        if not np.all(np.isfinite(g)):
            return float("inf")
        scale = max(float(np.max(np.abs(w))), np.finfo(np.float64).tiny) if w.size else 1.0
        diff = float(np.max(np.abs(g.astype(np.float64) - w))) if w.size else 0.0
        worst = max(worst, diff / scale)
    return worst


def _sliced(case: Case, images: int) -> dict[str, np.ndarray]:
    if case.slicer is not None:
        return case.slicer(case.inputs, images)
    return {k: (v[:images] if k in case.batch_keys else v) for k, v in case.inputs.items()}


def _float64(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: (v.astype(np.float64) if np.issubdtype(v.dtype, np.floating) else v) for k, v in inputs.items()}


def check(case: Case, op: Op, images: int) -> float:
    """The op's relative error on the first ``images`` images against the numpy path in float64.

    Raises what the op raises (a ValueError from its argument check means "not applicable").
    """
    sliced = _sliced(case, images)
    got = op.run({k: gpuconv.asarray(v) for k, v in sliced.items()})
    with gpuconv.backend("numpy"):
        want = (op.reference or op.run)(_float64(sliced))
    return relative_error(got, want)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def run_cases(cases: list[Case], be: Any, settings: Settings, torch: TorchChild | None,
              notes: list[str]) -> list[dict[str, Any]]:
    """Rows of every op of every case (see the JSON schema); one-line problems go into ``notes``."""
    rows: list[dict[str, Any]] = []
    timed = timed_call(be)
    progress = bar(sum(len(g.ops) for c in cases for g in c.groups), "checking and timing" if settings.timing
                   else "checking", "op", settings.quiet)
    with progress:
        for case in cases:
            rows += _run_case(case, be, settings, timed, torch, notes, progress)
    return rows


def _run_case(case, be, settings, timed, torch, notes, progress) -> list[dict[str, Any]]:
    """Rows of one case: each group's ops checked, then timed (see :func:`run_cases`)."""
    rows: list[dict[str, Any]] = []
    copy_bw = None
    twins: list[str] = []
    if settings.timing:
        if case.copy_of is not None:
            source = gpuconv.asarray(case.inputs[case.copy_of])
            copy = copy_function(be, source)
            (stats,) = interleaved([lambda: timed(copy)], settings.warmup, settings.repeats)
            copy_bw = 2 * source.nbytes / stats.median
        if torch is not None and torch.available and case.torch_spec is not None:
            try:
                twins = torch.build(case.torch_spec)
            except CHILD_ERRORS as error:
                notes.append(f"{case.name}: {error}")
    device_inputs = {k: gpuconv.asarray(v) for k, v in case.inputs.items()} if settings.timing else {}
    for group in case.groups:
        rows += _run_group(case, group, device_inputs, settings, timed, torch if group.torch in twins else None,
                           copy_bw, notes, progress)
    be.synchronize()
    return rows


def _label(case, op) -> str:
    """What the progress bar names while ``op`` runs: the case and the op's fields."""
    return f"{case.name} " + " ".join(str(v) for v in op.fields.values())


def _run_group(case, group, device_inputs, settings, timed, torch, copy_bw, notes, progress) -> list[dict[str, Any]]:
    rows, passed = [], []
    for op in group.ops:
        progress.set_postfix_str(f"checking {_label(case, op)}")
        row = {"case": case.name, **case.fields, **op.fields}
        try:
            error = check(case, op, settings.check_images)
        except ValueError as exc:
            row.update(status="n/a", note=_first_line(exc))
            notes.append(f"{case.name}: {op.fields.get('impl', op.fields.get('op'))} not applicable: "
                         f"{_first_line(exc)}")
        except Exception as exc:  # noqa: BLE001 - a failing op is one row and one line, the run goes on
            row.update(status="error", note=_first_line(exc))
            notes.append(f"{case.name}: {_first_line(exc)}")
        else:
            row["max_error"] = error
            row["status"] = "ok" if error <= settings.tolerance else "FAILED"
            if row["status"] == "ok":
                passed.append((op, row))
        rows.append(row)
        progress.update()
    if not settings.timing or not passed:
        return rows
    progress.set_postfix_str(f"timing {_label(case, passed[0][0])}" + (f" and {len(passed) - 1} more"
                                                                       if len(passed) > 1 else ""))
    fns = [lambda op=op: timed(lambda: op.run(device_inputs)) for op, _ in passed]
    if torch is not None:
        fns.append(torch.timed(group.torch))
    try:
        stats = interleaved(fns, settings.warmup, settings.repeats, settings.pause)
    except Exception as exc:  # noqa: BLE001 - e.g. out of memory at full size after the check on a slice passed
        notes.append(f"{case.name}: timing failed: {_first_line(exc)}")
        for _, row in passed:
            row.update(status="error", note=f"timing failed: {_first_line(exc)}")
        return rows
    torch_stats: Stats | None = stats.pop() if torch is not None else None
    for (_, row), s in zip(passed, stats, strict=True):
        row.update(median_ms=s.median * 1e3, best_ms=s.best * 1e3)
        if group.flops:
            row["gflops"] = group.flops / s.median / 1e9
        if group.nbytes:
            row["gbps"] = group.nbytes / s.median / 1e9
            if copy_bw:
                row["pct_copy"] = 100 * group.nbytes / s.median / copy_bw
        if torch_stats is not None:
            row.update(torch_ms=torch_stats.median * 1e3, ratio_torch=s.median / torch_stats.median)
    return rows
