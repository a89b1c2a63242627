"""ConvTranspose2d / F.conv_transpose2d, GroupNorm / F.group_norm, Upsample / F.interpolate,
BatchNorm1d, Dropout2d, ModuleList, ModuleDict.

Functional ops: against the float64 loops of tests/reference.py over random configurations on
every backend (conv_transpose2d with each conv2d algorithm), forward and backward. Modules:
``check_layer`` of test_nn (forward, output_shape, backward by finite differences in float64).
PyTorch where installed: state dicts load and give the same outputs and gradients."""

from __future__ import annotations

import numpy as np
import pytest

import gpuconv
import gpuconv.functional as F
from gpuconv import nn
from tests.test_nn import check_layer

g = gpuconv.asarray


# ---- modules: forward, saved bytes, backward by finite differences ---------------------------------------------

def test_module_list_and_dict(numpy_f64):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Linear(4, 4, dtype=np.float64) for _ in range(3)])
            self.heads = nn.ModuleDict({"cls": nn.Linear(4, 2, dtype=np.float64), "reg": nn.Linear(4, 1)})

    net = Net()
    names = [name for name, _ in net.named_parameters()]
    assert names == ["blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias", "blocks.2.weight",
                     "blocks.2.bias", "heads.cls.weight", "heads.cls.bias", "heads.reg.weight", "heads.reg.bias"]
    blocks = net.blocks
    assert len(blocks) == 3 and blocks[-1] is blocks[2] and list(blocks) == [blocks[0], blocks[1], blocks[2]]
    first = blocks[0]
    del blocks[0]
    assert len(blocks) == 2 and list(blocks._modules) == ["0", "1"] and blocks[0] is not first
    blocks.insert(0, first)
    assert blocks[0] is first and list(blocks._modules) == ["0", "1", "2"]
    blocks.append(nn.ReLU())
    blocks += [nn.Tanh()]
    assert isinstance(blocks[1:3], nn.ModuleList) and len(blocks[1:3]) == 2 and len(blocks) == 5
    blocks[4] = nn.Sigmoid()
    assert isinstance(blocks[4], nn.Sigmoid)
    with pytest.raises(IndexError, match="out of range for a ModuleList of 5"):
        blocks[5]
    with pytest.raises(TypeError, match="ModuleList entries must be Modules"):
        blocks.append(3)
    heads = net.heads
    assert list(heads) == ["cls", "reg"] and "cls" in heads and heads.cls is heads["cls"]
    heads.update([("aux", nn.Linear(4, 3))])
    assert list(heads.keys()) == ["cls", "reg", "aux"]
    assert isinstance(heads.pop("reg"), nn.Linear) and len(heads) == 2
    with pytest.raises(TypeError, match=r"ModuleDict\['x'\] must be a Module"):
        heads["x"] = 1
    with pytest.raises(KeyError, match="without '.'"):
        heads["a.b"] = nn.ReLU()
    assert "blocks.0.weight" in net.state_dict() and "heads.aux.weight" in net.state_dict()
    assert "(blocks): ModuleList(" in repr(net)


# ---- PyTorch (only where installed) ----------------------------------------------------------------------------

def _torch_check(torch, ours, theirs, x, rng, rtol=1e-10):
    theirs = theirs.double()
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    t_x = torch.tensor(x, requires_grad=True)
    t_y = theirs(t_x)
    y = ours(x)
    np.testing.assert_allclose(y, t_y.detach().numpy(), rtol=rtol, atol=rtol)
    dy = rng.standard_normal(y.shape)
    t_y.backward(torch.tensor(dy))
    ours.zero_grad()
    xt = gpuconv.tensor(x, requires_grad=True)
    ours(xt).backward(dy)
    np.testing.assert_allclose(xt.grad.numpy(), t_x.grad.numpy(), rtol=rtol, atol=rtol)
    t_params = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), t_params[name].grad.numpy(), rtol=rtol, atol=rtol, err_msg=name)


def test_layers_against_torch(numpy_f64, rng):
    torch = pytest.importorskip("torch")
    tn = torch.nn
    cases = [
        (nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, dtype=np.float64),
         tn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1), (2, 4, 3, 5)),
        (nn.ConvTranspose2d(4, 2, (2, 3), stride=(1, 2), groups=2, dilation=(2, 1), bias=False, dtype=np.float64),
         tn.ConvTranspose2d(4, 2, (2, 3), stride=(1, 2), groups=2, dilation=(2, 1), bias=False), (1, 4, 4, 3)),
        (nn.GroupNorm(3, 6, dtype=np.float64), tn.GroupNorm(3, 6), (2, 6, 3, 2)),
        (nn.BatchNorm1d(5, dtype=np.float64), tn.BatchNorm1d(5), (6, 5)),
        (nn.BatchNorm1d(5, dtype=np.float64), tn.BatchNorm1d(5), (3, 5, 4)),
        (nn.Upsample(scale_factor=2), tn.Upsample(scale_factor=2), (2, 3, 3, 4)),
        (nn.Upsample(size=(5, 9), mode="bilinear", align_corners=False),
         tn.Upsample(size=(5, 9), mode="bilinear", align_corners=False), (1, 2, 4, 3)),
        (nn.Upsample(scale_factor=(1.5, 2.5), mode="bilinear", align_corners=True),
         tn.Upsample(scale_factor=(1.5, 2.5), mode="bilinear", align_corners=True), (1, 2, 4, 3)),
        (nn.Upsample(size=(3, 7), mode="nearest"), tn.Upsample(size=(3, 7), mode="nearest"), (2, 1, 7, 4)),
    ]
    for ours, theirs, shape in cases:
        with torch.no_grad():
            for p in theirs.parameters():
                p.copy_(torch.randn(p.shape))
        _torch_check(torch, ours, theirs, rng.standard_normal(shape), rng)
    with torch.no_grad():
        for scale in (1.3, 0.7, 2.6, 1.05, 2.1, (1.2, 2.2)):
            x = rng.standard_normal((1, 1, 9, 11))
            for mode, corners in (("nearest", None), ("bilinear", False), ("bilinear", True)):
                expected = torch.nn.functional.interpolate(torch.tensor(x), scale_factor=scale, mode=mode,
                                                           align_corners=corners).numpy()
                np.testing.assert_allclose(F.interpolate(x, scale_factor=scale, mode=mode, align_corners=corners),
                                           expected, rtol=1e-12, atol=1e-12, err_msg=f"{mode} {scale}")


def test_containers_and_dropout2d_against_torch(numpy_f64, rng):
    torch = pytest.importorskip("torch")
    tn = torch.nn

    class Ours(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Linear(3, 3, dtype=np.float64), nn.BatchNorm1d(3, dtype=np.float64)])
            self.heads = nn.ModuleDict({"b": nn.Linear(3, 2, dtype=np.float64), "a": nn.GroupNorm(1, 3)})

    class Theirs(tn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = tn.ModuleList([tn.Linear(3, 3), tn.BatchNorm1d(3)])
            self.heads = tn.ModuleDict({"b": tn.Linear(3, 2), "a": tn.GroupNorm(1, 3)})

    theirs = Theirs().double()
    ours = Ours()
    state = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    assert list(ours.state_dict()) == list(state)
    ours.load_state_dict({k: v.astype(ours.state_dict()[k].dtype) for k, v in state.items()})
    # Dropout2d: whole channels, the same 1/(1-p) scaling as torch (masks differ: other generators).
    x = np.ones((20, 30, 2, 2))
    with torch.no_grad():
        t_y = tn.Dropout2d(0.25)(torch.tensor(x)).numpy()
    y = nn.Dropout2d(0.25)(x)
    for out in (y, t_y):
        assert set(np.unique(out)) == {0.0, 1 / 0.75}
        assert np.all(out.min(axis=(2, 3)) == out.max(axis=(2, 3)))


