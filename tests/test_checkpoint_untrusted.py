"""gpuconv.load on files built to hurt: members the manifest does not name, compressed bombs, headers
that lie about their size, manifests nested too deeply, and values the model's dtype cannot hold.
Each is a ValueError naming the file (and the member or entry), found before the big reads."""

from __future__ import annotations

import io
import json
import tracemalloc
import zipfile

import numpy as np
import pytest

import gpuconv
from gpuconv import checkpoint, checkpoint_archive, nn


def _npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def _npy_header(shape: tuple, dtype=np.float32) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                                  "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def _members(path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {info.filename: z.read(info) for info in z.infolist()}


def _write(path, members: dict[str, bytes], compressed: frozenset = frozenset()) -> None:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data, zipfile.ZIP_DEFLATED if name in compressed else zipfile.ZIP_STORED)


def _manifest(members: dict[str, bytes]) -> dict:
    array = np.load(io.BytesIO(members["__gpuconv__.npy"]))
    return json.loads(array.tobytes())


def _with_manifest(members: dict[str, bytes], manifest_text: str) -> dict[str, bytes]:
    return {**members, "__gpuconv__.npy": _npy(np.frombuffer(manifest_text.encode(), np.uint8))}


@pytest.fixture
def saved(tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm2d(4))
    path = tmp_path / "good.npz"
    gpuconv.save(path, model, epoch=3)
    return model, path


def test_a_member_the_manifest_does_not_name_is_refused_before_it_is_read(saved, tmp_path):
    model, good = saved
    bad = tmp_path / "extra.npz"
    members = _members(good)
    # A 1 MB file whose extra member inflates to 256 MiB (the audit's was 1 GiB).
    with zipfile.ZipFile(bad, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
        with z.open("extra.npy", "w", force_zip64=True) as f:
            f._compress_type = zipfile.ZIP_DEFLATED
            header = _npy_header((64 << 20,))
            f.write(header)
            zeros = bytes(16 << 20)
            for _ in range(16):
                f.write(zeros)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"extra.npz: member 'extra.npy'"):
            gpuconv.load(bad, model)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"load allocated {peak / 2**20:.0f} MiB before refusing the file"


def test_an_unnamed_stored_member_is_an_error_naming_it(saved, tmp_path):
    model, good = saved
    bad = tmp_path / "extra.npz"
    _write(bad, {**_members(good), "model/1.secret.npy": _npy(np.ones(3, np.float32))})
    with pytest.raises(ValueError, match=r"extra.npz: member 'model/1.secret.npy' is not named by the manifest"):
        gpuconv.load(bad, model)
    with pytest.raises(ValueError, match="not named by the manifest"):
        gpuconv.load(bad)  # with no model to compare with, too


def test_a_compressed_member_is_refused_before_decompressing(saved, tmp_path):
    model, good = saved
    bad = tmp_path / "deflated.npz"
    _write(bad, _members(good), compressed=frozenset({"model/0.weight.npy"}))
    with pytest.raises(ValueError, match=r"deflated.npz: member 'model/0.weight.npy' is compressed"):
        gpuconv.load(bad, model)


@pytest.mark.parametrize("member", ["model/0.weight.npy", "meta/epoch.npy"])
def test_a_header_declaring_a_huge_shape_is_refused_without_allocating(saved, tmp_path, member):
    model, good = saved
    members = _members(good)
    if member not in members:  # epoch=3 is a plain int: give the metadata an array to lie about
        manifest = _manifest(members)
        manifest["meta"] = {"__dict__": [["epoch", {"__array__": "meta/epoch", "__scalar__": False}]]}
        members = _with_manifest(members, json.dumps(manifest))
    members[member] = _npy_header((2**31,)) + bytes(64)
    bad = tmp_path / "huge.npz"
    _write(bad, members)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=rf"huge.npz: member '{member}'.*declares shape \(2147483648,\)"):
            gpuconv.load(bad, model if member.startswith("model/") else None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


def test_a_model_entry_of_the_wrong_shape_is_refused_from_its_header(saved, tmp_path, monkeypatch):
    model, good = saved
    members = _members(good)
    members["model/0.weight.npy"] = _npy(np.ones((4, 5), np.float32))  # consistent, but not the model's (4, 3)
    bad = tmp_path / "shape.npz"
    _write(bad, members)
    read = []
    real = checkpoint_archive.read
    monkeypatch.setattr(checkpoint_archive, "read", lambda path, z, m: read.append(m.key) or real(path, z, m))
    with pytest.raises(ValueError, match=r"shape.npz: checkpoint does not match the model: .*0.weight: checkpoint "
                                         r"\(4, 5\) vs model \(4, 3\)"):
        gpuconv.load(bad, model)
    assert read == ["__gpuconv__"]  # no array was read before the refusal


def test_a_member_named_twice_is_refused(saved, tmp_path):
    model, good = saved
    bad = tmp_path / "twice.npz"
    members = _members(good)
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(bad, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
        z.writestr("model/0.bias.npy", _npy(np.full(4, 7, np.float32)))
    with pytest.raises(ValueError, match=r"twice.npz: member 'model/0.bias.npy' appears twice"):
        gpuconv.load(bad, model)


def test_a_manifest_nested_200000_deep_is_a_value_error(saved, tmp_path):
    model, good = saved
    bad = tmp_path / "deep.npz"
    _write(bad, _with_manifest(_members(good), '{"format": "gpuconv-checkpoint", "version": 1, "model": null, '
                                               '"optimizer": null, "meta": ' + "[" * 200_000 + "]" * 200_000 + "}"))
    with pytest.raises(ValueError, match="deep.npz: .*nested"):
        gpuconv.load(bad)


@pytest.mark.parametrize("depth", [checkpoint.MAX_DEPTH + 1, 400])
def test_a_valid_tree_deeper_than_the_limit_is_a_value_error(saved, tmp_path, depth):
    model, good = saved
    members = _members(good)
    manifest = _manifest(members)
    manifest["meta"] = "TREE"
    tree = '{"__dict__": [["child", ' * depth + '{"__dict__": []}' + "]]}" * depth  # json.dumps would recurse
    bad = tmp_path / "deep.npz"
    _write(bad, _with_manifest(members, json.dumps(manifest).replace('"TREE"', tree)))
    with pytest.raises(ValueError, match=rf"deep.npz: .*nested .*{checkpoint.MAX_DEPTH}"):
        gpuconv.load(bad, model)


def test_save_refuses_metadata_deeper_than_load_accepts_and_round_trips_the_limit(tmp_path):
    def nested(depth):
        value = {}
        for _ in range(depth):
            value = {"child": value}
        return value

    model = nn.Sequential(nn.Linear(2, 2))
    gpuconv.save(tmp_path / "ok.npz", model, tree=nested(checkpoint.MAX_DEPTH - 1))
    assert gpuconv.load(tmp_path / "ok.npz", model)["tree"] == nested(checkpoint.MAX_DEPTH - 1)
    with pytest.raises(ValueError, match=rf"cannot save meta/tree/child.*more than {checkpoint.MAX_DEPTH}"):
        gpuconv.save(tmp_path / "deep.npz", model, tree=nested(checkpoint.MAX_DEPTH + 1))
    assert not (tmp_path / "deep.npz").exists()


def _edited(good, tmp_path, key, value):
    members = _members(good)
    members[f"model/{key}.npy"] = _npy(value)
    bad = tmp_path / "values.npz"
    _write(bad, members)
    return bad


def _snapshot(model):
    return {k: gpuconv.to_numpy(v).copy() for k, v in model.state_dict().items()}


def test_an_integer_the_model_cannot_hold_is_an_error_naming_it(backend, tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm2d(4))
    gpuconv.save(tmp_path / "good.npz", model)
    before = _snapshot(model)
    bad = _edited(tmp_path / "good.npz", tmp_path, "1.num_batches_tracked", np.array(2**64 - 1, np.uint64))
    with pytest.raises(ValueError, match=r"values.npz: model entry '1.num_batches_tracked' holds "
                                         r"18446744073709551615, outside the range of the model's int64"):
        gpuconv.load(bad, model)
    after = _snapshot(model)
    assert all(np.array_equal(before[k], after[k]) for k in before)
    fits = _edited(tmp_path / "good.npz", tmp_path, "1.num_batches_tracked", np.array(7, np.uint64))
    gpuconv.load(fits, model)
    assert int(gpuconv.to_numpy(model[1].num_batches_tracked)) == 7


def test_a_float_beyond_the_models_range_is_an_error_naming_it(backend, tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm2d(4))
    gpuconv.save(tmp_path / "good.npz", model)
    var = np.ones(4)
    var[2] = 1e300
    bad = _edited(tmp_path / "good.npz", tmp_path, "1.running_var", var)
    with pytest.raises(ValueError, match=r"model entry '1.running_var' holds 1e\+300, beyond the largest finite "
                                         r"float32"):
        gpuconv.load(bad, model)
    model64 = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm2d(4)).to(np.float64)
    gpuconv.load(bad, model64)  # float64 holds it
    assert gpuconv.to_numpy(model64[1].running_var)[2] == 1e300


def test_non_finite_values_load_with_the_warning_save_gives(backend, tmp_path):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm2d(4))
    gpuconv.save(tmp_path / "good.npz", model)
    weight = np.ones((4, 3), np.float32)
    weight[0, 0] = np.inf
    bad = _edited(tmp_path / "good.npz", tmp_path, "0.weight", weight)
    with pytest.warns(RuntimeWarning, match=r"values.npz.*NaN or infinite values in 0\.weight"):
        gpuconv.load(bad, model)
    assert np.isinf(gpuconv.to_numpy(model[0].weight.data)[0, 0])
