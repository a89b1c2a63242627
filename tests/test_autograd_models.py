"""Models written as a PyTorch user writes them (torchvision's BasicBlock and Bottleneck verbatim, with
``out += identity`` and ``nn.ReLU(inplace=True)``; a squeeze-and-excitation gate; a small U-Net; an
attention block; a module used twice; two heads summed into one loss), built once for gpuconv and once
for torch from the same source, with the same weights: the loss, every parameter's gradient and the
input's gradient (``x.requires_grad_()``) equal torch's (float64: 1e-10 relative; float32: 1e-5), and
3 SGD steps give the same parameters and running statistics."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import gpuconv as gc
import gpuconv.functional as gF

from tests.autograd_helpers import RTOL, assert_matches, device_array, host, torch_or_skip


def library(name):
    """What the model source below calls ``L``: nn, F and cat of gpuconv or of torch."""
    if name == "gpuconv":
        return SimpleNamespace(nn=gc.nn, F=gF, cat=gc.cat, name="gpuconv")
    torch = torch_or_skip()
    return SimpleNamespace(nn=torch.nn, F=torch.nn.functional, cat=torch.cat, name="torch")


def model_source(L):
    """The model classes, written against ``L`` exactly as against torch."""
    nn, F = L.nn, L.F

    # ---- torchvision.models.resnet, verbatim ----
    def conv3x3(in_planes, out_planes, stride=1, groups=1, dilation=1):
        return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=dilation, groups=groups,
                         bias=False, dilation=dilation)

    def conv1x1(in_planes, out_planes, stride=1):
        return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)

    class BasicBlock(nn.Module):
        expansion = 1

        def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64, dilation=1,
                     norm_layer=None):
            super().__init__()
            if norm_layer is None:
                norm_layer = nn.BatchNorm2d
            self.conv1 = conv3x3(inplanes, planes, stride)
            self.bn1 = norm_layer(planes)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = conv3x3(planes, planes)
            self.bn2 = norm_layer(planes)
            self.downsample = downsample
            self.stride = stride

        def forward(self, x):
            identity = x

            out = self.conv1(x)
            out = self.bn1(out)
            out = self.relu(out)

            out = self.conv2(out)
            out = self.bn2(out)

            if self.downsample is not None:
                identity = self.downsample(x)

            out += identity
            out = self.relu(out)

            return out

    class Bottleneck(nn.Module):
        expansion = 4

        def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64, dilation=1,
                     norm_layer=None):
            super().__init__()
            if norm_layer is None:
                norm_layer = nn.BatchNorm2d
            width = int(planes * (base_width / 64.0)) * groups
            self.conv1 = conv1x1(inplanes, width)
            self.bn1 = norm_layer(width)
            self.conv2 = conv3x3(width, width, stride, groups, dilation)
            self.bn2 = norm_layer(width)
            self.conv3 = conv1x1(width, planes * self.expansion)
            self.bn3 = norm_layer(planes * self.expansion)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = downsample
            self.stride = stride

        def forward(self, x):
            identity = x

            out = self.conv1(x)
            out = self.bn1(out)
            out = self.relu(out)

            out = self.conv2(out)
            out = self.bn2(out)
            out = self.relu(out)

            out = self.conv3(out)
            out = self.bn3(out)

            if self.downsample is not None:
                identity = self.downsample(x)

            out += identity
            out = self.relu(out)

            return out

    # ---- user-written models ----
    # NOTE: no bias on a convolution that feeds a batch norm (as torchvision writes them): its exact
    # gradient is 0, and both frameworks return rounding noise there that no relative tolerance compares.
    class SqueezeExcitation(nn.Module):
        def __init__(self, channels, squeeze):
            super().__init__()
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc1 = nn.Conv2d(channels, squeeze, 1)
            self.fc2 = nn.Conv2d(squeeze, channels, 1)
            self.activation = nn.ReLU()
            self.scale_activation = nn.Sigmoid()

        def gate(self, x):
            s = self.avgpool(x)
            s = self.activation(self.fc1(s))
            return self.scale_activation(self.fc2(s))

        def forward(self, x):
            return x * self.gate(x)

    class SENet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.se = SqueezeExcitation(4, 2)
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            x = self.se(F.relu(self.conv(x)))
            return self.fc(x.mean((2, 3)))

    class UNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc1 = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(inplace=True))
            self.pool = nn.MaxPool2d(2)
            self.enc2 = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.ReLU())
            self.up = nn.ConvTranspose2d(6, 4, 2, stride=2)
            self.dec = nn.Conv2d(8, 4, 3, padding=1)
            self.head = nn.Conv2d(4, 1, 1)

        def forward(self, x):
            e1 = self.enc1(x)
            e2 = self.enc2(self.pool(e1))
            d = L.cat([self.up(e2), e1], dim=1)
            d = F.relu(self.dec(d))
            d = d + F.interpolate(e2, scale_factor=2, mode="bilinear", align_corners=False)[:, :4]
            d = d + F.interpolate(e2[:, 4:], size=d.shape[2:], mode="nearest")[:, :1]
            return self.head(d)

    class Attention(nn.Module):
        def __init__(self, channels=4, heads=2):
            super().__init__()
            self.stem = nn.Conv2d(2, channels, 3, padding=1)
            self.norm = nn.LayerNorm(channels)
            self.qkv = nn.Linear(channels, 3 * channels)
            self.proj = nn.Linear(channels, channels)
            self.heads = heads
            self.head = nn.Linear(channels, 3)

        def forward(self, x):
            x = self.stem(x)
            B, C, H, W = x.shape
            tokens = x.flatten(2).transpose(1, 2)
            qkv = self.qkv(self.norm(tokens)).reshape(B, H * W, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            attn = F.softmax((q @ k.transpose(-2, -1)) * (C // self.heads) ** -0.5, dim=-1)
            out = (attn @ v).transpose(1, 2).reshape(B, H * W, C)
            tokens = tokens + self.proj(out)
            return self.head(tokens.mean(1))

    class Shared(nn.Module):
        """One conv used twice (``x + conv(x)``), a loop of residual layers, one Linear for both outputs."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)
            self.layers = nn.ModuleList([nn.Conv2d(3, 3, 1, bias=False) for _ in range(2)])
            self.bn = nn.BatchNorm2d(3)
            self.fc = nn.Linear(3, 3)

        def forward(self, x):
            x = F.relu(self.conv(x))
            x = x + self.conv(x)
            for layer in self.layers:
                x = x + layer(x)
            x = self.bn(x).mean((2, 3))
            return self.fc(F.relu(self.fc(x)))

    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(4),
                                      nn.ReLU(inplace=True),
                                      nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.classifier = nn.Linear(4, 3)
            self.regressor = nn.Linear(4, 2)

        def forward(self, x):
            h = self.body(x)
            return self.classifier(h), self.regressor(h)

    def downsample(inplanes, outplanes, stride):
        return nn.Sequential(conv1x1(inplanes, outplanes, stride), nn.BatchNorm2d(outplanes))

    return {
        "basic_block": (lambda: BasicBlock(4, 4), (2, 4, 5, 5)),
        "basic_block_downsample": (lambda: BasicBlock(3, 4, 2, downsample(3, 4, 2)), (2, 3, 6, 5)),
        "bottleneck": (lambda: Bottleneck(8, 2), (2, 8, 4, 4)),
        "bottleneck_downsample": (lambda: Bottleneck(4, 2, 2, downsample(4, 8, 2)), (2, 4, 5, 6)),
        "squeeze_excitation": (SENet, (2, 3, 4, 4)),
        "unet": (UNet, (2, 2, 4, 6)),
        "attention": (Attention, (2, 2, 3, 3)),
        "weight_sharing": (Shared, (2, 3, 4, 4)),
        "two_heads": (TwoHeads, (3, 3, 4, 4)),
    }


def loss_of(L, out, targets):
    """A loss as a user writes it; two heads: their two losses summed."""
    if isinstance(out, tuple):
        logits, regression = out
        return L.F.cross_entropy(logits, targets["classes"]) + 0.5 * L.F.mse_loss(regression, targets["regression"])
    return L.F.mse_loss(out, targets["dense"][: out.numel()].reshape(out.shape))


def targets_for(L, rng_seed, batch, dtype):
    rng = np.random.default_rng(rng_seed)
    classes = rng.integers(0, 3, batch)
    regression = rng.standard_normal((batch, 2)).astype(dtype)
    dense = rng.standard_normal(4096).astype(dtype)
    if L.name == "gpuconv":
        return {"classes": gc.Tensor(device_array(classes)), "regression": gc.Tensor(device_array(regression)),
                "dense": gc.Tensor(device_array(dense))}
    import torch
    return {"classes": torch.tensor(classes), "regression": torch.tensor(regression), "dense": torch.tensor(dense)}


def build_pair(name, dtype):
    """The model twice, same weights: (gpuconv model, torch model, input shape)."""
    torch = torch_or_skip()
    G, T = library("gpuconv"), library("torch")
    torch.manual_seed(0)
    make_torch, shape = model_source(T)[name]
    theirs = make_torch().to(torch.float64 if dtype == np.float64 else torch.float32)
    make_ours, _ = model_source(G)[name]
    ours = make_ours()
    ours = ours.double() if dtype == np.float64 else ours.float()
    their_params = dict(theirs.named_parameters())
    our_params = dict(ours.named_parameters())
    assert sorted(our_params) == sorted(their_params), "the same source must give the same parameter names"
    with gc.no_grad():
        for key, p in our_params.items():
            assert p.shape == tuple(their_params[key].shape), key
            p.copy_(gc.Tensor(device_array(their_params[key].detach().numpy())))
    return ours, theirs, shape


def step_and_compare(ours, theirs, xh, dtype, step, check_input_grad=True):
    """One forward and backward of both, from the same input with ``x.requires_grad_()``: the loss,
    the input's gradient and every parameter's gradient compared."""
    torch = torch_or_skip()
    G, T = library("gpuconv"), library("torch")
    x = gc.Tensor(device_array(xh))
    x.requires_grad_()
    tx = torch.tensor(xh)
    tx.requires_grad_()
    loss = loss_of(G, ours(x), targets_for(G, step, xh.shape[0], dtype))
    tloss = loss_of(T, theirs(tx), targets_for(T, step, xh.shape[0], dtype))
    assert_matches(loss, tloss, dtype, f"step {step}: loss")
    loss.backward()
    tloss.backward()
    their_params = dict(theirs.named_parameters())
    # NOTE: in float32 a gradient small against the others (a batch norm weight behind a residual) is a
    # cancelling sum of terms as large as the model's largest gradients, and carries their rounding.
    scale = 0.0
    if dtype == np.float32:
        scale = max(float(t.grad.abs().max()) for t in [tx, *their_params.values()])
    if check_input_grad:
        assert x.grad is not None, "x.requires_grad_() must give an input gradient"
        assert_matches(x.grad, tx.grad, dtype, f"step {step}: input gradient", scale=scale)
    for key, p in ours.named_parameters():
        assert p.grad is not None, f"step {step}: {key} got no gradient"
        assert p.grad.dtype == p.dtype
        assert_matches(p.grad, their_params[key].grad, dtype, f"step {step}: gradient of {key}", scale=scale)


MODEL_NAMES = sorted(model_source(library("gpuconv")))


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_gradients_equal_torch(backend, name, dtype, rng):
    ours, theirs, shape = build_pair(name, dtype)
    step_and_compare(ours, theirs, rng.standard_normal(shape).astype(dtype), dtype, step=0)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_three_sgd_steps_equal_torch(backend, name, rng):
    """Training: zero_grad, forward, backward, step, three times; parameters and running statistics
    after each step equal torch's (float64)."""
    torch = torch_or_skip()
    ours, theirs, shape = build_pair(name, np.float64)
    opt = gc.optim.SGD(ours.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    topt = torch.optim.SGD(theirs.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    for step in range(3):
        opt.zero_grad()
        topt.zero_grad()
        step_and_compare(ours, theirs, rng.standard_normal(shape), np.float64, step)
        opt.step()
        topt.step()
        their_state = theirs.state_dict()
        for key, value in ours.state_dict().items():
            if key.endswith("num_batches_tracked"):
                assert int(host(value)) == int(their_state[key]), key
                continue
            assert_matches(value, their_state[key], np.float64, f"after step {step}: {key}")


def test_inplace_residual_gradient_is_not_silently_wrong(backend, rng):
    """The issue's first report: with `out += identity` the layers before the block got gradients
    off by up to 2.8e-2 against `out = out + identity`. Both spellings now give the same gradients."""
    G = library("gpuconv")
    source = model_source(G)
    make, shape = source["basic_block"]
    gc.manual_seed(0)
    block = make().double()
    stem = gc.nn.Conv2d(4, 4, 3, padding=1).double()
    xh = rng.standard_normal(shape)

    def grads(forward):
        for p in list(block.parameters()) + list(stem.parameters()):
            p.grad = None
        forward(stem(gc.Tensor(device_array(xh)))).pow(2).sum().backward()
        return [host(p.grad).copy() for p in stem.parameters()]

    def out_of_place(x):
        out = block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x)))))
        return gF.relu(out + x)
    for a, b in zip(grads(block), grads(out_of_place)):
        np.testing.assert_allclose(a, b, rtol=RTOL[np.dtype(np.float64)], atol=1e-12)
