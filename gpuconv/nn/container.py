"""Sequential, ModuleList, ModuleDict, and the bookkeeping containers share to add up what their
children keep."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Iterator

import numpy as np

from .module import Module


def chain_output_shape(modules: list[Module], input_shape) -> tuple[int, ...]:
    shape = tuple(input_shape)
    for module in modules:
        shape = module.output_shape(shape)
    return shape


class Sequential(Module):
    """Applies its modules in order; backward runs their backwards in reverse.

    ``Sequential(m0, m1, ...)`` names the children "0", "1", ...; ``Sequential(OrderedDict(...))``
    names them by key. Indexing gives a child, slicing a new Sequential of the same children.
    """

    def __init__(self, *args: Any):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, module in args[0].items():
                self.add_module(name, module)
        else:
            for index, module in enumerate(args):
                self.add_module(str(index), module)

    def _children_list(self) -> list[Module]:
        return [m for m in self._modules.values() if m is not None]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return Sequential(OrderedDict(list(self._modules.items())[index]))
        keys = list(self._modules)
        if not -len(keys) <= index < len(keys):
            raise IndexError(f"index {index} is out of range for a Sequential of {len(keys)} modules")
        return self._modules[keys[index]]

    def __setitem__(self, index: int, module: Module) -> None:
        keys = list(self._modules)
        if not -len(keys) <= index < len(keys):
            raise IndexError(f"index {index} is out of range for a Sequential of {len(keys)} modules")
        self.add_module(keys[index], module)

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self._modules)), module)
        return self

    def forward(self, x: Any) -> Any:
        for module in self._children_list():
            x = module(x)
        return x

    def output_shape(self, input_shape):
        return chain_output_shape(self._children_list(), input_shape)


class Chain(Module):
    """Base of modules whose forward applies a fixed list of modules in order (``_chain()``), such as
    the model zoo's networks. Modules in the chain that are not children (a Flatten where PyTorch's
    forward calls ``torch.flatten``) still follow ``train()`` / ``eval()``."""

    def _chain(self) -> list[Module]:
        raise NotImplementedError

    def forward(self, x: Any) -> Any:
        for module in self._chain():
            x = module(x)
        return x

    def train(self, mode: bool = True) -> Module:
        super().train(mode)
        children = {id(child) for child in self.children()}
        for module in self._chain():
            if id(module) not in children:
                module.train(mode)
        return self

    def output_shape(self, input_shape):
        return chain_output_shape(self._chain(), input_shape)


class ModuleList(Module):
    """Holds modules in a list, registered as children "0", "1", ... (their parameters appear in
    ``parameters()`` and the state dict as "0.weight", ...), PyTorch's ``nn.ModuleList``. It has
    no forward: the module that owns it calls its entries."""

    def __init__(self, modules: Any = None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _index(self, index: int) -> str:
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
            raise TypeError(f"ModuleList indices must be ints or slices, got {type(index).__name__}")
        n = len(self._modules)
        if not -n <= index < n:
            raise IndexError(f"index {index} is out of range for a ModuleList of {n} modules")
        return str(index % n)

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return ModuleList(list(self._modules.values())[index])
        return self._modules[self._index(index)]

    def __setitem__(self, index: int, module: Module) -> None:
        self._check(module)
        self.add_module(self._index(index), module)

    def __delitem__(self, index: int | slice) -> None:
        modules = list(self._modules.values())
        if isinstance(index, slice):
            del modules[index]
        else:
            del modules[int(self._index(index))]
        # Renumber, as PyTorch does, so the names stay "0" .. "len-1".
        self._modules.clear()
        for i, module in enumerate(modules):
            self.add_module(str(i), module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))

    def __iadd__(self, modules: Any) -> ModuleList:
        return self.extend(modules)

    @staticmethod
    def _check(module: Any) -> None:
        if not isinstance(module, Module):
            raise TypeError(f"ModuleList entries must be Modules, got {type(module).__name__}")

    def append(self, module: Module) -> ModuleList:
        self._check(module)
        self.add_module(str(len(self._modules)), module)
        return self

    def extend(self, modules: Any) -> ModuleList:
        if isinstance(modules, Module) and not isinstance(modules, (ModuleList, Sequential)):
            raise TypeError(f"ModuleList.extend needs an iterable of Modules, got a {type(modules).__name__}")
        for module in list(modules):
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> None:
        self._check(module)
        modules = list(self._modules.values())
        modules.insert(index, module)
        self._modules.clear()
        for i, m in enumerate(modules):
            self.add_module(str(i), m)


class ModuleDict(Module):
    """Holds modules by name (registered as children, in insertion order), PyTorch's ``nn.ModuleDict``.
    It has no forward: the module that owns it calls its entries."""

    def __init__(self, modules: Any = None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    @staticmethod
    def _check(key: Any, module: Any) -> None:
        if not isinstance(key, str) or not key or "." in key:
            raise KeyError(f"ModuleDict keys must be non-empty strings without '.', got {key!r}")
        if not isinstance(module, Module):
            raise TypeError(f"ModuleDict[{key!r}] must be a Module, got {type(module).__name__}")

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self._check(key, module)
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._modules))

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def pop(self, key: str) -> Module:
        module = self._modules[key]
        del self._modules[key]
        return module

    def clear(self) -> None:
        self._modules.clear()

    def update(self, modules: Any) -> None:
        """Adds (or replaces) entries from a mapping or an iterable of (name, module) pairs."""
        pairs = modules.items() if hasattr(modules, "items") else modules
        for entry in pairs:
            if not isinstance(entry, (tuple, list)) or len(entry) != 2:
                raise TypeError(f"ModuleDict.update needs a mapping or (name, module) pairs, got {entry!r}")
            self[entry[0]] = entry[1]


__all__ = ["Chain", "ModuleDict", "ModuleList", "Sequential"]
