"""The networks of the image benchmarks: ResNet-18 and a small network for CPU runs.

:class:`ResNet18` (the network of the paper's benchmarks) has a switch between a 32x32 stem
and the authors' pipeline (upsample to 224x224, ImageNet stem); :class:`SmallConvNet` is for
CPU runs. Both end like ResNet-18: ReLU features (``features``: ``[B, C, H, W] -> [B, F]``),
global average pooling, then an optional linear layer (``head``), and both are initialised
as ``torchvision.models.resnet18``. :class:`~remi_tutorial.critics.ImageCritic` turns either
into a critic.
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ResNet18", "SmallConvNet"]


class _BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a shortcut (He et al., 2016)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


def _init_like_torchvision(module: nn.Module) -> None:
    """He-normal convolutions (fan-out) and unit batch norms, as ``torchvision.models.resnet18``.

    The initial scale of the features sets the initial scale of the contrastive scores, so
    it follows the network the authors used.
    """
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)


class ResNet18(nn.Module):
    """ResNet-18 (He et al., 2016) with a choice of stem.

    * ``stem="cifar"``: a 3x3 stride-1 convolution and no max-pooling, the usual adaptation
      to 32x32 images; the last feature map is 4x4.
    * ``stem="imagenet"``: the authors' pipeline: every image is upsampled (bilinear) to
      224x224 and goes through the ImageNet stem (7x7 stride-2 convolution, 3x3 max-pool);
      the last feature map is 7x7. 49 times the pixels of a 32x32 image; about 3.3 times
      the arithmetic (forward FLOPs per image, 3.63 vs 1.11 GFLOP) of the ``"cifar"`` stem,
      because that stem keeps 32x32 maps where the ImageNet one shrinks 224x224 to 56x56
      (``scripts/bench_images.py`` measures both).

    Initialised as ``torchvision.models.resnet18``.

    Args:
        num_classes: outputs of the final linear layer, or ``None`` for no final layer (the
            encoder of the contrastive benchmark: 512 non-negative features).
        stem: ``"cifar"`` or ``"imagenet"``.
        in_channels: channels of the input images.

    Shapes: ``[B, in_channels, H, W] -> [B, num_classes]`` (or ``[B, 512]``).
    """

    def __init__(
        self,
        num_classes: int | None = 10,
        *,
        stem: Literal["cifar", "imagenet"] = "cifar",
        in_channels: int = 3,
    ):
        super().__init__()
        if stem == "cifar":
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU()
            )
        elif stem == "imagenet":
            self.stem = nn.Sequential(
                nn.Upsample(size=(224, 224), mode="bilinear", align_corners=False),
                nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False),
                nn.BatchNorm2d(64),
                nn.ReLU(),
                nn.MaxPool2d(3, 2, 1),
            )
        else:
            raise ValueError(f"stem must be 'cifar' or 'imagenet', got {stem!r}")
        self.stem_name = stem
        blocks: list[nn.Module] = []
        channels = 64
        for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [_BasicBlock(channels, width, stride), _BasicBlock(width, width, 1)]
            channels = width
        self.features = nn.Sequential(
            self.stem, *blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.head: nn.Module = nn.Identity() if num_classes is None else nn.Linear(512, num_classes)
        self.out_features = 512 if num_classes is None else num_classes
        _init_like_torchvision(self.features)

    def forward(self, images: Tensor) -> Tensor:
        """``[B, C, H, W] -> [B, num_classes]`` (or ``[B, 512]``)."""
        return self.head(self.features(images))


class SmallConvNet(nn.Module):
    """A small convolutional network for CPU runs, ending like ResNet-18.

    Three 3x3 convolutions with batch norm and ReLU (the second with stride 2), global
    average pooling, and an optional final linear layer. Its features are non-negative
    averages of ReLU outputs, as ResNet-18's are, and the default width of the last
    convolution is ResNet-18's 512 (it is a 1x1 convolution to keep the cost small), so
    that the scale of its embedding's dot products at initialisation is comparable.

    Args:
        num_classes: outputs of the final linear layer, or ``None`` for none.
        in_channels: channels of the input images.
        widths: output channels of the three convolutions.

    Shapes: ``[B, in_channels, H, W] -> [B, num_classes]`` (or ``[B, widths[-1]]``).
    """

    def __init__(
        self,
        num_classes: int | None = 10,
        *,
        in_channels: int = 1,
        widths: tuple[int, int, int] = (32, 64, 512),
    ):
        super().__init__()
        first, second, last = widths
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, first, 3, 1, 1, bias=False), nn.BatchNorm2d(first), nn.ReLU(),
            nn.Conv2d(first, second, 3, 2, 1, bias=False), nn.BatchNorm2d(second), nn.ReLU(),
            nn.Conv2d(second, last, 1, bias=False), nn.BatchNorm2d(last), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head: nn.Module = nn.Identity() if num_classes is None else nn.Linear(last, num_classes)
        self.out_features = last if num_classes is None else num_classes
        _init_like_torchvision(self.features)

    def forward(self, images: Tensor) -> Tensor:
        """``[B, C, H, W] -> [B, num_classes]`` (or ``[B, widths[-1]]``)."""
        return self.head(self.features(images))
