"""The supervised benchmark: a classifier's logits as the critic of (image, label) pairs.

Choi & Lee (2022) turn classification into MI estimation. The label ``Y`` determines the
class of the image ``X`` (``H(Y | X) = 0``), so ``I(X; Y) = H(Y)``, ``log K`` for ``K``
balanced classes. A classifier's logits ``[B, K]`` score every (image, class) pair of a
batch: the positive pairs are the images with their labels (one per row,
:func:`~remi_tutorial.tasks.label_masks`), the marginal term runs over all ``B K`` pairs.
Maximising a bound trains the classifier; the benchmark reports the MI estimate against
``H(Y)`` and the test accuracy of the argmax of the logits.

Command line: ``python -m remi_tutorial.benchmarks supervised --dataset cifar10 --loss
mine remine --seed 0 1 2`` (see ``--help``).
"""

from __future__ import annotations

import argparse

import torch
from torch import Tensor

from ..images import ImageCritic
from .image_runs import add_image_arguments, run_from_args

__all__ = ["test_accuracy", "add_arguments", "main"]


@torch.no_grad()
def test_accuracy(critic: ImageCritic, images: Tensor, labels: Tensor, *, batch_size: int = 1000) -> float:
    """The share of images whose largest logit is their label (batch norm in eval mode).

    Args:
        critic: a ``kind="logits"`` critic.
        images: float ``[N, C, H, W]``.
        labels: int64 ``[N]``.
        batch_size: images per forward pass.

    Returns:
        The accuracy in ``[0, 1]``.
    """
    if critic.kind != "logits":
        raise ValueError("test_accuracy needs a critic with kind='logits'")
    device = next(critic.parameters()).device
    was_training = critic.training
    critic.eval()
    correct = 0
    for begin in range(0, len(labels), batch_size):
        logits = critic(images[begin:begin + batch_size].to(device))
        correct += int((logits.argmax(-1) == labels[begin:begin + batch_size].to(device)).sum())
    critic.train(was_training)
    return correct / len(labels)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_image_arguments(parser, "supervised")


def main(args: argparse.Namespace) -> None:
    run_from_args(args)
