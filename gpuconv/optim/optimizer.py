"""The Optimizer base class: parameter groups, state, zero_grad and state_dict, as in PyTorch.

A parameter is any object with ``.data`` (a float NumPy or CuPy array, updated in place) and
``.grad`` (a Tensor of the same shape, or None: such a parameter is skipped by ``step``).
"""

from __future__ import annotations

import copy
import numbers
from typing import Any, Callable, Iterable, Protocol

import numpy as np

from ..backend import get_array_module, get_backend
from ..backend.base import needs_capability


@needs_capability("fused_optimizer")
class OptimizerPrimitives(Protocol):
    """The fused optimizer step of the backend contract (gpuconv/backend/base.py), on backends with
    ``capabilities.fused_optimizer``; elsewhere each optimizer updates its parameters one by one."""

    def multi_tensor_step(self, op: str, rows: list, args: tuple) -> None:
        """Updates every row (parameter, gradient and state arrays of one dtype) in place with the
        update ``op`` ("sgd_step", "adam_step", ...) and the group's scalars ``args``."""

    def multi_tensor_step_bytes(self, sizes: list[int]) -> int:
        """Bytes one multi_tensor_step allocates (and frees) for tensors of ``sizes`` elements."""


def check_range(name: str, value: Any, low: float = 0.0, high: float | None = None, high_open: bool = False) -> float:
    """``value`` as a float in [low, high] (or [low, high) when ``high_open``); ValueError naming ``name``."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    too_high = high is not None and (value >= high if high_open else value > high)
    if not value >= low or too_high:
        upper = "" if high is None else f", {high}{')' if high_open else ']'}"
        raise ValueError(f"invalid {name}: {value} (expected a value in [{low}{upper or ', inf)'})")
    return value


class Optimizer:
    """Base class: holds ``param_groups`` (list of dicts: ``params`` plus per-group options) and
    ``state`` (per-parameter dicts keyed by the parameter object).

    Args:
        params: an iterable of parameters, or of dicts with a ``params`` entry and per-group options
            overriding ``defaults``.
        defaults: the default options of every group.
    """

    # Whether per-parameter state is created by the first step (True) or by the constructor.
    lazy_state = True

    def __init__(self, params: Iterable[Any], defaults: dict[str, Any]):
        self.defaults = dict(defaults)
        self.state: dict[Any, dict[str, Any]] = {}
        self.param_groups: list[dict[str, Any]] = []
        if isinstance(params, dict) or hasattr(params, "data"):
            raise TypeError("params must be an iterable of parameters or of dicts (param groups), "
                            f"got a single {type(params).__name__}")
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Adds a group: ``{"params": [...], option: value, ...}``; missing options take the defaults."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        params = param_group["params"]
        params = [params] if hasattr(params, "data") else list(params)
        for p in params:
            data = getattr(p, "data", None)
            if data is None or not hasattr(data, "dtype") or np.dtype(data.dtype).kind != "f":
                raise TypeError(f"optimizer can only update parameters with a float array in .data, got {p!r}")
        group = {**param_group, "params": params}
        for name, default in self.defaults.items():
            group.setdefault(name, default)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if len({id(p) for p in params}) != len(params):
            raise ValueError("a parameter group contains the same parameter more than once")
        if seen & {id(p) for p in params}:
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    # ---- gradients and steps --------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Sets every parameter's ``.grad`` to None (default) or fills it with zeros in place."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    get_backend().fill_(p.grad.data, 0)

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient; returns ``closure()`` when given.

        On a backend with kernels (cupy, emulated) the parameters of a group are updated by one
        multi-tensor kernel launch per dtype, with the same arithmetic as the per-parameter NumPy
        code (:meth:`_update`), which the numpy backend runs.
        """
        loss = closure() if closure is not None else None
        be = get_backend()
        for group in self.param_groups:
            params = []
            for p in group["params"]:
                if p.grad is None:
                    continue
                if tuple(p.grad.shape) != tuple(p.data.shape):
                    raise ValueError(f"gradient shape {tuple(p.grad.shape)} does not match the parameter's "
                                     f"{tuple(p.data.shape)}")
                self._follow_parameter(p)
                params.append(p)
            fused = [p for p in params if _fusable(be, p)] if be.capabilities.fused_optimizer else []
            fused_ids = {id(p) for p in fused}
            for dtype in {p.data.dtype for p in fused}:
                self._multi_update(be, [p for p in fused if p.data.dtype == dtype], group)
            for p in params:
                if id(p) not in fused_ids:
                    self._update(p, p.grad.data, self.state.setdefault(p, {}), group)
        return loss

    def _follow_parameter(self, p: Any) -> None:
        """Moves ``p``'s state arrays to where ``p`` now lives, so a model may move after its
        optimizer was built: the rule is that state follows its parameter at the next step
        (``model.to("cuda")`` or ``model.double()`` moves momentum buffers and moments along, as
        copies on the current device, floating state cast to the parameter's dtype)."""
        state = self.state.get(p)
        if not state:
            return
        for name, value in state.items():
            if hasattr(value, "shape") and hasattr(value, "dtype") and not _same_place(value, p.data):
                state[name] = self._cast_state(p, name, value)

    def _update(self, p: Any, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        raise NotImplementedError

    def _multi_update(self, be: Any, params: list[Any], group: dict[str, Any]) -> None:
        """Updates ``params`` (one dtype, all fusable) with one ``be.multi_tensor_step`` launch."""
        raise NotImplementedError

    # ---- memory ---------------------------------------------------------------------------------
    def state_bytes(self) -> int:
        """Bytes of the arrays in ``state`` now (momentum buffers, moments, ...); 0 before the
        first ``step`` for optimizers that create their state lazily."""
        return sum(int(v.nbytes) for s in self.state.values() for v in s.values()
                   if hasattr(v, "nbytes") and hasattr(v, "shape") and getattr(v, "ndim", 0))

    def state_arrays_per_param(self, group: dict[str, Any]) -> int:
        """How many arrays of a parameter's shape and dtype ``step`` keeps per parameter of
        ``group`` (its options decide: SGD keeps a momentum buffer only with momentum)."""
        raise NotImplementedError(f"{type(self).__name__} does not say what state it keeps")

    def step_temporaries(self, group: dict[str, Any], elide: bool) -> int:
        """How many temporary arrays of a parameter's size one parameter's update holds at once.

        ``elide``: NumPy reuses a temporary of at least 256 KiB as the output of the next operation
        in the same expression (``a * b * c`` allocates once); CuPy never does.
        """
        raise NotImplementedError(f"{type(self).__name__} does not say what its step allocates")

    def expected_state_bytes(self) -> int:
        """Bytes of ``state`` once every parameter has had a step (from the group options, without
        stepping): what :meth:`state_bytes` returns after the first step."""
        seen: set[int] = set()
        total = 0
        for group in self.param_groups:
            per_param = self.state_arrays_per_param(group)
            for p in group["params"]:
                if id(p) not in seen:
                    seen.add(id(p))
                    total += per_param * int(p.data.nbytes)
        return total

    # ---- state_dict -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {name: array or number}}, "param_groups": [{options..., "params": [index]}]}``.

        Parameters are numbered in group order, as in PyTorch; arrays are the live state (not copies).
        """
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            ids = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                ids.append(index[id(p)])
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": ids})
        state = {index[id(p)]: s for p, s in self.state.items() if id(p) in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restores options and per-parameter state saved by :meth:`state_dict` (arrays are copied onto
        each parameter's array module; floating state takes the parameter's dtype)."""
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError("optimizer state_dict must be a dict with 'state' and 'param_groups'")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"loaded state dict has {len(saved_groups)} parameter groups, the optimizer has "
                             f"{len(self.param_groups)}")
        for i, (group, saved) in enumerate(zip(self.param_groups, saved_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"parameter group {i} of the loaded state dict has {len(saved['params'])} "
                                 f"parameters, the optimizer's has {len(group['params'])}")
        by_index = {saved_id: p for group, saved in zip(self.param_groups, saved_groups)
                    for saved_id, p in zip(saved["params"], group["params"])}
        new_state: dict[Any, dict[str, Any]] = {}
        for key, values in state_dict["state"].items():
            p = by_index.get(int(key))
            if p is None:
                raise ValueError(f"loaded state dict has state for parameter {key}, which no group lists")
            new_state[p] = {name: self._cast_state(p, name, value) for name, value in values.items()}
        for group, saved in zip(self.param_groups, saved_groups):
            group.update({k: copy.deepcopy(v) for k, v in saved.items() if k != "params"})
        self.state = new_state

    @staticmethod
    def _cast_state(p: Any, name: str, value: Any) -> Any:
        if not hasattr(value, "shape") or not hasattr(value, "dtype"):
            return copy.deepcopy(value)
        if np.dtype(value.dtype).kind == "f" and value.ndim and tuple(value.shape) != tuple(p.data.shape):
            raise ValueError(f"state {name!r} has shape {tuple(value.shape)} but its parameter has "
                             f"{tuple(p.data.shape)}")
        xp = get_array_module(p.data)
        dtype = p.data.dtype if np.dtype(value.dtype).kind == "f" else value.dtype
        if xp is np and type(value).__module__.startswith("cupy"):
            value = value.get()
        return xp.array(value, dtype=dtype, copy=True)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines.extend(f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params")
        return "\n".join(lines + [")"])


def lerp_(a: Any, b: Any, weight: float) -> None:
    """a += weight * (b - a) in place, with PyTorch's CPU formula (exact at weight 1)."""
    if weight < 0.5:
        a += (b - a) * weight
    else:
        a[...] = b - (b - a) * (1.0 - weight)


def _same_place(value: Any, data: Any) -> bool:
    """Whether a state array already lives with its parameter's array: same array type and device,
    and (for floating state) the same dtype."""
    if type(value) is not type(data) or getattr(value, "device", None) != getattr(data, "device", None):
        return False
    return np.dtype(value.dtype).kind != "f" or value.dtype == data.dtype


def _fusable(be: Any, p: Any) -> bool:
    """Whether the multi-tensor kernels can update ``p``: C-contiguous float32/float64 arrays of the
    backend, gradient of the parameter's dtype (anything else takes the per-parameter path)."""
    data, grad = p.data, p.grad.data
    return (be.is_native(data) and be.is_native(grad) and data.dtype == grad.dtype
            and data.dtype in (np.float32, np.float64) and data.flags.c_contiguous and grad.flags.c_contiguous)


def fused_state(be: Any, state: dict[str, Any], name: str, like: Any, zero: bool = True) -> Any:
    """``state[name]`` for the multi-tensor kernels: created as zeros (or uninitialized, when the
    kernel writes it before reading it) when missing; an existing entry that is not a C-contiguous
    array of ``like``'s dtype and backend is replaced by a copy that is (e.g. loaded state)."""
    value = state.get(name)
    if value is None:
        value = state[name] = be.zeros(like.shape, like.dtype) if zero else be.empty(like.shape, like.dtype)
    elif not (be.is_native(value) and value.dtype == like.dtype and value.flags.c_contiguous):
        value = state[name] = be.xp.ascontiguousarray(be.asarray(value), dtype=like.dtype)
    return value
