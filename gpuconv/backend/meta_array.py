"""Shape-only arrays for the memory estimator: :class:`MetaArray` has NumPy's shape, dtype, stride and
view semantics and computes nothing; a :class:`Ledger` counts the bytes of the arrays alive.

An array that owns its memory adds its bytes to the ledger when it is made and takes them back when
Python frees it (the last reference goes, as a NumPy array's buffer would), so running gpuconv's real
code on meta arrays gives the bytes in use at every moment and their peak. Views allocate nothing
and keep their base alive; a reshape copies exactly when NumPy's would. NumPy's temporary elision
(``a * b * c`` reuses the temporary ``a * b`` from 256 KiB on) is followed on host targets, where the
refcount of an operand says whether it is a temporary, as NumPy's own check does.

The API is the part of NumPy's that gpuconv.functional, gpuconv.autograd, the optimizers and typical
model code use; anything else raises NotImplementedError naming the function, and asking for a value
(``float(x)``, ``if x.any():``) raises TypeError: a meta array has none.
"""

from __future__ import annotations

import math
import numbers
import sys
from typing import Any

import numpy as np

# NumPy reuses a temporary operand as the result of the next operation from this size on
# (NPY_MIN_ELIDE_BYTES in numpy/_core/src/multiarray/temp_elide.c).
ELIDE_BYTES = 256 * 1024
# CuPy's memory pool hands out whole blocks of this many bytes.
POOL_BLOCK = 512
# Arrays made from concrete data up to this many elements keep their values (a loss's scale,
# BatchNorm's batch counter), so that reading one back works; computed arrays never have values.
VALUE_LIMIT = 64
# What a buffered NumPy iterator allocates besides its buffers (measured with tracemalloc, NumPy 2).
ITERATOR_BYTES = 1152


class Ledger:
    """Bytes in use by meta arrays, their peak and where it happened.

    Attributes:
        current, peak: bytes in use now and at most so far (each array counted once).
        high: the most bytes in use since a caller set it to ``current`` (a primitive's own peak).
        pool_current, pool_peak: the same with every allocation rounded up to CuPy's 512-byte blocks.
        phase, peak_phase: a name the caller sets (forward, backward, ...) and its value at the peak.
        label: what runs now (a layer's name), for :attr:`spikes`, :attr:`flops` and the workspace.
        largest_spike, largest_spike_at: the largest temporary one primitive allocated, and where.
        spikes, flops: per label, the largest temporary and the floating-point operations counted.
        elide: whether NumPy's temporary elision applies (host arrays: numpy and emulated).
    """

    def __init__(self, elide: bool) -> None:
        self.current = self.peak = self.pool_current = self.pool_peak = 0
        self.high = 0  # the most bytes in use since the caller last set it (see shape_only's fallback)
        self.phase = self.peak_phase = self.label = ""
        self.largest_spike, self.largest_spike_at = 0, ""
        self.spikes: dict[str, int] = {}
        self.flops: dict[str, int] = {}
        self.elide = elide

    def alloc(self, nbytes: int) -> None:
        self.current += nbytes
        if self.current > self.high:
            self.high = self.current
        self.pool_current += -(-nbytes // POOL_BLOCK) * POOL_BLOCK
        if self.current > self.peak:
            self.peak, self.peak_phase = self.current, self.phase
        if self.pool_current > self.pool_peak:
            self.pool_peak = self.pool_current

    def free(self, nbytes: int) -> None:
        self.current -= nbytes
        self.pool_current -= -(-nbytes // POOL_BLOCK) * POOL_BLOCK

    def spike(self, nbytes: int, what: str, blocks: int = 1) -> None:
        """A primitive's temporaries: ``nbytes`` in ``blocks`` allocations, alive next to what is in
        use now (its results included) and freed before it returns."""
        nbytes = int(nbytes)
        if nbytes <= 0:
            return
        if self.current + nbytes > self.peak:
            self.peak, self.peak_phase = self.current + nbytes, self.phase
        pooled = -(-nbytes // POOL_BLOCK) * POOL_BLOCK + (blocks - 1) * POOL_BLOCK
        self.pool_peak = max(self.pool_peak, self.pool_current + pooled)
        where = f"{self.label}: {what}" if self.label else what
        if nbytes > self.largest_spike:
            self.largest_spike, self.largest_spike_at = nbytes, where
        if nbytes > self.spikes.get(self.label, 0):
            self.spikes[self.label] = nbytes

    def count_flops(self, flops: int) -> None:
        """Floating-point operations of the forward (other phases are not a layer's cost)."""
        if self.phase == "forward":
            self.flops[self.label] = self.flops.get(self.label, 0) + int(flops)

    def reset_peak(self) -> None:
        """Starts a new measurement from what is in use now."""
        self.peak, self.pool_peak, self.peak_phase = self.current, self.pool_current, self.phase
        self.largest_spike, self.largest_spike_at = 0, ""
        self.spikes.clear()
        self.flops.clear()


_ledger: Ledger | None = None


def set_ledger(ledger: Ledger | None) -> Ledger | None:
    """Makes ``ledger`` the one new meta arrays count in; returns the previous one."""
    global _ledger
    previous, _ledger = _ledger, ledger
    return previous


class _Flags:
    __slots__ = ("c_contiguous", "f_contiguous", "writeable", "owndata")

    def __init__(self, c: bool, owndata: bool) -> None:
        self.c_contiguous, self.f_contiguous, self.writeable, self.owndata = c, False, True, owndata

    def __getitem__(self, name: str) -> bool:
        return getattr(self, name.lower())


def _c_strides(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    strides, step = [], itemsize
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


def _is_c_contiguous(shape, strides, itemsize) -> bool:
    if 0 in shape:
        return True
    expected = itemsize
    for size, stride in zip(reversed(shape), reversed(strides)):
        if size != 1:
            if stride != expected:
                return False
            expected *= size
    return True


def _nocopy_strides(old_shape, old_strides, new_shape, itemsize) -> tuple[int, ...] | None:
    """The strides of ``new_shape`` viewing the same memory, or None when a reshape must copy
    (NumPy's _attempt_nocopy_reshape, C order)."""
    old = [(s, st) for s, st in zip(old_shape, old_strides) if s != 1]
    new_nd, old_nd = len(new_shape), len(old)
    strides = [0] * new_nd
    oi, oj, ni, nj = 0, 1, 0, 1
    while ni < new_nd and oi < old_nd:
        np_, op = new_shape[ni], old[oi][0]
        while np_ != op:
            if np_ < op:
                np_ *= new_shape[nj]
                nj += 1
            else:
                op *= old[oj][0]
                oj += 1
        for ok in range(oi, oj - 1):
            if old[ok][1] != old[ok + 1][0] * old[ok + 1][1]:
                return None
        strides[nj - 1] = old[oj - 1][1]
        for nk in range(nj - 1, ni, -1):
            strides[nk - 1] = strides[nk] * new_shape[nk]
        ni, nj, oi, oj = nj, nj + 1, oj, oj + 1
    last = strides[ni - 1] if ni >= 1 else itemsize
    for nk in range(ni, new_nd):
        strides[nk] = last
    return tuple(strides)


def _shape_arg(shape: Any) -> tuple[int, ...]:
    if isinstance(shape, numbers.Integral):
        return (int(shape),)
    return tuple(int(s) for s in shape)


def _no_value(what: str) -> TypeError:
    return TypeError(f"{what} of an array of the memory estimator's shape-only run: it has a shape but no values. "
                     "A model whose forward reads values back (Python control flow on data, .item(), float()) "
                     "cannot be estimated from shapes; gpuconv.memory.measure runs it for real")


class MetaArray:
    """A NumPy-like array with a shape and a dtype and no data (see the module docstring)."""

    __slots__ = ("_shape", "dtype", "strides", "base", "_bytes", "_ledger", "value", "__weakref__")
    __array_priority__ = 100

    # ---- construction ----------------------------------------------------------------------------
    @classmethod
    def new(cls, shape: Any, dtype: Any, value: Any = None) -> MetaArray:
        """An array owning ``prod(shape) * itemsize`` bytes, counted in the current ledger."""
        a = object.__new__(cls)
        a._shape = _shape_arg(shape)
        a.dtype = np.dtype(dtype)
        a.strides = _c_strides(a._shape, a.dtype.itemsize)
        a.base = None
        a.value = value
        a._bytes = math.prod(a._shape) * a.dtype.itemsize
        a._ledger = _ledger
        if _ledger is not None:
            _ledger.alloc(a._bytes)
        return a

    def _view(self, shape: tuple[int, ...], strides: tuple[int, ...], dtype: Any = None) -> MetaArray:
        a = object.__new__(MetaArray)
        a._shape, a.strides = shape, strides
        a.dtype = self.dtype if dtype is None else np.dtype(dtype)
        a.base = self if self.base is None else self.base
        a.value, a._bytes, a._ledger = None, 0, None
        return a

    def __del__(self) -> None:
        if self._ledger is not None:
            self._ledger.free(self._bytes)

    # ---- attributes --------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self._shape

    @shape.setter
    def shape(self, shape: Any) -> None:
        shape = self._resolve(shape)
        strides = _nocopy_strides(self._shape, self.strides, shape, self.itemsize) if self.size else \
            _c_strides(shape, self.itemsize)
        if strides is None:
            raise AttributeError("Incompatible shape for in-place modification. Use `.reshape()` to make a copy "
                                 "with the desired shape.")
        self._shape, self.strides = shape, strides

    @property
    def ndim(self) -> int:
        return len(self._shape)

    @property
    def size(self) -> int:
        return math.prod(self._shape)

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def flags(self) -> _Flags:
        return _Flags(_is_c_contiguous(self._shape, self.strides, self.itemsize), self.base is None)

    @property
    def T(self) -> MetaArray:  # noqa: N802 - NumPy's name
        return self.transpose()

    @property
    def device(self) -> str:
        return "meta"

    def __len__(self) -> int:
        if not self._shape:
            raise TypeError("len() of unsized object")
        return self._shape[0]

    def __repr__(self) -> str:
        return f"MetaArray(shape={self._shape}, dtype={self.dtype})"

    # ---- values: none --------------------------------------------------------------------------------
    def _concrete(self, what: str) -> Any:
        if self.value is None:
            raise _no_value(what)
        return self.value

    def item(self, *args: Any) -> Any:
        return self._concrete("item()").item(*args)

    def tolist(self) -> Any:
        return self._concrete("tolist()").tolist()

    def __float__(self) -> float:
        return float(self._concrete("float()"))

    def __int__(self) -> int:
        return int(self._concrete("int()"))

    def __index__(self) -> int:
        return int(self._concrete("an index"))

    def __bool__(self) -> bool:
        return bool(self._concrete("the truth value"))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        raise _no_value("numpy.asarray()")

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    # ---- shape and views ------------------------------------------------------------------------------
    def _resolve(self, shape: Any) -> tuple[int, ...]:
        shape = list(_shape_arg(shape))
        if shape.count(-1) > 1:
            raise ValueError("can only specify one unknown dimension")
        if -1 in shape:
            known = math.prod(s for s in shape if s != -1)
            if known == 0 or self.size % known:
                raise ValueError(f"cannot reshape array of size {self.size} into shape {tuple(shape)}")
            shape[shape.index(-1)] = self.size // known
        if math.prod(shape) != self.size:
            raise ValueError(f"cannot reshape array of size {self.size} into shape {tuple(shape)}")
        return tuple(shape)

    def reshape(self, *shape: Any, order: str = "C") -> MetaArray:
        if len(shape) == 1 and not isinstance(shape[0], numbers.Integral):
            shape = shape[0]
        shape = self._resolve(shape)
        strides = _nocopy_strides(self._shape, self.strides, shape, self.itemsize) if self.size else \
            _c_strides(shape, self.itemsize)
        if strides is None:
            return MetaArray.new(shape, self.dtype)
        return self._view(shape, strides)

    def view(self, dtype: Any = None) -> MetaArray:
        if dtype is None or np.dtype(dtype) == self.dtype:
            return self._view(self._shape, self.strides)
        dtype = np.dtype(dtype)
        if dtype.itemsize != self.itemsize:
            raise NotImplementedError("MetaArray.view to a dtype of another size")
        return self._view(self._shape, self.strides, dtype)

    def ravel(self, order: str = "C") -> MetaArray:
        return self.reshape(-1)

    def flatten(self, order: str = "C") -> MetaArray:
        return MetaArray.new((self.size,), self.dtype)

    def transpose(self, *axes: Any) -> MetaArray:
        if not axes or axes == (None,):
            axes = tuple(range(self.ndim))[::-1]
        elif len(axes) == 1 and not isinstance(axes[0], numbers.Integral):
            axes = tuple(axes[0])
        axes = tuple(int(a) % max(self.ndim, 1) for a in axes)
        if sorted(axes) != list(range(self.ndim)):
            raise ValueError("axes don't match array")
        return self._view(tuple(self._shape[a] for a in axes), tuple(self.strides[a] for a in axes))

    def swapaxes(self, a: int, b: int) -> MetaArray:
        axes = list(range(self.ndim))
        a, b = a % self.ndim, b % self.ndim
        axes[a], axes[b] = axes[b], axes[a]
        return self.transpose(axes)

    def squeeze(self, axis: Any = None) -> MetaArray:
        if axis is None:
            keep = [i for i, s in enumerate(self._shape) if s != 1]
        else:
            drop = {int(a) % self.ndim for a in ((axis,) if isinstance(axis, numbers.Integral) else axis)}
            for a in drop:
                if self._shape[a] != 1:
                    raise ValueError("cannot select an axis to squeeze out which has size not equal to one")
            keep = [i for i in range(self.ndim) if i not in drop]
        return self._view(tuple(self._shape[i] for i in keep), tuple(self.strides[i] for i in keep))

    def _broadcast_to(self, shape: tuple[int, ...]) -> MetaArray:
        shape = _shape_arg(shape)
        lead = len(shape) - self.ndim
        if lead < 0:
            raise ValueError(f"cannot broadcast shape {self._shape} to {shape}")
        strides = [0] * lead
        for size, own, stride in zip(shape[lead:], self._shape, self.strides):
            if own == size:
                strides.append(stride)
            elif own == 1:
                strides.append(0)
            else:
                raise ValueError(f"operands could not be broadcast together with shapes {self._shape} {shape}")
        out = self._view(shape, tuple(strides))
        return out

    def _expand_dims(self, axis: Any) -> MetaArray:
        axes = (axis,) if isinstance(axis, numbers.Integral) else tuple(axis)
        ndim = self.ndim + len(axes)
        axes = sorted(int(a) % ndim for a in axes)
        shape, strides = list(self._shape), list(self.strides)
        for a in axes:
            shape.insert(a, 1)
            strides.insert(a, 0)
        return self._view(tuple(shape), tuple(strides))

    # ---- copies ----------------------------------------------------------------------------------------
    def copy(self, order: str = "C") -> MetaArray:
        return MetaArray.new(self._shape, self.dtype)

    def astype(self, dtype: Any, order: str = "K", casting: str = "unsafe", subok: bool = True,
               copy: bool = True) -> MetaArray:
        dtype = np.dtype(dtype)
        if not copy and dtype == self.dtype:
            return self
        return MetaArray.new(self._shape, dtype)

    def fill(self, value: Any) -> None:
        return None

    # ---- indexing ----------------------------------------------------------------------------------------
    def __getitem__(self, index: Any) -> MetaArray:
        return _getitem(self, index)

    def __setitem__(self, index: Any, value: Any) -> None:
        _getitem(self, index, setting=True)

    # ---- reductions -------------------------------------------------------------------------------------
    def _reduce(self, name: str, axis: Any, keepdims: bool, dtype: Any = None, out: Any = None) -> Any:
        axes = tuple(range(self.ndim)) if axis is None else tuple(
            int(a) % max(self.ndim, 1) for a in ((axis,) if isinstance(axis, numbers.Integral) else axis))
        result_dtype = _reduce_dtype(name, self.dtype, dtype)
        if keepdims:
            shape = tuple(1 if i in axes else s for i, s in enumerate(self._shape))
        else:
            shape = tuple(s for i, s in enumerate(self._shape) if i not in axes)
        if out is not None:
            return out
        return MetaArray.new(shape, result_dtype)

    def sum(self, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
        return self._reduce("sum", axis, keepdims, dtype, out)

    def mean(self, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
        return self._reduce("mean", axis, keepdims, dtype, out)

    def prod(self, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
        return self._reduce("prod", axis, keepdims, dtype, out)

    def var(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kwargs):
        # NumPy's var holds x - mean and its square (one of them reused from 256 KiB on).
        if _ledger is not None:
            _ledger.spike(self.nbytes * (1 if self.nbytes >= ELIDE_BYTES else 2), "var")
        return self._reduce("var", axis, keepdims, dtype, out)

    def std(self, axis=None, dtype=None, out=None, ddof=0, keepdims=False, **kwargs):
        if _ledger is not None:
            _ledger.spike(self.nbytes * (1 if self.nbytes >= ELIDE_BYTES else 2), "std")
        return self._reduce("std", axis, keepdims, dtype, out)

    def max(self, axis=None, out=None, keepdims=False, **kwargs):
        return self._reduce("max", axis, keepdims, None, out)

    def min(self, axis=None, out=None, keepdims=False, **kwargs):
        return self._reduce("min", axis, keepdims, None, out)

    def any(self, axis=None, out=None, keepdims=False, **kwargs):
        return self._reduce("any", axis, keepdims, None, out)

    def all(self, axis=None, out=None, keepdims=False, **kwargs):
        return self._reduce("all", axis, keepdims, None, out)

    def argmax(self, axis=None, out=None, keepdims=False):
        return self._reduce("argmax", axis, keepdims, None, out)

    def argmin(self, axis=None, out=None, keepdims=False):
        return self._reduce("argmin", axis, keepdims, None, out)

    def cumsum(self, axis=None, dtype=None, out=None):
        shape = self._shape if axis is not None else (self.size,)
        return out if out is not None else MetaArray.new(shape, _reduce_dtype("sum", self.dtype, dtype))

    def clip(self, min=None, max=None, out=None, **kwargs):  # noqa: A002 - NumPy's names
        return _ufunc_call(np.clip, (self, min, max), out, {})

    def dot(self, other: Any) -> MetaArray:
        return _matmul(self, other)

    def nonzero(self):
        raise _no_value("nonzero()")

    # ---- NumPy protocols ---------------------------------------------------------------------------------
    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, out: Any = None, **kwargs: Any) -> Any:
        if isinstance(out, tuple):
            out = out[0] if len(out) == 1 else out
        if ufunc is np.matmul and method == "__call__":
            return _matmul(*inputs, out=out)
        if method == "__call__":
            return _ufunc_call(ufunc, inputs, out, kwargs)
        if method == "reduce":
            (a,) = inputs
            a = _as_meta(a)
            name = {np.add: "sum", np.multiply: "prod", np.maximum: "max", np.minimum: "min",
                    np.logical_or: "any", np.logical_and: "all"}.get(ufunc)
            if name is None:
                raise NotImplementedError(f"the memory estimator's meta arrays do not implement {ufunc.__name__}.reduce")
            return a._reduce(name, kwargs.get("axis", 0), kwargs.get("keepdims", False), kwargs.get("dtype"), out)
        if method == "at":
            return None
        raise NotImplementedError(f"the memory estimator's meta arrays do not implement {ufunc.__name__}.{method}")

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        impl = FUNCTIONS.get(func)
        if impl is None:
            raise NotImplementedError(f"the memory estimator's meta arrays do not implement numpy.{func.__name__}")
        return impl(*args, **kwargs)


# ---- operators, with NumPy's temporary elision ---------------------------------------------------------------
_TEMP_REFS = [0, 0]  # refcounts a temporary operand has inside an operator (self, other): _calibrate_refs


def _elidable(a: Any, result_shape: tuple[int, ...], result_dtype: np.dtype) -> bool:
    """NumPy's can_elide_temp, given that ``a`` is a temporary: a host array owning its memory, of
    at least ELIDE_BYTES, of the result's shape and dtype."""
    return (a._ledger is not None and a._ledger.elide and a.base is None and a._bytes >= ELIDE_BYTES
            and a._shape == result_shape and a.dtype == result_dtype)


def _binary_op(ufunc: Any, reflected: bool, commutative: bool):
    def op(self, other):
        refs_self, refs_other = sys.getrefcount(self), sys.getrefcount(other)
        if isinstance(other, MetaArray) or not hasattr(other, "__array_ufunc__") or isinstance(other, np.ndarray) \
                or isinstance(other, np.generic):
            inputs = (other, self) if reflected else (self, other)
            shape, dtypes = _ufunc_result(ufunc, inputs, {})
            _iterator_buffers(inputs, shape, dtypes[0])
            if refs_self == _TEMP_REFS[0] and _elidable(self, shape, dtypes[0]):
                return self
            if commutative and isinstance(other, MetaArray) and refs_other == _TEMP_REFS[1] \
                    and _elidable(other, shape, dtypes[0]):
                return other
            return MetaArray.new(shape, dtypes[0])
        return NotImplemented
    return op


def _inplace_op(self: MetaArray, other: Any) -> MetaArray:
    """``a += b`` and the like: no new array; a broadcast or cast ``b`` goes through a buffer."""
    _iterator_buffers((self, other), self._shape, self.dtype)
    return self


def _unary_op(ufunc: Any):
    def op(self):
        refs = sys.getrefcount(self)
        if refs == _TEMP_REFS[0] and self._ledger is not None and self._ledger.elide and self.base is None \
                and self._bytes >= ELIDE_BYTES:
            return self
        return _ufunc_call(ufunc, (self,), None, {})
    return op


for _name, _ufunc, _commutative in (
        ("add", np.add, True), ("sub", np.subtract, False), ("mul", np.multiply, True),
        ("truediv", np.true_divide, False), ("floordiv", np.floor_divide, False), ("mod", np.remainder, False),
        ("pow", np.power, False), ("and", np.bitwise_and, True), ("or", np.bitwise_or, True),
        ("xor", np.bitwise_xor, True), ("lt", np.less, False), ("le", np.less_equal, False),
        ("gt", np.greater, False), ("ge", np.greater_equal, False), ("eq", np.equal, False),
        ("ne", np.not_equal, False)):
    setattr(MetaArray, f"__{_name}__", _binary_op(_ufunc, False, _commutative))
    if _name not in ("lt", "le", "gt", "ge", "eq", "ne"):
        setattr(MetaArray, f"__r{_name}__", _binary_op(_ufunc, True, _commutative))
        setattr(MetaArray, f"__i{_name}__", _inplace_op)
MetaArray.__hash__ = object.__hash__
MetaArray.__neg__ = _unary_op(np.negative)
MetaArray.__pos__ = _unary_op(np.positive)
MetaArray.__abs__ = _unary_op(np.absolute)
MetaArray.__invert__ = _unary_op(np.invert)
MetaArray.__matmul__ = lambda self, other: _matmul(self, other)
MetaArray.__rmatmul__ = lambda self, other: _matmul(other, self)


def _calibrate_refs() -> None:
    """Records the refcount a temporary operand has inside an operator method in this CPython."""
    def probe(self, other):
        _TEMP_REFS[:] = [sys.getrefcount(self), 0]
        return self

    class _Probe:
        __mul__ = probe
    _ = _make(_Probe) * 1
    # `other` is bound the same way as `self` (a frame argument and the evaluation stack).
    _TEMP_REFS[1] = _TEMP_REFS[0]


def _make(cls):
    return cls()


_calibrate_refs()


# ---- ufuncs ---------------------------------------------------------------------------------------------------
_DTYPE_CACHE: dict = {}


def _dtype_key(x: Any) -> Any:
    if isinstance(x, MetaArray) or isinstance(x, np.ndarray):
        return ("a", x.dtype)
    if isinstance(x, np.generic):
        return ("g", x.dtype)
    if x is None:
        return ("n",)
    return ("s", type(x))


def _dummy(x: Any) -> Any:
    if isinstance(x, (MetaArray, np.ndarray)):
        return np.ones((1,), dtype=x.dtype)
    return x


def _ufunc_result(ufunc: Any, inputs: tuple, kwargs: dict) -> tuple[tuple[int, ...], tuple[np.dtype, ...]]:
    shapes = [tuple(x.shape) for x in inputs if isinstance(x, (MetaArray, np.ndarray))]
    shape = shapes[0] if len(shapes) == 1 else np.broadcast_shapes(*shapes)
    dtype_kw = kwargs.get("dtype")
    key = (ufunc, tuple(_dtype_key(x) for x in inputs), dtype_kw)
    dtypes = _DTYPE_CACHE.get(key)
    if dtypes is None:
        with np.errstate(all="ignore"):
            out = ufunc(*(_dummy(x) for x in inputs), **({"dtype": dtype_kw} if dtype_kw is not None else {}))
        dtypes = tuple(np.asarray(o).dtype for o in (out if isinstance(out, tuple) else (out,)))
        _DTYPE_CACHE[key] = dtypes
    return shape, dtypes


def _iterator_buffers(inputs: tuple, shape: tuple[int, ...], dtype: np.dtype) -> None:
    """NumPy's ufunc iterator buffers (host arrays): an operand that is broadcast (other than a
    single value) or cast is read through a buffer of up to ``np.getbufsize()`` elements, alive while
    the operation runs (measured: about 1 KB of iterator state besides)."""
    if _ledger is None or not _ledger.elide:
        return
    size = math.prod(shape)
    buffered = sum(1 for x in inputs if isinstance(x, (MetaArray, np.ndarray)) and x.size > 1
                   and (tuple(x.shape) != shape or x.dtype != dtype))
    if buffered:
        _ledger.spike(buffered * (min(size, np.getbufsize()) * dtype.itemsize + ITERATOR_BYTES), "numpy iterator buffer")


def _ufunc_call(ufunc: Any, inputs: tuple, out: Any, kwargs: dict) -> Any:
    shape, dtypes = _ufunc_result(ufunc, inputs, kwargs)
    _iterator_buffers(inputs, shape, dtypes[0])
    if out is not None:
        return out
    results = tuple(MetaArray.new(shape, d) for d in dtypes)
    return results if len(results) > 1 else results[0]


def _reduce_dtype(name: str, dtype: np.dtype, requested: Any) -> np.dtype:
    key = ("reduce", name, dtype, requested)
    result = _DTYPE_CACHE.get(key)
    if result is None:
        with np.errstate(all="ignore"):
            dummy = np.ones((1,), dtype=dtype)
            value = getattr(dummy, name)(**({"dtype": requested} if requested is not None else {}))
        result = _DTYPE_CACHE[key] = np.asarray(value).dtype
    return result


def _as_meta(a: Any) -> MetaArray:
    """``a`` as a meta array (real NumPy arrays and numbers become meta arrays that keep small values)."""
    if isinstance(a, MetaArray):
        return a
    if hasattr(a, "data") and isinstance(getattr(a, "data"), MetaArray):  # a Tensor
        return a.data
    host = np.asarray(a)
    return MetaArray.new(host.shape, host.dtype, host.copy() if host.size <= VALUE_LIMIT else None)


def _matmul(a: Any, b: Any, out: Any = None, **kwargs: Any) -> Any:
    a, b = _as_meta(a), _as_meta(b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul: Input operand does not have enough dimensions")
    a_shape = (1,) + a.shape if a.ndim == 1 else a.shape
    b_shape = b.shape + (1,) if b.ndim == 1 else b.shape
    if a_shape[-1] != b_shape[-2]:
        raise ValueError(f"matmul: Input operand 1 has a mismatch in its core dimension 0 (size {b_shape[-2]} is "
                         f"different from {a_shape[-1]})")
    batch = np.broadcast_shapes(a_shape[:-2], b_shape[:-2])
    shape = batch + (a_shape[-2], b_shape[-1])
    if a.ndim == 1:
        shape = shape[:-2] + shape[-1:]
    if b.ndim == 1:
        shape = shape[:-1]
    if _ledger is not None:
        _ledger.count_flops(2 * math.prod(batch) * a_shape[-2] * a_shape[-1] * b_shape[-1])
    if out is not None:
        return out
    return MetaArray.new(shape, np.result_type(a.dtype, b.dtype))


# ---- indexing -------------------------------------------------------------------------------------------------
def _getitem(a: MetaArray, index: Any, setting: bool = False) -> Any:
    items = index if isinstance(index, tuple) else (index,)
    if any(isinstance(i, (MetaArray, np.ndarray, list)) and not _is_int_like(i) for i in items) \
            and any(getattr(i, "dtype", None) == np.bool_ for i in items if hasattr(i, "dtype")):
        raise _no_value("boolean-mask indexing")
    advanced = [k for k, i in enumerate(items) if isinstance(i, (MetaArray, np.ndarray, list))]
    shape, strides, dim = [], [], 0
    explicit = sum(1 for i in items if i is not None and i is not Ellipsis)
    adv_shapes = []
    adv_at = None
    for k, i in enumerate(items):
        if i is Ellipsis:
            for _ in range(a.ndim - explicit):
                shape.append(a.shape[dim])
                strides.append(a.strides[dim])
                dim += 1
        elif i is None:
            shape.append(1)
            strides.append(0)
        elif isinstance(i, slice):
            start, stop, step = i.indices(a.shape[dim])
            shape.append(len(range(start, stop, step)))
            strides.append(a.strides[dim] * step)
            dim += 1
        elif isinstance(i, (numbers.Integral, np.integer)) and not isinstance(i, bool):
            if not -a.shape[dim] <= int(i) < a.shape[dim]:
                raise IndexError(f"index {int(i)} is out of bounds for axis {dim} with size {a.shape[dim]}")
            dim += 1
        elif k in advanced:
            adv_shapes.append(tuple(np.shape(i)) if not isinstance(i, MetaArray) else i.shape)
            if adv_at is None:
                adv_at = len(shape)
            dim += 1
        else:
            raise IndexError(f"only integers, slices, ellipsis, None and integer arrays are valid indices, got {i!r}")
    if dim > a.ndim:
        raise IndexError(f"too many indices for array: array is {a.ndim}-dimensional, but {dim} were indexed")
    for d in range(dim, a.ndim):
        shape.append(a.shape[d])
        strides.append(a.strides[d])
    if setting:
        return None
    if adv_shapes:
        broadcast = np.broadcast_shapes(*adv_shapes)
        contiguous = advanced == list(range(advanced[0], advanced[-1] + 1))
        at = adv_at if contiguous else 0
        return MetaArray.new(tuple(shape[:at]) + broadcast + tuple(shape[at:]), a.dtype)
    return a._view(tuple(shape), tuple(strides))


def _is_int_like(i: Any) -> bool:
    dtype = getattr(i, "dtype", None)
    return dtype is not None and np.dtype(dtype).kind in "iu"


# ---- functions (numpy.* on meta arrays, and the meta namespace) -------------------------------------------------
def _like(a, dtype=None, shape=None, **kwargs):
    a = _as_meta(a)
    return MetaArray.new(a.shape if shape is None else shape, a.dtype if dtype is None else dtype)


def _full_like(a, fill_value, dtype=None, **kwargs):
    return _like(a, dtype)


def _where(condition, x=None, y=None):
    if x is None and y is None:
        raise _no_value("numpy.where(condition)")
    return _ufunc_call(_where_ufunc, (condition, x, y), None, {})


def _where_ufunc(c, x, y):
    return np.where(c, x, y)


def _concatenate(arrays, axis=0, out=None, dtype=None, **kwargs):
    arrays = [_as_meta(a) for a in arrays]
    if axis is None:
        shape = (sum(a.size for a in arrays),)
        axis = 0
    else:
        axis = int(axis) % arrays[0].ndim
        shape = list(arrays[0].shape)
        shape[axis] = sum(a.shape[axis] for a in arrays)
    if out is not None:
        return out
    result = dtype if dtype is not None else np.result_type(*(a.dtype for a in arrays))
    return MetaArray.new(tuple(shape), result)


def _stack(arrays, axis=0, out=None, **kwargs):
    arrays = [_as_meta(a) for a in arrays]
    axis = int(axis) % (arrays[0].ndim + 1)
    shape = arrays[0].shape[:axis] + (len(arrays),) + arrays[0].shape[axis:]
    return out if out is not None else MetaArray.new(shape, np.result_type(*(a.dtype for a in arrays)))


def _split(a, indices_or_sections, axis=0):
    a = _as_meta(a)
    axis = int(axis) % a.ndim
    length = a.shape[axis]
    if isinstance(indices_or_sections, numbers.Integral):
        step = length // int(indices_or_sections)
        bounds = [step * i for i in range(1, int(indices_or_sections))]
    else:
        bounds = [int(b) for b in indices_or_sections]
    edges = [0] + bounds + [length]
    parts = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        index = [slice(None)] * a.ndim
        index[axis] = slice(lo, hi)
        parts.append(a[tuple(index)])
    return parts


def _moveaxis(a, source, destination):
    a = _as_meta(a)
    src = [int(s) % a.ndim for s in ((source,) if isinstance(source, numbers.Integral) else source)]
    dst = [int(d) % a.ndim for d in ((destination,) if isinstance(destination, numbers.Integral) else destination)]
    order = [n for n in range(a.ndim) if n not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return a.transpose(order)


def _take_along_axis(a, indices, axis):
    a, indices = _as_meta(a), _as_meta(indices)
    axis = int(axis) % a.ndim
    shape = np.broadcast_shapes(a.shape[:axis] + (1,) + a.shape[axis + 1:],
                                indices.shape[:axis] + (1,) + indices.shape[axis + 1:])
    shape = shape[:axis] + (indices.shape[axis],) + shape[axis + 1:]
    return MetaArray.new(shape, a.dtype)


def _einsum(subscripts, *operands, out=None, dtype=None, optimize=False, **kwargs):
    operands = [_as_meta(o) for o in operands]
    inputs, _, output = subscripts.replace(" ", "").partition("->")
    sizes = {}
    for spec, o in zip(inputs.split(","), operands):
        for letter, size in zip(spec, o.shape):
            sizes[letter] = max(sizes.get(letter, 1), size)
    shape = tuple(sizes[letter] for letter in output)
    if _ledger is not None:  # the sum of products runs through one iterator buffer per operand
        _ledger.spike(sum(min(o.size, np.getbufsize()) * o.itemsize for o in operands), "einsum")
    if out is not None:
        return out
    return MetaArray.new(shape, dtype if dtype is not None else np.result_type(*(o.dtype for o in operands)))


def _reduction(name):
    def reduce(a, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
        a = _as_meta(a)
        if name in ("var", "std"):
            return getattr(a, name)(axis=axis, dtype=dtype, out=out, keepdims=keepdims)
        if name in ("max", "min", "any", "all", "argmax", "argmin"):
            return getattr(a, name)(axis=axis, out=out, keepdims=keepdims)
        return a._reduce(name, axis, keepdims, dtype, out)
    return reduce


def _broadcast_to(a, shape, subok=False):
    return _as_meta(a)._broadcast_to(shape)


def _expand_dims(a, axis):
    return _as_meta(a)._expand_dims(axis)


def _reshape(a, *args, **kwargs):
    shape = args[0] if args else kwargs.get("shape", kwargs.get("newshape"))
    return _as_meta(a).reshape(shape)


def _transpose(a, axes=None):
    return _as_meta(a).transpose(axes) if axes is not None else _as_meta(a).transpose()


def _squeeze(a, axis=None):
    return _as_meta(a).squeeze(axis)


def _swapaxes(a, axis1, axis2):
    return _as_meta(a).swapaxes(axis1, axis2)


def _copyto(dst, src, casting="same_kind", where=True):
    return None


def _no_copy(*args, **kwargs):
    return None


def _may_share_memory(a, b, max_work=None):
    """Whether two arrays view the same buffer (conservative: the same base)."""
    if not isinstance(a, MetaArray) or not isinstance(b, MetaArray):
        return False
    return (a if a.base is None else a.base) is (b if b.base is None else b.base)


def _clip(a, a_min=None, a_max=None, out=None, **kwargs):
    return _ufunc_call(np.clip, (_as_meta(a), a_min, a_max), out, {})


def _ascontiguousarray(a, dtype=None, **kwargs):
    a = _as_meta(a)
    if dtype is not None and np.dtype(dtype) != a.dtype:
        return MetaArray.new(a.shape, dtype)
    if a.flags.c_contiguous:
        return a if a.ndim else a.reshape(())
    return MetaArray.new(a.shape, a.dtype)


def _asarray(a, dtype=None, **kwargs):
    if isinstance(a, MetaArray):
        return a if dtype is None or np.dtype(dtype) == a.dtype else a.astype(dtype)
    host = np.asarray(a, dtype=dtype)
    return MetaArray.new(host.shape, host.dtype, host.copy() if host.size <= VALUE_LIMIT else None)


def _array(a, dtype=None, copy=True, **kwargs):
    if isinstance(a, MetaArray):
        return a.astype(a.dtype if dtype is None else dtype, copy=copy)
    return _asarray(a, dtype)


def _creation(fill):
    def make(shape, *args, dtype=None, **kwargs):
        if fill == "full":
            dtype = dtype if dtype is not None else (np.asarray(args[0]).dtype if args else None)
        elif args and dtype is None:
            dtype = args[0]
        dtype = np.dtype(np.float64 if dtype is None else dtype)
        value = None
        if math.prod(_shape_arg(shape)) <= VALUE_LIMIT and fill != "empty":
            value = np.full(_shape_arg(shape), args[0] if fill == "full" else (0 if fill == "zeros" else 1), dtype)
        return MetaArray.new(shape, dtype, value)
    return make


def _arange(*args, dtype=None, **kwargs):
    host_len = len(range(*(int(a) for a in args))) if all(isinstance(a, numbers.Integral) for a in args) else \
        int(math.ceil((args[1] - args[0]) / (args[2] if len(args) > 2 else 1))) if len(args) > 1 else int(math.ceil(args[0]))
    dtype = np.dtype(dtype) if dtype is not None else np.asarray(args[0] if args else 0).dtype
    return MetaArray.new((max(host_len, 0),), dtype)


FUNCTIONS = {
    np.zeros_like: _like, np.ones_like: _like, np.empty_like: _like, np.full_like: _full_like,
    np.where: _where, np.concatenate: _concatenate, np.stack: _stack, np.split: _split, np.moveaxis: _moveaxis,
    np.take_along_axis: _take_along_axis, np.put_along_axis: _no_copy, np.einsum: _einsum,
    np.broadcast_to: _broadcast_to, np.expand_dims: _expand_dims, np.reshape: _reshape,
    np.transpose: _transpose, np.squeeze: _squeeze, np.swapaxes: _swapaxes, np.copyto: _copyto,
    np.clip: _clip, np.sum: _reduction("sum"), np.mean: _reduction("mean"), np.prod: _reduction("prod"),
    np.max: _reduction("max"), np.amax: _reduction("max"), np.min: _reduction("min"),
    np.amin: _reduction("min"), np.any: _reduction("any"), np.all: _reduction("all"),
    np.argmax: _reduction("argmax"), np.argmin: _reduction("argmin"), np.var: _reduction("var"),
    np.std: _reduction("std"), np.dot: _matmul, np.may_share_memory: _may_share_memory,
    np.shares_memory: _may_share_memory, np.shape: lambda a: _as_meta(a).shape,
    np.ndim: lambda a: _as_meta(a).ndim, np.size: lambda a: _as_meta(a).size,
    np.result_type: lambda *xs: np.result_type(*(x.dtype if isinstance(x, MetaArray) else x for x in xs)),
}


class MetaNamespace:
    """The meta backend's array module (``be.xp``): NumPy's names, computing shapes only."""

    ndarray = MetaArray
    zeros = staticmethod(_creation("zeros"))
    ones = staticmethod(_creation("ones"))
    empty = staticmethod(_creation("empty"))
    full = staticmethod(_creation("full"))
    arange = staticmethod(_arange)
    asarray = staticmethod(_asarray)
    array = staticmethod(_array)
    ascontiguousarray = staticmethod(_ascontiguousarray)
    matmul = staticmethod(_matmul)

    def __getattr__(self, name: str) -> Any:
        value = getattr(np, name, None)
        if value is None:
            raise AttributeError(f"the memory estimator's meta namespace has no {name!r}")
        if value in FUNCTIONS:
            return FUNCTIONS[value]
        if isinstance(value, (np.ufunc, type, float, int, np.dtype)) or name in ("errstate", "dtype"):
            return value
        raise AttributeError(f"the memory estimator's meta arrays do not implement numpy.{name}")


meta_namespace = MetaNamespace()
