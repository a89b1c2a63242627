"""What the numpy backend's convolutions allocate besides their results, from shapes: replays of
conv.py (im2col) and conv_direct.py (direct), this backend's ``conv2d_im2col_transient_bytes`` and
``conv2d_direct_transient_bytes`` that the memory estimator asks for (tests/test_memory.py
compares them with tracemalloc measurements of the real ops, so a change in the conv code shows up
there). ``g`` is a ConvGeometry.
"""

from __future__ import annotations

from . import conv as numpy_conv
from . import conv_direct as numpy_direct


class _Replay:
    """Bytes in use while a sequence of named allocations and frees runs; ``peak`` is the maximum."""

    def __init__(self) -> None:
        self.live: dict[str, int] = {}
        self.peak = 0

    def alloc(self, name: str, nbytes: int) -> None:
        self.live[name] = int(nbytes)
        self.peak = max(self.peak, sum(self.live.values()))

    def free(self, *names: str) -> None:
        for name in names:
            self.live.pop(name, None)

    def rebind(self, name: str, nbytes: int) -> None:
        """``name = new_array``: the new array is allocated before the old one is released."""
        old = self.live.pop(name, None)
        if old is not None:
            self.live[name + "'"] = old
        self.alloc(name, nbytes)
        self.free(name + "'")


def _chunks(n: int, chunk: int) -> list[int]:
    """The distinct chunk sizes of ``n`` images cut into chunks of ``chunk``, in order: the full one
    and a smaller last one (what the replays depend on; the batch may be any size)."""
    first, last = min(chunk, n), n - (-(-n // chunk) - 1) * chunk
    return [first] if last == first else [first, last]


def _padded_bytes(g, itemsize: int) -> int:
    """np.pad's copy of x that the window view reads (none without padding)."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = g.kernel_size, g.stride, g.dilation, g.out_size
    pt, pl = g.pad_top_left
    pb = max(0, (oh - 1) * sh + (kh - 1) * dh + 1 - g.h - pt)
    pr = max(0, (ow - 1) * sw + (kw - 1) * dw + 1 - g.w - pl)
    if not (pt or pb or pl or pr):
        return 0
    return g.n * g.c_in * (g.h + pt + pb) * (g.w + pl + pr) * itemsize


def im2col_transient_bytes(g, direction: str, itemsize: int, chunk: int) -> int:
    """Peak bytes conv.py's im2col code allocates above its result in ``direction`` for ``chunk``
    images per chunk (it cuts the batch finer still, to stay in cache)."""
    kh, kw = g.kernel_size
    span_h, span_w = g.dilation[0] * (kh - 1), g.dilation[1] * (kw - 1)
    pt, pb, pl, pr = g.padding
    if direction == "backward_data":
        if g.stride == (1, 1) and span_h >= max(pt, pb) and span_w >= max(pl, pr) and g.c_out <= g.c_in:
            # dx is a forward convolution of dy with a flipped copy of the weight.
            gt = g._replace(c_in=g.c_out, h=g.out_size[0], w=g.out_size[1], c_out=g.c_in,
                            padding=(span_h - pt, span_h - pb, span_w - pl, span_w - pr), out_size=(g.h, g.w))
            budget = chunk * g.column_bytes_per_image(itemsize)
            chunk_t = max(1, min(g.n, budget // max(1, gt.column_bytes_per_image(itemsize))))
            weight = g.c_out * (g.c_in // g.groups) * kh * kw * itemsize
            return weight + _forward(gt, itemsize, chunk_t)
        return _backward_data_col2im(g, itemsize, chunk)
    if direction == "forward":
        return _forward(g, itemsize, chunk)
    return _backward_weight(g, itemsize, chunk)


def direct_transient_bytes(g, direction: str, itemsize: int) -> int:
    """Peak bytes conv_direct.py allocates above its result in ``direction``: the phase copy of the
    padded input (forward, backward weight) or its gradient (backward data), the output-sized
    accumulator or dy on the grid, one tap's product, and the per-tap copy of the weights
    (backward weight: dweight before its transpose)."""
    sh, sw, hq, wq = numpy_direct._grid(g)
    grid = g.n * hq * wq
    span = numpy_direct._span(g, hq, wq)
    phases = sh * sw * g.c_in * grid
    weight = g.c_out * (g.c_in // g.groups) * g.kernel_size[0] * g.kernel_size[1]
    if direction == "forward":
        return (phases + weight + g.c_out * grid + g.c_out * span) * itemsize
    if direction == "backward_data":
        return (weight + g.c_out * grid + phases + g.c_in * span) * itemsize
    return (phases + g.c_out * grid + weight) * itemsize


def _forward(g, itemsize: int, chunk: int) -> int:
    kh, kw = g.kernel_size
    oh, ow = g.out_size
    l_size = oh * ow
    rows_total = g.c_in * kh * kw
    cpu_chunk = numpy_conv._cpu_chunk(g, chunk, itemsize)
    band = numpy_conv._row_band(g, itemsize)
    padded = _padded_bytes(g, itemsize)
    if cpu_chunk == 1 and band < oh:
        return padded + rows_total * band * ow * itemsize
    first = min(cpu_chunk, g.n)
    if l_size >= numpy_conv.WIDE_GEMM_BELOW:
        return padded + first * rows_total * l_size * itemsize
    total = padded + first * rows_total * l_size * itemsize + g.c_out * first * l_size * itemsize
    last = _chunks(g.n, cpu_chunk)[-1]
    if last != first:  # a smaller last chunk gets its own column buffer
        total += rows_total * last * l_size * itemsize
    return total


def _backward_data_col2im(g, itemsize: int, chunk: int) -> int:
    kh, kw = g.kernel_size
    (oh, ow), (sh, sw), (dh, dw) = g.out_size, g.stride, g.dilation
    pt, pl = g.pad_top_left
    cpu_chunk = numpy_conv._cpu_chunk(g, chunk, itemsize)
    hp = max(g.h + pt, (oh - 1) * sh + (kh - 1) * dh + 1)
    wp = max(g.w + pl, (ow - 1) * sw + (kw - 1) * dw + 1)
    first = min(cpu_chunk, g.n)
    dcols = first * g.c_in * kh * kw * oh * ow * itemsize
    padded = first * g.c_in * hp * wp * itemsize
    cropped = 0 if (hp, wp) == (g.h, g.w) else first * g.c_in * g.h * g.w * itemsize
    return dcols + padded + cropped


def _backward_weight(g, itemsize: int, chunk: int) -> int:
    kh, kw = g.kernel_size
    oh, ow = g.out_size
    l_size = oh * ow
    rows_total = g.c_in * kh * kw
    weight = g.c_out * rows_total // g.groups * itemsize
    cpu_chunk = numpy_conv._cpu_chunk(g, chunk, itemsize)
    band = numpy_conv._row_band(g, itemsize)
    padded = _padded_bytes(g, itemsize)
    if cpu_chunk == 1 and band < oh:
        return padded + rows_total * band * ow * itemsize + weight
    r = _Replay()
    r.alloc("padded", padded)
    sizes = _chunks(g.n, cpu_chunk)
    r.alloc("buf", rows_total * sizes[0] * l_size * itemsize)
    for nc in sizes:
        if nc != sizes[0]:
            r.rebind("cols", rows_total * nc * l_size * itemsize)
        r.rebind("dyk", 0 if (nc == 1 or g.c_out == 1) else g.c_out * nc * l_size * itemsize)
        r.alloc("product", weight)
        r.free("product")
    return r.peak
