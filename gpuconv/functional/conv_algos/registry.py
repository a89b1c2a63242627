"""The registered convolution algorithms, by name, in registration order (the built-in ones first).

Everything that enumerates algorithms reads this: ``algo=`` validation, ``auto``'s autotuner
candidates, ``gpuconv-bench conv`` and ``list``, the memory estimator (through the workspace of the
algorithm that runs) and the tests. The order is the autotuner's tie-break (the earlier name wins).
"""

from __future__ import annotations

from .base import ConvAlgorithm

RESERVED = ("auto",)

_algorithms: dict[str, ConvAlgorithm] = {}


def register(algorithm: ConvAlgorithm) -> ConvAlgorithm:
    """Adds ``algorithm`` under ``algorithm.name``; returns it. ValueError for a name that is not a
    non-empty identifier, is reserved (``"auto"``) or is taken; TypeError for a non-ConvAlgorithm."""
    if not isinstance(algorithm, ConvAlgorithm):
        raise TypeError(f"register: algorithm must be a gpuconv.functional.conv_algos.ConvAlgorithm, got "
                        f"{type(algorithm).__module__}.{type(algorithm).__name__}")
    name = algorithm.name
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"register: the algorithm's name must be a non-empty identifier, got {name!r}")
    if name in RESERVED:
        raise ValueError(f"register: {name!r} is reserved (algo='auto' chooses among the registered algorithms)")
    if name in _algorithms:
        raise ValueError(f"register: a conv algorithm named {name!r} is already registered "
                         f"({_algorithms[name]!r}); unregister it first")
    _algorithms[name] = algorithm
    return algorithm


def unregister(name: str) -> ConvAlgorithm:
    """Removes the algorithm registered as ``name`` and returns it; ValueError naming the registered ones."""
    algorithm = get(name)
    del _algorithms[name]
    return algorithm


def get(name: str) -> ConvAlgorithm:
    """The algorithm registered as ``name``; ValueError naming the registered ones."""
    try:
        return _algorithms[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown conv algorithm {name!r}; the registered ones are "
                         f"{', '.join(map(repr, names()))}") from None


def names() -> tuple[str, ...]:
    """The registered algorithms' names, in registration order (``"auto"`` is not one)."""
    return tuple(_algorithms)


def algorithms() -> tuple[ConvAlgorithm, ...]:
    """The registered algorithms, in registration order."""
    return tuple(_algorithms.values())
