"""Models written as a PyTorch user writes them (not gpuconv's own layers), for the memory estimator's
tests: the estimator must follow what their forward and autograd really allocate."""

import gpuconv as gc
import gpuconv.functional as F
from gpuconv import nn


class TorchvisionBasicBlock(nn.Module):
    """torchvision's BasicBlock.forward as written there (out += identity, ReLU(inplace=True))."""

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(planes))

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


class SqueezeExcitation(nn.Module):
    """x * sigmoid(fc2(relu(fc1(pool(x))))), the gate broadcast over H and W."""

    def __init__(self, channels, reduction=4):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1)

    def forward(self, x):
        s = self.pool(x)
        s = F.relu(self.fc1(s))
        s = gc.sigmoid(self.fc2(s))
        return x * s


class TinyUNet(nn.Module):
    """Two levels of encoder and decoder: gc.cat skips, a ConvTranspose2d and a bilinear F.interpolate."""

    def __init__(self, classes=4):
        super().__init__()
        self.enc1 = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.enc2 = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU())
        self.bottom = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU())
        self.up2 = nn.ConvTranspose2d(16, 16, 2, stride=2)
        self.dec2 = nn.Sequential(nn.Conv2d(32, 16, 3, padding=1), nn.ReLU())
        self.dec1 = nn.Sequential(nn.Conv2d(16 + 8, 8, 3, padding=1), nn.ReLU())
        self.head = nn.Conv2d(8, classes, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        b = self.bottom(e2)
        d2 = self.dec2(gc.cat([self.up2(b), e2], dim=1))
        up = F.interpolate(d2, scale_factor=2, mode="bilinear", align_corners=False)
        d1 = self.dec1(gc.cat([up, e1], dim=1))
        return self.head(d1)


class AttentionBlock(nn.Module):
    """Single-head self-attention over the H*W positions of a feature map, with a residual."""

    def __init__(self, channels):
        super().__init__()
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, channels)
        self.scale = channels ** -0.5

    def forward(self, x):
        n, c, h, w = x.shape
        tokens = x.reshape(n, c, h * w).transpose(1, 2)
        q, k, v = self.qkv(tokens).chunk(3, dim=-1)
        attn = F.softmax(gc.matmul(q, k.transpose(1, 2)) * self.scale, dim=-1)
        out = self.proj(gc.matmul(attn, v))
        return x + out.transpose(1, 2).reshape(n, c, h, w)


def se_net():
    """Convolutions gated by squeeze-and-excitation blocks (x * gate(x), broadcasting)."""
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), SqueezeExcitation(16),
                         nn.MaxPool2d(2), nn.Conv2d(16, 16, 3, padding=1), SqueezeExcitation(16),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


def basic_net():
    """A stem and two torchvision BasicBlocks (the second strided, with a downsample)."""
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
                         TorchvisionBasicBlock(16, 16), TorchvisionBasicBlock(16, 32, stride=2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))


def attention_net():
    """A strided convolution, then self-attention over its positions (matmul, transpose, softmax)."""
    return nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(), AttentionBlock(16),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
