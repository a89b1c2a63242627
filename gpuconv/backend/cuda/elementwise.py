"""Launchers for kernels/elementwise.cu (shared by the cupy and emulated backends): one launch per
call. The activations allocate only their result; the optimizer step, a small table (see
:meth:`ElementwiseKernels.multi_tensor_step`).

The multi-tensor optimizer update takes a device table of parameter / gradient / state addresses,
sizes and per-tensor scalars (not one contiguous buffer with ``Parameter.data`` / ``.grad`` as
views into it): parameters, gradients and state stay ordinary arrays that users, ``state_dict``,
``zero_grad(set_to_none=True)`` and the modules may replace at any time, and the table costs one
small host-to-device copy per step.
"""

from __future__ import annotations

import numpy as np

from ..optimizer_records import check_step_records
from .batchnorm import _address

MT_BLOCK = 256  # threads per block of the multi-tensor optimizer kernels
MT_CHUNK = 2048  # elements per block (8 per thread)
TABLE_ROW = 9  # kRow in elementwise.cu
_TABLE_COLUMNS = ("param", "grad", "state0", "state1", "state2")  # the address entries of a row, for reports


def multi_tensor_table_bytes(sizes: list[int]) -> int:
    """Bytes of the int64 address table one :meth:`ElementwiseKernels.multi_tensor_step` launch
    allocates (and frees on return) for tensors of ``sizes`` elements: 9 entries per non-empty tensor
    plus 2 per block of MT_CHUNK elements."""
    sizes = [int(n) for n in sizes if n]
    return 8 * (TABLE_ROW * len(sizes) + 2 * sum(-(-n // MT_CHUNK) for n in sizes))


class ElementwiseKernels:
    @staticmethod
    def multi_tensor_step_bytes(sizes: list[int]) -> int:
        """The address table of one :meth:`multi_tensor_step` (see :func:`multi_tensor_table_bytes`)."""
        return multi_tensor_table_bytes(sizes)

    def _map(self, op: str, arrays: tuple, extra: tuple = ()):
        """out = op(arrays...) elementwise over C-contiguous arrays of one shape and dtype."""
        first = arrays[0]
        out = self.empty(first.shape, first.dtype)
        n = first.size
        # The kernels finish a length that is not a whole number of vectors with a scalar tail, so
        # only alignment decides.
        vec = all(_address(a) % 16 == 0 for a in (*arrays, out))
        args = (*arrays, out, np.int64(n), *extra, np.int32(vec))
        self.launch_1d(self.kernel("elementwise.cu", op, first.dtype), n, args)
        return out

    def relu(self, x):
        return self._map("relu_forward", (x,))

    def relu_backward(self, dy, x):
        return self._map("relu_backward", (dy, x))

    def leaky_relu(self, x, negative_slope):
        return self._map("leaky_relu_forward", (x,), (x.dtype.type(negative_slope),))

    def leaky_relu_backward(self, dy, x, negative_slope):
        return self._map("leaky_relu_backward", (dy, x), (x.dtype.type(negative_slope),))

    def dropout_apply(self, x, mask, scale):
        """x * (mask ? scale : 0) elementwise (dropout from a given keep mask, and its backward).
        One launch; allocates only the result."""
        y = self.empty(x.shape, x.dtype)
        self.launch_1d(self.kernel("elementwise.cu", "dropout_apply", x.dtype), x.size,
                       (x, mask, y, np.int64(x.size), x.dtype.type(scale)))
        return y

    def dropout_device(self, x, p, scale, seed_source):
        """(y, keep mask) with the uniforms drawn by the array module's generator on the device (CuPy's
        on the cupy backend, NumPy's on the emulated one), seeded once from ``seed_source`` (gpuconv's
        default NumPy generator) and again whenever that generator is replaced (manual_seed).
        One launch besides the generator's own; allocates y, the bool mask and a float32 buffer of
        uniforms (4 bytes per element, freed on return)."""
        if getattr(self, "_dropout_seed_source", None) is not seed_source:
            self._dropout_rng = self.xp.random.default_rng(int(seed_source.integers(2**63)))
            self._dropout_seed_source = seed_source
        u = self._dropout_rng.random(x.shape, dtype=np.float32)
        y = self.empty(x.shape, x.dtype)
        mask = self.empty(x.shape, np.bool_)
        self.launch_1d(self.kernel("elementwise.cu", "dropout_forward", x.dtype), x.size,
                       (x, u, y, mask, np.int64(x.size), np.float32(p), x.dtype.type(scale)))
        return y, mask

    def multi_tensor_step(self, op: str, rows: list, args: tuple) -> None:
        """One launch of the multi-tensor optimizer kernel ``op`` (``sgd_step``, ``adam_step``, ...)
        over every tensor of ``rows``, updating parameters and state in place.

        Args:
            rows: one :class:`~gpuconv.backend.optimizer_records.TensorRow` per tensor.
            args: the update's launch-scalar record (``optimizer_records.STEP_ARGS[op]``): the
                kernel's parameters after (table, ntensors, chunk), by name.

        Allocates a device copy of the int64 table: 9 entries per tensor plus 2 per block of
        MT_CHUNK elements (for ResNet-18's 62 tensors, 11.7 M parameters: about 92 KB), freed on
        return.
        """
        check_step_records(op, rows, args)
        rows = [row for row in rows if row.param.size]
        if not rows:
            return
        counts = np.array([row.param.size for row in rows], dtype=np.int64)
        blocks = -(-counts // MT_CHUNK)
        n = len(rows)
        table = np.empty(n * TABLE_ROW + 2 * int(blocks.sum()), dtype=np.int64)
        head = table[:n * TABLE_ROW].reshape(n, TABLE_ROW)
        head[:, :5] = [[0 if a is None else _address(a) for a in row.arrays] for row in rows]
        head[:, 5] = counts
        head[:, 6] = [row.flags for row in rows]
        head[:, 7:].view(np.float64)[...] = [(row.scalar0, row.scalar1) for row in rows]
        pairs = table[n * TABLE_ROW:].reshape(-1, 2)
        pairs[:, 0] = np.repeat(np.arange(n), blocks)
        pairs[:, 1] = np.concatenate([np.arange(b, dtype=np.int64) * MT_CHUNK for b in blocks])
        kernel = self.kernel("elementwise.cu", op, rows[0].param.dtype)
        self.launch_reaching(kernel, (len(pairs),), (MT_BLOCK,),
                             (self.asarray(table), np.int32(n), np.int32(MT_CHUNK), *args),
                             lambda: [(f"{column}[{i}]", a) for i, row in enumerate(rows)
                                      for column, a in zip(_TABLE_COLUMNS, row.arrays) if a is not None])
