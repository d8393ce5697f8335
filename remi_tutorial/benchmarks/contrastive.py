"""The contrastive benchmark: dot products of image embeddings as the critic.

Choi & Lee (2022): two different images ``X_1, X_2`` with the same label ``Y`` form a
positive pair. The label determines the class (``H(Y | X) = 0``) and the two images are
drawn independently given it, so ``I(X_1; X_2) = H(Y)``, ``log K`` for ``K`` balanced
classes. The critic is the dot product of two embeddings (ResNet-18 without its final
layer): ``scores = z z^T``, ``[B, B]``. Positives are pairs of different images with the
same label, the marginal term runs over every pair of different images
(:func:`~remi_tutorial.tasks.contrastive_masks`); a batch without a same-label pair is
repaired by :class:`~remi_tutorial.datasets.ImageBatches`. The benchmark reports the MI
estimate against ``H(Y)`` and the 1-nearest-neighbour test accuracy of the embedding.
:data:`CONTRASTIVE` states this for the engine of the image benchmarks
(:mod:`~remi_tutorial.benchmarks.image_cells`).

Besides the twelve bounds, a cell can train the second-order objective
:func:`~remi_tutorial.explicit.explicit_mi` on the embeddings themselves (loss
``"explicit"``, see :func:`~remi_tutorial.benchmarks.image_cells.cell_model`); its reported MI
is the Gaussian MI of same-label pairs, not an estimate of ``H(Y)``.

Command line: ``python -m remi_tutorial.benchmarks contrastive`` (``--help`` shows the
options and examples).
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Iterable

import pandas as pd
import torch
from torch import Tensor

from ..bounds import BOUND_NAMES, get_bound
from ..critics import ImageCritic
from ..datasets import ImageDataset
from ..tasks import Batch, contrastive_masks
from .image_cli import add_image_arguments, run_from_args
from .image_config import SECOND_ORDER_LOSS
from .image_spec import ImageBenchmark

__all__ = ["CONTRASTIVE", "embed", "nearest_neighbour_accuracy", "first_step", "add_arguments",
           "main"]

EXAMPLES = """examples:
  # the CPU-size sweep of the book: digits, the twelve bounds, two seeds
  %(prog)s --dataset digits --seeds 0 1 --alpha 0.1 --out results/contrastive_digits.csv
  # the second-order loss on a 32-dimensional projection, trained on its fourth-order series
  %(prog)s --dataset digits --loss explicit --embed-dim 32 --order 4 --batch-size 128
  # the paper's CIFAR-10 cells of NWJ and ReNWJ (a GPU job; a later call resumes it)
  %(prog)s --dataset cifar10 --download --loss nwj renwj --seeds 0 1 2 --results results
"""


@torch.no_grad()
def embed(critic: ImageCritic, images: Tensor, *, batch_size: int = 1000) -> Tensor:
    """``[N, C, H, W] -> [N, D]``: the critic's embedding of every image (eval mode)."""
    device = next(critic.parameters()).device
    was_training = critic.training
    critic.eval()
    outputs = [critic.embed(images[b:b + batch_size].to(device)) for b in range(0, len(images), batch_size)]
    critic.train(was_training)
    return torch.cat(outputs)


@torch.no_grad()
def nearest_neighbour_accuracy(
    critic: ImageCritic,
    train_images: Tensor,
    train_labels: Tensor,
    test_images: Tensor,
    test_labels: Tensor,
    *,
    batch_size: int = 1000,
) -> float:
    """1-nearest-neighbour test accuracy of the embedding, with the critic's similarity.

    Each test image gets the label of the training image whose embedding has the largest
    dot product with its own (the critic's score), as in the authors' evaluation.

    Args:
        critic: a ``kind="dot"`` critic.
        train_images: float ``[N, C, H, W]``; ``train_labels``: int64 ``[N]``.
        test_images: float ``[N_test, C, H, W]``; ``test_labels``: int64 ``[N_test]``.
        batch_size: test images compared at once (memory ``batch_size x N``).

    Returns:
        The accuracy in ``[0, 1]``.
    """
    if critic.kind != "dot":
        raise ValueError("nearest_neighbour_accuracy needs a critic with kind='dot'")
    reference = embed(critic, train_images, batch_size=batch_size)  # [N, D]
    queries = embed(critic, test_images, batch_size=batch_size)  # [N_test, D]
    reference_labels = train_labels.to(reference.device)
    correct = 0
    for begin in range(0, len(queries), batch_size):
        nearest = (queries[begin:begin + batch_size] @ reference.T).argmax(-1)
        predicted = reference_labels[nearest]
        correct += int((predicted == test_labels[begin:begin + batch_size].to(predicted.device)).sum())
    return correct / len(test_labels)


def first_step(
    critic: ImageCritic, batch: Batch, losses: Iterable[str] = BOUND_NAMES, **params
) -> pd.DataFrame:
    """What each loss does at the critic's current weights, on one batch: its value and its
    gradient.

    Every loss gets a fresh copy of ``critic`` (in train mode, as in training), so the
    rows are independent. Float32 overflows above ``exp(88.7)``: a loss whose scores are
    that large gets a non-finite objective or gradient here.

    Args:
        critic: the critic at its initial (or any) weights.
        batch: one batch, e.g. ``ImageBatches(...)(0)``.
        losses: bound names.
        **params: bound parameters by loss name, e.g. ``smile={"tau": 10.0}``.

    Returns:
        A table with one row per loss and the columns ``loss``, ``mi`` (the reported
        estimate), ``objective``, ``gradient_norm`` (the 2-norm of the gradient of the loss
        over all weights; NaN if any entry is not finite) and ``score_mean`` (the mean
        score of the batch).
    """
    rows = []
    for loss in losses:
        twin = copy.deepcopy(critic).train()
        scores = twin(*batch.inputs)
        result = get_bound(loss, **params.get(loss, {}))(
            scores, batch.positive, batch.negative, check=False)
        twin.zero_grad(set_to_none=False)
        result.loss.backward()
        gradients = torch.cat([p.grad.flatten() for p in twin.parameters() if p.grad is not None])
        rows.append({
            "loss": loss,
            "mi": result.mi.detach().item(),
            "objective": result.objective.detach().item(),
            "gradient_norm": float(gradients.norm()) if bool(torch.isfinite(gradients).all()) else float("nan"),
            "score_mean": float(scores.detach().mean()),
        })
    return pd.DataFrame(rows)


def _same_label_masks(labels: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """:func:`~remi_tutorial.tasks.contrastive_masks` as a mask builder (``num_classes``
    plays no part: the scores are ``[B, B]``)."""
    return contrastive_masks(labels)


def _test_set_accuracy(critic: ImageCritic, dataset: ImageDataset) -> float:
    """:func:`nearest_neighbour_accuracy` of the test images among the training images."""
    return nearest_neighbour_accuracy(critic, dataset.train_images, dataset.train_labels,
                                      dataset.test_images, dataset.test_labels)


CONTRASTIVE = ImageBenchmark(
    name="contrastive",
    head="dot",
    masks=_same_label_masks,
    pair_every_batch=True,
    metric=_test_set_accuracy,
    metric_name="1-nearest-neighbour test accuracy of the embedding",
    losses=(*BOUND_NAMES, SECOND_ORDER_LOSS),
)
"""The contrastive benchmark, with dot products ``[B, B]``, same-label masks (a pair in every
batch), 1-nearest-neighbour test accuracy, the bounds and the second-order loss."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m remi_tutorial.benchmarks contrastive``."""
    add_image_arguments(parser, CONTRASTIVE)


def main(args: argparse.Namespace) -> None:
    run_from_args(args)
