"""Checkpoints: a model's state dict, an optimizer's state and user metadata in one ``.npz`` file.

Layout of the archive (NumPy's zip of uncompressed ``.npy`` files, as ``np.savez`` writes; never unpickled):

- ``__gpuconv__``: a UTF-8 JSON manifest stored as a uint8 array:
  ``{"format": "gpuconv-checkpoint", "version": 1, "model": [names in state-dict order] or null,
  "optimizer": <tree> or null, "meta": <tree>}``.
- ``model/<name>``: each array of ``model.state_dict()``, as NumPy, bit for bit.
- ``optimizer/<path>`` and ``meta/<path>``: every array found in the optimizer state dict / the
  metadata, at the path of keys leading to it (e.g. ``optimizer/state/0/exp_avg``).

A <tree> is JSON in which arrays are replaced by ``{"__array__": key}``, tuples by
``{"__tuple__": [...]}`` and dicts by ``{"__dict__": [[key, value], ...]}`` so that int keys (the
optimizer's parameter indices), tuples (Adam's betas) and Python scalars come back exactly as saved
(floats survive JSON exactly; NaN and infinities included).

Loading trusts nothing in the file (:mod:`gpuconv.checkpoint_archive`): every member's name, dtype,
declared shape and size is checked (against the model, for its entries) before any array is read;
a member the manifest does not name is an error naming it; arrays are stored uncompressed and read
up to their declared size only. Optimizer state and metadata may nest at most :data:`MAX_DEPTH`
containers deep (save refuses deeper ones). A model entry whose values do not fit the model's
dtype (an integer out of range, a float beyond its largest finite value) is an error naming it;
NaN and infinities load with a warning, as :func:`save` warns.

The file is written to a temporary file in the same directory (``.<name>.<pid>.<random>.tmp``),
flushed to disk, then renamed over ``path`` with ``os.replace``: a crash mid-write leaves the
previous checkpoint untouched. A save that fails removes its temporary file; one killed outright
cannot, so each save also removes the temporary files of ``path`` left by processes that no
longer exist. The file gets the permissions ``open`` would give it (0666 less the umask), as
``np.savez`` does.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import warnings
import zipfile
from typing import Any

import numpy as np

from . import checkpoint_archive as archive_reader
from .backend import to_numpy
from .backend.base import array_kind

FORMAT = "gpuconv-checkpoint"
VERSION = 1
MANIFEST = "__gpuconv__"
#: How many containers (lists, tuples, dicts) deep optimizer state and metadata may nest.
MAX_DEPTH = 64
#: Largest manifest read (bytes); a real one is a few KiB per thousand arrays.
MAX_MANIFEST_BYTES = 256 << 20


class _Encoder:
    """Turns a nested state into a JSON tree, collecting its arrays under path keys."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays

    def encode(self, value: Any, path: str, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise ValueError(f"cannot save {path}: nested more than {MAX_DEPTH} containers deep "
                             "(gpuconv.checkpoint.MAX_DEPTH)")
        if array_kind(value) is not None or isinstance(value, np.generic):
            array = np.asarray(to_numpy(value))
            if array.dtype.hasobject:
                raise TypeError(f"cannot save {path}: arrays of Python objects are not supported")
            key = path
            while key in self.arrays:
                key += "_"
            self.arrays[key] = array
            return {"__array__": key, "__scalar__": isinstance(value, np.generic)}
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        if isinstance(value, tuple):
            return {"__tuple__": [self.encode(v, f"{path}/{i}", depth + 1) for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [self.encode(v, f"{path}/{i}", depth + 1) for i, v in enumerate(value)]
        if isinstance(value, dict):
            for k in value:
                if not isinstance(k, (str, int)) or isinstance(k, bool):
                    raise TypeError(f"cannot save {path}: dict keys must be str or int, got {k!r}")
            return {"__dict__": [[k, self.encode(v, f"{path}/{k}", depth + 1)] for k, v in value.items()]}
        raise TypeError(f"cannot save {path}: unsupported value of type {type(value).__name__} "
                        "(use arrays, numbers, strings, bools, None, lists, tuples and dicts)")


def _decode(tree: Any, arrays: Any) -> Any:
    if isinstance(tree, list):
        return [_decode(v, arrays) for v in tree]
    if isinstance(tree, dict):
        if "__array__" in tree:
            array = arrays[tree["__array__"]]
            return array[()] if tree.get("__scalar__") else array
        if "__tuple__" in tree:
            return tuple(_decode(v, arrays) for v in tree["__tuple__"])
        return {k: _decode(v, arrays) for k, v in tree["__dict__"]}
    return tree


def save(path: str | os.PathLike, model: Any, optimizer: Any = None, **meta: Any) -> None:
    """Saves ``model.state_dict()``, ``optimizer.state_dict()`` (when given) and ``meta`` to ``path``.

    Args:
        path: the file to write (conventionally ``*.npz``; no extension is added).
        model: an object with ``state_dict()`` -> ordered mapping name -> array (NumPy or CuPy), or None.
        optimizer: an object with ``state_dict()`` (a gpuconv.optim optimizer), or None.
        **meta: JSON-like metadata (numbers, strings, lists, dicts, arrays), returned by :func:`load`.

    Warns (``RuntimeWarning``) when a floating model entry holds NaN or infinity (a diverged
    model); the file is written all the same.

    Under an initialized ``gpuconv.distributed`` group of several ranks only rank 0 writes: every
    rank may call ``save`` (the others return at once); call ``gpuconv.distributed.barrier()``
    before another rank loads the file.
    """
    path = os.fspath(path)
    if _rank() != 0:
        return
    arrays: dict[str, np.ndarray] = {}
    model_keys = None
    if model is not None:
        model_keys = []
        for name, value in model.state_dict().items():
            if not isinstance(name, str):
                raise TypeError(f"model state_dict keys must be strings, got {name!r}")
            array = np.asarray(to_numpy(value))
            if array.dtype.hasobject:
                raise TypeError(f"cannot save model entry {name!r}: arrays of Python objects are not supported")
            arrays[f"model/{name}"] = array
            model_keys.append(name)
        _warn_non_finite(path, model_keys, arrays)
    manifest = {
        "format": FORMAT, "version": VERSION, "model": model_keys,
        "optimizer": None if optimizer is None else _Encoder(arrays).encode(optimizer.state_dict(), "optimizer"),
        "meta": _Encoder(arrays).encode(dict(meta), "meta"),
    }
    arrays[MANIFEST] = np.frombuffer(json.dumps(manifest).encode("utf-8"), dtype=np.uint8)
    directory = os.path.dirname(os.path.abspath(path))
    _remove_stale_temporaries(directory, os.path.basename(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.{os.getpid()}.", suffix=".tmp")
    except OSError as exc:
        # The temporary file's name means nothing to the caller: name the path they gave.
        reason = f"the folder {directory!r} does not exist" if not os.path.isdir(directory) else exc.strerror
        raise type(exc)(exc.errno, f"cannot save: {reason}", path) from None
    try:
        if hasattr(os, "fchmod"):  # mkstemp's 0600 (POSIX); elsewhere the default applies
            os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


def _rank() -> int:
    from . import distributed
    return distributed.get_rank() if distributed.is_initialized() else 0


def _warn_non_finite(path: str, names: list[str], arrays: dict[str, np.ndarray]) -> None:
    bad = [name for name in names if arrays[f"model/{name}"].dtype.kind in "fc"
           and not np.isfinite(arrays[f"model/{name}"]).all()]
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        warnings.warn(f"gpuconv.save({path!r}): the model holds NaN or infinite values in {shown} "
                      "(training diverged?)", RuntimeWarning, stacklevel=3)


_umask_lock = threading.Lock()


def _umask() -> int:
    # NOTE: the umask can only be read by setting it; the lock keeps two saving threads from
    # seeing each other's temporary 0 (other threads creating files meanwhile could, briefly).
    with _umask_lock:
        mask = os.umask(0)
        os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: the process exists but belongs to someone else
        return True
    return True


def _remove_stale_temporaries(directory: str, basename: str) -> None:
    """Removes ``.<basename>.<pid>.*.tmp`` files whose writer process no longer exists (a killed save)."""
    pattern = re.compile(re.escape(f".{basename}.") + r"(\d+)\.[A-Za-z0-9_]+\.tmp\Z")
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        match = pattern.match(name)
        if match is None or _pid_alive(int(match.group(1))):
            continue
        try:
            os.unlink(os.path.join(directory, name))
        except OSError:
            pass  # another save removed it first, or it cannot be removed: it is not ours to insist


def _fsync_directory(directory: str) -> None:
    # NOTE: makes the rename itself durable on POSIX; not possible (nor needed) everywhere.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _foreign_file(path: str) -> str | None:
    """Why ``path`` cannot be a gpuconv checkpoint judging by its first bytes (every checkpoint is a
    zip archive), or None when it may be one."""
    with open(path, "rb") as f:
        head = f.read(6)
    if head.startswith(b"PK"):
        return None
    if not head:
        return "the file is empty"
    if head.startswith(b"\x93NUMPY"):
        return "it holds a single .npy array, not an .npz archive"
    if head[:1] == b"\x80":
        return "it looks like a Python pickle"
    return "it is not a zip archive"


class NotACheckpointError(ValueError):
    """A file that was never a gpuconv checkpoint (as opposed to a damaged one)."""


def _not_a_checkpoint(path: str, why: str) -> ValueError:
    return NotACheckpointError(f"{path}: not a gpuconv checkpoint ({why}); gpuconv.load reads the .npz files that "
                      "gpuconv.save writes")


def _read_manifest(path: str, archive: zipfile.ZipFile, members: dict[str, archive_reader.Member]) -> dict[str, Any]:
    if MANIFEST not in members:
        raise _not_a_checkpoint(path, f"a zip archive without the {MANIFEST} manifest")
    member = members[MANIFEST]
    if member.dtype != np.uint8 or len(member.shape) != 1 or member.nbytes > MAX_MANIFEST_BYTES:
        raise ValueError(f"{path}: malformed manifest {MANIFEST!r} (a uint8 vector of at most {MAX_MANIFEST_BYTES} "
                         f"bytes expected, got {member.dtype} of shape {member.shape})")
    text = archive_reader.read(path, archive, member).tobytes()
    try:
        manifest = json.loads(text.decode("utf-8"))
    except RecursionError:
        raise ValueError(f"{path}: malformed manifest: nested too deeply (optimizer state and metadata may nest "
                         f"at most {MAX_DEPTH} containers: gpuconv.checkpoint.MAX_DEPTH)") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: malformed manifest ({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: not a gpuconv checkpoint (manifest format {manifest.get('format')!r})"
                         if isinstance(manifest, dict) else f"{path}: malformed manifest")
    if manifest.get("version") != VERSION:
        raise ValueError(f"{path}: checkpoint format version {manifest.get('version')!r} is not supported "
                         f"(this gpuconv reads version {VERSION})")
    if any(_tree_depth(manifest.get(part)) > MAX_DEPTH for part in ("optimizer", "meta")):
        raise ValueError(f"{path}: optimizer state or metadata nested more than {MAX_DEPTH} containers deep "
                         "(gpuconv.checkpoint.MAX_DEPTH)")
    return manifest


def _tree_depth(tree: Any) -> int:
    """How deep :func:`_decode` would recurse into ``tree`` (containers as :class:`_Encoder` counts
    them), found without recursion; stops early past :data:`MAX_DEPTH`."""
    deepest, stack = 0, [(tree, 0)]
    while stack and deepest <= MAX_DEPTH:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        children: Any = ()
        if isinstance(value, list):
            children = value
        elif isinstance(value, dict) and "__array__" not in value:
            if "__tuple__" in value:
                children = value["__tuple__"]
            elif isinstance(value.get("__dict__"), list):
                children = [pair[1] for pair in value["__dict__"] if isinstance(pair, list) and len(pair) == 2]
        if isinstance(children, list):
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _referenced(tree: Any) -> list[str]:
    """The array keys a manifest tree refers to (``{"__array__": key}``), without recursion."""
    keys, stack = [], [tree]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if "__array__" in value:
                keys.append(value["__array__"])
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return keys


def _check_names(path: str, manifest: dict[str, Any], members: dict[str, archive_reader.Member]) -> None:
    """Every member is one the manifest names, and every name the manifest uses is a member."""
    model = manifest.get("model")
    if model is not None and not (isinstance(model, list) and all(isinstance(k, str) for k in model)):
        raise ValueError(f"{path}: malformed manifest (the model's names must be a list of strings)")
    named = {MANIFEST, *(f"model/{name}" for name in model or ())}
    for tree in (manifest.get("optimizer"), manifest.get("meta")):
        for key in _referenced(tree):
            if not isinstance(key, str):
                raise ValueError(f"{path}: malformed manifest (array key {key!r} is not a string)")
            named.add(key)
    unexpected = sorted(set(members) - named)
    if unexpected:
        raise ValueError(f"{path}: member {unexpected[0] + '.npy'!r} is not named by the manifest"
                         + (f" (nor are {len(unexpected) - 1} more)" if len(unexpected) > 1 else "")
                         + "; a checkpoint holds nothing else")
    missing = sorted(named - set(members))
    if missing:
        raise ValueError(f"{path}: malformed checkpoint: the manifest names {missing[0]!r}, which is not in the "
                         "archive" + (f" (nor are {len(missing) - 1} more)" if len(missing) > 1 else ""))


def _open(path: str) -> zipfile.ZipFile:
    why = _foreign_file(path)
    if why is not None:
        raise _not_a_checkpoint(path, why)
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise ValueError(f"{path}: not a readable gpuconv checkpoint (corrupt or truncated?): {error}") from error


def load(path: str | os.PathLike, model: Any = None, optimizer: Any = None, strict: bool = True) -> dict[str, Any]:
    """Loads a checkpoint written by :func:`save` into ``model`` and ``optimizer`` (each optional).

    Args:
        path: the checkpoint file.
        model: receives ``model.load_state_dict(arrays, strict=strict)`` with NumPy arrays; before
            that the names, shapes and dtype kinds are checked against ``model.state_dict()``
            (missing and unexpected names only when ``strict``) from the file's headers, before
            any array is read. A floating entry of another precision (a float64 checkpoint for a
            float32 model) is cast to the model's dtype, as PyTorch's ``load_state_dict`` does;
            a floating entry for an integer one, or values the model's dtype cannot hold, are an
            error. NaN or infinite values load with a ``RuntimeWarning``.
        optimizer: receives ``optimizer.load_state_dict(state)``; the checkpoint must hold one.
        strict: whether the checkpoint's model entries must match the model's exactly.
    Returns:
        The ``**meta`` given to :func:`save`.
    Raises:
        FileNotFoundError when ``path`` does not exist; ValueError naming ``path`` (and the member
        or entry at fault) for a corrupt, truncated or foreign file, one that holds members its
        manifest does not name, nests deeper than :data:`MAX_DEPTH`, or does not match ``model``
        / ``optimizer``. A load that raises changes neither ``model`` nor ``optimizer``.
    """
    path = os.fspath(path)
    with _open(path) as archive:
        try:
            members = archive_reader.members(path, archive)
        except archive_reader.ArchiveError as error:
            if "Python objects" in str(error) and MANIFEST in str(error):
                raise _not_a_checkpoint(path, "it holds pickled Python objects") from None
            raise
        manifest = _read_manifest(path, archive, members)
        _check_names(path, manifest, members)
        model_names = manifest["model"]
        if model is not None:
            if model_names is None:
                raise ValueError(f"{path}: the checkpoint holds no model state")
            _check_model(path, model, {name: members[f"model/{name}"] for name in model_names}, strict)
        if optimizer is not None and manifest.get("optimizer") is None:
            raise ValueError(f"{path}: the checkpoint holds no optimizer state")
        wanted = set(model.state_dict()) if model is not None and not strict else None
        arrays = {key: archive_reader.read(path, archive, member) for key, member in members.items()
                  if key != MANIFEST and not (wanted is not None and key.startswith("model/")
                                              and key[len("model/"):] not in wanted)}
    try:
        meta = _decode(manifest["meta"], arrays)
        optimizer_state = None if manifest["optimizer"] is None else _decode(manifest["optimizer"], arrays)
        model_state = (None if model_names is None
                       else {name: arrays[f"model/{name}"] for name in model_names if f"model/{name}" in arrays})
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ValueError(f"{path}: malformed checkpoint (manifest and arrays disagree: {error!r})") from error
    if model is not None:
        _check_values(path, model, model_state)
    # All or nothing: every check runs before the first assignment. The model is checked above and
    # its load_state_dict checks everything before writing; the optimizer's load_state_dict checks
    # everything before it replaces its state, so it runs first and is undone if the model's fails.
    previous = None
    if optimizer is not None:
        previous = optimizer.state_dict()
        try:
            optimizer.load_state_dict(optimizer_state)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
            optimizer.load_state_dict(previous)  # restores any option a partial load assigned
            raise ValueError(f"{path}: optimizer state does not match the optimizer: {error}") from error
    if model is not None:
        try:
            model.load_state_dict(model_state, strict=strict)
        except BaseException:
            if previous is not None:
                optimizer.load_state_dict(previous)
            raise
    return meta


def _castable(saved: np.dtype, current: Any) -> bool:
    """Whether ``load_state_dict`` casts ``saved`` to ``current``: float to float, int to int."""
    kinds = (np.dtype(saved).kind, np.dtype(current).kind)
    return kinds[0] == kinds[1] or (kinds[0] in "iu" and kinds[1] in "iu")


def _check_model(path: str, model: Any, state: dict[str, archive_reader.Member], strict: bool) -> None:
    """Names, declared shapes and dtypes of the checkpoint's entries (headers only) against the model."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
                  for k, v in expected.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    mismatched += [f"{k}: checkpoint dtype {state[k].dtype} vs model {np.dtype(v.dtype)}"
                   for k, v in expected.items() if k in state and not _castable(state[k].dtype, v.dtype)]
    problems = []
    if strict and missing:
        problems.append(f"missing keys {missing}")
    if strict and unexpected:
        problems.append(f"unexpected keys {unexpected}")
    if mismatched:
        problems.append(f"shape mismatches [{'; '.join(mismatched)}]")
    if problems:
        raise ValueError(f"{path}: checkpoint does not match the model: {', '.join(problems)}")


def _check_values(path: str, model: Any, state: dict[str, np.ndarray]) -> None:
    """Values the model's dtype cannot hold are an error naming the entry (a cast would change them
    without a word: 2**64-1 into int64 is -1, 1e300 into float32 is inf); NaN/inf warn."""
    expected = model.state_dict()
    for key, saved in state.items():
        if key not in expected:
            continue
        target = np.dtype(expected[key].dtype)
        if saved.dtype.kind in "iu" and target.kind in "iu" and saved.size and saved.dtype != target:
            low, high, info = int(saved.min()), int(saved.max()), np.iinfo(target)
            if low < info.min or high > info.max:
                raise ValueError(f"{path}: model entry {key!r} holds {high if high > info.max else low}, outside the "
                                 f"range of the model's {target} [{info.min}, {info.max}]")
        if saved.dtype.kind == "f" and target.kind == "f" and saved.size and saved.dtype.itemsize > target.itemsize:
            finite = saved[np.isfinite(saved)]
            largest = float(np.abs(finite).max()) if finite.size else 0.0
            limit = float(np.finfo(target).max)
            if largest > limit:
                raise ValueError(f"{path}: model entry {key!r} holds {largest:g}, beyond the largest finite "
                                 f"{target} ({limit:g}); it would load as infinity")
    bad = [key for key, saved in state.items() if saved.dtype.kind in "fc" and not np.isfinite(saved).all()]
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        warnings.warn(f"gpuconv.load({path!r}): the checkpoint holds NaN or infinite values in {shown} "
                      "(saved from a diverged model?)", RuntimeWarning, stacklevel=3)
