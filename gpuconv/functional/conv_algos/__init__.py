"""The convolution algorithms: one :class:`ConvAlgorithm` object per algorithm, in a registry.

Each algorithm carries its ``name``, where it applies (:meth:`~ConvAlgorithm.unsupported_reason`,
:meth:`~ConvAlgorithm.applies`), what it allocates (:meth:`~ConvAlgorithm.plan`,
:meth:`~ConvAlgorithm.workspace`) and its three directions (``forward``, ``backward_data``,
``backward_weight``), which call the backend's primitives for that algorithm. ``F.conv2d``,
``F.conv2d_backward``, ``algo="auto"``'s autotuner, ``gpuconv-bench conv`` and ``list``, the memory
estimator and the tests know algorithms only through :func:`get` and :func:`algorithms`: none of
them names one, so an algorithm registered here (a user's included) is run, tuned, benchmarked and
estimated with no other change. ``gpuconv.functional.conv_algo.heuristic`` still names the built-in
ones, because it is a measured rule about them.

Adding a built-in algorithm: one file here (its class), one line in ``BUILT_IN`` below, its
primitives on each backend (a kernel and its launcher in gpuconv/backend/cuda/, a NumPy version in
gpuconv/backend/numpy/) and its entry in the conv tests (they enumerate :func:`algorithms`).
Elsewhere: ``register(MyAlgorithm())`` and ``unregister("my_algorithm")``.

Facts about the kernels: the geometries implicit GEMM's 32-bit indexing can address, and what the
direct and implicit-GEMM launchers allocate (which kernel version runs, how many split-K partial
sums), live with the launchers in gpuconv/backend/cuda/. The algorithm objects ask the current
backend for them through backend methods named like the primitives
(``be.conv2d_direct_workspace(g, direction, itemsize)``,
``be.conv2d_implicit_gemm_workspace(...)``, ``be.conv2d_implicit_gemm_unsupported_reason(g)``), so
nothing under gpuconv.functional imports gpuconv.backend.cuda. Every backend answers them with the
kernel backends' numbers: the workspace an algorithm reports is, by definition, what the cupy and
emulated backends allocate (``F.conv2d_workspace_bytes``), and implicit GEMM refuses the same
geometries everywhere, so a program that runs on the CPU runs on a GPU and ``auto`` chooses the
same algorithms on every backend. The numpy backend's own, differently cut allocations are the
memory estimator's to replay (gpuconv/memory/_conv.py).
"""

from __future__ import annotations

from .base import DIRECTIONS, ConvAlgorithm, Plan
from .direct import Direct
from .gemm import Gemm
from .im2col import Im2col
from .implicit_gemm import ImplicitGemm
from .registry import algorithms, get, names, register, unregister

# Registration order is the autotuner's tie-break and the order of ``F.ALGOS``.
BUILT_IN = (Im2col(), Direct(), Gemm(), ImplicitGemm())
for _algorithm in BUILT_IN:
    register(_algorithm)

__all__ = ["BUILT_IN", "DIRECTIONS", "ConvAlgorithm", "Plan", "algorithms", "get", "names", "register",
           "unregister"]
