"""What a PyTorch user does with a model: move it with .to("cuda")/.cpu(), load a state dict of
another precision, and read errors that name the layer and say how to fix the input."""

from __future__ import annotations

import numpy as np
import pytest

import gpuconv
from gpuconv import nn
from gpuconv.backend import BackendUnavailableError, unavailable_reason
from gpuconv.backend import parse_device

GPU_REASON = unavailable_reason("cupy")


def _net() -> nn.Module:
    gpuconv.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Sequential(nn.Conv2d(4, 4, 3, padding=1)), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))


@pytest.mark.parametrize("text, expected", [
    ("cpu", ("numpy", None)), ("cuda", ("cupy", None)), ("cuda:1", ("cupy", 1)), ("CUDA:0", ("cupy", 0)),
    ("numpy", ("numpy", None)), ("emulated", ("emulated", None)), ("cupy", ("cupy", None)),
])
def test_device_strings_map_to_backends(text, expected):
    assert parse_device(text) == expected


@pytest.mark.parametrize("bad", ["tpu", "cuda:", "cuda:x", "cpu:0", ""])
def test_unknown_device_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda', 'cuda:N' or a backend name"):
        _net().to(bad)


def test_to_accepts_pytorchs_forms():
    model = _net()
    assert model.to(np.float64) is model and model[0].weight.data.dtype == np.float64
    assert model[1].num_batches_tracked.dtype == np.int64  # integers are never cast
    model.to("cpu", np.float32)
    assert model[0].weight.data.dtype == np.float32 and isinstance(model[0].weight.data, np.ndarray)
    model.to(device="cpu", dtype=np.float64)
    assert model[5].bias.data.dtype == np.float64
    assert model.float()[0].weight.data.dtype == np.float32
    assert model.double()[0].weight.data.dtype == np.float64
    assert model.cpu() is model
    with pytest.raises(TypeError, match="dtype must be float32 or float64, got int32"):
        model.to(np.int32)
    with pytest.raises(TypeError, match="two devices"):
        model.to("cpu", device="cpu")
    with pytest.raises(TypeError, match="at most a device and a dtype"):
        model.to("cpu", np.float32, np.float64)


@pytest.mark.skipif(GPU_REASON is None, reason="needs a machine without a usable GPU")
def test_to_cuda_without_a_gpu_says_why_and_changes_nothing():
    model = _net()
    before = model[0].weight.data
    with pytest.raises(BackendUnavailableError, match="backend 'cupy' is unavailable"):
        model.to("cuda")
    with pytest.raises(BackendUnavailableError):
        model.cuda()
    assert model[0].weight.data is before


@pytest.mark.gpu
@pytest.mark.skipif(GPU_REASON is not None, reason=f"cupy backend unavailable: {GPU_REASON}")
def test_to_cuda_and_back():
    import cupy

    model = _net().cuda()
    assert isinstance(model[0].weight.data, cupy.ndarray)
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
    with gpuconv.backend("cupy"):
        on_gpu = gpuconv.to_numpy(model.eval()(gpuconv.asarray(x)))
    model.cpu()
    assert isinstance(model[0].weight.data, np.ndarray)
    np.testing.assert_allclose(on_gpu, model(x), rtol=1e-5, atol=1e-5)


def test_load_state_dict_casts_floating_arrays_like_pytorch():
    source = _net().double()
    target = _net()
    gpuconv.manual_seed(5)
    target[0].weight.data[...] = 0
    target.load_state_dict({k: np.array(v) for k, v in source.state_dict().items()})
    for key, value in target.state_dict().items():
        expected = source.state_dict()[key]
        assert value.dtype == (np.float32 if expected.dtype == np.float64 else expected.dtype), key
        np.testing.assert_array_equal(value, expected.astype(value.dtype))


def test_a_float64_checkpoint_loads_into_a_float32_model(tmp_path):
    path = tmp_path / "model.npz"
    source = _net().double()
    gpuconv.save(path, source)
    target = _net()
    gpuconv.load(path, target)
    np.testing.assert_array_equal(target[5].weight.data, source[5].weight.data.astype(np.float32))


def test_errors_name_the_layer_and_keep_their_type():
    model = _net()
    with pytest.raises(ValueError) as info:
        model(np.zeros((2, 1, 6, 6), np.float32))
    assert str(info.value) == ("in 0 (Conv2d(3, 4, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))): input: "
                               "expected shape (N, 3, H, W) (in_channels = 3), got (2, 1, 6, 6)")
    # A nested layer gets its dotted name, and the message is prefixed once.
    model[3][0].weight.data = np.zeros((4, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"^in 3\.0 \(Conv2d\(4, 4, .*\)\): weight: ") as info:
        model(np.zeros((2, 3, 6, 6), np.float32))
    assert str(info.value).count("in 3.0") == 1


def test_backward_errors_name_the_op():
    model = _net().train()
    y = model(np.ones((2, 3, 6, 6), np.float32))
    with pytest.raises(RuntimeError, match=r"Mismatch in shape: grad_output\[0\] has a shape of \(2, 3\)"):
        y.backward(np.ones((2, 3), np.float32))
    y.backward(np.ones((2, 2), np.float32))
    with pytest.raises(RuntimeError, match=r"AddmmBackward.*retain_graph=True"):
        y.backward(np.ones((2, 2), np.float32))


def test_another_float_dtype_says_how_to_fix_it():
    with pytest.raises(TypeError, match=r"input has dtype float64 but the layer's parameters are float32: cast "
                                        r"the input \(x\.astype\(np\.float32\)\) or the model "
                                        r"\(model\.to\(np\.float64\)\)"):
        _net()(np.zeros((2, 3, 6, 6)))


# The layers are made inside the test (under the suite's backend), not when pytest collects it.
@pytest.mark.parametrize("make_layer, x, message", [
    (lambda: nn.Linear(5, 2), np.zeros((3, 4), np.float32), r"input: expected shape \(\.\.\., 5\) "
                                                             r"\(in_features = 5\), got \(3, 4\)"),
    (lambda: nn.BatchNorm2d(3), np.zeros((2, 4, 3, 3), np.float32), r"input: expected shape \(N, 3, H, W\) "
                                                                    r"\(num_features = 3\), got \(2, 4, 3, 3\)"),
], ids=["Linear", "BatchNorm2d"])
def test_layers_blame_the_input(make_layer, x, message):
    layer = make_layer()
    with pytest.raises(ValueError, match=message):
        layer(x)


@pytest.mark.parametrize("make", ["SGD", "Adam"])
def test_optimizer_state_follows_a_model_that_moves(make):
    """The rule (Optimizer._follow_parameter): state moves with its parameter at the next step."""
    model = _net().train()
    x = np.random.default_rng(1).standard_normal((2, 3, 6, 6))
    target = np.array([0, 1])
    optimizer = getattr(gpuconv.optim, make)(model.parameters(), lr=0.01, **({"momentum": 0.9} if make == "SGD" else {}))
    crit = nn.CrossEntropyLoss()
    for dtype in (np.float32, np.float64):
        model.to(dtype)
        optimizer.zero_grad()
        crit(model(x.astype(dtype)), target).backward()
        optimizer.step()
        for p in model.parameters():
            for value in optimizer.state[p].values():
                if hasattr(value, "dtype") and np.dtype(value.dtype).kind == "f":
                    assert value.dtype == dtype
