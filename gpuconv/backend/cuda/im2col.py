"""Launchers for kernels/im2col.cu (shared by the cupy and emulated backends).

im2col and col2im run version 4 (16-byte stores, and 16-byte loads in which each lane of a warp
reads one distinct aligned vector, the neighbour's half it also needs coming by warp shuffles) at
horizontal stride 1 where its alignment conditions hold, else version 2. v4's conditions:
im2col: OW, both column strides and the columns' address multiples of 16 bytes (the stores), x
16-byte aligned with a size that is a multiple of 16 bytes (the loads: rows of any width, so the
"valid" 3x3 case, OW = W - 2 with W % 4 == 2, is covered too); col2im: W and dx's address multiples
of 16 bytes (the stores), the columns 16-byte aligned with a size that is a multiple of 16 bytes
(any OW). Where the stores cannot be vectors (im2col with OW % 4 != 0, e.g. "valid" on a 56-wide
input; col2im with W % 4 != 0, e.g. "valid" backward on an 18-wide input), v2 runs: a thread's
pixels would then span two output (im2col) or input (col2im) rows. At stride 2, v2 runs too: its
loads and stores are both coalesced, while v3's (the only vector version for stride 2) touched
1.5-1.7x its sectors for 1.2-2.1x fewer requests.

At stride 1 with padding, v4 touches 13-31% fewer load sectors than v2 and 40-48% fewer than v3,
at 96-100% load efficiency, with 2.4-3.5x fewer requests than v2. In the "valid" forward the rows
of x are not 16-byte aligned: each output row is a run of OW/4 lanes whose last lane loads its
second vector itself where the next row's first lane does not hold it, which costs 8% more
sectors than v2 at OW = 16 (5% fewer at OW = 56), mostly L1 hits on a GPU, for 2.4x fewer load
and 4x fewer store requests; v4 runs there too. (A v4 for stride 2 was tried: its lanes' vectors
are 32 bytes apart, so it touched 1.6-1.8x v2's load sectors, as v3 does there.)

The choice follows the emulator's access profile; no GPU has timed these versions
(benchmarks/emu_im2col_versions.py prints the counts, benchmarks/results/
emu-access-profile-im2col-direct.md has them, benchmarks/gpu_im2col_versions.py times them on a
GPU and should decide: v4 spends a ballot, shuffles and selects per tap that the profile does not
count). v3 (16-byte stores; 16-byte loads where rows are 16-byte aligned, each vector read by two
lanes) stays as the baseline v4 is compared with; ``version=3`` runs it with whatever loads apply
(vector loads at stride 2 too) and ``vector_loads=False`` forces its scalar loads (tests). Each
version in its 32-bit index variant when every offset fits an int (checked here) and its 64-bit
variant otherwise; ``version=`` picks a version (1 is the reference) and ``index_bits=64`` forces
the wide variant (tests run every combination on small tensors).
"""

from __future__ import annotations

import numpy as np

INT32_LIMIT = 2**31
MAX_GRID_Y = 65535
THREADS = 256


def column_strides(layout: str, n: int, rows: int, l_size: int) -> tuple[int, int]:
    """(row_stride, n_stride) of the columns in ``layout`` (see kernels/im2col.cu)."""
    if layout == "nkl":
        return l_size, rows * l_size
    return n * l_size, l_size


def index_bits(*extents: int) -> int:
    """32 when every extent (largest offset + 1 of an array a kernel addresses) fits an int, else 64."""
    return 32 if max(extents) < INT32_LIMIT else 64


def plane_block(plane_size: int) -> tuple[int, int]:
    """(BX, BY): BX threads over a plane's pixels (the plane rounded up to a warp, at most 256),
    BY planes per block, THREADS threads in all."""
    bx = min(THREADS, -(-plane_size // 32) * 32)
    return bx, THREADS // bx


def _address(a) -> int:
    """The device (cupy) or host (numpy) address of ``a``'s first element."""
    if isinstance(a, np.ndarray):
        return a.__array_interface__["data"][0]  # cheaper than a.ctypes.data
    return a.data.ptr


def vector_lanes(itemsize: int, ow: int, strides: tuple[int, int], cols) -> int:
    """Elements per 16-byte store of im2col_forward_v3 (4 float, 2 double) when OW, the column
    strides and the columns' address allow aligned vectors inside one output row, else 0."""
    lanes = 16 // itemsize
    aligned = ow % lanes == 0 and all(s % lanes == 0 for s in strides) and _address(cols) % 16 == 0
    return lanes if aligned else 0


def load_lanes(itemsize: int, width: int, array, strides: tuple[int, ...] = ()) -> bool:
    """Whether v3 may read ``array`` (rows of ``width`` elements; ``strides``: further element offsets
    it adds) with 16-byte loads: the array and every row start on 16 bytes."""
    lanes = 16 // itemsize
    return width % lanes == 0 and all(s % lanes == 0 for s in strides) and _address(array) % 16 == 0


def whole_vectors(itemsize: int, array) -> bool:
    """Whether v4 may read ``array`` by aligned 16-byte vectors of any of its elements: it starts on
    16 bytes and holds a whole number of them (so no vector around an element leaves it)."""
    return array.size % (16 // itemsize) == 0 and _address(array) % 16 == 0


def _vector_loads(requested: bool | None, possible: bool, kernel: str) -> np.int32:
    if requested and not possible:
        raise ValueError(f"{kernel} cannot use 16-byte loads here: they need stride {{1, 2}} (im2col) or 1 "
                         f"(col2im), and aligned rows")
    return np.int32(possible if requested is None else requested)


class Im2colKernels:
    def _im2col_args(self, x_shape, kernel_size, stride, padding, dilation, out_size, layout):
        n, c, h, w = x_shape
        (kh, kw), (oh, ow) = kernel_size, out_size
        row_stride, n_stride = column_strides(layout, n, c * kh * kw, oh * ow)
        ints = (n, c, h, w, kh, kw, *stride, *padding, *dilation, oh, ow)
        return tuple(np.int32(v) for v in ints) + (np.int64(row_stride), np.int64(n_stride))

    def _v2_launch(self, op, dtype, x_shape, kernel_size, stride, padding, dilation, out_size, layout, plane_size,
                   arrays, extra=(), bits=None, per_thread=1):
        """Launches ``op`` (v2 to v4) on ``arrays``. The kernel, grid and scalar arguments are computed
        once per configuration and cached: converting the dozen sizes to NumPy scalars and sizing
        the grid cost more host time than the launch (issue 9's budget: 30 us per conv2d call)."""
        key = (self.module_cache_key(), op, dtype, x_shape, kernel_size, stride, padding, dilation, out_size, layout,
               plane_size, extra, bits, per_thread, INT32_LIMIT, MAX_GRID_Y)  # tests change the limits
        kernel, grid, block, scalars = self.cached_plan("_im2col_plans", key, lambda: self._v2_plan(
            op, dtype, x_shape, kernel_size, stride, padding, dilation, out_size, layout, plane_size, extra, bits,
            per_thread))
        kernel(grid, block, arrays + scalars)

    def _v2_plan(self, op, dtype, x_shape, kernel_size, stride, padding, dilation, out_size, layout, plane_size,
                 extra, bits, per_thread):
        n, c, h, w = x_shape
        (kh, kw), (oh, ow) = kernel_size, out_size
        row_stride, n_stride = column_strides(layout, n, c * kh * kw, oh * ow)
        cols_extent = (c * kh * kw - 1) * row_stride + (n - 1) * n_stride + oh * ow
        # NOTE: v4 computes (without dereferencing) the offsets of padding rows and columns too,
        # up to a kernel's reach past the end of the array it reads: keep those inside an int.
        margin = 0
        if op.endswith("_v4"):
            (sh, _), (pt, pl), (dh, dw) = stride, padding, dilation
            margin = (kh * dh + pt + sh + 1) * max(w, ow) + kw * dw + pl + 8
        bits = bits or index_bits(n * c * h * w + margin, cols_extent + margin)
        wide = np.int64 if bits == 64 else np.int32
        ints = (n * c, c, h, w, kh, kw, *stride, *padding, *dilation, oh, ow)
        scalars = tuple(np.int32(v) for v in ints) + (wide(row_stride), wide(n_stride)) + tuple(extra)
        threads = -(-plane_size // per_thread)
        bx, by = plane_block(threads)
        grid = (-(-threads // bx), min(-(-(n * c) // by), MAX_GRID_Y))
        return self.kernel("im2col.cu", f"{op}_i{bits}", dtype), grid, (bx, by), scalars

    def im2col(self, x, kernel_size, stride, padding, dilation, out_size, layout, *, out=None,
               version: int | None = None, index_bits: int | None = None, vector_loads: bool | None = None):
        """Columns of ``x`` in ``layout``; ``out`` (C-contiguous, the layout's shape) receives them.
        ``vector_loads`` (v3 only) forces v3's 16-byte loads on or off; by default they run where allowed."""
        n, c = x.shape[:2]
        (kh, kw), (oh, ow) = kernel_size, out_size
        shape = (n, c * kh * kw, oh * ow) if layout == "nkl" else (c * kh * kw, n * oh * ow)
        cols = self.empty(shape, x.dtype) if out is None else out
        if cols.size == 0:
            return cols
        x = self.xp.ascontiguousarray(x)
        lanes = vector_lanes(x.dtype.itemsize, ow, column_strides(layout, n, c * kh * kw, oh * ow), cols)
        v4_loads = stride[1] == 1 and lanes and whole_vectors(x.dtype.itemsize, x)
        if version is None:
            version = 4 if lanes and v4_loads else 2  # see the module docstring
        if version == 4 and not (lanes and v4_loads):
            raise ValueError(f"im2col_forward_v4 needs horizontal stride 1 (got {stride[1]}), OW, the column strides "
                             f"and the columns' address multiples of 16 bytes (OW={ow}, layout {layout!r}), and x "
                             f"16-byte aligned with a size that is a multiple of 16 bytes")
        if version == 1:
            self.launch_1d(self.kernel("im2col.cu", "im2col_forward", x.dtype), cols.size,
                           (x, cols) + self._im2col_args(x.shape, kernel_size, stride, padding, dilation, out_size,
                                                         layout))
        else:
            if version == 3 and not lanes:
                raise ValueError(f"im2col_forward_v3 needs OW, the column strides and the columns' address to be "
                                 f"multiples of 16 bytes (OW={ow}, layout {layout!r})")
            extra = ()
            if version == 3:
                loads = stride[1] in (1, 2) and load_lanes(x.dtype.itemsize, x.shape[3], x)
                extra = (_vector_loads(vector_loads, loads, "im2col_forward_v3"),)
            self._v2_launch(f"im2col_forward_v{version}", x.dtype, x.shape, kernel_size, stride, padding, dilation,
                            out_size, layout, oh * ow, (x, cols), extra, bits=index_bits,
                            per_thread=lanes if version >= 3 else 1)
        return cols

    def col2im(self, cols, x_shape, kernel_size, stride, padding, dilation, out_size, layout, *, out=None,
               version: int | None = None, index_bits: int | None = None, vector_loads: bool | None = None):
        """The image (``x_shape``) that sums ``cols``; ``out`` (C-contiguous) receives it.
        ``vector_loads`` (v3 only) forces v3's 16-byte loads on or off; by default they run where allowed."""
        dx = self.empty(x_shape, cols.dtype) if out is None else out
        if dx.size == 0:
            return dx
        cols = self.xp.ascontiguousarray(cols)
        lanes = 16 // dx.dtype.itemsize if x_shape[3] % (16 // dx.dtype.itemsize) == 0 and _address(dx) % 16 == 0 else 0
        v4_loads = stride[1] == 1 and lanes and whole_vectors(cols.dtype.itemsize, cols)
        if version is None:
            version = 4 if lanes and v4_loads else 2  # see the module docstring
        if version == 4 and not (lanes and v4_loads):
            raise ValueError(f"im2col_backward_v4 needs horizontal stride 1 (got {stride[1]}), W and the image's "
                             f"address multiples of 16 bytes (W={x_shape[3]}), and the columns 16-byte aligned with "
                             f"a size that is a multiple of 16 bytes")
        if version == 3 and not lanes:
            raise ValueError(f"im2col_backward_v3 needs W and the image's address to be multiples of 16 bytes "
                             f"(W={x_shape[3]})")
        if version == 1:
            self.launch_1d(self.kernel("im2col.cu", "im2col_backward", cols.dtype), dx.size,
                           (cols, dx) + self._im2col_args(x_shape, kernel_size, stride, padding, dilation, out_size,
                                                          layout))
        else:
            (sh, sw), (dh, dw) = stride, dilation
            steps = tuple(np.int32(v) for v in (dh // sh, dh % sh, dw // sw, dw % sw))
            if version == 3:
                n, c = x_shape[:2]
                strides = column_strides(layout, n, c * kernel_size[0] * kernel_size[1], out_size[0] * out_size[1])
                loads = stride[1] == 1 and load_lanes(cols.dtype.itemsize, out_size[1], cols, strides)
                steps += (_vector_loads(vector_loads, loads, "im2col_backward_v3"),)
            self._v2_launch(f"im2col_backward_v{version}", cols.dtype, x_shape, kernel_size, stride, padding,
                            dilation, out_size, layout, x_shape[2] * x_shape[3], (cols, dx), steps, bits=index_bits,
                            per_thread=lanes if version >= 3 else 1)
        return dx
