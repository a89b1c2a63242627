"""The numpy backend's counterparts of backend/cuda/loss.py: cross entropy as NumPy expressions
(log-softmax with the maximum subtracted, a gather of the targets' log-probabilities, class
weights, label smoothing, then the reduction), and fit()'s count of correct classifications."""

from __future__ import annotations

import numpy as np


def _rows(a):
    """(N, C, d1, ...) -> (N*d1*..., C): one row of class scores per target."""
    if a.ndim == 1:
        return a.reshape(1, -1)
    return np.moveaxis(a, 1, -1).reshape(-1, a.shape[1])


def _unrows(rows, shape):
    if len(shape) == 1:
        return rows.reshape(shape)
    moved = rows.reshape((shape[0],) + tuple(shape[2:]) + (shape[1],))
    return np.ascontiguousarray(np.moveaxis(moved, -1, 1))


def _log_softmax_rows(logits):
    axis = 0 if logits.ndim == 1 else 1
    if logits.size == 0:
        return _rows(np.empty_like(logits))
    z = logits - logits.max(axis=axis, keepdims=True)
    return _rows(z - np.log(np.exp(z).sum(axis=axis, keepdims=True)))


def _target_weights(flat, ignored, weight, dtype):
    """Per-target weight: weight[target] (1 without weights), 0 for ignored targets."""
    safe = np.where(ignored, 0, flat)
    w = weight[safe] if weight is not None else np.ones(flat.shape, dtype=dtype)
    return np.where(ignored, w.dtype.type(0), w), safe


def _flat(target, ignore_index):
    flat = target.reshape(-1).astype(np.int64)
    return flat, flat == int(ignore_index)


class LossOps:
    def first_bad_target(self, target, classes: int, ignore_index: int) -> int:
        flat, ignored = _flat(target, ignore_index)
        bad = ~ignored & ((flat < 0) | (flat >= classes))
        return int(np.argmax(bad)) if bool(bad.any()) else -1

    def cross_entropy(self, logits, target, weight, ignore_index: int, reduction: str, label_smoothing: float):
        flat, ignored = _flat(target, ignore_index)
        classes = logits.shape[0 if logits.ndim == 1 else 1]
        eps = label_smoothing
        logp = _log_softmax_rows(logits)
        wt, safe = _target_weights(flat, ignored, weight, logits.dtype)
        picked = np.take_along_axis(logp, safe[:, None], axis=1)[:, 0]
        losses = -wt * picked
        if eps > 0:
            smooth = -(logp * weight[None, :]).sum(axis=1) if weight is not None else -logp.sum(axis=1)
            smooth = np.where(ignored, smooth.dtype.type(0), smooth)
            losses = (1 - eps) * losses + smooth * (eps / classes)
        losses = losses.astype(logits.dtype, copy=False)
        if reduction == "none":
            return losses.reshape(target.shape)
        total = losses.sum()
        if reduction == "sum":
            return np.asarray(total, dtype=logits.dtype)
        with np.errstate(invalid="ignore", divide="ignore"):
            # NOTE: every target ignored gives 0/0 = NaN, as in PyTorch.
            return np.asarray(total / wt.sum(), dtype=logits.dtype)

    def cross_entropy_backward(self, dloss, logits, target, weight, ignore_index: int, reduction: str,
                               label_smoothing: float):
        flat, ignored = _flat(target, ignore_index)
        classes = logits.shape[0 if logits.ndim == 1 else 1]
        eps = label_smoothing
        dtype = logits.dtype
        scale = dloss.reshape(-1).astype(dtype, copy=False)
        wt, safe = _target_weights(flat, ignored, weight, dtype)
        if reduction == "mean":
            with np.errstate(invalid="ignore", divide="ignore"):
                scale = scale / wt.sum()
        # dloss_i/dlogp[i, c] = -((1 - eps) * w[t_i] * [c == t_i] + eps / C * w[c]) (zero when ignored)
        rows = flat.shape[0]
        q = np.zeros((rows, classes), dtype=dtype)
        q[np.arange(rows), safe] = (1 - eps) * wt
        if eps > 0:
            class_w = weight[None, :] if weight is not None else np.ones((1, classes), dtype=dtype)
            q += np.where(ignored[:, None], dtype.type(0), class_w * dtype.type(eps / classes))
        with np.errstate(invalid="ignore"):
            dlogp = -q * (scale[:, None] if scale.shape[0] == rows else scale)
        prob = np.exp(_log_softmax_rows(logits))
        # NOTE: ignored targets get exactly zero gradient, even when every target is ignored and the
        # mean's 0/0 made the scale NaN (PyTorch does the same).
        dlogits = np.where(ignored[:, None], dtype.type(0), dlogp - prob * dlogp.sum(axis=1, keepdims=True))
        return _unrows(dlogits.astype(dtype, copy=False), tuple(logits.shape))

    def accumulate_loss(self, total, loss, scale: float) -> None:
        total += scale * float(loss.sum(dtype=np.float64))

    def count_correct(self, outputs, target, count) -> None:
        count += (outputs.argmax(axis=1) == target).sum()
