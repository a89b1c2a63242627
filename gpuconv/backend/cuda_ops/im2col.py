"""Launchers for kernels/im2col.cu (shared by the cupy and emulated backends).

im2col and col2im run version 3 (16-byte stores AND 16-byte loads) at horizontal stride 1 where
the alignment conditions of both hold, else version 2. The choice follows the emulator's access
profile (no GPU has timed it yet; benchmarks/emu_im2col_versions.py prints the counts,
benchmarks/results/emu-access-profile-conv-kernels.md has them): with scalar loads, v3's lanes
read kLanes pixels apart and it touched 1.5-3.8x the 32-byte sectors of v2 (loads and stores
together; v2's one-pixel-per-thread loads and stores are both coalesced). With vector loads at
stride 1 it touched 1.2-1.4x v2's sectors (the second vector of a tap is mostly the neighbour
lane's first, an L1 hit on a GPU) with 2.4-3x fewer memory instructions and each thread's index
arithmetic shared by 4 pixels (the H100 measurements found im2col bound by index arithmetic);
at stride 2 the sector overhead grows to 1.5-1.7x and the instructions saved shrink to
1.2-2.1x, so v2 runs there. Which is faster on a GPU is unmeasured. ``version=3`` runs v3 with
whatever loads apply (vector loads at stride 2 too); ``vector_loads=False`` forces its scalar
loads (tests). Each in its 32-bit index variant when every offset fits an int (checked
here) and its 64-bit variant otherwise; ``version=`` picks a version (1 is the reference) and
``index_bits=64`` forces the wide variant (tests run every combination on small tensors).
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
    data = a.data
    return data.ptr if hasattr(data, "ptr") else a.ctypes.data


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
        n, c, h, w = x_shape
        (kh, kw), (oh, ow) = kernel_size, out_size
        row_stride, n_stride = column_strides(layout, n, c * kh * kw, oh * ow)
        cols_extent = (c * kh * kw - 1) * row_stride + (n - 1) * n_stride + oh * ow
        bits = bits or index_bits(n * c * h * w, cols_extent)
        wide = np.int64 if bits == 64 else np.int32
        ints = (n * c, c, h, w, kh, kw, *stride, *padding, *dilation, oh, ow)
        args = arrays + tuple(np.int32(v) for v in ints) + (wide(row_stride), wide(n_stride)) + extra
        threads = -(-plane_size // per_thread)
        bx, by = plane_block(threads)
        grid = (-(-threads // bx), min(-(-(n * c) // by), MAX_GRID_Y))
        self.kernel("im2col.cu", f"{op}_i{bits}", dtype)(grid, (bx, by), args)

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
        loads = stride[1] in (1, 2) and load_lanes(x.dtype.itemsize, x.shape[3], x)
        if version is None:
            version = 3 if lanes and loads and stride[1] == 1 else 2  # see the module docstring
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
                extra = (_vector_loads(vector_loads, loads, "im2col_forward_v3"),)
            self._v2_launch(f"im2col_forward_v{version}", x.dtype, x.shape, kernel_size, stride, padding, dilation,
                            out_size, layout, oh * ow, (x, cols), extra, bits=index_bits,
                            per_thread=lanes if version == 3 else 1)
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
        n, c = x_shape[:2]
        strides = column_strides(layout, n, c * kernel_size[0] * kernel_size[1], out_size[0] * out_size[1])
        loads = stride[1] == 1 and load_lanes(cols.dtype.itemsize, out_size[1], cols, strides)
        if version is None:
            version = 3 if lanes and loads else 2  # see the module docstring
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
                steps += (_vector_loads(vector_loads, loads, "im2col_backward_v3"),)
            self._v2_launch(f"im2col_backward_v{version}", cols.dtype, x_shape, kernel_size, stride, padding,
                            dilation, out_size, layout, x_shape[2] * x_shape[3], (cols, dx), steps, bits=index_bits,
                            per_thread=lanes if version == 3 else 1)
        return dx
