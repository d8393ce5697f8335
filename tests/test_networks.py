import pytest
import torch

from remi_tutorial.networks import ResNet18, SmallConvNet


def parameter_count(module):
    return sum(p.numel() for p in module.parameters())


def test_resnet18_with_the_cifar_stem_has_the_known_parameter_count():
    # torchvision's resnet18 (11,689,512 with 1000 classes) with 10 classes and a 3x3 stem
    assert parameter_count(ResNet18(10, stem="cifar")) == 11_173_962


def test_resnet18_with_the_imagenet_stem_has_torchvisions_parameter_count():
    assert parameter_count(ResNet18(1000, stem="imagenet")) == 11_689_512


def test_resnet18_stems_produce_32_and_56_pixel_maps_from_32_pixel_images():
    images = torch.randn(2, 3, 32, 32)
    assert ResNet18(10, stem="cifar").stem(images).shape == (2, 64, 32, 32)
    assert ResNet18(10, stem="imagenet").stem(images).shape == (2, 64, 56, 56)


def test_resnet18_without_classes_returns_512_non_negative_features():
    embedding = ResNet18(None, in_channels=1)(torch.randn(3, 1, 8, 8))
    assert embedding.shape == (3, 512)
    assert (embedding >= 0).all()


def test_small_conv_net_returns_logits_or_non_negative_features():
    images = torch.randn(4, 1, 8, 8)
    assert SmallConvNet(10)(images).shape == (4, 10)
    features = SmallConvNet(None)(images)
    assert features.shape == (4, 512) and (features >= 0).all()


def test_resnet18_rejects_an_unknown_stem():
    with pytest.raises(ValueError, match="stem"):
        ResNet18(10, stem="tiny")
