"""What an image benchmark is, as data: the spec that the one engine of the image benchmarks runs.

The supervised and the contrastive benchmark train the same networks with the same loop on
the same datasets; they differ in how a batch is scored, which pairs are positive, and how
the trained network is evaluated. :class:`ImageBenchmark` states exactly that, and the
engine (:mod:`~remi_tutorial.benchmarks.image_cells`) reads it instead of testing a
benchmark's name. The two instances are
:data:`~remi_tutorial.benchmarks.supervised.SUPERVISED` and
:data:`~remi_tutorial.benchmarks.contrastive.CONTRASTIVE`;
:mod:`~remi_tutorial.benchmarks.image_registry` finds them by name.

This module imports nothing from the engine, so every module of the image benchmarks can
depend on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from ..critics import ImageCritic
from ..datasets import ImageDataset, MaskBuilder

__all__ = ["ImageBenchmark"]


@dataclass(frozen=True)
class ImageBenchmark:
    """An image benchmark: its score head, its masks, its metric and the losses it offers.

    Attributes:
        name: the benchmark's name, e.g. ``"supervised"``: the ``benchmark`` column of the
            results and part of every cell's key.
        head: the critic's score head (:class:`~remi_tutorial.critics.ImageCritic`'s
            ``kind``): ``"logits"``, one score per (image, class) pair, ``[B, K]``; or
            ``"dot"``, the dot products of the images' embeddings, ``[B, B]``.
        masks: ``(labels [B], num_classes) -> (positive, negative)`` for the head's scores
            (:data:`~remi_tutorial.datasets.MaskBuilder`).
        pair_every_batch: whether every batch must hold two images with the same label
            (the masks select no positive pair otherwise); the batch stream then repairs the
            batches without one (:class:`~remi_tutorial.datasets.ImageBatches`).
        metric: ``(critic, dataset) -> float``, the evaluation of a trained critic on the
            dataset's test images (the ``test_accuracy`` column of the results).
        metric_name: what ``metric`` measures, in words.
        losses: the names of the losses a cell of this benchmark can train.
    """

    name: str
    head: Literal["logits", "dot"]
    masks: MaskBuilder = field(repr=False)
    pair_every_batch: bool
    metric: Callable[[ImageCritic, ImageDataset], float] = field(repr=False)
    metric_name: str
    losses: tuple[str, ...] = field(repr=False)

    def __post_init__(self):
        if self.head not in ("logits", "dot"):
            raise ValueError(f"head must be 'logits' or 'dot', got {self.head!r}")

    @property
    def embeds(self) -> bool:
        """Whether the network's output is an embedding of a free size (the ``"dot"`` head)
        rather than one logit per class."""
        return self.head == "dot"

    def network_outputs(self, num_classes: int, embed_dim: int | None) -> int | None:
        """The number of outputs of the network's final linear layer, ``None`` for none.

        Args:
            num_classes: ``K``, the dataset's classes.
            embed_dim: the size of a projection of the embedding (``None``: the network's
                features themselves); ignored by the ``"logits"`` head.

        Returns:
            ``K`` for the ``"logits"`` head, ``embed_dim`` for the ``"dot"`` head.
        """
        return embed_dim if self.embeds else num_classes
