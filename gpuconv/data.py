"""Mini-batches from in-memory arrays or any Dataset, prepared on the host and moved to the current backend.

    for xb, yb in DataLoader(x, y, batch_size=64, shuffle=True, seed=0): ...
    for xb, yb in DataLoader((x, y), batch_size=64, transform=transforms.RandomHorizontalFlip()): ...
    for xb, yb in DataLoader(my_dataset, batch_size=64, num_workers=4): ...
    for xb, yb in DataLoader(x, y, batch_size=64, sampler=DistributedSampler(x)): ...  # this rank's share

``num_workers`` threads (not processes) prepare the next batches while the main thread trains:
indexing, transforms and collation run in the threads; moving a batch to the device stays in the
main thread. NumPy releases the GIL in most array work, so threads help when transforms dominate.
Random transforms draw from a generator per batch derived from the loader's generator, so a seed
gives the same batches whatever ``num_workers`` is.
"""

from __future__ import annotations

import collections
import numbers
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterator

import numpy as np

from .backend import asarray
from .random import default_generator
from .transforms import random_source


class _ArrayColumns:
    """A dataset over arrays of equal length (PyTorch's ``TensorDataset``): sample i is
    ``(a[i], b[i], ...)``, or ``a[i]`` for a single array."""

    def __init__(self, arrays: list[np.ndarray]):
        self.arrays = arrays

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index: int) -> Any:
        return self.arrays[0][index] if len(self.arrays) == 1 else tuple(a[index] for a in self.arrays)

    def batch(self, index: np.ndarray) -> Any:
        """Samples ``index`` already stacked (one fancy-indexing copy per array)."""
        return self.arrays[0][index] if len(self.arrays) == 1 else tuple(a[index] for a in self.arrays)


def _host_array(a: Any, name: str) -> np.ndarray:
    if not isinstance(a, np.ndarray):
        if hasattr(a, "__cuda_array_interface__"):
            raise TypeError(f"{name} must be a NumPy array (the loader moves each batch to the backend); "
                            "got a device array")
        try:
            a = np.asarray(a)
        except ValueError:
            raise ValueError(f"{name} holds samples of different shapes; pad them to one shape, or pass a Dataset "
                             "and a collate_fn") from None
    if a.ndim < 1:
        raise ValueError(f"{name} must have a sample dimension, got a 0-D array")
    if a.dtype.hasobject:
        raise TypeError(f"{name} must be a numeric array; it has dtype object (samples of different shapes?): "
                        "pass a Dataset and a collate_fn instead")
    return a


def default_collate(samples: list[Any]) -> Any:
    """Stacks samples into a batch: arrays and numbers into one array with a leading batch axis,
    tuples and lists column by column, dicts key by key.

    Raises:
        TypeError / ValueError naming the sample that differs (another type or shape).
    """
    first = samples[0]
    if isinstance(first, (tuple, list)):
        for i, sample in enumerate(samples):
            if not isinstance(sample, (tuple, list)) or len(sample) != len(first):
                raise TypeError(f"sample {i} of the batch is {_describe(sample)} but sample 0 is a "
                                f"{type(first).__name__} of {len(first)}: every sample must have the same structure")
        return tuple(default_collate([s[k] for s in samples]) for k in range(len(first)))
    if isinstance(first, dict):
        for i, sample in enumerate(samples):
            if not isinstance(sample, dict) or sample.keys() != first.keys():
                raise TypeError(f"sample {i} of the batch has keys {_describe(sample)} but sample 0 has "
                                f"{sorted(first)}")
        return {key: default_collate([s[key] for s in samples]) for key in first}
    if isinstance(first, (np.ndarray, np.generic, numbers.Number)):
        arrays = []
        for i, sample in enumerate(samples):
            if hasattr(sample, "__cuda_array_interface__"):
                raise TypeError(f"sample {i} is a device array; datasets must return NumPy arrays (the loader "
                                "moves each batch to the backend)")
            if not isinstance(sample, (np.ndarray, np.generic, numbers.Number)):
                raise TypeError(f"sample {i} of the batch is {_describe(sample)} but sample 0 is "
                                f"{_describe(first)}")
            arrays.append(np.asarray(sample))
        shapes = {a.shape for a in arrays}
        if len(shapes) > 1:
            other = next(i for i, a in enumerate(arrays) if a.shape != arrays[0].shape)
            raise ValueError(f"cannot stack samples of different shapes: sample 0 has shape {arrays[0].shape}, "
                             f"sample {other} has shape {arrays[other].shape}; give the DataLoader a "
                             "collate_fn (or a transform that makes the shapes equal)")
        return np.stack(arrays)
    raise TypeError(f"default_collate cannot batch samples of type {type(first).__name__}; return arrays, "
                    "numbers, or tuples / dicts of them from the dataset, or pass collate_fn")


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return str(sorted(value))
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    return f"a {type(value).__name__}"


def _to_backend(batch: Any) -> Any:
    if isinstance(batch, (np.ndarray, np.generic)):
        return asarray(batch)
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_backend(b) for b in batch)
    if isinstance(batch, dict):
        return {k: _to_backend(v) for k, v in batch.items()}
    return batch


def _check_callable(value: Any, name: str) -> Any:
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be a callable or None, got {type(value).__name__}")
    return value


def _check_int(value: Any, name: str, low: int) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
        kind = "positive" if low == 1 else "non-negative"
        raise ValueError(f"{name} must be a {kind} int, got {value!r}")
    return int(value)


class DataLoader:
    """Iterates over a dataset in batches.

    Args:
        dataset: what to batch, one of
            - an array (N, ...), with the targets as ``y``;
            - a tuple of arrays of equal length ``(x, y, ...)``: sample i is ``(x[i], y[i], ...)``;
            - a Dataset: any object with ``__len__`` and ``__getitem__(i)`` returning a sample (an
              array, a number, or a tuple / dict of them), such as a list of ``(x, y)`` pairs.
        y: targets (N, ...) when ``dataset`` is an array, else None.
        batch_size: samples per batch (the last one may be smaller unless ``drop_last``).
        shuffle: a new random order every epoch (each ``iter()``).
        drop_last: drop the last batch when it is smaller than ``batch_size``.
        seed: seeds the loader's own generator (order and random transforms), so the sequence of
            epochs is reproducible; None draws from ``gpuconv.random.default_generator()``.
        transform: applied to each sample's input (the whole sample when it is not a tuple), on the
            host, e.g. ``gpuconv.transforms.Compose([...])``. It must not modify its argument in place.
        target_transform: applied to each sample's target (second item of the tuple).
        collate_fn: turns a list of samples into a batch (default: :func:`default_collate`); its
            result's NumPy arrays (also inside tuples, lists, dicts) are moved to the backend.
        num_workers: 0 prepares batches in the main thread; k > 0 uses k threads that prepare up
            to 2k batches ahead. The batches are the same either way.
        dtype: casts each batch's input (the first item, or the batch itself) to this dtype, and
            floating targets too (integer class labels stay), e.g. float64 data from scikit-learn
            for a float32 model.
        sampler: the sample indices of an epoch, in order: an iterable with ``__len__`` such as
            :class:`DistributedSampler` (iterated anew each epoch; call its ``set_epoch``).
            Replaces ``shuffle``, which must then be False.
    Yields:
        The batch as arrays of the current backend: ``xb``, ``(xb, yb)`` or the collate_fn's
        structure. With the default collation they are copies, so changing them never changes
        the dataset.
    """

    def __init__(self, dataset: Any, y: Any = None, batch_size: int = 1, shuffle: bool = False,
                 drop_last: bool = False, seed: int | None = None, *, transform: Callable | None = None,
                 target_transform: Callable | None = None, collate_fn: Callable | None = None,
                 num_workers: int = 0, dtype: Any = None, sampler: Any = None):
        self.dataset = self._dataset(dataset, y)
        if sampler is not None:
            if not (hasattr(sampler, "__iter__") and hasattr(sampler, "__len__")):
                raise TypeError(f"sampler must be an iterable of sample indices with __len__ (such as "
                                f"DistributedSampler), got {type(sampler).__name__}")
            if shuffle:
                raise ValueError("shuffle must be False when a sampler is given (the sampler sets the order; "
                                 "DistributedSampler(shuffle=True) shuffles)")
        self.sampler = sampler
        self.batch_size = _check_int(batch_size, "batch_size", 1)
        if seed is not None:
            _check_int(seed, "seed", 0)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = seed
        self.transform = _check_callable(transform, "transform")
        self.target_transform = _check_callable(target_transform, "target_transform")
        self.collate_fn = _check_callable(collate_fn, "collate_fn")
        self.num_workers = _check_int(num_workers, "num_workers", 0)
        self.dtype = None if dtype is None else np.dtype(dtype)
        self._rng = np.random.default_rng(seed) if seed is not None else None

    @staticmethod
    def _dataset(dataset: Any, y: Any) -> Any:
        if isinstance(y, numbers.Number):
            raise TypeError(f"y must be an array of targets or None, got {y!r}; pass batch_size= by keyword")
        if isinstance(dataset, tuple):
            if y is not None:
                raise TypeError("y must be None when dataset is a tuple of arrays (the targets are in the tuple)")
            if not dataset or not all(isinstance(a, np.ndarray) or hasattr(a, "__cuda_array_interface__")
                                      for a in dataset):
                raise TypeError("dataset as a tuple must hold arrays of equal length, such as (x, y); got a tuple "
                                f"of {', '.join(type(a).__name__ for a in dataset) or 'nothing'}")
            arrays = [_host_array(a, f"dataset[{i}]") for i, a in enumerate(dataset)]
            lengths = [len(a) for a in arrays]
            if len(set(lengths)) > 1:
                raise ValueError(f"the arrays of the dataset tuple must have the same number of samples, got {lengths}")
            return _ArrayColumns(arrays)
        if isinstance(dataset, (np.ndarray, np.generic)) or hasattr(dataset, "__cuda_array_interface__"):
            x = _host_array(dataset, "x")
            if y is None:
                return _ArrayColumns([x])
            y = _host_array(y, "y")
            if len(y) != len(x):
                raise ValueError(f"x and y must have the same number of samples, got {len(x)} and {len(y)}")
            return _ArrayColumns([x, y])
        if isinstance(dataset, collections.abc.Mapping) or not (hasattr(dataset, "__len__")
                                                                and hasattr(dataset, "__getitem__")):
            raise TypeError("dataset must be an array, a tuple of arrays (x, y) or a Dataset (an object with "
                            f"__len__ and __getitem__), got {type(dataset).__name__}")
        if y is not None:
            if not isinstance(dataset, list):
                raise TypeError("y must be None when dataset is a Dataset (its samples hold the targets)")
            # A plain list of numbers or equal-shaped samples is an array, as before.
            return DataLoader._dataset(_host_array(dataset, "x"), y)
        return dataset

    @property
    def num_samples(self) -> int:
        """Samples per epoch (the sampler's length when there is one)."""
        return len(self.dataset) if self.sampler is None else len(self.sampler)

    def __len__(self) -> int:
        """Batches per epoch."""
        n = self.num_samples
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _order(self, rng: np.random.Generator) -> np.ndarray:
        n = len(self.dataset)
        if self.sampler is None:
            return rng.permutation(n) if self.shuffle else np.arange(n)
        order = np.fromiter((int(i) for i in self.sampler), dtype=np.int64)
        if len(order) != len(self.sampler):
            raise ValueError(f"the sampler yielded {len(order)} indices but its len() is {len(self.sampler)}")
        if len(order) and (order.min() < 0 or order.max() >= n):
            bad = int(order[(order < 0) | (order >= n)][0])
            raise IndexError(f"the sampler yielded index {bad}, outside the dataset of {n} samples")
        return order

    def __iter__(self) -> Iterator[Any]:
        rng = self._rng if self._rng is not None else default_generator()
        order = self._order(rng)
        per_sample = self.transform is not None or self.target_transform is not None
        # Drawn in the main thread, in order: batch b's transforms draw from a generator seeded by
        # (epoch_seed, b), whichever thread runs them.
        epoch_seed = int(rng.integers(2 ** 63)) if per_sample else 0
        batches = [(b, order[b * self.batch_size:(b + 1) * self.batch_size]) for b in range(len(self))]
        if self.num_workers == 0:
            for b, index in batches:
                yield _to_backend(self._prepare(b, index, epoch_seed))
            return
        # NOTE: the pool and its pending batches are dropped when the loop stops early (break).
        with ThreadPoolExecutor(self.num_workers, thread_name_prefix="gpuconv-data") as pool:
            pending = collections.deque()
            ahead = 2 * self.num_workers
            try:
                for b, index in batches:
                    pending.append(pool.submit(self._prepare, b, index, epoch_seed))
                    if len(pending) >= ahead:
                        yield _to_backend(pending.popleft().result())
                while pending:
                    yield _to_backend(pending.popleft().result())
            finally:
                for future in pending:
                    future.cancel()

    def _prepare(self, batch_index: int, index: np.ndarray, epoch_seed: int) -> Any:
        """One batch on the host: samples, transforms, collation, dtype cast."""
        if self.transform is None and self.target_transform is None and self.collate_fn is None \
                and isinstance(self.dataset, _ArrayColumns):
            return self._cast(self.dataset.batch(index))
        samples = [self.dataset[int(i)] for i in index]
        if self.transform is not None or self.target_transform is not None:
            with random_source(np.random.default_rng([epoch_seed, batch_index])):
                samples = [self._transform(s) for s in samples]
        batch = (self.collate_fn or default_collate)(samples)
        return self._cast(batch)

    def _transform(self, sample: Any) -> Any:
        if isinstance(sample, tuple) and len(sample) >= 2:
            x, target, *rest = sample
            if self.transform is not None:
                x = self.transform(x)
            if self.target_transform is not None:
                target = self.target_transform(target)
            return (x, target, *rest)
        if self.target_transform is not None:
            raise TypeError("target_transform needs samples that are (input, target) tuples, got "
                            f"{_describe(sample)}")
        return self.transform(sample)

    def _cast(self, batch: Any) -> Any:
        if self.dtype is None:
            return batch
        if isinstance(batch, np.ndarray):
            return batch.astype(self.dtype, copy=False)
        if isinstance(batch, tuple) and batch and isinstance(batch[0], np.ndarray):
            rest = tuple(a.astype(self.dtype, copy=False) if isinstance(a, np.ndarray) and a.dtype.kind == "f"
                         else a for a in batch[1:])
            return (batch[0].astype(self.dtype, copy=False),) + rest
        return batch


class DistributedSampler:
    """The sample indices of this rank's share of an epoch (PyTorch's ``DistributedSampler``).

    Each epoch the indices ``0..len(dataset)-1`` are shuffled with a generator seeded by
    ``(seed, epoch)`` (the same order on every rank), made a multiple of ``num_replicas`` (padded
    by repeating indices from the start, or truncated with ``drop_last``), and rank r takes
    positions ``r, r + num_replicas, ...``. So across ranks an epoch covers the dataset exactly
    once, plus at most ``num_replicas - 1`` repeated samples (or minus at most that many with
    ``drop_last``), and every rank gets the same number of samples (the same number of steps).

    Args:
        dataset: anything with ``len()`` (the DataLoader's dataset, or the array of inputs).
        num_replicas: the number of ranks (default: the process group's world size).
        rank: this rank (default: the process group's rank).
        shuffle: a new order each epoch (call :meth:`set_epoch` before each epoch).
        seed: the seed shared by every rank.
        drop_last: drop the tail instead of padding it.
    """

    def __init__(self, dataset: Any, num_replicas: int | None = None, rank: int | None = None,
                 shuffle: bool = True, seed: int = 0, drop_last: bool = False):
        if not hasattr(dataset, "__len__"):
            raise TypeError(f"dataset must have a len(), got {type(dataset).__name__}")
        if num_replicas is None or rank is None:
            from . import distributed
            if not distributed.is_initialized():
                raise ValueError("num_replicas and rank default to the process group's, which is not initialized: "
                                 "call gpuconv.distributed.init_process_group() first, or pass both")
            num_replicas = distributed.get_world_size() if num_replicas is None else num_replicas
            rank = distributed.get_rank() if rank is None else rank
        self.num_replicas = _check_int(num_replicas, "num_replicas", 1)
        if isinstance(rank, bool) or not isinstance(rank, numbers.Integral) or not 0 <= rank < self.num_replicas:
            raise ValueError(f"rank must be an int in [0, num_replicas={self.num_replicas}), got {rank!r}")
        self.rank = int(rank)
        self.dataset = dataset
        self.shuffle = bool(shuffle)
        self.seed = _check_int(seed, "seed", 0)
        self.drop_last = bool(drop_last)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch's order (every rank must pass the same epoch)."""
        self.epoch = _check_int(epoch, "epoch", 0)

    def __len__(self) -> int:
        """Samples of this rank per epoch."""
        n = len(self.dataset)
        return n // self.num_replicas if self.drop_last else -(-n // self.num_replicas)

    def __iter__(self) -> Iterator[int]:
        n = len(self.dataset)
        order = (np.random.default_rng([self.seed, self.epoch]).permutation(n) if self.shuffle
                 else np.arange(n))
        total = len(self) * self.num_replicas
        if total > n:
            order = np.resize(order, total)  # repeats from the start
        order = order[:total]
        return iter(order[self.rank::self.num_replicas].tolist())
