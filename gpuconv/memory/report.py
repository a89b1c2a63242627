"""MemoryReport: the estimator's answer, as numbers, a table and a JSON-ready dict."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

CATEGORIES = ("params", "grads", "optimizer_state", "buffers", "inputs", "activations", "workspace")


def human(nbytes: float) -> str:
    """Bytes in binary units: 512 B, 1.50 KiB, 3.25 MiB, 1.00 GiB."""
    value = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


@dataclass
class Row:
    """One leaf module call's line in the report, in execution order.

    Attributes:
        name: the module's qualified name in the model; type: its class name.
        output_shape: the shape of its (first) output.
        params: its own parameters' element count.
        saved_bytes: what the autograd graph keeps for backward from this call (every array its
            nodes saved, its input included when saved; each array counted once).
        transient_bytes: the largest temporary one of its ops allocated, forward or backward.
        flops: floating-point operations of its forward (convolutions and matrix products).
    """

    name: str
    type: str
    output_shape: tuple[int, ...]
    params: int
    saved_bytes: int
    transient_bytes: int
    flops: int


@dataclass
class MemoryReport:
    """Memory of one step of ``model`` on an input of ``input_shape``, in bytes.

    Attributes:
        params, buffers: the model's parameters and buffers (running statistics).
        grads: one gradient per trainable parameter (0 for inference).
        optimizer_state: the optimizer's state (momentum buffers, Adam's moments, ...) after the
            step; on the first step it is created during ``optimizer.step()``.
        inputs: the batch and its targets.
        activations: what the forward leaves in use for backward (and its output).
        workspace: the largest transient allocation of one op (im2col columns, masks, ...).
        peak: the most bytes in use at any moment of the step (a replay of the step, not a sum).
        peak_phase: where the peak happens: forward, loss, backward or optimizer.
        pool_peak: on cupy, the peak with every block rounded up to CuPy's 512-byte granularity: a
            lower bound of what the memory pool reserves (it also keeps freed blocks); None elsewhere.
        step: "first" (the optimizer creates its state), "later" (state and last step's grads exist
            at the start) or "inference" (eval mode under no_grad).
        rows: one per leaf module in execution order (see :class:`Row`).
        world_size: ranks of data-parallel training the estimate is for (1: one process).
        communication: per rank, with world_size > 1: DistributedDataParallel's gradient buckets
            (held for the whole run); in ``peak``.
    """

    model: str
    input_shape: tuple[int, ...]
    dtype: str
    backend: str
    step: str
    optimizer: str | None
    params: int
    grads: int
    optimizer_state: int
    buffers: int
    inputs: int
    activations: int
    workspace: int
    workspace_at: str
    peak: int
    peak_phase: str
    pool_peak: int | None = None
    rows: list = field(default_factory=list)
    world_size: int = 1
    communication: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON types (rows as dicts)."""
        out = asdict(self)
        out["input_shape"] = list(self.input_shape)
        for row in out["rows"]:
            row["output_shape"] = list(row["output_shape"])
        return out

    def table(self, rows: bool = True) -> str:
        """Per-layer rows (optional) and the totals, in human units."""
        lines = []
        if rows and self.rows:
            header = f"{'layer':<28} {'type':<18} {'output shape':<20} {'params':>10} {'saved':>11} {'transient':>11} " \
                     f"{'FLOPs':>10}"
            lines += [header, "-" * len(header)]
            for r in self.rows:
                lines.append(f"{r.name[:28]:<28} {r.type[:18]:<18} {str(tuple(r.output_shape)):<20} {r.params:>10,} "
                             f"{human(r.saved_bytes):>11} {human(r.transient_bytes):>11} {_si(r.flops):>10}")
            lines.append("")
        what = {"first": "first training step", "later": "training step (after the first)",
                "inference": "inference (eval, no_grad)"}[self.step]
        lines.append(f"{self.model} on {self.input_shape}, {self.dtype}, {self.backend} backend: {what}"
                     + (f", {self.optimizer}" if self.optimizer and self.step != "inference" else ""))
        for name in CATEGORIES:
            value = getattr(self, name)
            note = f"  ({self.workspace_at})" if name == "workspace" and self.workspace_at else ""
            lines.append(f"  {name:<16} {human(value):>12}{note}")
        if self.world_size > 1:
            lines.append(f"  {'communication':<16} {human(self.communication):>12}  (per rank of {self.world_size}: "
                         "gradient buckets)")
        lines.append(f"  {'peak':<16} {human(self.peak):>12}  (during {self.peak_phase})")
        if self.pool_peak is not None:
            lines.append(f"  {'pool (>=)':<16} {human(self.pool_peak):>12}  (512-byte blocks)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        # One line: the table (with its rows) is str(); a dataclass repr of the rows runs to kilobytes.
        return (f"MemoryReport({self.model} on {self.input_shape}, {self.dtype}, {self.backend}, step={self.step!r}: "
                f"peak {human(self.peak)} during {self.peak_phase}, {len(self.rows)} rows)")


def _si(value: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f}{unit}"
    return str(value)
