"""Launchers for kernels/pool.cu (shared by the cupy and emulated backends).

Every launch allocates only its results (and indices), except GeM's backward: two (N, C, OH, OW)
buffers (each window's coefficient and maximum) and the dp partial sums of x's dtype
(GEM_REDUCE_BLOCKS, or one per block of the tiled kernel), freed on return, LP pooling's backward:
one (N, C, OH, OW) buffer (each window's coefficient), and the index checks of the max pooling
backward passes: a one-int flag.
"""

from __future__ import annotations

import math

import numpy as np

# Blocks of the GeM dp reduction: a fixed count, so the summation order (and the result) does not
# depend on the device (about four waves on an H100); each block's threads (or warps) stride over
# the outputs.
GEM_REDUCE_BLOCKS = 1024
REDUCE_BLOCK = 256  # threads per reduction block; must equal kReduceBlock in pool.cu
BLOCK = 256  # threads per block of the per-plane kernels
# Grid limits of the per-plane launches (chunks of a plane over grid.x, plane groups over grid.y);
# the kernels stride over what does not fit. Tests lower them to run the strided paths.
MAX_GRID_X = 65535
MAX_GRID_Y = 65535
# Warp-per-output reductions (adaptive pooling and GeM forward): used for bins/windows of at least
# WARP_MIN_WINDOW elements, over at most MAX_WARP_BLOCKS blocks of BLOCK // 32 warps.
WARP_MIN_WINDOW = 16
MAX_WARP_BLOCKS = 65535
INT32_LIMIT = 2**31 - 1
# Tiled forward kernels of max and average pooling (v2, the input a block needs staged in shared
# memory): about TILE_OUTPUTS outputs per block (two per thread), tiles at most TILE_WIDTH outputs
# wide, halved down to MIN_TILE_OUTPUTS while the grid has fewer than MIN_TILED_BLOCKS blocks (two
# waves of an H100's 132 SMs). When even a one-row tile's input needs more than TILE_SHARED_BYTES
# (the dynamic shared memory a launch gets without opting in), the v1 kernels run (a thread per
# output reading its window from global memory). Tests lower TILE_SHARED_BYTES to run v1.
TILE_OUTPUTS = 512
MIN_TILE_OUTPUTS = 64
TILE_WIDTH = 128
MIN_TILED_BLOCKS = 264
TILE_SHARED_BYTES = 48 * 1024
# Tiled backward kernels of max, average and adaptive pooling (v2, the dy and index rows a tile of inputs
# gathers from staged in shared memory): about TILE_INPUTS inputs per block (four per thread: a
# tile's staged outputs overlap the next tile's by about a window, so larger tiles load less twice),
# at most TILE_WIDTH wide, halved down to MIN_TILE_INPUTS while the grid has fewer than
# MIN_TILED_BLOCKS blocks; v1 (a thread per input reading its windows from global memory) runs when
# a one-row tile needs more than TILE_SHARED_BYTES.
TILE_INPUTS = 1024
MIN_TILE_INPUTS = 64
MAX_CACHED_PLANS = 4096  # launch plans kept per backend (the cache is cleared when full)


def _i32(*values) -> tuple:
    return tuple(np.int32(v) for v in values)


def plane_launch(planes: int, plane_size: int) -> tuple[tuple[int, int], tuple[int], int]:
    """(grid, block, ppb) of a per-plane kernel over ``plane_size`` positions of each plane: a plane
    of fewer than BLOCK positions gets the smallest power-of-two number of warps covering it and
    shares a block with others (7x7: 64 threads, 4 planes per block); a larger one gets
    ceil(size / BLOCK) blocks (one position per thread)."""
    threads = 32
    while threads < plane_size and threads < BLOCK:
        threads *= 2
    ppb = BLOCK // threads
    chunks = min(-(-plane_size // BLOCK), MAX_GRID_X) if ppb == 1 else 1
    return (chunks, min(-(-planes // ppb), MAX_GRID_Y)), (BLOCK,), ppb


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _pad_to_residue(words: int, step: int, residue: int) -> int:
    """The smallest w >= words with step * w = residue (mod 32), or ``words`` when none exists."""
    for w in range(words, words + 32):
        if (step * w - residue) % 32 == 0:
            return w
    return words


def pool_tile(planes: int, out_size: tuple, kernel_size: tuple, stride: tuple, dilation: tuple,
              itemsize: int, reserved: int = 0) -> tuple | None:
    """Launch of a tiled forward kernel (see kernels/pool.cu, "tiled forward kernels"): (grid, block,
    shared bytes, (tile_oh, tile_ow, tiles_x, tpb, cw, row_words, plane_words)), or None when a tile
    of one output row does not fit in TILE_SHARED_BYTES less ``reserved`` (the kernel's static
    shared memory).

    Shared-memory words (elements): a staged row holds sw phases of ``cw`` words, a plane ``rows``
    rows of ``row_words``; the paddings put output t of the block at word t (mod 32) of every tap,
    so a warp's tap reads hit 32 different banks whatever the tile's width."""
    (oh, ow), (kh, kw), (sh, sw), (dh, dw) = out_size, kernel_size, stride, dilation
    target = TILE_OUTPUTS
    while True:
        tile_ow = min(ow, TILE_WIDTH, target)
        tile_oh = min(oh, max(1, target // tile_ow))
        whole_plane = (tile_oh, tile_ow) == (oh, ow)
        tpb = min(planes, max(1, target // (oh * ow))) if whole_plane else 1
        blocks = _cdiv(oh, tile_oh) * _cdiv(ow, tile_ow) * _cdiv(planes, tpb)
        if blocks >= MIN_TILED_BLOCKS or target <= MIN_TILE_OUTPUTS:
            break
        target //= 2
    cw = _cdiv((tile_ow - 1) * sw + (kw - 1) * dw + 1, sw)
    if sw > 1 and 32 % sw == 0:
        cw = _pad_to_residue(cw, 1, 32 // sw)  # phase p starts at bank p * 32 / sw: a staging warp's stores hit 32 banks
    # Output row oyl + 1 starts tile_ow banks after row oyl, rounded up to what sh * row_words can
    # reach (even, for stride 2): a warp spanning several rows of a narrow tile hits 32 banks (or
    # conflicts only on a few when the rounding leaves gaps).
    reachable = math.gcd(sh, 32)
    row_words = _pad_to_residue(sw * cw, sh, _cdiv(tile_ow, reachable) * reachable)

    def plane_words() -> int:
        words = ((tile_oh - 1) * sh + (kh - 1) * dh + 1) * row_words
        return _pad_to_residue(words, 1, tile_oh * tile_ow) if tpb > 1 else words

    while tpb * plane_words() * itemsize + reserved > TILE_SHARED_BYTES:
        if tpb > 1:
            tpb //= 2
        elif tile_oh > 1:
            tile_oh //= 2
        else:
            return None
    tiles_x = _cdiv(ow, tile_ow)
    grid = (_cdiv(oh, tile_oh) * tiles_x, min(_cdiv(planes, tpb), MAX_GRID_Y))
    block = (min(BLOCK, 32 * _cdiv(tpb * tile_oh * tile_ow, 32)),)
    return grid, block, tpb * plane_words() * itemsize, (tile_oh, tile_ow, tiles_x, tpb, cw, row_words, plane_words())


def pool_backward_tile(planes: int, in_size: tuple, out_size: tuple, window: tuple | None, itemsize: int,
                       index_bytes: int) -> tuple | None:
    """Launch of a tiled backward kernel (see kernels/pool.cu, "tiled backward kernels"): (grid, block,
    shared bytes, (tile_h, tile_w, tiles_x, tpb), (step_y, step_x), (row_words, plane_words)), or None
    when a tile of one input row does not fit in TILE_SHARED_BYTES.

    ``window`` is (kernel_size, stride, dilation), or None for adaptive bins; ``index_bytes`` is 4
    for max pooling (indices staged as int next to dy) and 0 for average pooling. A tile of r input
    rows reads at most (r - 1 + (k - 1) * d) // s + 1 output rows of windows, at most
    r * OH // H + 2 adaptive bins (the bins containing r consecutive rows span less than
    r * OH / H + 2 bins); likewise columns: the staged block's size, whatever the tile's position."""
    (h, w), (oh, ow) = in_size, out_size
    (kh, kw), (sh, sw), (dh, dw) = window or ((1, 1), (1, 1), (1, 1))

    def staged(t: int, size: int, out: int, k: int, s: int, d: int) -> int:
        return min(out, t * out // size + 2 if window is None else (t - 1 + (k - 1) * d) // s + 1)

    target = TILE_INPUTS
    while True:
        tile_w = min(w, TILE_WIDTH, target)
        tile_h = min(h, max(1, target // tile_w))
        tpb = min(planes, max(1, target // (h * w))) if (tile_h, tile_w) == (h, w) else 1
        blocks = _cdiv(h, tile_h) * _cdiv(w, tile_w) * _cdiv(planes, tpb)
        if blocks >= MIN_TILED_BLOCKS or target <= MIN_TILE_INPUTS:
            break
        target //= 2
    row_words = staged(tile_w, w, ow, kw, sw, dw)

    def plane_words() -> int:
        return staged(tile_h, h, oh, kh, sh, dh) * row_words

    def shared() -> int:
        return tpb * plane_words() * (itemsize + index_bytes) + 2 * (tile_h + tile_w + 32) * 4

    while shared() > TILE_SHARED_BYTES:
        if tpb > 1:
            tpb //= 2
        elif tile_h > 1:
            tile_h //= 2
        else:
            return None
    tiles_x = _cdiv(w, tile_w)
    grid = (_cdiv(h, tile_h) * tiles_x, min(_cdiv(planes, tpb), MAX_GRID_Y))
    block = (min(BLOCK, 32 * _cdiv(tpb * tile_h * tile_w, 32)),)
    steps = (dh // math.gcd(sh, dh), dw // math.gcd(sw, dw))
    return grid, block, shared(), (tile_h, tile_w, tiles_x, tpb), steps, (row_words, plane_words())


def _check_sizes(*sizes: int) -> None:
    """The kernels' 32-bit position arithmetic needs every plane size (and bin product) to fit."""
    for size in sizes:
        if size > INT32_LIMIT:
            raise ValueError(f"pooling kernels support planes of fewer than 2^31 elements, got {size}")


def _index_suffix(dtype) -> str:
    return "_i32" if np.dtype(dtype) == np.int32 else ""


class PoolKernels:
    def _pool_launch(self, op: str, dtype, arrays: tuple, planes: int, size: int, ints: tuple, tail: tuple = (),
                     window: int | None = None) -> None:
        """Launches ``op`` with arguments arrays + (int64 planes, *int32 ints, *tail, ppb[, warp_mode]).

        ``size`` is the number of positions per plane the threads cover; ``window`` (forward
        reductions only) the largest window, which picks a warp per output (large) or a thread per
        output. The kernel, geometry and scalar arguments are computed once per configuration and
        cached (converting a dozen Python ints to NumPy scalars alone costs about 10 us a call).
        """
        if planes * size == 0:
            return
        limits = (MAX_GRID_X, MAX_GRID_Y, WARP_MIN_WINDOW, MAX_WARP_BLOCKS)  # tests change them
        key = (self.module_cache_key(), op, dtype, planes, size, ints, tail, window, limits)
        kernel, grid, block, scalars = self.cached_plan(
            "_pool_plans", key, lambda: self._pool_plan(op, dtype, planes, size, ints, tail, window), MAX_CACHED_PLANS)
        kernel(grid, block, arrays + scalars)

    def _tiled_forward(self, op: str, dtype, arrays: tuple, planes: int, out_size: tuple, window: tuple,
                       ints: tuple, tail: tuple) -> None:
        """Launches ``op``_v2 (tiled) with arguments arrays + (int64 planes, *int32 ints, *tail, tile
        geometry), or ``op`` (v1) as _pool_launch does when the tile does not fit in shared memory.
        ``window`` is (kernel_size, stride, dilation); the plan is cached as in _pool_launch."""
        size = out_size[0] * out_size[1]
        if planes * size == 0:
            return
        def make():
            tile = pool_tile(planes, out_size, *window, np.dtype(dtype).itemsize)
            if tile is None:
                return "v1"
            grid, block, shared, geometry = tile
            name = op.replace("_forward", "_forward_v2", 1)
            return (self.kernel("pool.cu", name, dtype), grid, block,
                    (np.int64(planes), *_i32(*ints), *tail, *_i32(*geometry)), shared)

        limits = (TILE_OUTPUTS, MIN_TILE_OUTPUTS, TILE_WIDTH, MIN_TILED_BLOCKS, TILE_SHARED_BYTES, MAX_GRID_Y)
        key = (self.module_cache_key(), "tiled", op, dtype, planes, out_size, window, ints, tail, limits)
        plan = self.cached_plan("_pool_plans", key, make, MAX_CACHED_PLANS)
        if plan == "v1":
            self._pool_launch(op, dtype, arrays, planes, size, ints, tail)
            return
        kernel, grid, block, scalars, shared = plan
        kernel(grid, block, arrays + scalars, shared_mem=shared)

    def _tiled_backward(self, op: str, dtype, arrays: tuple, planes: int, in_size: tuple, out_size: tuple,
                        window: tuple | None, ints: tuple, index_bytes: int, v2_arrays: tuple = ()) -> bool:
        """Launches ``op``_v2 (tiled backward) with arguments arrays + v2_arrays + (int64 planes, *int32
        ints, tile geometry), or ``op`` (v1) with arrays + (int64 planes, *int32 ints, ppb) as
        _pool_launch does when a tile does not fit in shared memory; returns whether v2 ran.
        ``window`` is (kernel_size, stride, dilation), None for adaptive bins; the plan is cached as
        in _pool_launch."""
        if planes * in_size[0] * in_size[1] == 0:
            return True
        def make():
            tile = pool_backward_tile(planes, in_size, out_size, window, np.dtype(dtype).itemsize, index_bytes)
            if tile is None:
                return "v1"
            grid, block, shared, geometry, steps, layout = tile
            name = op.replace("_backward", "_backward_v2", 1)
            # Only max pooling has dilation: the other kernels take no dilation steps.
            steps = steps if op.startswith("max_pool2d") else ()
            scalars = (np.int64(planes), *_i32(*ints, *geometry, *steps, *layout))
            return self.kernel("pool.cu", name, dtype), grid, block, scalars, shared

        limits = (TILE_INPUTS, MIN_TILE_INPUTS, TILE_WIDTH, MIN_TILED_BLOCKS, TILE_SHARED_BYTES, MAX_GRID_Y)
        key = (self.module_cache_key(), "tiled", op, dtype, planes, in_size, out_size, window, ints, limits)
        plan = self.cached_plan("_pool_plans", key, make, MAX_CACHED_PLANS)
        if plan == "v1":
            self._pool_launch(op, dtype, arrays, planes, in_size[0] * in_size[1], ints)
            return False
        kernel, grid, block, scalars, shared = plan
        kernel(grid, block, arrays + v2_arrays + scalars, shared_mem=shared)
        return True

    def _pool_plan(self, op, dtype, planes, size, ints, tail, window):
        kernel = self.kernel("pool.cu", op, dtype)
        scalars = (np.int64(planes), *_i32(*ints), *tail)
        if window is None:
            grid, block, ppb = plane_launch(planes, size)
            return kernel, grid, block, scalars + (np.int32(ppb),)
        total = planes * size
        if window >= WARP_MIN_WINDOW and total * 32 <= INT32_LIMIT:
            return kernel, (min(-(-total * 32 // BLOCK), MAX_WARP_BLOCKS),), (BLOCK,), scalars + _i32(1, 1)
        grid, block, ppb = plane_launch(planes, size)
        return kernel, grid, block, scalars + _i32(ppb, 0)

    def max_pool2d(self, x, kernel_size, stride, padding, dilation, out_size, with_indices=True,
                   index_dtype=np.int64):
        """y and (with_indices) the flat argmax of each window as ``index_dtype`` (int64 or int32)."""
        n, c, h, w = x.shape
        oh, ow = out_size
        _check_sizes(h * w, oh * ow)
        index_dtype = np.dtype(index_dtype) if with_indices else np.dtype(np.int32)
        y = self.empty((n, c, oh, ow), x.dtype)
        indices = self.empty((n, c, oh, ow) if with_indices else (1,), index_dtype)
        self._tiled_forward(f"max_pool2d_forward{_index_suffix(index_dtype)}", x.dtype, (x, y, indices), n * c,
                            (oh, ow), (kernel_size, stride, dilation),
                            (h, w, oh, ow, *kernel_size, *stride, *padding, *dilation), (np.int32(with_indices),))
        return y, (indices if with_indices else None)

    def _indices_valid(self, op: str, dtype, indices, planes: int, size: int, ints: tuple, bad=None) -> bool:
        """Runs the index check kernel ``op``, which sets a device flag (``bad``, a zeroed int32 array
        of one element, allocated when None) for an index outside its window; reading the flag back
        synchronizes."""
        bad = self.zeros((1,), np.int32) if bad is None else bad
        self._pool_launch(f"{op}{_index_suffix(indices.dtype)}", dtype, (indices, bad), planes, size, ints)
        return not int(self.to_numpy(bad)[0])

    def max_pool2d_backward(self, dy, indices, x_shape, kernel_size, stride, padding, dilation, check_indices=True):
        """Gather: each input element sums dy over the windows that chose it (int32 or int64 indices).
        Returns (dx, whether every index names an element of its window): the tiled kernel checks the
        indices it stages; after v1 a check kernel reads them again. Reading the flag synchronizes,
        so with ``check_indices`` False (indices max_pool2d made) no check kernel runs and the
        flag is not read: (dx, True) without a sync."""
        n, c, h, w = x_shape
        _check_sizes(h * w, dy.shape[2] * dy.shape[3])
        dx = self.empty(x_shape, dy.dtype)
        ints = (h, w, *dy.shape[2:], *kernel_size, *stride, *padding, *dilation)
        bad = self.zeros((1,), np.int32)
        if self._tiled_backward(f"max_pool2d_backward{_index_suffix(indices.dtype)}", dy.dtype, (dy, indices, dx),
                                n * c, (h, w), tuple(dy.shape[2:]), (kernel_size, stride, dilation), ints, 4, (bad,)):
            return dx, not check_indices or not int(self.to_numpy(bad)[0])
        if not check_indices:
            return dx, True
        return dx, self._indices_valid("max_pool2d_check_indices", dy.dtype, indices, n * c, dy.shape[2] * dy.shape[3],
                                       ints, bad)

    def avg_pool2d(self, x, kernel_size, stride, padding, out_size, count_include_pad, divisor_override):
        n, c, h, w = x.shape
        _check_sizes(h * w, out_size[0] * out_size[1])
        y = self.empty((n, c, *out_size), x.dtype)
        self._tiled_forward("avg_pool2d_forward", x.dtype, (x, y), n * c, tuple(out_size), (kernel_size, stride, (1, 1)),
                            (h, w, *out_size, *kernel_size, *stride, *padding, count_include_pad, divisor_override or 0),
                            ())
        return y

    def avg_pool2d_backward(self, dy, x_shape, kernel_size, stride, padding, count_include_pad, divisor_override):
        n, c, h, w = x_shape
        _check_sizes(h * w, dy.shape[2] * dy.shape[3])
        dx = self.empty(x_shape, dy.dtype)
        self._tiled_backward("avg_pool2d_backward", dy.dtype, (dy, dx), n * c, (h, w), tuple(dy.shape[2:]),
                             (kernel_size, stride, (1, 1)),
                             (h, w, *dy.shape[2:], *kernel_size, *stride, *padding, count_include_pad,
                              divisor_override or 0), 0)
        return dx

    @staticmethod
    def _adaptive_checks(h, w, oh, ow) -> int:
        """Checks the 32-bit bin arithmetic fits; returns the largest bin's element count."""
        _check_sizes(h * w, oh * ow, (h + 1) * oh, (w + 1) * ow, (oh + 1) * h, (ow + 1) * w)
        return (-(-h // oh) + 1) * (-(-w // ow) + 1)

    def adaptive_avg_pool2d(self, x, out_size):
        n, c, h, w = x.shape
        window = self._adaptive_checks(h, w, *out_size)
        y = self.empty((n, c, *out_size), x.dtype)
        self._pool_launch("adaptive_avg_pool2d_forward", x.dtype, (x, y), n * c, out_size[0] * out_size[1],
                          (h, w, *out_size), window=window)
        return y

    def adaptive_avg_pool2d_backward(self, dy, x_shape):
        n, c, h, w = x_shape
        self._adaptive_checks(h, w, *dy.shape[2:])
        dx = self.empty(x_shape, dy.dtype)
        self._tiled_backward("adaptive_avg_pool2d_backward", dy.dtype, (dy, dx), n * c, (h, w), tuple(dy.shape[2:]),
                             None, (h, w, *dy.shape[2:]), 0)
        return dx

    def adaptive_max_pool2d(self, x, out_size, index_dtype=np.int64):
        n, c, h, w = x.shape
        window = self._adaptive_checks(h, w, *out_size)
        y = self.empty((n, c, *out_size), x.dtype)
        indices = self.empty(y.shape, index_dtype)
        self._pool_launch(f"adaptive_max_pool2d_forward{_index_suffix(index_dtype)}", x.dtype, (x, y, indices), n * c,
                          out_size[0] * out_size[1], (h, w, *out_size), window=window)
        return y, indices

    def adaptive_max_pool2d_backward(self, dy, indices, x_shape):
        n, c, h, w = x_shape
        self._adaptive_checks(h, w, *dy.shape[2:])
        dx = self.empty(x_shape, dy.dtype)
        bad = self.zeros((1,), np.int32)
        ints = (h, w, *dy.shape[2:])
        if self._tiled_backward(f"adaptive_max_pool2d_backward{_index_suffix(indices.dtype)}", dy.dtype,
                                (dy, indices, dx), n * c, (h, w), tuple(dy.shape[2:]), None, ints, 4, (bad,)):
            return dx, not int(self.to_numpy(bad)[0])
        return dx, self._indices_valid("adaptive_max_pool2d_check_indices", dy.dtype, indices, n * c,
                                       dy.shape[2] * dy.shape[3], ints, bad)

    def _gem_tiled_plan(self, dtype, planes: int, in_size: tuple, out_size: tuple, kernel_size: tuple,
                        stride: tuple, eps: float, backward: bool):
        """(kernel, grid, block, scalars, shared bytes, blocks) of gem_forward_v2 or (``backward``)
        gem_backward_coef_v2, or None where v1 runs: global GeM (one window per plane keeps v1's warp
        per plane), a tile that does not fit in shared memory, or (backward) more blocks than 32-bit
        partial indices reach. Cached per configuration as in _pool_launch."""
        if tuple(out_size) == (1, 1) or planes == 0:
            return None
        def make():
            itemsize = np.dtype(dtype).itemsize
            # The backward kernel's tree reduction has REDUCE_BLOCK elements of static shared memory.
            tile = pool_tile(planes, tuple(out_size), kernel_size, stride, (1, 1), itemsize,
                             REDUCE_BLOCK * itemsize if backward else 0)
            if tile is None or (backward and tile[0][0] * tile[0][1] > INT32_LIMIT):
                return None
            grid, block, shared, geometry = tile
            name = "gem_backward_coef_v2" if backward else "gem_forward_v2"
            scalars = (np.int64(planes), *_i32(*in_size, *out_size, *kernel_size, *stride),
                       np.dtype(dtype).type(eps), *_i32(*geometry))
            # The backward's block is the tree reduction's (its threads stride over the tile).
            return (self.kernel("pool.cu", name, dtype), grid, (REDUCE_BLOCK,) if backward else block, scalars,
                    shared, grid[0] * grid[1])

        limits = (TILE_OUTPUTS, MIN_TILE_OUTPUTS, TILE_WIDTH, MIN_TILED_BLOCKS, TILE_SHARED_BYTES, MAX_GRID_Y)
        key = (self.module_cache_key(), "gem_tiled", np.dtype(dtype), planes, tuple(in_size), tuple(out_size),
               kernel_size, stride, eps, backward, limits)
        return self.cached_plan("_pool_plans", key, make, MAX_CACHED_PLANS)

    def gem(self, x, p, eps, kernel_size, stride, out_size):
        n, c, h, w = x.shape
        _check_sizes(h * w, out_size[0] * out_size[1])
        y = self.empty((n, c, *out_size), x.dtype)
        plan = self._gem_tiled_plan(x.dtype, n * c, (h, w), out_size, kernel_size, stride, eps, backward=False)
        if plan is not None:
            kernel, grid, block, scalars, shared, _ = plan
            kernel(grid, block, (x, p, y) + scalars, shared_mem=shared)
            return y
        self._pool_launch("gem_forward", x.dtype, (x, p, y), n * c, out_size[0] * out_size[1],
                          (h, w, *out_size, *kernel_size, *stride), (x.dtype.type(eps),),
                          window=kernel_size[0] * kernel_size[1])
        return y

    def gem_backward(self, dy, x, p, eps, kernel_size, stride, need_dx, need_dp):
        n, c, h, w = x.shape
        _check_sizes(h * w, dy.shape[2] * dy.shape[3])
        args = (np.int64(n * c), *_i32(h, w, *dy.shape[2:], *kernel_size, *stride), x.dtype.type(eps))
        coef = self.empty(dy.shape, x.dtype)
        wmax = self.empty(dy.shape, x.dtype)
        total = n * c * dy.shape[2] * dy.shape[3]
        _check_sizes(total)
        plan = self._gem_tiled_plan(x.dtype, n * c, (h, w), tuple(dy.shape[2:]), kernel_size, stride, eps,
                                    backward=True)
        if plan is not None:
            # A block per tile (the grid depends only on the shapes): one partial sum per block.
            kernel, grid, block, scalars, shared, blocks = plan
            partial = self.empty((blocks,), x.dtype)
            kernel(grid, block, (x, p, dy, coef, wmax, partial) + scalars, shared_mem=shared)
        else:
            # A fixed grid (not sized by the data): the per-block partial sums, and so dp, are the
            # same bits on every run and every device.
            blocks = GEM_REDUCE_BLOCKS
            partial = self.empty((blocks,), x.dtype)
            warp_mode = kernel_size[0] * kernel_size[1] >= WARP_MIN_WINDOW and total * 32 <= INT32_LIMIT
            self.kernel("pool.cu", "gem_backward_coef", x.dtype)((blocks,), (REDUCE_BLOCK,),
                                                                 (x, p, dy, coef, wmax, partial) + args
                                                                 + (np.int32(warp_mode),))
        dp = None
        if need_dp:
            dp = self.empty((1,), x.dtype)
            self.kernel("pool.cu", "sum_reduce", x.dtype)((1,), (REDUCE_BLOCK,), (partial, dp, np.int32(blocks)))
        dx = None
        if need_dx:
            dx = self.empty(x.shape, x.dtype)
            self._pool_launch("gem_backward_dx", x.dtype, (x, p, coef, wmax, dx), n * c, h * w,
                              (h, w, *dy.shape[2:], *kernel_size, *stride), (x.dtype.type(eps),))
        return dx, dp

    # ---- LP pooling -------------------------------------------------------------------------------
    @staticmethod
    def _lp_scalars(dtype, *values: float) -> tuple:
        """The exponents, each rounded once from Python's double to the element type (as PyTorch
        rounds its Python-scalar exponents)."""
        return tuple(np.dtype(dtype).type(v) for v in values)

    def lp_pool2d(self, x, p, kernel_size, stride, out_size):
        """y = (avg_pool2d(x^p, ceil_mode) * K)^(1/p) over windows without padding (PyTorch's
        lp_pool2d); allocates only y."""
        n, c, h, w = x.shape
        _check_sizes(h * w, out_size[0] * out_size[1])
        y = self.empty((n, c, *out_size), x.dtype)
        self._pool_launch("lp_pool2d_forward", x.dtype, (x, y), n * c, out_size[0] * out_size[1],
                          (h, w, *out_size, *kernel_size, *stride), self._lp_scalars(x.dtype, p, 1.0 / p))
        return y

    def lp_pool2d_backward(self, dy, x, p, kernel_size, stride):
        """dx of :meth:`lp_pool2d`: each window's coefficient (an (N, C, OH, OW) buffer, freed on
        return), then a gather over the windows holding each input element."""
        n, c, h, w = x.shape
        oh, ow = dy.shape[2:]
        _check_sizes(h * w, oh * ow)
        ints = (h, w, oh, ow, *kernel_size, *stride)
        coef = self.empty(dy.shape, x.dtype)
        self._pool_launch("lp_pool2d_backward_coef", x.dtype, (x, dy, coef), n * c, oh * ow, ints,
                          self._lp_scalars(x.dtype, p, 1.0 / p, 1.0 / p - 1.0))
        dx = self.empty(x.shape, x.dtype)
        self._pool_launch("lp_pool2d_backward_dx", x.dtype, (x, coef, dx), n * c, h * w, ints,
                          self._lp_scalars(x.dtype, p, p - 1.0))
        return dx
