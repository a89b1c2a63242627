"""Launchers for kernels/loss.cu (shared by the cupy and emulated backends): softmax cross entropy
forward and backward over integer class targets, the target check, and fit()'s count of correct
classifications.

Forward: 2 launches (the per-row losses, then a one-block fixed-order reduction; 1 for
reduction="none"), allocating two row-sized arrays besides the result. Backward: 2 launches (the
one-block scale, then the per-row kernel writing dlogits; 1 for "none"), allocating one element
besides dlogits. The per-row kernels run a warp or a block per row for (N, C) logits and a thread
per row for (N, C, d1, ...) (:func:`~.softmax.row_schedule`). The target check: 1 launch and a
read back of one int64.
"""

from __future__ import annotations

import numpy as np

from .softmax import row_schedule

REDUCE_BLOCK = 256  # kBlock in loss.cu
TARGET_DTYPES = {np.dtype(np.int32): "i32", np.dtype(np.int64): "i64"}


def _rows_layout(logits) -> tuple[int, int, int]:
    """(rows, classes, inner) of logits (C,), (N, C) or (N, C, d1, ...)."""
    if logits.ndim == 1:
        return 1, int(logits.shape[0]), 1
    classes = int(logits.shape[1])
    inner = int(np.prod(logits.shape[2:], dtype=np.int64))
    return int(logits.shape[0]) * inner, classes, inner


class LossKernels:
    def _targets(self, target):
        """Target as a C-contiguous int32 or int64 array, and its kernel suffix (other integer
        types are converted to int64 first)."""
        if np.dtype(target.dtype) not in TARGET_DTYPES:
            target = target.astype(np.int64)
        target = self.contiguous(target)
        return target.reshape(-1), TARGET_DTYPES[np.dtype(target.dtype)]

    def first_bad_target(self, target, classes: int, ignore_index: int) -> int:
        """The smallest flat index of a target outside [0, classes) that is not ignore_index, or -1.
        One launch and a read back of one int64 (a synchronization)."""
        flat, suffix = self._targets(target)
        if flat.size == 0:
            return -1
        result = self.empty((1,), np.int64)
        kernel = self.module("loss.cu").get_function(f"check_targets_{suffix}")
        kernel((1,), (REDUCE_BLOCK,), (flat, np.int64(flat.size), np.int32(classes), np.int64(ignore_index), result))
        return int(self.to_numpy(result)[0])

    def cross_entropy(self, logits, target, weight, ignore_index: int, reduction: str, label_smoothing: float):
        """Loss of :func:`gpuconv.functional.cross_entropy` (arguments checked there)."""
        logits = self.contiguous(logits)
        flat, suffix = self._targets(target)
        rows, classes, inner = _rows_layout(logits)
        dtype = logits.dtype
        losses = self.empty((rows,), dtype)
        weights = self.empty((rows,), dtype)
        if rows:
            name, grid, block = row_schedule(rows, classes, inner)
            self.kernel("loss.cu", f"cross_entropy_rows{name}_{suffix}", dtype)(
                grid, block, (logits, flat, logits if weight is None else weight, np.int32(weight is not None),
                              np.int64(rows), np.int32(classes), np.int64(inner), np.int64(ignore_index),
                              np.float64(label_smoothing), losses, weights))
        if reduction == "none":
            return losses.reshape(target.shape)
        out = self.empty((), dtype)
        self.kernel("loss.cu", "cross_entropy_reduce", dtype)(
            (1,), (REDUCE_BLOCK,), (losses, weights, np.int64(rows), np.int32(reduction == "mean"), out))
        return out

    def cross_entropy_backward(self, dloss, logits, target, weight, ignore_index: int, reduction: str,
                               label_smoothing: float):
        """dlogits of :func:`gpuconv.functional.cross_entropy_backward`: ``dloss`` is a 0-D array of
        the logits' dtype (mean, sum) or target-shaped (none)."""
        logits = self.contiguous(logits)
        flat, suffix = self._targets(target)
        rows, classes, inner = _rows_layout(logits)
        dtype = logits.dtype
        w = logits if weight is None else weight
        dlogits = self.empty(logits.shape, dtype)
        if reduction == "none":
            scale = self.contiguous(dloss.astype(dtype, copy=False)).reshape(-1)
        else:
            scale = self.empty((1,), dtype)
            self.kernel("loss.cu", f"cross_entropy_scale_{suffix}", dtype)(
                (1,), (REDUCE_BLOCK,), (flat, w, np.int32(weight is not None), np.int64(rows), np.int64(ignore_index),
                                        self.contiguous(dloss.astype(dtype, copy=False)).reshape(1),
                                        np.int32(reduction == "mean"), scale))
        if rows:
            name, grid, block = row_schedule(rows, classes, inner)
            self.kernel("loss.cu", f"cross_entropy_backward{name}_{suffix}", dtype)(
                grid, block, (logits, flat, w, np.int32(weight is not None), np.int64(rows), np.int32(classes),
                              np.int64(inner), np.int64(ignore_index), np.float64(label_smoothing), scale,
                              np.int32(reduction == "none"), dlogits))
        return dlogits

    def accumulate_loss(self, total, loss, scale: float) -> None:
        """total (float64, 1 element) += scale * sum(loss) in place. One launch."""
        loss = self.contiguous(loss)
        if loss.dtype not in (np.float32, np.float64):
            loss = loss.astype(np.float64)
        self.kernel("loss.cu", "accumulate_loss", loss.dtype)(
            (1,), (REDUCE_BLOCK,), (loss.reshape(-1), np.int64(loss.size), np.float64(scale), total))

    def count_correct(self, outputs, target, count) -> None:
        """count (int64, 1 element) += the number of rows of outputs (N, C) whose argmax equals the
        target (N,). One launch."""
        outputs = self.contiguous(outputs)
        flat, suffix = self._targets(target)
        rows, classes = outputs.shape
        if rows == 0 or classes == 0:
            return
        self.kernel("loss.cu", f"count_correct_{suffix}", outputs.dtype)(
            (1,), (REDUCE_BLOCK,), (outputs, flat, np.int64(rows), np.int32(classes), count))
