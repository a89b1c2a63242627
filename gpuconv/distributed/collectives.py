"""The collectives: argument checks, the ranks' agreement on shapes, staging, then the engine.

Every collective accepts an array of any backend (NumPy, CuPy) or a ``gpuconv.Tensor`` (its
``.data``), of any layout: a non-contiguous input is copied to a contiguous buffer and, for the
in-place collectives, the result is copied back.
"""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from .errors import DistributedError
from .group import ProcessGroup, group

OPS = ("sum", "mean", "max", "min")
DTYPES = tuple(np.dtype(d) for d in ("float32", "float64", "int8", "uint8", "int32", "int64"))
_OP_CODES = {op: i for i, op in enumerate(OPS)}
# The agreement record: op, dtype, ndim, extra, then the shape (8 dims; deeper shapes are folded
# into the last slot as a checksum).
_SHAPE_SLOTS = 8


def native(x: Any) -> Any:
    """The native array of ``x``: ``x.data`` for a ``gpuconv.Tensor``, else ``x``."""
    import gpuconv
    tensor_type = getattr(gpuconv, "Tensor", None)
    if tensor_type is not None and isinstance(x, tensor_type):
        return x.data
    return x


def _array(x: Any, name: str, what: str) -> Any:
    from ..backend.base import array_kind
    a = native(x)
    if array_kind(a) is None:
        raise TypeError(f"{what}: {name} must be a NumPy or CuPy array or a gpuconv.Tensor, got "
                        f"{type(x).__module__}.{type(x).__name__}")
    if a.dtype not in DTYPES:
        raise TypeError(f"{what}: {name} has dtype {a.dtype}; collectives support "
                        f"{', '.join(d.name for d in DTYPES)}")
    return a


def _check_op(op: Any, dtype: np.dtype, what: str) -> str:
    if not isinstance(op, str) or op not in OPS:
        raise ValueError(f"{what}: op must be one of {', '.join(OPS)}; got {op!r}")
    if op == "mean" and dtype.kind != "f":
        raise TypeError(f"{what}: op='mean' needs a floating dtype, got {dtype}; use op='sum' and divide")
    return op


def _writable(a: Any, name: str, what: str) -> None:
    if isinstance(a, np.ndarray) and not a.flags.writeable:
        raise ValueError(f"{what} works in place but {name} is read-only; pass a writable array (a.copy())")


def _record(a: Any, op: str | None, extra: int) -> np.ndarray:
    shape = list(a.shape)
    if len(shape) > _SHAPE_SLOTS:
        shape = shape[:_SHAPE_SLOTS - 1] + [zlib.crc32(np.asarray(shape[_SHAPE_SLOTS - 1:]).tobytes())]
    shape += [-1] * (_SHAPE_SLOTS - len(shape))
    return np.array([-1 if op is None else _OP_CODES[op], a.dtype.num, a.ndim, extra, *shape], dtype=np.int64)


def _describe(record: np.ndarray) -> str:
    op, dtype_num, ndim, extra = (int(v) for v in record[:4])
    dtype = next((d.name for d in DTYPES if d.num == dtype_num), f"dtype #{dtype_num}")
    shape = tuple(int(s) for s in record[4:4 + min(ndim, _SHAPE_SLOTS)])
    text = f"{dtype} {shape}"
    if op >= 0:
        text += f" op={OPS[op]!r}"
    return text + (f" src={extra}" if extra >= 0 else "")


def _agree(g: ProcessGroup, a: Any, op: str | None, what: str, extra: int = -1) -> None:
    """DistributedError naming each rank's arguments when the ranks disagree on shape, dtype, op or src.

    One small all-gather before the collective: an MPI or NCCL collective with mismatched sizes
    truncates, corrupts or hangs.
    """
    mine = _record(a, op, extra)
    everyone = np.empty((g.world_size, mine.size), dtype=np.int64)
    g.wait(g.comm.Iallgather(mine, everyone).Test, f"{what} (checking the ranks' arguments)")
    if (everyone != everyone[0]).any():
        detail = "; ".join(f"rank {r}: {_describe(row)}" for r, row in enumerate(everyone))
        raise ValueError(f"{what}: the ranks passed different arguments ({detail}); every rank must pass the same "
                         "shape, dtype and op")


def copy_into(target: Any, result: Any) -> None:
    """``result`` into ``target`` (unless it is it), across host and device: between the engine's
    buffers and the caller's arrays."""
    if result is target:
        return
    from ..backend import home_of
    target[...] = home_of(target).asarray(result)


def _like(result: Any, reference: Any) -> Any:
    """``result`` moved to the kind of array ``reference`` is (NumPy or CuPy)."""
    from ..backend import home_of
    from ..backend.base import array_kind
    if array_kind(reference) == array_kind(result):
        return result
    return home_of(reference).asarray(result)


def _mean(buf: Any, g: ProcessGroup) -> None:
    buf /= buf.dtype.type(g.world_size)


def barrier() -> None:
    """Returns when every rank has called it (bounded by the timeout)."""
    g = group()
    g.require_healthy()
    g.engine.barrier()


def all_reduce(x: Any, op: str = "sum") -> Any:
    """Reduces ``x`` element-wise over the ranks, in place on every rank.

    Args:
        x: array or Tensor, the same shape and dtype on every rank (any layout).
        op: ``"sum"``, ``"mean"`` (floating dtypes), ``"max"`` or ``"min"``.
    Returns:
        ``x``, holding the reduction.
    """
    a = _array(x, "x", "all_reduce")
    op = _check_op(op, a.dtype, "all_reduce")
    _writable(a, "x", "all_reduce")
    g = group()
    g.require_healthy()
    _agree(g, a, op, "all_reduce")
    buf = g.engine.stage(a)
    g.engine.all_reduce(buf, "sum" if op == "mean" else op)
    if op == "mean":
        _mean(buf, g)
    copy_into(a, buf)
    return x


def broadcast(x: Any, src: int = 0) -> Any:
    """Copies rank ``src``'s ``x`` into ``x`` on every other rank, in place.

    Returns:
        ``x``, holding rank ``src``'s values.
    """
    a = _array(x, "x", "broadcast")
    g = group()
    if isinstance(src, bool) or not isinstance(src, (int, np.integer)) or not 0 <= src < g.world_size:
        raise ValueError(f"broadcast: src must be a rank in [0, {g.world_size}), got {src!r}")
    _writable(a, "x", "broadcast")
    g.require_healthy()
    _agree(g, a, None, "broadcast", extra=int(src))
    buf = g.engine.stage(a)
    g.engine.broadcast(buf, int(src))
    copy_into(a, buf)
    return x


def all_gather(x: Any) -> Any:
    """Every rank's ``x``, stacked.

    Args:
        x: array or Tensor (shape S), the same shape and dtype on every rank.
    Returns:
        A new array (world_size, *S) of ``x``'s kind (NumPy or CuPy); row r is rank r's ``x``.
    """
    a = _array(x, "x", "all_gather")
    g = group()
    g.require_healthy()
    _agree(g, a, None, "all_gather")
    send = g.engine.stage(a)
    recv = g.engine.empty((g.world_size, *a.shape), a.dtype)
    g.engine.all_gather(send, recv)
    return _like(recv, a)


def split_sizes(n: int, parts: int) -> list[int]:
    """Rows per part when ``n`` rows are split into ``parts`` (the first ``n % parts`` get one more),
    as ``numpy.array_split`` does."""
    return [n // parts + (1 if r < n % parts else 0) for r in range(parts)]


def reduce_scatter(x: Any, op: str = "sum") -> Any:
    """Reduces ``x`` over the ranks and returns this rank's block of rows of the result.

    Args:
        x: array or Tensor (N, ...), the same shape on every rank; N need not divide by the world
            size: the rows split as ``numpy.array_split(result, world_size)`` does.
        op: ``"sum"``, ``"mean"`` (floating dtypes), ``"max"`` or ``"min"``.
    Returns:
        A new array (rows of this rank, ...) of ``x``'s kind.
    """
    a = _array(x, "x", "reduce_scatter")
    op = _check_op(op, a.dtype, "reduce_scatter")
    if a.ndim == 0:
        raise ValueError("reduce_scatter: x must have at least one dimension (the rows it splits), got a 0-D array")
    g = group()
    g.require_healthy()
    _agree(g, a, op, "reduce_scatter")
    rows = split_sizes(int(a.shape[0]), g.world_size)
    row_size = int(np.prod(a.shape[1:], dtype=np.int64))
    send = g.engine.stage(a)
    recv = g.engine.empty((rows[g.rank], *a.shape[1:]), a.dtype)
    g.engine.reduce_scatter(send, recv, [r * row_size for r in rows], "sum" if op == "mean" else op)
    if op == "mean":
        _mean(recv, g)
    return _like(recv, a)


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), as a list indexed by rank (through MPI, on any engine).

    For small metadata (gpuconv checks that the ranks' models agree with it), not for arrays.
    NOTE: unpickling runs code chosen by the sender: only the ranks of one job, which the user
    started, are trusted here.
    """
    import pickle
    g = group()
    g.require_healthy()
    data = np.frombuffer(pickle.dumps(obj), dtype=np.uint8)
    sizes = np.empty(g.world_size, dtype=np.int64)
    g.wait(g.comm.Iallgather(np.array([data.size], dtype=np.int64), sizes).Test, "all_gather_object (sizes)")
    everything = np.empty(int(sizes.sum()), dtype=np.uint8)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    request = g.comm.Iallgatherv(data, [everything, (sizes.tolist(), offsets.tolist()), g.MPI.BYTE])
    g.wait(request.Test, "all_gather_object")
    return [pickle.loads(everything[o:o + n].tobytes()) for o, n in zip(offsets, sizes)]


def start_all_reduce(buf: Any, op: str = "sum", what: str = "all_reduce") -> Any:
    """For gpuconv's own buckets: starts an all-reduce of ``buf`` in place and returns a work handle
    whose ``wait()`` completes it. ``buf`` must already be a contiguous buffer of the engine (see
    :func:`engine_buffer`) and agree across ranks; no checks run here.
    """
    g = group()
    g.require_healthy()
    return g.engine.start_all_reduce(buf, op, what)


def engine_buffer(shape: tuple[int, ...], dtype: Any) -> Any:
    """An uninitialized contiguous buffer where the group's engine works (host or GPU)."""
    g = group()
    if np.dtype(dtype) not in DTYPES:
        raise TypeError(f"dtype must be one of {', '.join(d.name for d in DTYPES)}, got {np.dtype(dtype)}")
    return g.engine.empty(tuple(shape), np.dtype(dtype))


__all__ = ["DistributedError", "all_gather", "all_gather_object", "all_reduce", "barrier", "broadcast", "copy_into",
           "engine_buffer", "native", "reduce_scatter", "split_sizes", "start_all_reduce"]
