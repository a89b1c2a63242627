"""gpuconv.save / gpuconv.load: exact round trips, crash safety, clear errors for bad files."""

from __future__ import annotations

import math
import os
from collections import OrderedDict

import numpy as np
import pytest

import gpuconv
from gpuconv import nn, optim


# The optimizers' parameters are Tensors with ``.data`` and ``.grad``.
Param = nn.Parameter


class TinyModel:
    """Stand-in for a gpuconv.nn.Module: parameters and buffers, state_dict / load_state_dict."""

    def __init__(self, rng, hidden=3):
        g = gpuconv.asarray
        self.params = OrderedDict([
            ("fc1.weight", Param(g(rng.standard_normal((hidden, 4)).astype(np.float32)))),
            ("fc1.bias", Param(g(rng.standard_normal(hidden).astype(np.float32)))),
            ("head.weight", Param(g(rng.standard_normal((2, hidden))))),
        ])
        self.buffers = OrderedDict([
            ("bn.running_var", g(rng.uniform(0.5, 2, hidden).astype(np.float32))),
            ("bn.num_batches_tracked", g(np.array(int(rng.integers(100)), dtype=np.int64))),
        ])

    def parameters(self):
        return list(self.params.values())

    def state_dict(self):
        return OrderedDict([*((k, p.data) for k, p in self.params.items()), *self.buffers.items()])

    def load_state_dict(self, d, strict=True):
        own = self.state_dict()
        if strict and set(d) != set(own):
            raise KeyError(f"key mismatch: {sorted(set(d) ^ set(own))}")
        for k, v in d.items():
            if k in own:
                own[k][...] = gpuconv.asarray(v)


def _train(model, opt, rng, steps):
    for _ in range(steps):
        for p in model.parameters():
            p.grad = gpuconv.asarray(rng.standard_normal(p.data.shape).astype(p.data.dtype))
        opt.step()


def _assert_bitwise(a, b):
    a, b = gpuconv.to_numpy(a), gpuconv.to_numpy(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes()


def _assert_state_equal(a, b):
    assert type(a) is type(b) or (hasattr(a, "shape") and hasattr(b, "shape")), (type(a), type(b))
    if hasattr(a, "shape"):
        _assert_bitwise(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _assert_state_equal(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for u, v in zip(a, b, strict=True):
            _assert_state_equal(u, v)
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    else:
        assert a == b


@pytest.mark.parametrize("opt_class,kwargs", [(optim.Adam, dict(lr=0.01, amsgrad=True, betas=(0.8, 0.95))),
                                              (optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
                                              (optim.RMSprop, dict(centered=True, momentum=0.5)),
                                              (optim.Adagrad, dict(lr_decay=0.1))])
def test_round_trip_is_exact_and_resumes(backend, rng, tmp_path, opt_class, kwargs):
    model = TinyModel(rng)
    opt = opt_class([{"params": model.parameters()[:2]}, {"params": model.parameters()[2:], "lr": 0.003}], **kwargs)
    _train(model, opt, rng, 3)
    meta = {"epoch": 3, "lr": 0.1 / 3, "history": [{"loss": 1.5, "acc": 0.25}], "shape": (3, 4), "name": "run",
            "best": float("nan"), "done": False, "none": None, "scale": np.float32(1.25),
            "confusion": np.arange(4).reshape(2, 2)}
    path = tmp_path / "ckpt.npz"
    gpuconv.save(path, model, opt, **meta)

    fresh = TinyModel(np.random.default_rng(999))
    fresh_opt = opt_class([{"params": fresh.parameters()[:2]}, {"params": fresh.parameters()[2:]}], lr=5.0)
    loaded_meta = gpuconv.load(str(path), fresh, fresh_opt)
    _assert_state_equal(loaded_meta, meta)
    assert isinstance(loaded_meta["scale"], np.float32) and isinstance(loaded_meta["shape"], tuple)
    for (k, a), (k2, b) in zip(model.state_dict().items(), fresh.state_dict().items(), strict=True):
        assert k == k2
        _assert_bitwise(a, b)
    _assert_state_equal(fresh_opt.state_dict(), opt.state_dict())
    # Training continues identically from the restored state.
    seed = int(rng.integers(1 << 30))
    _train(model, opt, np.random.default_rng(seed), 3)
    _train(fresh, fresh_opt, np.random.default_rng(seed), 3)
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True):
        _assert_bitwise(a, b)


def test_model_only_and_meta_only(tmp_path, rng):
    with gpuconv.backend("numpy"):
        model = TinyModel(rng)
        gpuconv.save(tmp_path / "m.npz", model)
        assert gpuconv.load(tmp_path / "m.npz") == {}
        with pytest.raises(ValueError, match="m.npz.*no optimizer state"):
            gpuconv.load(tmp_path / "m.npz", model, optim.SGD(model.parameters(), lr=0.1))
        gpuconv.save(tmp_path / "meta.npz", None, step=7)
        assert gpuconv.load(tmp_path / "meta.npz") == {"step": 7}
        with pytest.raises(ValueError, match="meta.npz.*no model state"):
            gpuconv.load(tmp_path / "meta.npz", model)


def _listing(directory):
    return sorted(os.listdir(directory))


def test_crash_mid_write_keeps_old_file(tmp_path, rng, monkeypatch):
    with gpuconv.backend("numpy"):
        model = TinyModel(rng)
        path = tmp_path / "ckpt.npz"
        gpuconv.save(path, model, epoch=1)
        before = path.read_bytes()
        original = np.lib.format.write_array
        calls = []

        def failing_write_array(*args, **kwargs):
            calls.append(1)
            if len(calls) == 3:                 # some arrays are already in the temporary file
                raise OSError("disk full (simulated)")
            return original(*args, **kwargs)

        monkeypatch.setattr(np.lib.format, "write_array", failing_write_array)
        changed = TinyModel(np.random.default_rng(5))
        with pytest.raises(OSError, match="simulated"):
            gpuconv.save(path, changed, epoch=2)
        assert len(calls) == 3
        monkeypatch.undo()
        assert path.read_bytes() == before
        assert _listing(tmp_path) == ["ckpt.npz"]        # no temporary file left behind
        assert gpuconv.load(path, TinyModel(rng)) == {"epoch": 1}


def test_interrupt_before_rename_keeps_old_file(tmp_path, rng, monkeypatch):
    with gpuconv.backend("numpy"):
        path = tmp_path / "ckpt.npz"
        gpuconv.save(path, TinyModel(rng), epoch=1)
        before = path.read_bytes()

        def interrupted(*args, **kwargs):
            raise KeyboardInterrupt

        monkeypatch.setattr(os, "replace", interrupted)
        with pytest.raises(KeyboardInterrupt):
            gpuconv.save(path, TinyModel(rng), epoch=2)
        monkeypatch.undo()
        assert path.read_bytes() == before and _listing(tmp_path) == ["ckpt.npz"]


def test_corrupt_truncated_and_foreign_files(tmp_path, rng):
    with gpuconv.backend("numpy"):
        model = TinyModel(rng)
        good = tmp_path / "good.npz"
        gpuconv.save(good, model, optim.Adam(model.parameters()), epoch=1)
        data = good.read_bytes()
        cases = {
            "truncated.npz": data[: len(data) // 2],
            "empty.npz": b"",
            "garbage.npz": bytes(np.random.default_rng(1).integers(0, 256, 300, dtype=np.uint8)),
        }
        flipped = bytearray(data)
        start = data.index(b"model/fc1.weight.npy") + 200      # inside the stored array's bytes
        flipped[start] ^= 0xFF
        cases["flipped.npz"] = bytes(flipped)
        for name, content in cases.items():
            (tmp_path / name).write_bytes(content)
            with pytest.raises(ValueError, match=name):
                gpuconv.load(tmp_path / name, TinyModel(rng))
        np.savez(tmp_path / "plain.npz", a=np.ones(2))
        with pytest.raises(ValueError, match="plain.npz.*manifest"):
            gpuconv.load(tmp_path / "plain.npz")
        np.save(tmp_path / "array.npy", np.ones(2))
        with pytest.raises(ValueError, match="array.npy"):
            gpuconv.load(tmp_path / "array.npy")
        with pytest.raises(FileNotFoundError):
            gpuconv.load(tmp_path / "missing.npz")


def test_garbage_files_are_named_not_a_checkpoint_without_pickle_advice(tmp_path, rng):
    import pickle
    import zipfile

    files = {
        "garbage.npz": bytes(np.random.default_rng(1).integers(0, 256, 300, dtype=np.uint8)),
        "text.npz": b"hello, not a checkpoint",
        "empty.npz": b"",
        "model.pkl": pickle.dumps({"weight": [1.0, 2.0]}),
    }
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    # A zip with gpuconv's manifest name but a pickled (object) array inside.
    np.savez(tmp_path / "objects.npz", __gpuconv__=np.array([{"a": 1}], dtype=object))
    with zipfile.ZipFile(tmp_path / "objects.npz") as z:
        assert any(n.startswith("__gpuconv__") for n in z.namelist())
    np.savez(tmp_path / "plain.npz", a=np.ones(2))
    for name in [*files, "objects.npy", "objects.npz", "plain.npz"]:
        with pytest.raises(ValueError) as info:
            gpuconv.load(tmp_path / name)
        message = str(info.value)
        assert name in message and "not a gpuconv checkpoint" in message, message
        assert "allow_pickle" not in message and "pickle.load" not in message, message
        assert "allow_pickle" not in repr(info.value.__cause__ or "")


def test_mismatched_model_and_optimizer(tmp_path, rng):
    with gpuconv.backend("numpy"):
        model = TinyModel(rng)
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        _train(model, opt, rng, 1)
        path = tmp_path / "ckpt.npz"
        gpuconv.save(path, model, opt)
        with pytest.raises(ValueError, match="ckpt.npz.*fc1.weight: checkpoint \\(3, 4\\) vs model \\(5, 4\\)"):
            gpuconv.load(path, TinyModel(rng, hidden=5))
        smaller = TinyModel(rng)
        del smaller.buffers["bn.running_var"]
        with pytest.raises(ValueError, match="unexpected keys \\['bn.running_var'\\]"):
            gpuconv.load(path, smaller)
        gpuconv.load(path, smaller, strict=False)
        _assert_bitwise(smaller.params["fc1.weight"].data, model.params["fc1.weight"].data)
        other = TinyModel(rng)
        with pytest.raises(ValueError, match="ckpt.npz.*optimizer"):
            gpuconv.load(path, other, optim.SGD(other.parameters()[:2], lr=0.1))


def test_unsupported_values_are_rejected_before_writing(tmp_path, rng):
    with gpuconv.backend("numpy"):
        with pytest.raises(TypeError, match="meta/callback"):
            gpuconv.save(tmp_path / "x.npz", TinyModel(rng), callback=print)
        assert _listing(tmp_path) == []


def test_saving_into_a_missing_or_unwritable_folder_names_the_users_path(tmp_path, rng):
    import os

    target = tmp_path / "missing" / "model.npz"
    with pytest.raises(FileNotFoundError) as info:
        gpuconv.save(target, TinyModel(rng))
    assert info.value.filename == str(target)
    assert f"the folder {str(tmp_path / 'missing')!r} does not exist" in str(info.value)
    assert ".tmp" not in str(info.value)
    if hasattr(os, "geteuid") and os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(PermissionError) as info:
            gpuconv.save(locked / "model.npz", TinyModel(rng))
        assert info.value.filename == str(locked / "model.npz") and ".tmp" not in str(info.value)
