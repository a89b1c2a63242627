"""The model zoo: LeNet-5, AlexNet, VGG and ResNet, with torchvision's parameter names.

A torchvision state dict converted to NumPy (``{k: v.numpy() for k, v in sd.items()}``) loads
with ``model.load_state_dict(sd)`` (strict) and gives the same outputs.
"""

from .resnet import ResNet, resnet18, resnet34, resnet50
from .vgg import VGG, AlexNet, LeNet5, alexnet, lenet5, vgg11, vgg11_bn, vgg16, vgg16_bn

__all__ = ["AlexNet", "LeNet5", "ResNet", "VGG", "alexnet", "lenet5", "resnet18", "resnet34", "resnet50", "vgg11",
           "vgg11_bn", "vgg16", "vgg16_bn"]
