"""What every convolution algorithm provides: :class:`ConvAlgorithm` (see the package docstring)."""

from __future__ import annotations

from typing import Any, NamedTuple

from ..conv_geometry import ConvGeometry

DIRECTIONS = ("forward", "backward_data", "backward_weight")


class Plan(NamedTuple):
    """How one direction runs: images per chunk (the column-buffer algorithms cut the batch so that
    the columns fit ``gpuconv.flags.workspace_limit``; the others take the whole batch, ``g.n``)
    and the workspace bytes it allocates on the kernel backends."""

    chunk: int
    workspace: int


class ConvAlgorithm:
    """One convolution algorithm: where it applies, what it allocates, and its three directions.

    A subclass sets ``name`` (what ``algo=`` names it by) and ``description`` (one line for
    ``gpuconv-bench list``) and overrides :meth:`plan` and the three directions; it overrides
    :meth:`unsupported_reason` when it does not run every convolution. The direction methods get the
    current backend ``be``, C-contiguous native arrays of a validated geometry ``g`` (a
    :class:`~gpuconv.functional.conv_geometry.ConvGeometry`) and the :class:`Plan` that
    :meth:`plan` returned for that direction; they return a new array.
    """

    name: str = ""
    description: str = ""

    def unsupported_reason(self, g: ConvGeometry, direction: str) -> str | None:
        """Why this algorithm cannot run ``g`` in ``direction`` (words that follow ``algo='name'``
        in the error message, naming the direction), or None when it can."""
        return None

    def applies(self, g: ConvGeometry, direction: str | None = None) -> bool:
        """Whether it runs ``g`` in ``direction`` (None: in every direction)."""
        directions = DIRECTIONS if direction is None else (direction,)
        return all(self.unsupported_reason(g, d) is None for d in directions)

    def plan(self, g: ConvGeometry, direction: str, itemsize: int, limit: int | None = None) -> Plan:
        """Images per chunk and the exact workspace bytes of ``direction`` on the cupy and emulated
        backends, for elements of ``itemsize`` bytes and a workspace limit of ``limit`` bytes
        (None: ``gpuconv.flags.workspace_limit``)."""
        raise NotImplementedError(f"conv algorithm {self.name!r} does not say what it allocates (plan)")

    def workspace(self, g: ConvGeometry, direction: str, itemsize: int, limit: int | None = None) -> int:
        """Bytes of workspace ``direction`` allocates besides its result (``plan(...).workspace``)."""
        return self.plan(g, direction, itemsize, limit).workspace

    def forward(self, be: Any, x: Any, weight: Any, bias: Any, g: ConvGeometry, plan: Plan) -> Any:
        """y (N, C_out, OH, OW) from x (N, C_in, H, W), weight (C_out, C_in/groups, KH, KW) and
        bias (C_out,) or None."""
        raise NotImplementedError(f"conv algorithm {self.name!r} has no forward")

    def backward_data(self, be: Any, dy: Any, weight: Any, g: ConvGeometry, plan: Plan) -> Any:
        """dx (N, C_in, H, W) from dy (N, C_out, OH, OW) and the weight."""
        raise NotImplementedError(f"conv algorithm {self.name!r} has no backward_data")

    def backward_weight(self, be: Any, dy: Any, x: Any, g: ConvGeometry, plan: Plan) -> Any:
        """dweight (C_out, C_in/groups, KH, KW) from dy and x."""
        raise NotImplementedError(f"conv algorithm {self.name!r} has no backward_weight")

    def __repr__(self) -> str:
        return f"<conv algorithm {self.name!r}>"
