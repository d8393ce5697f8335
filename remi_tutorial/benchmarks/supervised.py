"""The supervised benchmark: a classifier's logits as the critic of (image, label) pairs.

Choi & Lee (2022) turn classification into MI estimation. The label ``Y`` determines the
class of the image ``X`` (``H(Y | X) = 0``), so ``I(X; Y) = H(Y)``, ``log K`` for ``K``
balanced classes. A classifier's logits ``[B, K]`` score every (image, class) pair of a
batch: the positive pairs are the images with their labels (one per row,
:func:`~remi_tutorial.tasks.label_masks`), the marginal term runs over all ``B K`` pairs.
Maximising a bound trains the classifier; the benchmark reports the MI estimate against
``H(Y)`` and the test accuracy of the argmax of the logits. :data:`SUPERVISED` states this
for the engine of the image benchmarks (:mod:`~remi_tutorial.benchmarks.image_cells`).

Command line: ``python -m remi_tutorial.benchmarks supervised`` (``--help`` shows the
options and examples).
"""

from __future__ import annotations

import argparse

import torch
from torch import Tensor

from ..bounds import BOUND_NAMES
from ..critics import ImageCritic
from ..datasets import ImageDataset
from ..tasks import label_masks
from .image_cli import add_image_arguments, run_from_args
from .image_spec import ImageBenchmark

__all__ = ["SUPERVISED", "test_accuracy", "add_arguments", "main"]

EXAMPLES = """examples:
  # the CPU-size sweep of the book: digits, the twelve bounds, two seeds
  %(prog)s --dataset digits --seeds 0 1 --alpha 0.1 --out results/supervised_digits.csv
  # the paper's CIFAR-10 cells of MINE and ReMINE (a GPU job; a later call resumes it)
  %(prog)s --dataset cifar10 --download --loss mine remine --seeds 0 1 2 --results results
"""


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


def _test_set_accuracy(critic: ImageCritic, dataset: ImageDataset) -> float:
    """:func:`test_accuracy` on the dataset's test images."""
    return test_accuracy(critic, dataset.test_images, dataset.test_labels)


SUPERVISED = ImageBenchmark(
    name="supervised",
    head="logits",
    masks=label_masks,
    pair_every_batch=False,
    metric=_test_set_accuracy,
    metric_name="test accuracy of the argmax of the logits",
    losses=BOUND_NAMES,
)
"""The supervised benchmark, with logits ``[B, K]``, one-hot label masks and test accuracy."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m remi_tutorial.benchmarks supervised``."""
    add_image_arguments(parser, SUPERVISED)


def main(args: argparse.Namespace) -> None:
    run_from_args(args)
