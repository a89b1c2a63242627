"""Gradient buckets all-reduced during backward, as their gradients become final.

Each parameter's ``register_post_accumulate_grad_hook`` copies its final ``.grad`` into its slot of
a flat bucket (one dtype per bucket, up to ``bucket_cap_mb``, in reverse registration order, which
is about the order backward finishes them). When every slot of a bucket is filled, the bucket's
all-reduce starts, so communication overlaps the rest of backward. Buckets start strictly in index
order, so every rank issues the same collectives in the same order whatever its hook order. When
the last bucket has started, the reducer waits for all of them and writes the averages back into
the ``.grad`` of every parameter, before ``backward()`` returns.
"""

from __future__ import annotations

import time
from typing import Any, Iterable

import numpy as np

from ... import distributed as dist
from ...backend import to_numpy
from ...distributed.collectives import copy_into, engine_buffer, start_all_reduce


class _Bucket:
    """Parameters of one dtype sharing a flat buffer; ``pending`` holds the slots not filled yet."""

    def __init__(self, index: int, params: list[Any]):
        self.index = index
        self.params = params
        self.sizes = [int(np.prod(p.data.shape, dtype=np.int64)) for p in params]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(int).tolist()
        self.dtype = np.dtype(params[0].data.dtype)
        self.buffer = engine_buffer((self.offsets[-1],), self.dtype)
        self.pending: set[int] = set()
        self.work: Any = None

    def view(self, slot: int) -> Any:
        return self.buffer[self.offsets[slot]:self.offsets[slot + 1]]

    @property
    def nbytes(self) -> int:
        return self.offsets[-1] * self.dtype.itemsize


def plan_buckets(params: list[Any], cap_bytes: int) -> list[list[int]]:
    """Parameter indices per bucket: reverse order, one dtype per bucket, each bucket up to
    ``cap_bytes`` (a larger parameter gets a bucket of its own)."""
    buckets: list[list[int]] = []
    open_by_dtype: dict[np.dtype, tuple[list[int], int]] = {}
    for i in reversed(range(len(params))):
        dtype = np.dtype(params[i].data.dtype)
        nbytes = int(np.prod(params[i].data.shape, dtype=np.int64)) * dtype.itemsize
        current, used = open_by_dtype.get(dtype, (None, 0))
        if current is None or (used + nbytes > cap_bytes and current):
            current, used = [], 0
            buckets.append(current)
        current.append(i)
        open_by_dtype[dtype] = (current, used + nbytes)
    return buckets


class Reducer:
    """Hooks on ``params`` that average their gradients over the ranks during backward.

    Args:
        params: the parameters that require grad, in the same order on every rank.
        bucket_cap_bytes: the most bytes of gradient per bucket.
        names: the parameters' names (for errors).
    """

    def __init__(self, params: list[Any], bucket_cap_bytes: int, names: list[str]):
        self.params = params
        self.names = names
        self.world_size = dist.get_world_size()
        self.buckets = [_Bucket(b, [params[i] for i in indices])
                        for b, indices in enumerate(plan_buckets(params, bucket_cap_bytes))]
        position = {id(p): i for i, p in enumerate(params)}
        # id(param) -> (bucket, slot in the bucket, position in params)
        self.slot_of = {id(p): (bucket.index, slot, position[id(p)])
                        for bucket in self.buckets for slot, p in enumerate(bucket.params)}
        self.active = False
        self.next_to_start = 0
        self.locally_used = np.zeros(len(params), dtype=np.int32)
        self.track_use = False
        self.handles = [p.register_post_accumulate_grad_hook(self._on_grad_ready) for p in params]
        # Seconds spent starting and waiting for all-reduces in the last backward (benchmarks read it).
        self.last_communication_s = 0.0

    def prepare(self, used: set[int] | None) -> None:
        """Arms the hooks for the coming backward. ``used``: ids of the parameters the forward
        reached (find_unused_parameters); the others count as ready with a zero gradient now."""
        self.check_previous_finished()
        for bucket in self.buckets:
            bucket.pending = set(range(len(bucket.params)))
            bucket.work = None
        self.next_to_start = 0
        self.locally_used[:] = 0
        self.track_use = used is not None
        self.active = True
        self.last_communication_s = 0.0
        if used is not None:
            for p in self.params:
                if id(p) not in used:
                    b, slot, _ = self.slot_of[id(p)]
                    self.buckets[b].view(slot)[...] = 0
                    self._mark_ready(self.buckets[b], slot)

    def check_previous_finished(self) -> None:
        """RuntimeError when the last backward gave gradients to some parameters but not all."""
        if not self.active:
            return
        waiting = [(b, s) for b in self.buckets for s in b.pending]
        filled = sum(len(b.params) for b in self.buckets) - len(waiting)
        self.active = False
        if waiting and filled:
            missing = sorted(self.names[self.slot_of[id(b.params[s])][2]] for b, s in waiting)
            shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
            raise RuntimeError(f"DistributedDataParallel: the last backward produced no gradient for {shown}, so their "
                               "gradients were not averaged across the ranks: pass find_unused_parameters=True "
                               "when the forward leaves some parameters unused, or use all of them")

    def _on_grad_ready(self, param: Any) -> None:
        if not self.active:
            return  # no_sync(), or a backward through a forward that did not go through DDP
        b, slot, _ = self.slot_of[id(param)]
        bucket = self.buckets[b]
        if slot not in bucket.pending:
            raise RuntimeError(f"DistributedDataParallel: parameter {self.names[self.slot_of[id(param)][2]]} got its "
                               "gradient twice in one iteration (two backwards through one forward, or a parameter "
                               "reached after find_unused_parameters marked it unused); run the forward again before "
                               "each backward")
        copy_into(bucket.view(slot), param.grad.data.reshape(-1))
        self.locally_used[self.slot_of[id(param)][2]] = 1
        # Buckets in flight move on only when MPI is called: give them a turn while backward goes on.
        for started in self.buckets[:self.next_to_start]:
            started.work.poll()
        self._mark_ready(bucket, slot)

    def _mark_ready(self, bucket: _Bucket, slot: int) -> None:
        bucket.pending.discard(slot)
        start = time.perf_counter()
        while self.next_to_start < len(self.buckets) and not self.buckets[self.next_to_start].pending:
            ready = self.buckets[self.next_to_start]
            ready.work = start_all_reduce(ready.buffer, "sum", f"DistributedDataParallel gradient bucket {ready.index}")
            self.next_to_start += 1
        self.last_communication_s += time.perf_counter() - start
        if self.next_to_start == len(self.buckets) and self.active:
            self._finish()

    def _finish(self) -> None:
        """Waits for every bucket and writes the averaged gradients into ``.grad``."""
        start = time.perf_counter()
        self.active = False
        used = None
        if self.track_use:
            # A parameter no rank used keeps grad None, as in single-process training.
            used = engine_buffer((len(self.params),), np.int32)
            copy_into(used, self.locally_used)
            start_all_reduce(used, "max", "DistributedDataParallel unused-parameter map").wait()
            used = to_numpy(used)
        for bucket in self.buckets:
            bucket.work.wait()
            bucket.buffer /= bucket.dtype.type(self.world_size)
            for slot, p in enumerate(bucket.params):
                if used is not None and not used[self.slot_of[id(p)][2]]:
                    continue
                _set_grad(p, bucket.view(slot).reshape(p.data.shape))
        self.last_communication_s += time.perf_counter() - start

    def remove(self) -> None:
        """Takes the hooks off the parameters."""
        for handle in self.handles:
            handle.remove()


def _set_grad(param: Any, averaged: Any) -> None:
    """``param.grad`` := ``averaged`` (copied; moved to the parameter's device when the engine is elsewhere)."""
    if param.grad is None:
        from ...autograd import Tensor
        from ...backend import get_array_module
        xp = get_array_module(param.data)
        param.grad = Tensor(xp.empty_like(param.data))
    copy_into(param.grad.data, averaged)


def parameters_reached(outputs: Any) -> set[int]:
    """Ids of the leaf tensors the autograd graph of ``outputs`` (Tensors, nested in tuples, lists
    and dicts) reaches: the parameters the forward used."""
    from ...autograd import Tensor
    from ...autograd.graph import AccumulateGrad

    roots: list[Any] = []

    def collect(value: Any) -> None:
        if isinstance(value, Tensor):
            if value.grad_fn is not None:
                roots.append(value.grad_fn)
            elif value.requires_grad:
                reached.add(id(value))
        elif isinstance(value, (tuple, list)):
            for v in value:
                collect(v)
        elif isinstance(value, dict):
            for v in value.values():
                collect(v)

    reached: set[int] = set()
    collect(outputs)
    seen: set[int] = set()
    stack = roots
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, AccumulateGrad):
            leaf = node.variable
            if leaf is not None:
                reached.add(id(leaf))
            continue
        for edge in node.next_edges or ():
            if edge is not None:
                stack.append(edge[0])
    return reached


def as_list(params: Iterable[Any]) -> list[Any]:
    """Parameters without repeats (a shared parameter is reduced once)."""
    unique, seen = [], set()
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            unique.append(p)
    return unique
