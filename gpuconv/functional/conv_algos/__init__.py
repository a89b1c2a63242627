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

An algorithm that calls primitives the backends already have (a different chunking of im2col, a
choice among them by shape) is one file: ``register(MyAlgorithm())``, and ``unregister(name)``
removes it (tests/test_conv_registry.py registers such a one from outside and checks that
``auto``, the autotuner, the bench and the estimator all run it). A built-in one with kernels of
its own adds, besides its file here and its line in ``BUILT_IN`` below: its primitives, declared in
gpuconv/functional/conv_primitives.py (``ConvPrimitives``, and what they allocate in
``ConvMemoryPrimitives``) and implemented by the backends (the kernel and its launcher in
gpuconv/backend/cuda/, the NumPy version in gpuconv/backend/numpy/, the memory estimator's
shape-only stand-ins in gpuconv/memory/_meta.py), and its tests.

What an algorithm allocates and where the kernels stop are facts of the launchers in
gpuconv/backend/cuda/ (the column buffers, the transposed or flipped weights, the kernel version
that runs, the split-K partial sums, the 32-bit indexing), so the algorithm objects ask the current
backend for them (``be.conv2d_im2col_workspace(g, direction, itemsize, chunk)``,
``be.conv2d_direct_workspace(...)``, ``be.conv2d_implicit_gemm_unsupported_reason(g)``, ...:
``ConvMemoryPrimitives``) and nothing under gpuconv.functional imports gpuconv.backend.cuda. Every
backend answers with the kernel backends' numbers: the workspace an algorithm reports is, by
definition, what the cupy and emulated backends allocate (``F.conv2d_workspace_bytes``), and
implicit GEMM refuses the same geometries everywhere, so a program that runs on the CPU runs on a
GPU and ``auto`` chooses the same algorithms on every backend. What the numpy backend's own code
allocates is its ``conv2d_*_transient_bytes``, which the memory estimator counts; the estimator's
shape-only backend answers all of these from the class of the backend it stands in for.
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
