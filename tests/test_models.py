"""gpuconv.models: torchvision's parameter names and counts, a small ResNet end to end in float64
(outputs against a functional composition, finite differences on a few parameters), the CIFAR
stem, and (when PyTorch is installed) outputs equal to plain-torch builds of torchvision's
architectures after loading their state dicts converted to NumPy."""

from __future__ import annotations

import numpy as np
import pytest

import gpuconv
import gpuconv.functional as F
from gpuconv import models, nn
from gpuconv.models.resnet import ResNet
from tests.helpers import finite_difference_check


@pytest.fixture(autouse=True)
def numpy_backend():
    with gpuconv.backend("numpy"):
        gpuconv.manual_seed(7)
        yield


def count(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("make, params, entries, keys", [
    (models.resnet18, 11_689_512, 122, ["conv1.weight", "bn1.running_mean", "bn1.num_batches_tracked",
                                        "layer1.0.conv1.weight", "layer1.1.bn2.bias", "layer2.0.downsample.0.weight",
                                        "layer4.0.downsample.1.running_var", "layer4.1.conv2.weight", "fc.weight",
                                        "fc.bias"]),
    (models.resnet34, 21_797_672, 218, ["layer3.5.bn2.weight", "layer4.2.conv2.weight"]),
    (models.resnet50, 25_557_032, 320, ["layer1.0.conv3.weight", "layer1.0.bn3.running_mean",
                                        "layer1.0.downsample.0.weight", "layer4.2.bn3.bias", "fc.weight"]),
    (models.alexnet, 61_100_840, 16, ["features.0.weight", "features.3.bias", "features.10.weight",
                                      "classifier.1.weight", "classifier.4.bias", "classifier.6.weight"]),
])
def test_torchvision_names_and_counts(make, params, entries, keys):
    model = make()
    assert count(model) == params
    state = model.state_dict()
    assert len(state) == entries
    for key in keys:
        assert key in state
    assert all(v.dtype == np.float32 for k, v in state.items() if not k.endswith("num_batches_tracked"))


def test_vgg16_count_names_and_forward(rng):
    model = models.vgg16()
    assert count(model) == 138_357_544
    state = model.state_dict()
    assert list(state)[:2] == ["features.0.weight", "features.0.bias"]
    assert "features.28.weight" in state and "classifier.6.weight" in state and len(state) == 32
    assert repr(model.avgpool) == "AdaptiveAvgPool2d(output_size=(7, 7))"
    assert isinstance(model.classifier[2], nn.Dropout) and model.classifier[6].weight.shape == (1000, 4096)
    model.eval()
    y = model(rng.standard_normal((1, 3, 32, 32)).astype(np.float32))
    assert y.shape == (1, 1000) and np.isfinite(y).all()


def test_vgg11_bn_structure():
    bn = models.vgg11_bn(num_classes=10, in_channels=1)
    # 132,868,840 with 1000 classes and 3 input channels
    assert count(bn) + 4096 * 990 + 990 + 64 * 9 * 2 == 132_868_840
    names = [n for n, _ in bn.named_parameters()]
    assert names[:4] == ["features.0.weight", "features.0.bias", "features.1.weight", "features.1.bias"]
    assert "features.1.running_mean" in bn.state_dict() and bn.features[0].weight.shape == (64, 1, 3, 3)
    assert [type(m).__name__ for m in bn.features][:5] == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Conv2d"]
    assert len(bn.features) == 29


def test_num_classes_in_channels_and_cifar_stem(rng):
    model = models.resnet18(num_classes=10, in_channels=1, cifar_stem=True)
    assert model.conv1.weight.shape == (64, 1, 3, 3) and model.fc.weight.shape == (10, 512)
    assert isinstance(model.maxpool, nn.Identity)
    x = rng.standard_normal((2, 1, 32, 32)).astype(np.float32)
    assert model(x).shape == (2, 10) and model.output_shape(x.shape) == (2, 10)
    standard = models.resnet18(num_classes=3)
    assert standard.conv1.weight.shape == (64, 3, 7, 7) and isinstance(standard.maxpool, nn.MaxPool2d)
    # a standard stem shrinks 32x32 to 1x1 before the last stage; the CIFAR stem keeps 4x4
    assert model.layer4.output_shape((2, 256, 8, 8)) == (2, 512, 4, 4)
    lenet = models.lenet5()
    assert count(lenet) == 61_706
    assert lenet(rng.standard_normal((3, 1, 32, 32)).astype(np.float32)).shape == (3, 10)


def test_resnet_init_is_torchvisions():
    model = models.resnet50()
    w = model.layer1[0].conv2.weight.data  # fan_out = 64 * 9
    assert abs(w.std() - np.sqrt(2 / (64 * 9))) < 0.05 * np.sqrt(2 / (64 * 9))
    assert (model.layer1[0].bn3.weight.data == 1).all()
    zero = models.resnet18(zero_init_residual=True)
    assert (zero.layer1[0].bn2.weight.data == 0).all() and (zero.layer1[0].bn1.weight.data == 1).all()


def _functional_resnet(model: ResNet, x, cifar_stem: bool):
    """The same network written with gpuconv.functional directly (eval mode)."""
    def bn(m, v):
        return F.batch_norm(v, m.running_mean, m.running_var, m.weight.data, m.bias.data, eps=m.eps)

    def conv(m, v):
        return F.conv2d(v, m.weight.data, None, m.stride, m.padding)

    out = F.relu(bn(model.bn1, conv(model.conv1, x)))
    if not cifar_stem:
        out = F.max_pool2d(out, 3, 2, 1)
    for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
        for block in stage:
            identity = out if block.downsample is None else bn(block.downsample[1], conv(block.downsample[0], out))
            h = F.relu(bn(block.bn1, conv(block.conv1, out)))
            h = bn(block.bn2, conv(block.conv2, h))
            if isinstance(block, nn.Bottleneck):
                h = bn(block.bn3, conv(block.conv3, F.relu(h)))
            out = F.relu(h + identity)
    out = F.adaptive_avg_pool2d(out, 1).reshape(out.shape[0], -1)
    return F.linear(out, model.fc.weight.data, model.fc.bias.data)


@pytest.mark.parametrize("block, cifar_stem", [(nn.BasicBlock, False), (nn.Bottleneck, True)])
def test_small_resnet_float64_end_to_end(block, cifar_stem, rng):
    model = ResNet(block, [1, 1, 1, 1], num_classes=4, cifar_stem=cifar_stem, dtype=np.float64)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean[...] = rng.standard_normal(m.num_features) * 0.1
            m.running_var[...] = rng.uniform(0.5, 1.5, m.num_features)
            m.weight.data[...] = rng.uniform(0.5, 1.5, m.num_features)
            m.bias.data[...] = rng.standard_normal(m.num_features) * 0.1
    # batch statistics of the last stage come from 2x2 maps of 2 images: 8 values per channel, enough
    # to keep batch normalization smooth for finite differences.
    x = rng.standard_normal((2, 3, 12 if cifar_stem else 40, 12 if cifar_stem else 40))
    model.eval()
    np.testing.assert_allclose(model(x), _functional_resnet(model, x, cifar_stem), rtol=1e-10, atol=1e-12)

    # training mode: finite differences of the cross-entropy loss on a few parameters
    model.train()
    target = np.array([1, 3])
    crit = nn.CrossEntropyLoss()
    model.zero_grad()
    xt = gpuconv.tensor(x, requires_grad=True)
    crit(model(xt), target).backward()
    dx = xt.grad.numpy()
    params = dict(model.named_parameters())
    picked = ["conv1.weight", "layer2.0.downsample.0.weight", "layer3.0.bn1.weight", "layer4.0.conv2.weight",
              "fc.bias"]
    inputs = {"x": x, **{name: params[name].data for name in picked}}
    grads = {"x": dx, **{name: params[name].grad.numpy() for name in picked}}

    def loss(**_):
        with gpuconv.no_grad():
            return float(crit(model(x), target))

    # eps 1e-7 and rtol 1e-4: fewer perturbations cross a ReLU kink among ~10^5 activations
    finite_difference_check(loss, inputs, grads, eps=1e-7, samples=4, rng=rng, rtol=1e-4, atol=1e-8)


# ---- against PyTorch (optional) ------------------------------------------------------------------------------
def _torch_resnet(torch, block: str, layers, num_classes):
    """torchvision's ResNet written in plain torch.nn (torchvision itself is not installed)."""
    tnn = torch.nn

    class Basic(tnn.Module):
        expansion = 1

        def __init__(self, inplanes, planes, stride=1, downsample=None):
            super().__init__()
            self.conv1 = tnn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(planes)
            self.relu = tnn.ReLU(inplace=True)
            self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(planes)
            self.downsample = downsample

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.bn2(self.conv2(out)) + identity)

    class Bottle(tnn.Module):
        expansion = 4

        def __init__(self, inplanes, planes, stride=1, downsample=None):
            super().__init__()
            self.conv1 = tnn.Conv2d(inplanes, planes, 1, bias=False)
            self.bn1 = tnn.BatchNorm2d(planes)
            self.conv2 = tnn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = tnn.BatchNorm2d(planes)
            self.conv3 = tnn.Conv2d(planes, planes * 4, 1, bias=False)
            self.bn3 = tnn.BatchNorm2d(planes * 4)
            self.relu = tnn.ReLU(inplace=True)
            self.downsample = downsample

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            return self.relu(self.bn3(self.conv3(out)) + identity)

    blk = Basic if block == "basic" else Bottle

    class Net(tnn.Module):
        def __init__(self):
            super().__init__()
            self.inplanes = 64
            self.conv1 = tnn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = tnn.BatchNorm2d(64)
            self.relu = tnn.ReLU(inplace=True)
            self.maxpool = tnn.MaxPool2d(3, 2, 1)
            self.layer1 = self._make(64, layers[0], 1)
            self.layer2 = self._make(128, layers[1], 2)
            self.layer3 = self._make(256, layers[2], 2)
            self.layer4 = self._make(512, layers[3], 2)
            self.avgpool = tnn.AdaptiveAvgPool2d((1, 1))
            self.fc = tnn.Linear(512 * blk.expansion, num_classes)

        def _make(self, planes, blocks, stride):
            downsample = None
            if stride != 1 or self.inplanes != planes * blk.expansion:
                downsample = tnn.Sequential(tnn.Conv2d(self.inplanes, planes * blk.expansion, 1, stride, bias=False),
                                            tnn.BatchNorm2d(planes * blk.expansion))
            out = [blk(self.inplanes, planes, stride, downsample)]
            self.inplanes = planes * blk.expansion
            out += [blk(self.inplanes, planes) for _ in range(1, blocks)]
            return tnn.Sequential(*out)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return Net()


@pytest.mark.parametrize("name, block, layers", [("resnet18", "basic", [2, 2, 2, 2]),
                                                  ("resnet50", "bottleneck", [3, 4, 6, 3])])
def test_torch_state_dict_loads_and_matches(name, block, layers, rng):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    reference = _torch_resnet(torch, block, layers, num_classes=10)
    with torch.no_grad():
        for m in reference.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    state = {k: v.numpy() for k, v in reference.state_dict().items()}
    model = getattr(models, name)(num_classes=10)
    assert list(state) == list(model.state_dict())
    model.load_state_dict(state)
    x = rng.standard_normal((2, 3, 64, 64)).astype(np.float32)
    reference.eval()
    model.eval()
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model(x), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    # training mode (batch statistics) too
    reference.train()
    model.train()
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model(x), expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())


def test_torch_alexnet_and_vgg_names(rng):
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    torch.manual_seed(0)
    features = tnn.Sequential(
        tnn.Conv2d(3, 64, 11, 4, 2), tnn.ReLU(True), tnn.MaxPool2d(3, 2), tnn.Conv2d(64, 192, 5, padding=2),
        tnn.ReLU(True), tnn.MaxPool2d(3, 2), tnn.Conv2d(192, 384, 3, padding=1), tnn.ReLU(True),
        tnn.Conv2d(384, 256, 3, padding=1), tnn.ReLU(True), tnn.Conv2d(256, 256, 3, padding=1), tnn.ReLU(True),
        tnn.MaxPool2d(3, 2))
    classifier = tnn.Sequential(tnn.Dropout(), tnn.Linear(9216, 4096), tnn.ReLU(True), tnn.Dropout(),
                                tnn.Linear(4096, 4096), tnn.ReLU(True), tnn.Linear(4096, 5))
    reference = tnn.Module()
    reference.features, reference.avgpool, reference.classifier = features, tnn.AdaptiveAvgPool2d((6, 6)), classifier
    state = {k: v.numpy() for k, v in reference.state_dict().items()}
    model = models.alexnet(num_classes=5)
    model.load_state_dict(state)
    x = rng.standard_normal((1, 3, 67, 67)).astype(np.float32)
    reference.eval()
    model.eval()
    with torch.no_grad():
        expected = classifier(torch.flatten(reference.avgpool(features(torch.from_numpy(x))), 1)).numpy()
    np.testing.assert_allclose(model(x), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
