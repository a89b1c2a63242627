"""DistributedDataParallel: one model replica per rank, gradients averaged during backward."""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import numpy as np

from ... import distributed as dist
from ...distributed.collectives import copy_into, engine_buffer, native
from ...grad_mode import is_grad_enabled
from ..module import Module
from .reducer import Reducer, as_list, parameters_reached


def _coalesced_broadcast(arrays: list[Any], src: int = 0) -> None:
    """Broadcasts ``arrays`` (native, any dtypes) from ``src`` with one collective per dtype."""
    engine = dist.group.group().engine
    by_dtype: dict[np.dtype, list[Any]] = {}
    for a in arrays:
        by_dtype.setdefault(np.dtype(a.dtype), []).append(a)
    for dtype, group in by_dtype.items():
        sizes = [int(a.size) for a in group]
        flat = engine_buffer((sum(sizes),), dtype)
        offset = 0
        for a, n in zip(group, sizes):
            copy_into(flat[offset:offset + n], a.reshape(-1) if a.flags.c_contiguous else a.ravel())
            offset += n
        engine.broadcast(flat, src)
        offset = 0
        for a, n in zip(group, sizes):
            copy_into(a, flat[offset:offset + n].reshape(a.shape))
            offset += n


class DistributedDataParallel(Module):
    """Data-parallel training: each rank runs ``module`` on its share of the batch; after
    ``loss.backward()`` every rank holds the gradients averaged over the ranks, so an optimizer
    step keeps the replicas identical (PyTorch's ``nn.parallel.DistributedDataParallel``).

        dist.init_process_group()
        model = DistributedDataParallel(model)        # broadcasts rank 0's parameters and buffers
        loss(model(x_of_this_rank), y).backward()     # gradients all-reduced in buckets during backward
        optimizer.step()

    Args:
        module: the model (the same architecture on every rank).
        bucket_cap_mb: the most MiB of gradients per bucket; a bucket's all-reduce starts as soon as
            its gradients are final, while backward goes on.
        broadcast_buffers: copy rank 0's buffers (BatchNorm running statistics) to every rank at
            each forward that records gradients, so every replica normalizes alike in eval mode.
        find_unused_parameters: walk the autograd graph after each forward and count the parameters
            it does not reach as ready (zero gradient), for models whose forward leaves some
            parameters unused; without it such a model makes the next forward raise.

    Raises:
        ValueError: the ranks' models differ (names, shapes, dtypes), naming the first difference.
        DistributedError: the process group is not initialized.
    """

    def __init__(self, module: Module, bucket_cap_mb: float = 25, broadcast_buffers: bool = True,
                 find_unused_parameters: bool = False):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"module must be a gpuconv.nn.Module, got {type(module).__name__}")
        if isinstance(bucket_cap_mb, bool) or not isinstance(bucket_cap_mb, (int, float)) or not bucket_cap_mb > 0:
            raise ValueError(f"bucket_cap_mb must be a positive number, got {bucket_cap_mb!r}")
        dist.group.group().require_healthy()
        self.module = module
        self.broadcast_buffers = bool(broadcast_buffers)
        self.find_unused_parameters = bool(find_unused_parameters)
        self.bucket_cap_mb = float(bucket_cap_mb)
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        params = as_list(p for _, p in named)
        first_name: dict[int, str] = {}
        for n, p in named:
            first_name.setdefault(id(p), n)
        names = [first_name[id(p)] for p in params]
        self._check_same_model(module)
        _coalesced_broadcast([p.data for p in module.parameters()] + self._buffers_to_sync())
        self.reducer = Reducer(params, int(self.bucket_cap_mb * 2 ** 20), names)
        self._sync = True

    @staticmethod
    def _signature(module: Module) -> list[tuple]:
        entries = [("parameter", n, tuple(p.data.shape), str(p.data.dtype), bool(p.requires_grad))
                   for n, p in module.named_parameters()]
        entries += [("buffer", n, tuple(native(b).shape), str(native(b).dtype), False)
                    for n, b in module.named_buffers() if b is not None]
        return entries

    def _check_same_model(self, module: Module) -> None:
        everyone = dist.all_gather_object(self._signature(module))
        reference = everyone[0]
        for rank, signature in enumerate(everyone[1:], start=1):
            if signature == reference:
                continue
            for i in range(max(len(signature), len(reference))):
                mine = signature[i] if i < len(signature) else None
                theirs = reference[i] if i < len(reference) else None
                if mine != theirs:
                    raise ValueError("DistributedDataParallel: the ranks' models differ: rank 0 has "
                                     f"{_entry(theirs)} where rank {rank} has {_entry(mine)} (every rank must wrap the "
                                     "same architecture, with the same dtypes and frozen parameters)")

    def _buffers_to_sync(self) -> list[Any]:
        return [native(b) for _, b in self.module.named_buffers() if b is not None]

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        # As PyTorch: a forward under no_grad (evaluation) or no_sync() communicates nothing, so
        # one rank may evaluate alone.
        reduce = is_grad_enabled() and self._sync
        if reduce:
            self.reducer.check_previous_finished()
        if reduce and self.broadcast_buffers and dist.get_world_size() > 1:
            buffers = self._buffers_to_sync()
            if buffers:
                _coalesced_broadcast(buffers)
        outputs = self.module(*inputs, **kwargs)
        if reduce:
            self.reducer.prepare(parameters_reached(outputs) if self.find_unused_parameters else None)
        return outputs

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Within the block, backward accumulates gradients locally without communication; the first
        backward after it averages the accumulated gradients (gradient accumulation)."""
        previous = self._sync
        self._sync = False
        try:
            yield
        finally:
            self._sync = previous

    @property
    def last_communication_s(self) -> float:
        """Seconds the last backward spent starting and waiting for gradient all-reduces."""
        return self.reducer.last_communication_s

    def bucket_sizes(self) -> list[int]:
        """Bytes of each gradient bucket, in the order they are all-reduced."""
        return [b.nbytes for b in self.reducer.buckets]

    def extra_repr(self) -> str:
        return (f"world_size={dist.get_world_size()}, buckets={len(self.reducer.buckets)}, "
                f"bucket_cap_mb={self.bucket_cap_mb:g}, broadcast_buffers={self.broadcast_buffers}, "
                f"find_unused_parameters={self.find_unused_parameters}")


def _entry(entry: tuple | None) -> str:
    if entry is None:
        return "nothing"
    kind, name, shape, dtype, requires_grad = entry
    frozen = "" if requires_grad or kind == "buffer" else " (frozen)"
    return f"{kind} {name!r} of shape {shape} {dtype}{frozen}"
