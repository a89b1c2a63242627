"""Checkpoints: a model's state dict, an optimizer's state and user metadata in one ``.npz`` file.

Layout of the archive (NumPy's zip of ``.npy`` files, loaded with ``allow_pickle=False``):

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

The file is written to a temporary file in the same directory, flushed to disk, then renamed over
``path`` with ``os.replace``: a crash mid-write leaves the previous checkpoint untouched.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from typing import Any

import numpy as np

from .backend import to_numpy
from .backend.base import array_kind

FORMAT = "gpuconv-checkpoint"
VERSION = 1
MANIFEST = "__gpuconv__"


class _Encoder:
    """Turns a nested state into a JSON tree, collecting its arrays under path keys."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = arrays

    def encode(self, value: Any, path: str) -> Any:
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
            return {"__tuple__": [self.encode(v, f"{path}/{i}") for i, v in enumerate(value)]}
        if isinstance(value, list):
            return [self.encode(v, f"{path}/{i}") for i, v in enumerate(value)]
        if isinstance(value, dict):
            for k in value:
                if not isinstance(k, (str, int)) or isinstance(k, bool):
                    raise TypeError(f"cannot save {path}: dict keys must be str or int, got {k!r}")
            return {"__dict__": [[k, self.encode(v, f"{path}/{k}")] for k, v in value.items()]}
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
    """
    path = os.fspath(path)
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
    manifest = {
        "format": FORMAT, "version": VERSION, "model": model_keys,
        "optimizer": None if optimizer is None else _Encoder(arrays).encode(optimizer.state_dict(), "optimizer"),
        "meta": _Encoder(arrays).encode(dict(meta), "meta"),
    }
    arrays[MANIFEST] = np.frombuffer(json.dumps(manifest).encode("utf-8"), dtype=np.uint8)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
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


def _read(path: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(manifest, all arrays) of a checkpoint; ValueError naming ``path`` when it is not a valid one."""
    why = _foreign_file(path)
    if why is not None:
        raise _not_a_checkpoint(path, why)
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single array, not an .npz archive")
        with archive:
            if MANIFEST not in archive.files:
                raise _not_a_checkpoint(path, f"a zip archive without the {MANIFEST} manifest")
            arrays = {key: archive[key] for key in archive.files}
        manifest = json.loads(arrays.pop(MANIFEST).tobytes().decode("utf-8"))
    except FileNotFoundError:
        raise
    except NotACheckpointError:
        raise
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as error:
        # NOTE: NumPy's message for pickled content advises loading with allow_pickle, which would
        # run code from the file: never pass that advice on (a checkpoint holds no Python objects).
        if "pickle" in str(error):
            raise _not_a_checkpoint(path, "it holds pickled Python objects") from None
        raise ValueError(f"{path}: not a readable gpuconv checkpoint (corrupt or truncated?): {error}") from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: not a gpuconv checkpoint (manifest format {manifest.get('format')!r})"
                         if isinstance(manifest, dict) else f"{path}: malformed manifest")
    if manifest.get("version") != VERSION:
        raise ValueError(f"{path}: checkpoint format version {manifest.get('version')!r} is not supported "
                         f"(this gpuconv reads version {VERSION})")
    return manifest, arrays


def load(path: str | os.PathLike, model: Any = None, optimizer: Any = None, strict: bool = True) -> dict[str, Any]:
    """Loads a checkpoint written by :func:`save` into ``model`` and ``optimizer`` (each optional).

    Args:
        path: the checkpoint file.
        model: receives ``model.load_state_dict(arrays, strict=strict)`` with NumPy arrays; before
            that the names and shapes are checked against ``model.state_dict()`` (missing and
            unexpected names only when ``strict``).
        optimizer: receives ``optimizer.load_state_dict(state)``; the checkpoint must hold one.
        strict: whether the checkpoint's model entries must match the model's exactly.
    Returns:
        The ``**meta`` given to :func:`save`.
    Raises:
        FileNotFoundError when ``path`` does not exist; ValueError naming ``path`` for a corrupt,
        truncated or foreign file, or one that does not match ``model`` / ``optimizer``.
    """
    path = os.fspath(path)
    manifest, arrays = _read(path)
    try:
        meta = _decode(manifest["meta"], arrays)
        optimizer_state = None if manifest["optimizer"] is None else _decode(manifest["optimizer"], arrays)
        model_state = (None if manifest["model"] is None
                       else {name: arrays[f"model/{name}"] for name in manifest["model"]})
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: malformed checkpoint (manifest and arrays disagree: {error!r})") from error
    if model is not None:
        if model_state is None:
            raise ValueError(f"{path}: the checkpoint holds no model state")
        _check_model(path, model, model_state, strict)
        model.load_state_dict(model_state, strict=strict)
    if optimizer is not None:
        if optimizer_state is None:
            raise ValueError(f"{path}: the checkpoint holds no optimizer state")
        try:
            optimizer.load_state_dict(optimizer_state)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{path}: optimizer state does not match the optimizer: {error}") from error
    return meta


def _check_model(path: str, model: Any, state: dict[str, np.ndarray], strict: bool) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
                  for k, v in expected.items() if k in state and tuple(state[k].shape) != tuple(v.shape)]
    problems = []
    if strict and missing:
        problems.append(f"missing keys {missing}")
    if strict and unexpected:
        problems.append(f"unexpected keys {unexpected}")
    if mismatched:
        problems.append(f"shape mismatches [{'; '.join(mismatched)}]")
    if problems:
        raise ValueError(f"{path}: checkpoint does not match the model: {', '.join(problems)}")
