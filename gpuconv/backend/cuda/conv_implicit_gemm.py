"""Launchers for kernels/conv_implicit_gemm.cu (shared by the cupy and emulated backends).

The implicit GEMM gathers its operands from x, dy and the weights tile by tile: no column buffer.
Forward and backward data allocate nothing but their output; backward weight splits the reduction
over N*OH*OW into :func:`backward_weight_splits` ranges when that is needed to fill the GPU, and
then allocates their partial sums, (splits, C_out, C_in/groups, KH, KW), which a second kernel adds
in a fixed order (deterministic, no float atomics). :func:`workspace_bytes` counts exactly that
buffer (the ``"implicit_gemm"`` algorithm of gpuconv.functional.conv_algos reports it through
``conv2d_implicit_gemm_workspace``).

Tiles (BM x BN of the GEMM per block): ``"large"`` 128x128 (float32 only), ``"medium"`` 64x64,
``"small"`` 32x32; :func:`pick_tile` chooses by problem size (no GPU measurement behind the
thresholds yet: they keep a GPU's SMs busy in principle), ``tile=`` forces one (tests).

TF32: with ``gpuconv.flags.allow_tf32`` on, float32 runs the tensor-core variants instead
(``"tc_large"`` 128x128, ``"tc_medium"`` 64x64 for both smaller tiles; WMMA m16n16k8, float
accumulators; backward weight keeps the FP32 plan's splits, so its workspace does not depend on
the flag). They need compute capability 8.0: on an older GPU the FP32 kernels run, with one
warning per process. The emulated backend runs them with kernels/emu/wmma.h.

``g`` is a ``gpuconv.functional.conv.ConvGeometry``.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np

from ... import flags

# name -> (BM, BN, BK, threads), as the IGEMM_* tile macros of conv_implicit_gemm.cu.
TILES = {"large": (128, 128, 8, 256), "medium": (64, 64, 8, 256), "small": (32, 32, 8, 64),
         "tc_large": (128, 128, 8, 256), "tc_medium": (64, 64, 8, 128)}
SIMT_TILES = ("large", "medium", "small")
F64_TILES = ("medium", "small")
TENSOR_CORE_TILES = {"large": "tc_large", "medium": "tc_medium", "small": "tc_medium"}
TF32_CAPABILITY = (8, 0)
KENTRY_BYTES = 16
MAX_GRID_YZ = 65535
# Blocks to aim for: a few waves of a large GPU (an H100 has 132 SMs).
TARGET_BLOCKS = 512
# Each split of backward weight's reduction runs at least this many BK steps.
MIN_STEPS_PER_SPLIT = 16
INDEX_LIMIT = 2**31 - 64  # 32-bit indices, with room for the kernel's look-ahead past K
PACK_LIMIT = 2**15        # the kernel packs two tap or pixel offsets into one int


def shared_bytes(tile: str, itemsize: int) -> int:
    """Dynamic shared memory of a tile: A and B double-buffered (rows padded by 4 elements, 8 for
    the tensor-core tiles), the gather tables, and for the tensor-core tiles a 16x16 float scratch
    per warp (rows 24 floats apart)."""
    bm, bn, bk, threads = TILES[tile]
    tensor_core = tile.startswith("tc_")
    pad = 8 if tensor_core else 4
    scratch = (threads // 32) * 16 * 24 * 4 if tensor_core else 0
    return (2 * bk * (bm + pad) + 2 * bk * (bn + pad)) * itemsize + 2 * bk * KENTRY_BYTES + scratch


def _device_capability() -> tuple[int, int]:
    from .cupy_loader import device_capability

    return device_capability()


_warned_tf32 = False


def use_tf32(xp, dtype) -> bool:
    """Whether the tensor-core kernels run: TF32 allowed, float32, and a GPU of compute capability
    8.0 or newer (always on the emulated backend, ``xp`` NumPy). An older GPU warns once."""
    global _warned_tf32
    if not (flags.allow_tf32 and np.dtype(dtype) == np.float32):
        return False
    if xp is np or _device_capability() >= TF32_CAPABILITY:
        return True
    if not _warned_tf32:
        _warned_tf32 = True
        warnings.warn("gpuconv: allow_tf32 is on but this GPU has no TF32 tensor cores (compute capability "
                      f"{'.'.join(map(str, _device_capability()))} < 8.0); algo='implicit_gemm' runs in FP32",
                      RuntimeWarning, stacklevel=4)
    return False


def gemm_shape(g, direction: str) -> tuple[int, int, int]:
    """(M, N, K) of the implicit GEMM of ``direction`` per group."""
    kh, kw = g.kernel_size
    cg, kg = g.c_in // g.groups, g.c_out // g.groups
    pixels = g.n * g.out_size[0] * g.out_size[1]
    if direction == "forward":
        return kg, pixels, cg * kh * kw
    if direction == "backward_data":
        return cg, g.n * g.h * g.w, kg * kh * kw
    return kg, cg * kh * kw, pixels


def unsupported_reason(g) -> str | None:
    """Why the kernels' 32-bit indexing cannot address ``g``, or None when it can."""
    kh, kw = g.kernel_size
    oh, ow = g.out_size
    sizes = {"an input image": g.c_in * g.h * g.w, "an output image": g.c_out * oh * ow,
             "the weights": g.c_out * (g.c_in // g.groups) * kh * kw, "N*OH*OW": g.n * oh * ow,
             "N*H*W": g.n * g.h * g.w}
    for what, size in sizes.items():
        if size >= INDEX_LIMIT:
            return f"{what} has {size} elements (32-bit indices need fewer than {INDEX_LIMIT})"
    pt, pb, pl, pr = g.padding
    spans = (g.h + pt + pb, g.w + pl + pr, (kh - 1) * g.dilation[0] + 1, (kw - 1) * g.dilation[1] + 1)
    if max(spans) >= PACK_LIMIT:
        return (f"the padded input {spans[0]}x{spans[1]} or the dilated kernel {spans[2]}x{spans[3]} "
                f"reaches {PACK_LIMIT}")
    if g.groups > MAX_GRID_YZ or max(g.c_in, g.c_out) // g.groups > 32 * MAX_GRID_YZ:
        return f"groups={g.groups} or the channels per group exceed the grid limit {MAX_GRID_YZ}"
    return None


def pick_tile(m: int, n: int, blocks_per_tile: int, itemsize: int) -> str:
    """The largest tile that the GEMM (m x n, ``blocks_per_tile`` groups/splits) fills with at
    least TARGET_BLOCKS blocks and whose BM it does not waste by half or more; else the smallest."""
    names = SIMT_TILES if itemsize == 4 else F64_TILES
    for name in names[:-1]:  # the tensor-core tiles have the same BM x BN as these
        bm, bn, _, _ = TILES[name]
        blocks = -(-m // bm) * -(-n // bn) * blocks_per_tile
        if m > bm // 2 and n > bn // 2 and blocks >= TARGET_BLOCKS and -(-m // bm) <= MAX_GRID_YZ:
            return name
    return names[-1]


def backward_weight_plan(g, itemsize: int, tile: str | None = None,
                         splits: int | None = None) -> tuple[str, int, int]:
    """(tile, splits, k_split) of backward weight: the tile by the dw GEMM's shape alone, then
    enough splits of K = N*OH*OW to reach TARGET_BLOCKS, each at least MIN_STEPS_PER_SPLIT BK
    steps long, cut into whole BK steps of k_split elements (only the last split is ragged).
    ``tile`` and ``splits`` override the choice (tests)."""
    m, n, k = gemm_shape(g, "backward_weight")
    names = SIMT_TILES if itemsize == 4 else F64_TILES
    tile = tile or next((t for t in names[:-1] if m > TILES[t][0] // 2 and n > TILES[t][1] // 2), names[-1])
    bm, bn, bk, _ = TILES[tile]
    if splits is None:
        tiles = -(-m // bm) * -(-n // bn) * g.groups
        longest = max(1, -(-k // (bk * MIN_STEPS_PER_SPLIT)))
        splits = max(1, min(-(-TARGET_BLOCKS // tiles), longest, MAX_GRID_YZ // g.groups))
    per_split = -(-k // splits)
    k_split = -(-per_split // bk) * bk
    return tile, -(-k // k_split), k_split


def backward_weight_splits(g, itemsize: int) -> int:
    """How many partial sums backward weight allocates (1: none, it writes dw directly)."""
    return backward_weight_plan(g, itemsize)[1]


def workspace_bytes(g, direction: str, itemsize: int) -> int:
    """Bytes the launchers below allocate besides the result of ``direction``: backward weight's
    split-K partial sums when it splits (:func:`backward_weight_splits`), nothing else."""
    if direction != "backward_weight":
        return 0
    splits = backward_weight_splits(g, itemsize)
    kh, kw = g.kernel_size
    return splits * g.c_out * (g.c_in // g.groups) * kh * kw * itemsize if splits > 1 else 0


@functools.lru_cache(maxsize=256)
def _geometry_args(g) -> tuple:
    """The kernels' geometry arguments (int32 scalars), once per geometry: the conversions cost
    more host time than a launch."""
    ints = (g.n, g.c_in, g.h, g.w, g.c_out, *g.kernel_size, *g.stride, *g.pad_top_left, *g.dilation,
            *g.out_size, g.groups)
    return tuple(np.int32(v) for v in ints)


class ConvImplicitGemmKernels:
    conv2d_implicit_gemm_unsupported_reason = staticmethod(unsupported_reason)
    conv2d_implicit_gemm_workspace = staticmethod(workspace_bytes)

    def _igemm_check(self, g, dtype, tile: str | None) -> None:
        reason = unsupported_reason(g)
        if reason is not None:
            raise ValueError(f"algo='implicit_gemm' cannot run this convolution: {reason}")
        if tile is not None and tile not in (TILES if np.dtype(dtype).itemsize == 4 else F64_TILES):
            raise ValueError(f"tile must be one of {list(TILES)} (float64: {list(F64_TILES)}), got {tile!r}")

    def _igemm_tile(self, tile: str, dtype) -> str:
        return TENSOR_CORE_TILES[tile] if use_tf32(self.xp, dtype) else tile

    def _igemm_launch(self, direction, tile, dtype, groups_splits, m, n, args):
        """Launches the ``direction`` kernel of ``tile``; its kernel, grid and shared memory are
        computed once per configuration (host time per call: issue 9's 30 us per conv2d)."""
        def make() -> tuple:
            bm, bn, _, threads = TILES[tile]
            return (self.kernel("conv_implicit_gemm.cu", f"conv2d_igemm_{direction}_{tile}", dtype),
                    (-(-n // bn), -(-m // bm), groups_splits), (threads,), shared_bytes(tile, np.dtype(dtype).itemsize))

        key = (self.module_cache_key(), direction, tile, dtype, groups_splits, m, n)
        kernel, grid, block, shared = self.cached_plan("_igemm_plans", key, make)
        kernel(grid, block, args, shared_mem=shared)

    def conv2d_implicit_gemm_forward(self, x, weight, bias, g, tile: str | None = None):
        self._igemm_check(g, x.dtype, tile)
        m, n, _ = gemm_shape(g, "forward")
        tile = tile or self._igemm_tile(pick_tile(m, n, g.groups, x.dtype.itemsize), x.dtype)
        y = self.empty((g.n, g.c_out) + g.out_size, x.dtype)
        bias_arg = bias if bias is not None else weight  # ignored by the kernel when has_bias == 0
        args = (weight, x, bias_arg, y, np.int32(bias is not None), np.int32(0)) + _geometry_args(g)
        self._igemm_launch("forward", tile, x.dtype, g.groups, m, n, args)
        return y

    def conv2d_implicit_gemm_backward_data(self, dy, weight, g, tile: str | None = None):
        self._igemm_check(g, dy.dtype, tile)
        m, n, _ = gemm_shape(g, "backward_data")
        tile = tile or self._igemm_tile(pick_tile(m, n, g.groups, dy.dtype.itemsize), dy.dtype)
        dx = self.empty((g.n, g.c_in, g.h, g.w), dy.dtype)
        args = (weight, dy, weight, dx, np.int32(0), np.int32(0)) + _geometry_args(g)
        self._igemm_launch("backward_data", tile, dy.dtype, g.groups, m, n, args)
        return dx

    def conv2d_implicit_gemm_backward_weight(self, dy, x, g, tile: str | None = None, splits: int | None = None):
        """dw; ``tile`` and ``splits`` override :func:`backward_weight_plan` (tests)."""
        self._igemm_check(g, x.dtype, tile)
        chosen, splits, k_split = backward_weight_plan(g, x.dtype.itemsize, tile, splits)
        tile = tile or self._igemm_tile(chosen, x.dtype)
        m, n, _ = gemm_shape(g, "backward_weight")
        kh, kw = g.kernel_size
        dw = self.empty((g.c_out, g.c_in // g.groups, kh, kw), x.dtype)
        target = dw if splits == 1 else self.empty((splits,) + dw.shape, x.dtype)
        args = (dy, x, x, target, np.int32(0), np.int32(k_split)) + _geometry_args(g)
        self._igemm_launch("backward_weight", tile, x.dtype, g.groups * splits, m, n, args)
        if splits > 1:
            summing = self.kernel("conv_implicit_gemm.cu", "conv2d_igemm_split_sum", x.dtype)
            self.launch_1d(summing, dw.size, (target, dw, np.int32(splits), np.int32(dw.size)))
        return dw
