"""``gpuconv.Tensor``: one native array (numpy or cupy) plus what autograd needs.

``t.data`` is the array itself (kernels and the backend never see the wrapper); ``t.grad`` is a
Tensor of the same shape and dtype after a backward (leaves only, unless ``retain_grad()``);
``t.grad_fn`` is the node that made a non-leaf; ``t._version`` is a counter shared with every view of
the same memory and bumped by each in-place op, so a saved tensor modified before backward is an
error, never a silently wrong gradient.
"""

from __future__ import annotations

import numbers
from typing import Any, Callable

import numpy as np

from ..backend import array_kind, get_backend, home_of, on_device, parse_device
from ..backend import backend as backend_context
from ..grad_mode import is_grad_enabled
from . import ops
from ._util import xp_of
from .graph import AccumulateGrad, Node


class Tensor:
    """A multi-dimensional array that records the operations on it for automatic differentiation.

    Create one with :func:`gpuconv.tensor` (copies) or :func:`gpuconv.as_tensor` (no copy when it can),
    or ``Tensor(array, requires_grad=False)`` (wraps ``array`` without a copy).

    Attributes:
        data: the native array (``numpy.ndarray`` or ``cupy.ndarray``).
        grad: the accumulated gradient (a Tensor), or None.
        requires_grad: whether ops on it record the graph (settable on leaves).
        grad_fn: the backward node of the op that made it (None for leaves).
    """

    __slots__ = ("data", "_grad", "grad_fn", "_requires_grad", "_output_nr", "_version", "_base", "_accumulator",
                 "_post_accumulate_hooks", "_retains_grad", "__weakref__")

    # ndarray (op) Tensor defers to the Tensor's reflected operator; numpy ufuncs come to __array_ufunc__.
    __array_priority__ = 1000

    def __init__(self, data: Any, requires_grad: bool = False):
        if isinstance(data, Tensor):
            data = data.data
        if array_kind(data) is None:
            raise TypeError(f"Tensor(data): data must be a numpy or cupy array (use gpuconv.tensor(...) for lists and "
                            f"numbers), got {type(data).__name__}")
        self.data = data
        self._grad = None
        self.grad_fn = None
        self._requires_grad = False
        self._output_nr = 0
        self._version = [0]
        self._base = None
        self._accumulator = None
        self._post_accumulate_hooks = None
        self._retains_grad = False
        if requires_grad:
            self.requires_grad = True

    # ---- construction fast paths (no checks: the ops give native arrays) ------------------------------
    @classmethod
    def _wrap(cls, array: Any) -> Tensor:
        t = object.__new__(Tensor)
        t.data = array
        t._grad = t.grad_fn = t._base = t._accumulator = t._post_accumulate_hooks = None
        t._requires_grad = t._retains_grad = False
        t._output_nr = 0
        t._version = [0]
        return t

    @classmethod
    def _make(cls, array: Any, node: Node, output_nr: int = 0) -> Tensor:
        t = object.__new__(Tensor)
        t.data = array
        t._grad = t._base = t._accumulator = t._post_accumulate_hooks = None
        t.grad_fn = node
        t._requires_grad = True
        t._retains_grad = False
        t._output_nr = output_nr
        t._version = [0]
        return t

    # ---- autograd attributes --------------------------------------------------------------------------
    @property
    def grad(self) -> Tensor | None:
        return self._grad

    @grad.setter
    def grad(self, value: Any) -> None:
        if value is not None:
            if not isinstance(value, Tensor):
                if array_kind(value) is None:
                    raise TypeError(f"assigned grad must be a Tensor, an array or None, got {type(value).__name__}")
                value = Tensor._wrap(value)
            if value.shape != tuple(self.data.shape):
                raise RuntimeError(f"assigned grad has data of a different size: grad {value.shape}, tensor "
                                   f"{tuple(self.data.shape)}")
            if value.data.dtype != self.data.dtype:
                raise RuntimeError(f"assigned grad has data of a different type: grad {value.data.dtype}, tensor "
                                   f"{self.data.dtype}")
        self._grad = value

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if self.grad_fn is not None:
            if not value:
                raise RuntimeError("you can only change requires_grad flags of leaf variables. If you want to use a "
                                   "computed variable in a subgraph that doesn't require differentiation use "
                                   "var_no_grad = var.detach().")
            return
        if value and np.dtype(self.data.dtype).kind not in "fc":
            raise RuntimeError(f"only Tensors of floating point dtype can require gradients, got {self.data.dtype}")
        self._requires_grad = bool(value)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        self.requires_grad = requires_grad
        return self

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    def _edge(self) -> tuple[Node, int] | None:
        """Where a gradient of this tensor goes: its grad_fn's output, or its accumulator (a leaf)."""
        if self.grad_fn is not None:
            return self.grad_fn, self._output_nr
        if not self._requires_grad:
            return None
        if self._accumulator is None:
            self._accumulator = AccumulateGrad(self)
        return self._accumulator, 0

    def retain_grad(self) -> None:
        """Keeps ``.grad`` of this non-leaf after backward (leaves always keep theirs)."""
        if self.grad_fn is None:
            if not self._requires_grad:
                raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
            return
        if self._retains_grad:
            return
        import weakref

        ref = weakref.ref(self)

        def keep(g: Any) -> None:
            t = ref()
            if t is not None:
                if t.grad is None:
                    t.grad = Tensor._wrap(g.copy())
                else:
                    get_backend().add_(t.grad.data, g)
        self._retains_grad = keep  # an in-place op moves it to the new grad_fn (see _commit_inplace)
        self._add_pre_hook(keep)

    def _add_pre_hook(self, hook: Callable[[Any], Any]) -> None:
        node = self.grad_fn
        if node._pre_hooks is None:
            node._pre_hooks = []
        node._pre_hooks.append((self._output_nr, hook))

    def register_hook(self, hook: Callable[[Tensor], Any]) -> Callable[[], None]:
        """``hook(grad)`` runs when this tensor's gradient is computed; it may return a replacement.
        Returns a callable that removes it (PyTorch's handle.remove())."""
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")

        def call(g: Any) -> Any:
            out = hook(Tensor._wrap(g))
            return None if out is None else (out.data if isinstance(out, Tensor) else out)

        if self.grad_fn is None:
            acc = self._edge()[0]
            if acc._pre_hooks is None:
                acc._pre_hooks = []
            entry = (0, call)
            acc._pre_hooks.append(entry)
            hooks = acc._pre_hooks
        else:
            self._add_pre_hook(call)
            hooks = self.grad_fn._pre_hooks
            entry = hooks[-1]
        return _Handle(lambda: entry in hooks and hooks.remove(entry))

    def register_post_accumulate_grad_hook(self, hook: Callable[[Tensor], None]) -> Callable[[], None]:
        """``hook(tensor)`` runs once per backward after this leaf's ``.grad`` is complete (every
        contribution of that backward added). Data-parallel training starts a bucket's all-reduce there."""
        if self.grad_fn is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
        if self._post_accumulate_hooks is None:
            self._post_accumulate_hooks = []
        self._post_accumulate_hooks.append(hook)
        hooks = self._post_accumulate_hooks
        return _Handle(lambda: hook in hooks and hooks.remove(hook))

    def backward(self, gradient: Any = None, retain_graph: bool | None = None, create_graph: bool = False,
                 inputs: Any = None) -> None:
        """Computes the gradient of this tensor with respect to the graph's leaves, adding it into their
        ``.grad``. ``gradient`` is required unless this tensor has one element. The graph's saved arrays
        are freed unless ``retain_graph``."""
        from .functions import backward
        backward([self], None if gradient is None else [gradient], retain_graph=retain_graph,
                 create_graph=create_graph, inputs=inputs)

    def detach(self) -> Tensor:
        """The same data, cut from the graph (shares memory and version counter)."""
        t = Tensor._wrap(self.data)
        t._version = self._version
        t._base = self if self._base is None else self._base
        return t

    def detach_(self) -> Tensor:
        self.grad_fn = None
        self._requires_grad = False
        return self

    # ---- array-like attributes ------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    def size(self, dim: int | None = None):
        if dim is None:
            return tuple(self.data.shape)
        return int(self.data.shape[dim])

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    def dim(self) -> int:
        return self.data.ndim

    def numel(self) -> int:
        return int(self.data.size)

    def nelement(self) -> int:
        return int(self.data.size)

    @property
    def nbytes(self) -> int:
        return int(self.data.nbytes)

    def element_size(self) -> int:
        return int(self.data.itemsize)

    @property
    def device(self) -> str:
        """``"cpu"`` for a host array, ``"cuda:N"`` for a device array."""
        if isinstance(self.data, np.ndarray):
            return "cpu"
        return f"cuda:{self.data.device.id}"

    @property
    def is_cuda(self) -> bool:
        return not isinstance(self.data, np.ndarray)

    @property
    def T(self) -> Tensor:  # noqa: N802 - PyTorch's name
        return ops.permute(self, tuple(reversed(range(self.ndim))))

    @property
    def mT(self) -> Tensor:  # noqa: N802 - PyTorch's name
        return ops.transpose(self, -2, -1)

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return int(self.data.shape[0])

    def __iter__(self):
        if self.data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.data.shape[0]))

    # ---- conversion -----------------------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (sharing memory on the CPU). As in PyTorch, refused while the tensor
        requires grad (``t.detach().numpy()``) and for a device tensor (``t.cpu().numpy()``)."""
        if self._requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead.")
        if not isinstance(self.data, np.ndarray):
            raise TypeError(f"can't convert {self.device} device type tensor to numpy. Use Tensor.cpu() to copy the "
                            "tensor to host memory first.")
        return self.data

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        if not isinstance(self.data, np.ndarray):
            raise TypeError("Implicit conversion to a NumPy array is not allowed for a device tensor: use "
                            ".cpu().numpy() or gpuconv.to_numpy(t)")
        a = self.data
        if dtype is not None and a.dtype != dtype:
            return a.astype(dtype)
        return a.copy() if copy else a

    def __array_ufunc__(self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        """NumPy ufuncs on Tensors: the differentiable ones with a Tensor counterpart record the graph
        (``np.exp(t)``, ``array * t``); any other runs on the arrays and returns arrays."""
        op = _UFUNCS.get(ufunc)
        if method == "__call__" and op is not None and not kwargs:
            return op(*inputs)
        arrays = tuple(x.data if isinstance(x, Tensor) else x for x in inputs)
        if "out" in kwargs:
            kwargs["out"] = tuple(x.data if isinstance(x, Tensor) else x for x in kwargs["out"])
        return getattr(ufunc, method)(*arrays, **kwargs)

    def __array_function__(self, func: Any, types: Any, args: tuple, kwargs: dict) -> Any:
        """Other NumPy functions (``np.sum(t)``, ``np.concatenate([t, a])``, ``np.testing``) run on the
        arrays and return arrays: no graph (use the Tensor methods and ``gpuconv.*`` to differentiate)."""
        return func(*_unwrap_nested(args), **_unwrap_nested(kwargs))

    def item(self) -> Any:
        if self.data.size != 1:
            raise RuntimeError(f"a Tensor with {self.data.size} elements cannot be converted to Scalar")
        return self.data.reshape(()).item()

    def tolist(self) -> Any:
        return self.data.tolist()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        if self.data.size != 1:
            raise RuntimeError(f"Boolean value of Tensor with more than one value is ambiguous (shape {self.shape})")
        return bool(self.item())

    def __index__(self) -> int:
        if np.dtype(self.data.dtype).kind not in "iu" or self.data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __format__(self, spec: str) -> str:
        if self.data.size == 1 and spec:
            return format(self.item(), spec)
        return repr(self) if not spec else format(str(self), spec)

    def to(self, *args: Any, device: Any = None, dtype: Any = None, copy: bool = False) -> Tensor:
        """``to(dtype)``, ``to(device)`` ("cpu", "cuda", "cuda:N" or a backend name), ``to(device, dtype)``,
        or ``to(other_tensor)``: differentiable, a no-op when nothing changes (unless ``copy``)."""
        for arg in args:
            if isinstance(arg, Tensor):
                device, dtype = arg.device, arg.dtype
            elif isinstance(arg, str):
                device = arg
            else:
                dtype = arg
        out = self
        if device is not None:
            out = _move(out, device)
        if dtype is not None:
            out = ops.cast(out, dtype)
        if copy and out is self:
            out = ops.add(self, 0) if self._requires_grad else Tensor._wrap(self.data.copy())
        return out

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self, device: int | None = None) -> Tensor:
        return self.to("cuda" if device is None else f"cuda:{int(device)}")

    def float(self) -> Tensor:
        return ops.cast(self, np.float32)

    def double(self) -> Tensor:
        return ops.cast(self, np.float64)

    def half(self) -> Tensor:
        return ops.cast(self, np.float16)

    def long(self) -> Tensor:
        return ops.cast(self, np.int64)

    def int(self) -> Tensor:
        return ops.cast(self, np.int32)

    def bool(self) -> Tensor:
        return ops.cast(self, np.bool_)

    def type(self, dtype: Any = None) -> Any:
        if dtype is None:
            return f"gpuconv.Tensor[{self.dtype}]"
        return ops.cast(self, dtype)

    def clone(self) -> Tensor:
        """A copy with its own memory; differentiable."""
        out = self.data.copy()
        if ops.needs_grad(self):
            from .ops import IdentityBackward, attach
            return attach(out, IdentityBackward(), self)
        return Tensor._wrap(out)

    def copy(self) -> Tensor:
        return self.clone()

    # ---- printing -------------------------------------------------------------------------------------
    def __repr__(self) -> str:
        body = np.array2string(np.asarray(self.data) if isinstance(self.data, np.ndarray) else self.data.get(),
                               separator=", ", prefix="tensor(", threshold=200)
        extras = []
        if self.data.dtype not in (np.float32, np.int64, np.bool_):
            extras.append(f"dtype={self.data.dtype}")
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self.grad_fn is not None:
            extras.append(f"grad_fn=<{self.grad_fn.name}>")
        elif self._requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    __str__ = __repr__

    # ---- operators ------------------------------------------------------------------------------------
    def __add__(self, other):
        return ops.add(self, _operand(other))

    def __radd__(self, other):
        return ops.add(_operand(other), self)

    def __sub__(self, other):
        return ops.sub(self, _operand(other))

    def __rsub__(self, other):
        return ops.sub(_operand(other), self)

    def __mul__(self, other):
        return ops.mul(self, _operand(other))

    def __rmul__(self, other):
        return ops.mul(_operand(other), self)

    def __truediv__(self, other):
        return ops.div(self, _operand(other))

    def __rtruediv__(self, other):
        return ops.div(_operand(other), self)

    def __pow__(self, other):
        return ops.pow(self, _operand(other))

    def __rpow__(self, other):
        return ops.rpow(self, _operand(other))

    def __matmul__(self, other):
        return ops.matmul(self, _operand(other))

    def __rmatmul__(self, other):
        return ops.matmul(_operand(other), self)

    def __neg__(self):
        return ops.neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return ops.abs(self)

    def __floordiv__(self, other):
        return Tensor._wrap(np.asarray(self.data // _raw(other)) if isinstance(self.data, np.ndarray)
                            else self.data // _raw(other))

    def __mod__(self, other):
        return Tensor._wrap(ops._ensure_array(self.data % _raw(other)))

    def _compare(self, other, op):
        return Tensor._wrap(ops._ensure_array(op(self.data, _raw(other))))

    def __eq__(self, other):  # noqa: D105 - elementwise, as in PyTorch
        return self._compare(other, lambda a, b: a == b)

    def __ne__(self, other):
        return self._compare(other, lambda a, b: a != b)

    def __lt__(self, other):
        return self._compare(other, lambda a, b: a < b)

    def __le__(self, other):
        return self._compare(other, lambda a, b: a <= b)

    def __gt__(self, other):
        return self._compare(other, lambda a, b: a > b)

    def __ge__(self, other):
        return self._compare(other, lambda a, b: a >= b)

    def __invert__(self):
        return Tensor._wrap(~self.data)

    def __and__(self, other):
        return Tensor._wrap(self.data & _raw(other))

    def __or__(self, other):
        return Tensor._wrap(self.data | _raw(other))

    def __xor__(self, other):
        return Tensor._wrap(self.data ^ _raw(other))

    __hash__ = object.__hash__

    def eq(self, other):
        return self == other

    def ne(self, other):
        return self != other

    def lt(self, other):
        return self < other

    def le(self, other):
        return self <= other

    def gt(self, other):
        return self > other

    def ge(self, other):
        return self >= other

    def any(self, dim=None, keepdim: bool = False) -> Tensor:
        return Tensor._wrap(ops._ensure_array(self.data.any(axis=dim, keepdims=keepdim)))

    def all(self, dim=None, keepdim: bool = False) -> Tensor:
        return Tensor._wrap(ops._ensure_array(self.data.all(axis=dim, keepdims=keepdim)))

    def equal(self, other) -> bool:
        return self.shape == tuple(getattr(other, "shape", ())) and bool((self.data == _raw(other)).all())

    def allclose(self, other, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> bool:
        return bool(xp_of(self.data).allclose(self.data, _raw(other), rtol=rtol, atol=atol, equal_nan=equal_nan))

    def __getitem__(self, index):
        return ops.getitem(self, index)

    # ---- methods (PyTorch's names) ----------------------------------------------------------------------
    def add(self, other, alpha=1):
        return ops.add(self, _operand(other), alpha)

    def sub(self, other):
        return ops.sub(self, _operand(other))

    def mul(self, other):
        return ops.mul(self, _operand(other))

    def div(self, other):
        return ops.div(self, _operand(other))

    def pow(self, exponent):
        return ops.pow(self, _operand(exponent))

    def matmul(self, other):
        return ops.matmul(self, _operand(other))

    def mm(self, other):
        return ops.matmul(self, _operand(other))

    def neg(self):
        return ops.neg(self)

    def exp(self):
        return ops.exp(self)

    def log(self):
        return ops.log(self)

    def sqrt(self):
        return ops.sqrt(self)

    def rsqrt(self):
        return ops.rsqrt(self)

    def abs(self):
        return ops.abs(self)

    def sin(self):
        return ops.sin(self)

    def cos(self):
        return ops.cos(self)

    def sigmoid(self):
        return ops.sigmoid(self)

    def tanh(self):
        return ops.tanh(self)

    def relu(self):
        return ops.relu(self)

    def clamp(self, min=None, max=None):  # noqa: A002 - PyTorch's names
        return ops.clamp(self, min, max)

    clip = clamp

    def maximum(self, other):
        return ops.maximum(self, _operand(other))

    def minimum(self, other):
        return ops.minimum(self, _operand(other))

    def sum(self, dim=None, keepdim=False, dtype=None):
        return ops.sum(self, dim, keepdim, dtype)

    def mean(self, dim=None, keepdim=False):
        return ops.mean(self, dim, keepdim)

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        return ops.var(self, dim, unbiased, keepdim, correction=correction)

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
        return ops.std(self, dim, unbiased, keepdim, correction=correction)

    def max(self, dim=None, keepdim=False):
        return ops.max(self, dim, keepdim)

    def min(self, dim=None, keepdim=False):
        return ops.min(self, dim, keepdim)

    def amax(self, dim=None, keepdim=False):
        return ops.amax(self, dim, keepdim)

    def amin(self, dim=None, keepdim=False):
        return ops.amin(self, dim, keepdim)

    def argmax(self, dim=None, keepdim=False):
        return ops.argmax(self, dim, keepdim)

    def argmin(self, dim=None, keepdim=False):
        return ops.argmin(self, dim, keepdim)

    def reshape(self, *shape):
        return ops.reshape(self, *shape)

    def view(self, *shape):
        return ops.view(self, *shape)

    def view_as(self, other):
        return ops.view(self, tuple(other.shape))

    def reshape_as(self, other):
        return ops.reshape(self, tuple(other.shape))

    def flatten(self, start_dim=0, end_dim=-1):
        return ops.flatten(self, start_dim, end_dim)

    def permute(self, *dims):
        return ops.permute(self, *dims)

    def transpose(self, dim0, dim1):
        return ops.transpose(self, dim0, dim1)

    def t(self):
        if self.ndim > 2:
            raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {self.ndim}D")
        return ops.transpose(self, 0, 1) if self.ndim == 2 else self

    def squeeze(self, dim=None):
        return ops.squeeze(self, dim)

    def unsqueeze(self, dim):
        return ops.unsqueeze(self, dim)

    def expand(self, *sizes):
        return ops.expand(self, *sizes)

    def expand_as(self, other):
        return ops.expand(self, tuple(other.shape))

    def contiguous(self):
        return ops.contiguous(self)

    def is_contiguous(self) -> bool:
        return bool(self.data.flags.c_contiguous)

    def split(self, split_size_or_sections, dim=0):
        return ops.split(self, split_size_or_sections, dim)

    def chunk(self, chunks, dim=0):
        return ops.chunk(self, chunks, dim)

    # ---- in-place ops -----------------------------------------------------------------------------------
    def _check_inplace(self, other_requires_grad: bool) -> bool:
        """Refuses what PyTorch refuses; returns whether this in-place op must record a node."""
        recording = is_grad_enabled() and (self._requires_grad or other_requires_grad)
        if is_grad_enabled() and self.grad_fn is None and self._requires_grad:
            raise RuntimeError("a leaf Variable that requires grad is being used in an in-place operation "
                               "(wrap it in gpuconv.no_grad() to change a parameter's values).")
        if recording and self._base is not None and (self._base._requires_grad or other_requires_grad):
            raise RuntimeError("an in-place operation on a view (the result of indexing, reshape, transpose, ...) of "
                               "a tensor that is part of the autograd graph is not supported by gpuconv: compute the "
                               "result out of place (gpuconv.cat, gpuconv.where, x + y) instead.")
        return recording

    def _commit_inplace(self, node: Node | None, inputs: tuple) -> Tensor:
        """Bumps the version and, when recording, makes ``node`` (fed by ``self``'s previous edge and
        ``inputs``) the producer of ``self``."""
        self._version[0] += 1
        if node is not None:
            node.next_edges = (self._edge(),) + tuple(x._edge() if isinstance(x, Tensor) else None for x in inputs)
            previous = self.grad_fn
            self.grad_fn = node
            self._output_nr = 0
            self._requires_grad = True
            if self._retains_grad:
                # PyTorch's retain_grad follows the tensor: .grad is the gradient of its newest value.
                previous._pre_hooks = [h for h in previous._pre_hooks if h[1] is not self._retains_grad]
                self._add_pre_hook(self._retains_grad)
        return self

    def _inplace_binary(self, other: Any, kind: str, alpha: Any = 1) -> Tensor:
        other = _operand(other)
        other_rg = isinstance(other, Tensor) and other._requires_grad
        recording = self._check_inplace(other_rg)
        A, B = self.data, _raw(other)
        if alpha != 1:
            B = B * alpha
        node = None
        if recording:
            shapes = (tuple(A.shape), tuple(getattr(B, "shape", ())))
            if kind in ("add", "sub"):
                # The out-of-place op's node: self's previous value is the op's first input.
                node = ops.AddBackward()
                node.shapes, node.alpha = shapes, (alpha if kind == "add" else -alpha)
            else:
                node = ops.MulBackward() if kind == "mul" else ops.DivBackward()
                node.shapes = shapes
                # The gradient of `other` needs self's value before the op: keep a copy (PyTorch does too).
                node.save(A.copy() if other_rg else None, other)
        be = get_backend()
        same = hasattr(B, "shape") and B.shape == A.shape and B.dtype == A.dtype and be.is_native(A) and A.dtype.kind == "f"
        if kind == "add":
            if same and A.flags.c_contiguous:
                be.add_(A, be.contiguous(B))
            else:
                A += B
        elif kind == "sub":
            A -= B
        elif kind == "mul":
            A *= B
        else:
            A /= B
        return self._commit_inplace(node, (other,))

    def __iadd__(self, other):
        return self._inplace_binary(other, "add")

    def __isub__(self, other):
        return self._inplace_binary(other, "sub")

    def __imul__(self, other):
        return self._inplace_binary(other, "mul")

    def __itruediv__(self, other):
        return self._inplace_binary(other, "div")

    def add_(self, other, alpha=1):
        return self._inplace_binary(other, "add", alpha)

    def sub_(self, other, alpha=1):
        return self._inplace_binary(other, "add", -alpha)

    def mul_(self, other):
        return self._inplace_binary(other, "mul")

    def div_(self, other):
        return self._inplace_binary(other, "div")

    def clamp_(self, min=None, max=None):  # noqa: A002 - PyTorch's names
        if min is None and max is None:
            raise ValueError("clamp_: at least one of min and max must be given")
        bounds_rg = any(isinstance(b, Tensor) and b._requires_grad for b in (min, max))
        if bounds_rg and is_grad_enabled():
            raise RuntimeError("clamp_ with bounds that require grad is not supported in place (their gradient "
                               "would be lost): use the out-of-place x.clamp(min, max)")
        recording = self._check_inplace(False)
        node = None
        low, high = _raw(min), _raw(max)
        if recording:
            node = ops.ClampBackward()
            node.low, node.high = low, high
            node.save(self.data.copy())
        xp_of(self.data).clip(self.data, low, high, out=self.data)
        return self._commit_inplace(node, ())

    clip_ = clamp_

    def relu_(self):
        from .. import functional as F
        return F.relu(self, inplace=True)

    def zero_(self):
        return self.fill_(0)

    def fill_(self, value):
        value_rg = isinstance(value, Tensor) and value._requires_grad
        recording = self._check_inplace(value_rg)
        node = None
        if recording:
            node = _FillBackward()
            node.value_shape = tuple(getattr(_raw(value), "shape", ()))
        raw = _raw(value)
        be = get_backend()
        if isinstance(raw, numbers.Number) and be.is_native(self.data) and self.data.dtype.kind == "f" \
                and self.data.flags.c_contiguous:
            be.fill_(self.data, raw)
        else:
            self.data[...] = raw
        return self._commit_inplace(node, (value,))

    def copy_(self, src):
        src = _operand(src)
        src_rg = isinstance(src, Tensor) and src._requires_grad
        recording = self._check_inplace(src_rg)
        node = None
        if recording:
            node = _CopyBackward()
            node.src_shape, node.src_dtype = tuple(_raw(src).shape), _raw(src).dtype
        raw = _raw(src)
        if array_kind(raw) is not None and array_kind(raw) != array_kind(self.data):
            raw = home_of(self.data).asarray(raw)  # copy_ moves between host and device, as PyTorch's does
        self.data[...] = raw
        return self._commit_inplace(node, (src,))

    def __setitem__(self, index, value):
        value = _operand(value)
        value_rg = isinstance(value, Tensor) and value._requires_grad
        recording = self._check_inplace(value_rg)
        index = ops._index_arrays(index)
        node = None
        if recording:
            node = _SetItemBackward()
            node.index, node.value_shape = index, tuple(getattr(_raw(value), "shape", ()))
        self.data[index] = _raw(value)
        return self._commit_inplace(node, (value,))


class _Handle:
    """What ``register_hook`` returns: ``.remove()`` takes the hook out."""

    def __init__(self, remove: Callable[[], Any]):
        self._remove = remove

    def remove(self) -> None:
        self._remove()


def _raw(x: Any) -> Any:
    return x.data if isinstance(x, Tensor) else x


def _unwrap_nested(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap_nested(v) for v in value)
    if isinstance(value, dict):
        return {k: _unwrap_nested(v) for k, v in value.items()}
    return value


def _operand(x: Any) -> Any:
    """Numbers and arrays pass as constants; a list becomes an array."""
    if isinstance(x, (list, tuple)):
        return np.asarray(x)
    return x


class _FillBackward(Node):
    __slots__ = ("value_shape",)

    def backward(self, g):
        gv = None
        if self.next_edges[1] is not None:
            from ._util import sum_to
            gv = sum_to(g, self.value_shape)
        return g * 0, gv


class _CopyBackward(Node):
    __slots__ = ("src_shape", "src_dtype")

    def backward(self, g):
        gs = None
        if self.next_edges[1] is not None:
            from ._util import sum_to
            gs = sum_to(g, self.src_shape).astype(self.src_dtype, copy=False)
        return g * 0, gs


class _SetItemBackward(Node):
    __slots__ = ("index", "value_shape")

    def backward(self, g):
        from ._util import sum_to
        gv = sum_to(g[self.index], self.value_shape) if self.next_edges[1] is not None else None
        gs = g.copy()
        gs[self.index] = 0
        return gs, gv


class _MoveBackward(Node):
    __slots__ = ("source",)

    def backward(self, g):
        previous = self.source.activate()  # the source's device, for a CuPy array
        try:
            return (self.source.asarray(g),)
        finally:
            self.source.restore(previous)


def _move(t: Tensor, device: Any) -> Tensor:
    if on_device(t.data, device):
        return t
    source = home_of(t.data)
    name, index = parse_device(device)
    with backend_context(name, index) as be:
        out = be.asarray(t.data)
    if ops.needs_grad(t):
        node = _MoveBackward()
        node.source = source
        return ops.attach(out, node, t)
    return Tensor._wrap(out)


_UFUNCS = {
    np.add: lambda a, b: ops.add(a, b), np.subtract: ops.sub, np.multiply: ops.mul, np.true_divide: ops.div,
    np.power: ops.pow, np.negative: ops.neg, np.exp: ops.exp, np.log: ops.log, np.sqrt: ops.sqrt,
    np.absolute: ops.abs, np.maximum: ops.maximum, np.minimum: ops.minimum, np.matmul: ops.matmul,
    np.tanh: ops.tanh, np.sin: ops.sin, np.cos: ops.cos,
}
