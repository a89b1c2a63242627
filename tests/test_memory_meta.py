"""The memory estimator's shape-only arrays against NumPy: shapes, dtypes, views and copies, the bytes
the ledger counts, and NumPy's temporary elision (which decides how many temporaries an expression
holds)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from gpuconv.backend.meta_array import ELIDE_BYTES, Ledger, MetaArray, meta_namespace, set_ledger


@pytest.fixture
def ledger():
    book = Ledger(elide=True)
    previous = set_ledger(book)
    yield book
    set_ledger(previous)


def _pair(rng, shape, dtype=np.float32):
    real = rng.standard_normal(shape).astype(dtype)
    return real, MetaArray.new(shape, dtype)


def _same(meta, real):
    assert isinstance(meta, MetaArray)
    assert meta.shape == real.shape and meta.dtype == real.dtype, (meta, real.shape, real.dtype)
    assert meta.flags.c_contiguous == real.flags.c_contiguous, (meta, real.strides)


def _is_view(meta):
    return meta.base is not None and meta._bytes == 0


SHAPES = [(2, 3, 4, 5), (1, 6, 1, 4), (4, 1), (7,), (2, 2, 3)]


@pytest.mark.parametrize("shape", SHAPES)
def test_views_and_copies_follow_numpy(ledger, rng, shape):
    real, meta = _pair(rng, shape)
    for _ in range(30):
        op = rng.integers(0, 6)
        if op == 0 and real.ndim > 1:
            axes = tuple(rng.permutation(real.ndim))
            real, meta = real.transpose(axes), meta.transpose(axes)
        elif op == 1:
            new = (-1,) if rng.random() < 0.5 else (real.size,)
            r2, m2 = real.reshape(new), meta.reshape(new)
            assert np.shares_memory(r2, real) == _is_view(m2) or real.size <= 1
            _same(m2, r2)
        elif op == 2 and real.ndim:
            axis = int(rng.integers(0, real.ndim))
            stop = int(rng.integers(1, real.shape[axis] + 1))
            step = int(rng.integers(1, 3))
            index = tuple(slice(None) if d != axis else slice(0, stop, step) for d in range(real.ndim))
            real, meta = real[index], meta[index]
        elif op == 3:
            real, meta = np.ascontiguousarray(real), meta_namespace.ascontiguousarray(meta)
        elif op == 4 and real.ndim >= 2:
            real, meta = real.swapaxes(0, -1), meta.swapaxes(0, -1)
        elif op == 5:
            real, meta = real[None, ..., None], meta[None, ..., None]
        _same(meta, real)
        # a reshape is a view exactly when NumPy's is (merging the first two axes, when there are two)
        if real.ndim >= 2:
            new_shape = (real.shape[0] * real.shape[1],) + real.shape[2:]
            assert np.shares_memory(real.reshape(new_shape), real) == _is_view(meta.reshape(new_shape))


def test_ufuncs_reductions_and_indexing_follow_numpy(ledger, rng):
    a, ma = _pair(rng, (4, 3, 5))
    b, mb = _pair(rng, (3, 1), np.float64)
    for real, meta in ((a + b, ma + mb), (a * 2.0, ma * 2.0), (a > 0, ma > 0), (np.exp(a), np.exp(ma)),
                       (a.sum(axis=(0, 2), keepdims=True), ma.sum(axis=(0, 2), keepdims=True)),
                       (a.mean(axis=1), ma.mean(axis=1)), ((a > 0).sum(), (ma > 0).sum()),
                       (a.argmax(axis=2), ma.argmax(axis=2)), (a[:, [0, 2]], ma[:, [0, 2]]),
                       (a[[1, 2], :, [0, 4]], ma[[1, 2], :, [0, 4]]), (a[..., 1], ma[..., 1]),
                       (np.matmul(a, a.swapaxes(1, 2)), np.matmul(ma, ma.swapaxes(1, 2))),
                       (np.concatenate([a, a], axis=1), np.concatenate([ma, ma], axis=1)),
                       (np.where(a > 0, a, 0.0), np.where(ma > 0, ma, 0.0)),
                       (np.broadcast_to(b, (2, 3, 4)), np.broadcast_to(mb, (2, 3, 4))),
                       (a.astype(np.float64), ma.astype(np.float64)), (np.zeros_like(a), np.zeros_like(ma)),
                       (np.einsum("ijk,ijk->ij", a, a), np.einsum("ijk,ijk->ij", ma, ma))):
        assert meta.shape == real.shape and meta.dtype == real.dtype, (meta, real.shape, real.dtype)


def test_bytes_are_counted_from_creation_to_free(ledger):
    a = MetaArray.new((1000,), np.float32)
    view = a[10:20].reshape(2, 5)
    assert ledger.current == 4000 and view.nbytes == 40
    del a
    assert ledger.current == 4000  # the view keeps its base alive, as NumPy's does
    del view
    assert ledger.current == 0 and ledger.peak == 4000


@pytest.mark.parametrize("n", [1000, ELIDE_BYTES // 4 + 1000])
def test_temporary_elision_follows_numpy(ledger, rng, n):
    """``a * b * c + d`` holds one temporary at a time from NumPy's 256 KiB on (the temporary is
    reused as the next result), two below: the ledger's peak matches tracemalloc's."""
    def expression(a, b, c, d):
        return a * b * c + d

    reals = [rng.standard_normal(n).astype(np.float32) for _ in range(4)]
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        out = expression(*reals)
        measured = tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()
    del out
    metas = [MetaArray.new((n,), np.float32) for _ in range(4)]
    ledger.reset_peak()
    before = ledger.current
    out = expression(*metas)
    assert ledger.peak - before == (4 * n if n * 4 >= ELIDE_BYTES else 8 * n)
    assert abs((ledger.peak - before) - measured) <= 2048, (ledger.peak - before, measured)
    named = metas[0] * metas[1]
    assert (named * metas[2]) is not named  # a named array is never reused


def test_values_are_refused_with_a_message(ledger):
    a = MetaArray.new((3,), np.float32)
    for read in (float, bool, lambda x: x.item(), np.asarray):
        with pytest.raises(TypeError, match="no values"):
            read(a.sum())
    small = meta_namespace.asarray(3.5, dtype=np.float32)
    assert float(small) == 3.5  # arrays made from concrete numbers keep them
