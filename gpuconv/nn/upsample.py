"""Upsample."""

from __future__ import annotations

from typing import Any


from .. import functional as F
from .module import Module


class Upsample(Module):
    """Resizes (N, C, H, W) to ``size`` or by ``scale_factor``, PyTorch's ``nn.Upsample`` with modes
    "nearest" and "bilinear" (:func:`gpuconv.functional.interpolate`).

    Keeps for backward: nothing but the input's shape.
    """

    def __init__(self, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                 align_corners: bool | None = None, recompute_scale_factor: bool | None = None):
        super().__init__()
        if isinstance(scale_factor, (tuple, list)):
            scale_factor = tuple(float(s) for s in scale_factor)
        elif scale_factor is not None:
            scale_factor = float(scale_factor)
        if isinstance(size, list):
            size = tuple(size)
        self.size = size
        self.scale_factor = scale_factor
        self.mode = mode
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor
        F.check_interpolate_args(size, scale_factor, mode, align_corners)

    def _kwargs(self) -> dict:
        return dict(size=self.size, scale_factor=self.scale_factor, mode=self.mode, align_corners=self.align_corners,
                    recompute_scale_factor=self.recompute_scale_factor)

    def forward(self, x: Any) -> Any:
        y = F.interpolate(x, **self._kwargs())
        return y

    def output_shape(self, input_shape):
        out, _ = F.interpolate_geometry(tuple(input_shape), self.size, self.scale_factor, self.recompute_scale_factor)
        return tuple(input_shape[:2]) + out

    def extra_repr(self) -> str:
        info = f"scale_factor={self.scale_factor!r}" if self.scale_factor is not None else f"size={self.size!r}"
        return f"{info}, mode={self.mode!r}"


__all__ = ["Upsample"]
