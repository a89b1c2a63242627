"""Module: the base class of layers and models (parameters, buffers, children, state dicts, modes).

A module implements ``forward`` only: the ops it calls on Tensors record the autograd graph, and
``loss.backward()`` computes every parameter's gradient (:mod:`gpuconv.autograd`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Iterator, NamedTuple

import numpy as np

from .. import flags
from ..autograd.tensor import Tensor
from ..backend import array_kind, get_backend, parse_device
from ..backend import backend as backend_context
from ..backend.memory_hooks import OutOfMemoryError, is_out_of_memory, requested_bytes
from ..grad_mode import no_grad as _no_grad
from .parameter import Parameter


class IncompatibleKeys(NamedTuple):
    """What ``load_state_dict(strict=False)`` skipped."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class: subclasses set parameters, buffers and child modules as attributes in ``__init__``
    (after calling ``super().__init__()``) and implement ``forward``, as in PyTorch. The backward is
    autograd's: any forward written with gpuconv's ops (``gpuconv.functional``, Tensor arithmetic,
    indexing, ``gpuconv.cat``, ...) trains with correct gradients; an op with its own kernel is a
    :class:`gpuconv.autograd.Function`.

    gpuconv's own layers also report their shapes (``output_shape``), which the memory estimator's
    summary uses; a user module gets a default that runs a one-sample forward.
    """

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ---- attribute registration -----------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"call super().__init__() in {type(self).__name__}.__init__ before setting attributes")
        # Reassigning keeps the entry's place (state-dict order); a new kind of value moves it.
        if isinstance(value, Parameter):
            self._forget(name, keep=self._parameters)
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._forget(name, keep=self._modules)
            self._modules[name] = value
        elif name in self.__dict__.get("_buffer_names", ()) and (value is None or array_kind(value) is not None
                                                                 or isinstance(value, Tensor)):
            self._buffers[name] = value.data if isinstance(value, Tensor) else value
        else:
            self._forget(name, keep=None)
            object.__setattr__(self, name, value)

    def _forget(self, name: str, keep: dict | None) -> None:
        """Removes ``name`` from the registries other than ``keep`` and from the plain attributes."""
        for registry in (self._parameters, self._buffers, self._modules):
            if registry is not keep:
                registry.pop(name, None)
        if keep is not None:
            self.__dict__.pop(name, None)

    def __getattr__(self, name: str) -> Any:
        for registry in ("_parameters", "_buffers", "_modules"):
            values = self.__dict__.get(registry)
            if values is not None and name in values:
                return values[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for registry in (self._parameters, self._buffers, self._modules):
            if name in registry:
                del registry[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name: str, tensor: Any, persistent: bool = True) -> None:
        """Adds a buffer: state that is not learned (running statistics), saved in the state dict
        unless ``persistent`` is False. ``tensor`` may be None (then it is left out)."""
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"buffer name must be a non-empty string without '.', got {name!r}")
        if isinstance(tensor, Tensor):
            tensor = tensor.data  # buffers are kept as the arrays themselves
        if tensor is not None and array_kind(tensor) is None:
            raise TypeError(f"buffer {name!r} must be an array or None, got {type(tensor).__name__}")
        self.__dict__.pop(name, None)
        self.__dict__.setdefault("_buffer_names", set()).add(name)
        self._buffers[name] = None if tensor is None else get_backend().asarray(tensor)
        if not persistent:
            self._non_persistent.add(name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Adds a parameter (None reserves the name, as PyTorch does for ``bias=False``)."""
        if param is None:
            self._parameters[name] = None
        else:
            setattr(self, name, param)

    def add_module(self, name: str, module: Module | None) -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{name!r} must be a Module, got {type(module).__name__}")
        self._modules[name] = module

    # ---- forward ------------------------------------------------------------------------------
    def forward(self, *args: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with _ErrorContext(self):
            try:
                if args:
                    self._check_input_dtype(args[0])
                output = self.forward(*args, **kwargs)
            except Exception as exc:
                _raise_out_of_memory(exc, f"{type(self).__name__}.forward")
                raise
            if flags.detect_anomaly:
                _check_finite(self, "forward output", output)
        return output

    def _check_input_dtype(self, x: Any) -> None:
        """A floating input of another dtype than this layer's own parameters is a TypeError that says
        how to fix it (checked before any computation)."""
        dtype = getattr(x, "dtype", None)
        if dtype is None or np.dtype(dtype).kind != "f":
            return
        for param in self._parameters.values():
            if param is not None:
                expected = np.dtype(param.data.dtype)
                if np.dtype(dtype) != expected:
                    raise TypeError(
                        f"input has dtype {np.dtype(dtype).name} but the layer's parameters are {expected.name}: "
                        f"cast the input (x.astype(np.{expected.name})) or the model (model.to(np.{np.dtype(dtype).name}))")
                return

    # ---- shape reports --------------------------------------------------------------------------
    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The output shape for an input of ``input_shape`` (no computation).

        This default, for modules that do not define it, runs the forward once on a one-sample
        zero input (eval mode, ``no_grad``; modes and what was kept for backward are restored) and
        takes the batch size from ``input_shape``: it assumes the output's first axis is the batch."""
        if type(self).__module__.split(".")[0] == "gpuconv":
            # gpuconv's own modules compute their shapes; one without is not meant to be asked.
            raise NotImplementedError(f"{type(self).__name__} does not implement output_shape")
        out, _ = self._probe(tuple(input_shape))
        return out

    def _probe(self, input_shape: tuple[int, ...], dtype: Any = None) -> tuple[tuple[int, ...], None]:
        """(output shape, None) of a forward on a zero input of ``input_shape`` with batch 1, in eval
        mode and without recording, leaving the model's modes as they were."""
        if dtype is None:
            params = list(self.parameters())
            dtype = params[0].dtype if params else np.float32
        states = [(m, m.training) for m in self.modules()]
        x = get_backend().zeros((1,) + tuple(input_shape[1:]), np.dtype(dtype))
        try:
            for m, _ in states:
                object.__setattr__(m, "training", False)
            with _no_grad():
                y = self.forward(x)
        finally:
            for m, training in states:
                object.__setattr__(m, "training", training)
        shape = tuple(y.shape)
        if not shape or shape[0] != 1:
            raise NotImplementedError(
                f"{type(self).__name__}: the default output_shape needs an output whose first axis is the batch "
                f"(a one-sample input gave {shape}); define output_shape(input_shape)")
        return (int(input_shape[0]),) + shape[1:], None

    # ---- traversal ------------------------------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, module in self._modules.items():
            if module is not None:
                yield name, module

    def children(self) -> Iterator[Module]:
        for _, module in self.named_children():
            yield module

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and all below it, with dotted names ("" for this one)."""
        seen: set[int] = set()

        def walk(module: Module, name: str):
            if id(module) in seen:
                return
            seen.add(id(module))
            yield name, module
            for child_name, child in module.named_children():
                yield from walk(child, f"{name}.{child_name}" if name else child_name)

        yield from walk(self, prefix)

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def _named_members(self, registry: str, include_none: bool = False) -> Iterator[tuple[str, Any]]:
        seen: set[int] = set()
        for module_name, module in self.named_modules():
            for name, value in getattr(module, registry).items():
                if value is None and not include_none:
                    continue
                if value is not None and id(value) in seen:
                    continue
                if value is not None:
                    seen.add(id(value))
                yield (f"{module_name}.{name}" if module_name else name), value

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter) pairs in registration order, as PyTorch names them."""
        yield from self._named_members("_parameters")

    def parameters(self) -> Iterator[Parameter]:
        for _, param in self.named_parameters():
            yield param

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Number of parameter elements (each shared parameter counted once); ``trainable_only``
        counts only those with ``requires_grad``."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def named_buffers(self) -> Iterator[tuple[str, Any]]:
        yield from self._named_members("_buffers")

    def buffers(self) -> Iterator[Any]:
        for _, buf in self.named_buffers():
            yield buf

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Calls ``fn`` on every child (recursively), then on this module; returns self."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ---- modes and gradients --------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Training mode (batch statistics, dropout, activations kept for backward) for this module
        and all below it; returns self."""
        object.__setattr__(self, "training", bool(mode))
        for child in self.children():
            child.train(mode)
        return self

    def eval(self) -> Module:
        """Inference mode: running statistics, no dropout, nothing kept for backward; returns self."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clears the parameters' gradients (to None, or to zeros when ``set_to_none`` is False)."""
        for param in self.parameters():
            if set_to_none or param.grad is None:
                param.grad = None
            else:
                get_backend().fill_(param.grad.data, 0)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for param in self.parameters():
            param.requires_grad = bool(requires_grad)
        return self

    # ---- moving between backends and dtypes -----------------------------------------------------
    def to(self, *args: Any, device: Any = None, dtype: Any = None) -> Module:
        """Moves every parameter, gradient and buffer to a backend and/or casts the floating ones to a
        dtype, in place; returns self. PyTorch's forms:

        - ``to("cuda")``, ``to("cuda:1")`` (the cupy backend, on that GPU), ``to("cpu")`` (numpy), or a
          backend name (``"numpy"``, ``"cupy"``, ``"emulated"``);
        - ``to(np.float64)``; ``to("cuda", np.float32)``; ``to(device=..., dtype=...)``;
        - ``to()``: the current backend (``with gpuconv.backend("cupy"): model.to()``).

        Moving a model does not change the current backend: run it where its arrays are
        (``gpuconv.use("cupy")``), as gpuconv never copies between host and device behind your back.
        An optimizer built on the model keeps working: its state follows the parameters (see
        :class:`gpuconv.optim.Optimizer`).
        """
        if len(args) > 2:
            raise TypeError(f"to() takes at most a device and a dtype, got {len(args)} arguments")
        for arg in args:
            if isinstance(arg, str):
                if device is not None:
                    raise TypeError(f"to() got two devices: {device!r} and {arg!r}")
                device = arg
            else:
                if dtype is not None:
                    raise TypeError(f"to() got two dtypes: {dtype!r} and {arg!r}")
                dtype = arg
        target = None if dtype is None else _float_dtype(dtype)
        if device is None:
            self._convert(get_backend(), target)
        else:
            name, index = parse_device(device)
            with backend_context(name, index) as be:
                self._convert(be, target)
        return self

    def _convert(self, be: Any, target: np.dtype | None) -> None:
        def convert(a: Any) -> Any:
            if a is None:
                return None
            cast = target if (target is not None and np.dtype(a.dtype).kind == "f") else None
            return be.asarray(a, dtype=cast)

        for module in self.modules():
            for param in module._parameters.values():
                if param is not None:
                    param.data = convert(param.data)
                    param._grad = None if param.grad is None else Tensor._wrap(convert(param.grad.data))
            for name, buf in module._buffers.items():
                module._buffers[name] = convert(buf)

    def cuda(self, device: int | None = None) -> Module:
        """``to("cuda")`` (``device`` picks the GPU)."""
        return self.to("cuda" if device is None else f"cuda:{int(device)}")

    def cpu(self) -> Module:
        """``to("cpu")``: the numpy backend."""
        return self.to("cpu")

    def float(self) -> Module:
        return self.to(np.float32)

    def double(self) -> Module:
        return self.to(np.float64)

    # ---- state dicts ----------------------------------------------------------------------------
    def state_dict(self) -> OrderedDict:
        """Parameters and persistent buffers by dotted name (the arrays themselves, not copies),
        in PyTorch's order: each module's parameters, then its buffers, then its children."""
        out: OrderedDict = OrderedDict()
        for module_name, module in self.named_modules():
            prefix = f"{module_name}." if module_name else ""
            for name, param in module._parameters.items():
                if param is not None:
                    out[prefix + name] = param.data
            for name, buf in module._buffers.items():
                if buf is not None and name not in module._non_persistent:
                    out[prefix + name] = buf
        return out

    def _state_slots(self) -> OrderedDict:
        """Dotted name -> (module, registry, name) for every entry of the state dict."""
        slots: OrderedDict = OrderedDict()
        for module_name, module in self.named_modules():
            prefix = f"{module_name}." if module_name else ""
            for name, param in module._parameters.items():
                if param is not None:
                    slots[prefix + name] = (module, "_parameters", name)
            for name, buf in module._buffers.items():
                if buf is not None and name not in module._non_persistent:
                    slots[prefix + name] = (module, "_buffers", name)
        return slots

    def load_state_dict(self, state_dict: dict, strict: bool = True) -> IncompatibleKeys:
        """Copies the arrays of ``state_dict`` (NumPy or backend arrays, e.g. a torchvision state
        dict converted with ``{k: v.numpy() for k, v in sd.items()}``) into the parameters and
        buffers, in place.

        Everything is checked before anything is written: a key whose shape differs is always an
        error, and so is a dtype of another kind (floating vs integer); a floating array of another
        precision is cast to the model's dtype, as PyTorch does. With ``strict`` (the default)
        missing and unexpected keys are errors too.
        Returns:
            (missing_keys, unexpected_keys).
        Raises:
            RuntimeError listing every missing, unexpected and mismatched key.
        """
        slots = self._state_slots()
        missing = [k for k in slots if k not in state_dict]
        unexpected = [k for k in state_dict if k not in slots]
        mismatched = []
        for key, (module, registry, name) in slots.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            current = getattr(module, registry)[name]
            current = current.data if isinstance(current, Parameter) else current
            if array_kind(value) is None:
                mismatched.append(f"{key}: expected an array, got {type(value).__name__}")
                continue
            if tuple(value.shape) != tuple(current.shape):
                mismatched.append(f"{key}: shape {tuple(value.shape)} in the state dict, {tuple(current.shape)} "
                                  "in the model")
            elif np.dtype(value.dtype).kind != np.dtype(current.dtype).kind and not (
                    np.dtype(value.dtype).kind in "iu" and np.dtype(current.dtype).kind in "iu"):
                # Floating arrays are cast to the model's dtype, as PyTorch's copy does; integers
                # (num_batches_tracked) to its integer type; a float for an integer slot is an error.
                mismatched.append(f"{key}: dtype {np.dtype(value.dtype)} in the state dict, "
                                  f"{np.dtype(current.dtype)} in the model")
        errors = []
        if strict and missing:
            errors.append("Missing key(s): " + ", ".join(repr(k) for k in missing))
        if strict and unexpected:
            errors.append("Unexpected key(s): " + ", ".join(repr(k) for k in unexpected))
        if mismatched:
            errors.append("Mismatched key(s): " + "; ".join(mismatched))
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(errors))
        be = get_backend()
        for key, (module, registry, name) in slots.items():
            if key in state_dict:
                current = getattr(module, registry)[name]
                target = current.data if isinstance(current, Parameter) else current
                target[...] = be.asarray(state_dict[key])
        return IncompatibleKeys(missing, unexpected)

    # ---- printing -------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The text inside this module's parentheses in ``repr`` (its constructor arguments)."""
        return ""

    def _get_name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        lines = []
        extra = self.extra_repr()
        if extra:
            lines.extend(extra.split("\n"))
        for name, module in self.named_children():
            text = repr(module).replace("\n", "\n  ")
            lines.append(f"({name}): {text}")
        if not any(True for _ in self.named_children()):
            return f"{self._get_name()}({extra})"
        body = "\n  ".join(lines)
        return f"{self._get_name()}(\n  {body}\n)"


def _raise_out_of_memory(exc: Exception, op: str) -> None:
    """CuPy's out-of-memory error inside ``op`` becomes gpuconv.OutOfMemoryError naming the op and
    the bytes it asked for (the innermost module names it; outer ones let it through)."""
    if not is_out_of_memory(exc):
        return
    requested = requested_bytes(exc)
    size = f"{requested:,} bytes" if requested is not None else "memory"
    raise OutOfMemoryError(f"out of device memory in {op}: it requested {size} ({exc}). "
                           "gpuconv.memory.estimate(model, input_shape, optimizer=...) shows where the memory goes; "
                           "gpuconv.memory.suggest_batch_size gives a batch that fits.",
                           op=op, requested=requested) from exc


def check_input_size(x: Any, ndim: int | None, axis: int, expected: int, layout: str, what: str) -> None:
    """ValueError blaming the input (not the layer's weight) when ``x.shape[axis]`` is not what the
    layer was built for, e.g. ``input: expected shape (N, 3, H, W) (in_channels = 3), got (8, 1, 32, 32)``.
    An input of another rank is left to the functional op's own message."""
    shape = getattr(x, "shape", None)
    if shape is None or (ndim is not None and len(shape) != ndim) or not shape or shape[axis] == expected:
        return
    raise ValueError(f"input: expected shape {layout} ({what} = {expected}), got {tuple(shape)}")


def _float_dtype(dtype: Any) -> np.dtype:
    try:
        target = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if target not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype must be float32 or float64, got {target}")
    return target


class _ErrorContext:
    """Names the layer an error came from: ``in layer1.0.conv1 (Conv2d(64, 64, ...)): <message>``.

    The innermost module whose forward/backward raised is remembered on the exception; when the
    exception leaves the outermost module call, its qualified name within that model is prefixed to
    the message. The exception keeps its type and traceback.
    """

    _depth = threading.local()
    _TYPES = (ValueError, TypeError, RuntimeError, MemoryError)

    def __init__(self, module: Module):
        self.module = module

    def __enter__(self) -> None:
        self._depth.value = getattr(self._depth, "value", 0) + 1

    def __exit__(self, kind, exc, tb) -> None:
        self._depth.value -= 1
        if exc is None or not isinstance(exc, self._TYPES):
            return
        if getattr(exc, "_gpuconv_layer", None) is None:
            exc._gpuconv_layer = self.module
        if self._depth.value == 0 and not getattr(exc, "_gpuconv_named", False) and exc.args \
                and isinstance(exc.args[0], str):
            layer = exc._gpuconv_layer
            name = next((n for n, m in self.module.named_modules() if m is layer and n), "")
            where = f"{name} ({_short_repr(layer)})" if name else _short_repr(layer)
            exc.args = (f"in {where}: {exc.args[0]}",) + exc.args[1:]
            exc._gpuconv_named = True


def _check_finite(module: Module, what: str, value: Any) -> None:
    """The check of ``gpuconv.flags.detect_anomaly``: a RuntimeError when a floating array in
    ``value`` (an array or a tuple of them) holds NaN or infinity. Raised inside the module's
    _ErrorContext, so the message names the module within the model."""
    for array in value if isinstance(value, (tuple, list)) else (value,):
        if isinstance(array, Tensor):
            array = array.data
        if array_kind(array) is None or np.dtype(array.dtype).kind != "f" or bool(np.isfinite(array).all()):
            continue
        nan = int(np.isnan(array).sum())
        raise RuntimeError(f"detect_anomaly: {module._get_name()} produced a non-finite {what} "
                           f"({nan} NaN, {int(array.size) - nan - int(np.isfinite(array).sum())} infinite "
                           f"of {int(array.size)} values, shape {tuple(array.shape)})")


def _short_repr(module: Module) -> str:
    return f"{module._get_name()}({module.extra_repr()})"


__all__ = ["IncompatibleKeys", "Module"]
