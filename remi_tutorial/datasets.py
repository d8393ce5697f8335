"""Image datasets and the batch stream of the image benchmarks.

Datasets (:class:`ImageDataset`, images scaled to ``[-1, 1]`` like the authors' pipeline):

* CIFAR-10 and CIFAR-100, read from the "python version" that the dataset's authors
  distribute (``cifar-10-batches-py/data_batch_1..5, test_batch``;
  ``cifar-100-python/train, test`` with ``fine_labels``). :func:`load_cifar` downloads them
  with torchvision when asked to (torchvision is imported only for that step).
* scikit-learn's digits (1,797 8x8 grey images, 10 classes), which needs no download: the
  dataset of the CPU-size runs.

Batch stream: :class:`ImageBatches` turns a dataset into ``batches(step) -> Batch`` for
:func:`~remi_tutorial.train.train`, with the masks of a benchmark (a mask builder such as
:func:`~remi_tutorial.tasks.label_masks`). The batch at a step is a pure function of
``(seed, step)``, which is what makes a resumed run identical to an uninterrupted one.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from .tasks import Batch

__all__ = [
    "DATASET_NAMES",
    "ImageDataset",
    "read_cifar",
    "load_cifar",
    "load_digits",
    "load_image_dataset",
    "place_dataset",
    "label_entropy",
    "MaskBuilder",
    "ImageBatches",
]

DATASET_NAMES: tuple[str, ...] = ("digits", "cifar10", "cifar100")
"""The datasets :func:`load_image_dataset` knows."""

_CIFAR_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
_CIFAR_FILES = {
    "cifar10": ([f"data_batch_{i}" for i in range(1, 6)], ["test_batch"]),
    "cifar100": (["train"], ["test"]),
}
_CIFAR_LABEL_KEYS = {"cifar10": "labels", "cifar100": "fine_labels"}
_CIFAR_CLASSES = {"cifar10": 10, "cifar100": 100}
_CIFAR_URLS = {
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "cifar100": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
}


@dataclass(frozen=True)
class ImageDataset:
    """A labelled image dataset split into training and test sets.

    Attributes:
        name: ``"digits"``, ``"cifar10"`` or ``"cifar100"``.
        train_images: float ``[N, C, H, W]`` in ``[-1, 1]``.
        train_labels: int64 ``[N]`` in ``[0, num_classes)``.
        test_images: float ``[N_test, C, H, W]``.
        test_labels: int64 ``[N_test]``.
        num_classes: ``K``.
    """

    name: str
    train_images: Tensor
    train_labels: Tensor
    test_images: Tensor
    test_labels: Tensor
    num_classes: int

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)``."""
        return tuple(self.train_images.shape[1:])

    @property
    def device(self) -> torch.device:
        return self.train_images.device

    def to(self, device: torch.device | str) -> ImageDataset:
        """The same dataset with every tensor on ``device``."""
        return replace(
            self,
            train_images=self.train_images.to(device),
            train_labels=self.train_labels.to(device),
            test_images=self.test_images.to(device),
            test_labels=self.test_labels.to(device),
        )

    def __str__(self) -> str:
        c, h, w = self.image_shape
        return (
            f"{self.name}: {len(self.train_labels)} training and {len(self.test_labels)} test "
            f"images of {c}x{h}x{w}, {self.num_classes} classes, on {self.device}"
        )


def _scale_to_unit_range(pixels: Tensor, maximum: float) -> Tensor:
    """Pixels in ``[0, maximum]`` -> float32 in ``[-1, 1]`` (``Normalize(0.5, 0.5)`` of the authors)."""
    return pixels.to(torch.float32).div_(maximum / 2.0).sub_(1.0)


def _entry(record: dict, key: str):
    """A field of a CIFAR pickle, whose keys are bytes in the original files."""
    for candidate in (key.encode(), key):
        if candidate in record:
            return record[candidate]
    raise ValueError(f"CIFAR batch has no field {key!r}; its fields are {sorted(map(str, record))}")


def _read_cifar_file(path: Path, label_key: str) -> tuple[Tensor, Tensor]:
    # CIFAR's python version is a pickle; like torchvision we trust the files we were given.
    with open(path, "rb") as handle:
        record = pickle.load(handle, encoding="bytes")
    data = np.asarray(_entry(record, "data"), dtype=np.uint8)
    labels = np.asarray(_entry(record, label_key), dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{path}: 'data' must have shape [N, 3072], got {data.shape}")
    if labels.shape != (data.shape[0],):
        raise ValueError(f"{path}: {data.shape[0]} images but {labels.shape[0]} labels")
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()), torch.from_numpy(labels)


def read_cifar(folder: str | os.PathLike, name: Literal["cifar10", "cifar100"]) -> ImageDataset:
    """Read CIFAR-10 or CIFAR-100 from its extracted python version.

    Args:
        folder: the extracted folder: ``cifar-10-batches-py`` (files ``data_batch_1`` ...
            ``data_batch_5`` and ``test_batch``, labels under ``labels``) or
            ``cifar-100-python`` (files ``train`` and ``test``, labels under
            ``fine_labels``). Each file is a pickled dict with ``data``, uint8
            ``[N, 3072]`` (the red, green and blue 32x32 planes of each image).
        name: ``"cifar10"`` or ``"cifar100"``.

    Returns:
        :class:`ImageDataset` with images ``[N, 3, 32, 32]`` scaled to ``[-1, 1]``.

    Raises:
        FileNotFoundError: a file is missing.
        ValueError: a file does not have CIFAR's fields and shapes, or a label is out of range.
    """
    if name not in _CIFAR_FOLDERS:
        raise ValueError(f"name must be 'cifar10' or 'cifar100', got {name!r}")
    folder = Path(folder)
    splits = []
    for files in _CIFAR_FILES[name]:
        parts = [_read_cifar_file(folder / file, _CIFAR_LABEL_KEYS[name]) for file in files]
        splits.append((torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])))
    (train_pixels, train_labels), (test_pixels, test_labels) = splits
    num_classes = _CIFAR_CLASSES[name]
    for labels in (train_labels, test_labels):
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(f"{folder}: labels must lie in [0, {num_classes}), got "
                             f"[{int(labels.min())}, {int(labels.max())}]")
    return ImageDataset(
        name,
        _scale_to_unit_range(train_pixels, 255.0),
        train_labels,
        _scale_to_unit_range(test_pixels, 255.0),
        test_labels,
        num_classes,
    )


def _download_with_torchvision(name: str, root: Path) -> None:
    try:
        import torchvision  # only the download step needs it
    except ImportError as error:
        raise ImportError(
            f"{name} is not in {root / _CIFAR_FOLDERS[name]} and downloading it needs "
            "torchvision, which is not installed. Fix: `pip install torchvision` (the build "
            f"that matches your torch), or download {_CIFAR_URLS[name]} yourself and extract "
            f"it into {root}."
        ) from error
    dataset_class = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
    for train in (True, False):
        dataset_class(str(root), train=train, download=True)


def load_cifar(
    name: Literal["cifar10", "cifar100"], root: str | os.PathLike = "data", *, download: bool = False
) -> ImageDataset:
    """CIFAR-10 or CIFAR-100 from ``root``, downloaded first if asked to and absent.

    Args:
        name: ``"cifar10"`` or ``"cifar100"``.
        root: the folder that holds (or will hold) ``cifar-10-batches-py`` or
            ``cifar-100-python``.
        download: download and extract the dataset with torchvision if its folder is
            absent (about 170 MB; needs the internet).

    Returns:
        :class:`ImageDataset` (see :func:`read_cifar`).

    Raises:
        FileNotFoundError: the folder is absent and ``download`` is False.
        ImportError: the folder is absent, ``download`` is True and torchvision is missing.
    """
    if name not in _CIFAR_FOLDERS:
        raise ValueError(f"name must be 'cifar10' or 'cifar100', got {name!r}")
    root = Path(root)
    folder = root / _CIFAR_FOLDERS[name]
    if not folder.is_dir():
        if not download:
            raise FileNotFoundError(
                f"{folder} does not exist. Pass download=True (needs torchvision and the "
                f"internet), or download {_CIFAR_URLS[name]} and extract it into {root}."
            )
        _download_with_torchvision(name, root)
    return read_cifar(folder, name)


def load_digits(*, test_fraction: float = 0.2) -> ImageDataset:
    """scikit-learn's digits: 1,797 grey 8x8 images of the ten digits, split once.

    The split is stratified and fixed (it does not depend on a run's seed), as CIFAR's
    test set is.

    Args:
        test_fraction: the share of images held out for testing.

    Returns:
        :class:`ImageDataset` with images ``[N, 1, 8, 8]`` scaled from ``[0, 16]`` to
        ``[-1, 1]`` (1,437 training and 360 test images at the default fraction).
    """
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    digits = sklearn_digits()
    train_x, test_x, train_y, test_y = train_test_split(
        digits.images, digits.target, test_size=test_fraction, stratify=digits.target, random_state=0
    )

    def images(x: np.ndarray) -> Tensor:
        return _scale_to_unit_range(torch.from_numpy(x)[:, None], 16.0)

    return ImageDataset(
        "digits",
        images(train_x),
        torch.from_numpy(train_y).long(),
        images(test_x),
        torch.from_numpy(test_y).long(),
        10,
    )


def load_image_dataset(
    name: str, root: str | os.PathLike = "data", *, download: bool = False
) -> ImageDataset:
    """The dataset called ``name``: one of :data:`DATASET_NAMES`.

    ``"digits"`` comes with scikit-learn; the CIFAR datasets are read by :func:`load_cifar`
    (``root`` and ``download`` apply to them only). There is no fallback from one dataset
    to another.
    """
    if name == "digits":
        return load_digits()
    if name in _CIFAR_FOLDERS:
        return load_cifar(name, root, download=download)
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")


def place_dataset(dataset: ImageDataset, device: torch.device | str) -> ImageDataset:
    """Move the whole dataset to ``device`` if it fits in half of its free memory.

    On a CPU device, or when it does not fit on the GPU, the dataset stays where it is and
    :class:`ImageBatches` moves one batch at a time.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return dataset.to(device)
    size = sum(
        t.numel() * t.element_size()
        for t in (dataset.train_images, dataset.train_labels, dataset.test_images, dataset.test_labels)
    )
    free, _ = torch.cuda.mem_get_info(device)
    return dataset.to(device) if size < free / 2 else dataset


def label_entropy(labels: Tensor, num_classes: int) -> float:
    """``H(Y)`` in nats of the empirical label distribution: ``log K`` for balanced classes.

    In both image benchmarks the label determines the class of the image, so
    ``I(X; Y) = H(Y)``: this is their true MI.
    """
    counts = torch.bincount(labels.cpu(), minlength=num_classes).double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum())


MaskBuilder = Callable[[Tensor, int], tuple[Tensor, Tensor | None]]
"""``(labels [B], num_classes) -> (positive, negative)``: the masks of the scores of a batch,
e.g. :func:`~remi_tutorial.tasks.label_masks` (``negative`` may be ``None``: every pair)."""


def _epoch_generator(seed: int, epoch: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch])


def _pair_every_batch(
    order: np.ndarray, labels: np.ndarray, by_label: dict[int, np.ndarray], rng: np.random.Generator
) -> int:
    """Give every row of ``order [S, B]`` a pair of images with the same label, in place.

    A row whose labels are all different gets its last image replaced by another image
    with the label of its first image that has one (drawn with ``rng``).

    Returns:
        The number of rows without a same-label pair before the repair.
    """
    row_labels = np.sort(labels[order], axis=1)
    unpaired = np.flatnonzero((row_labels[:, 1:] != row_labels[:, :-1]).all(axis=1))
    for row in unpaired:
        for anchor in order[row, :-1]:
            candidates = by_label[int(labels[anchor])]
            candidates = candidates[candidates != anchor]
            if len(candidates):
                order[row, -1] = candidates[rng.integers(len(candidates))]
                break
    return len(unpaired)


class ImageBatches:
    """Batches of an image benchmark as a pure function of the step.

    Epoch ``e`` visits the training images in a permutation drawn from a generator seeded
    by ``(seed, e)``, ``batch_size`` at a time (the last incomplete batch is dropped), so
    ``batches(step)`` depends on ``(seed, step)`` only and a resumed run sees the same
    batches as an uninterrupted one. A batch is ``Batch((images,), positive, negative, H(Y))``
    with ``positive, negative = masks(labels, num_classes)``:

    * :func:`~remi_tutorial.tasks.label_masks` (the supervised benchmark): ``positive
      [B, K]``, each image with its label; ``negative`` ``None``, every (image, class) pair.
    * :func:`~remi_tutorial.tasks.contrastive_masks` (the contrastive benchmark, through a
      builder that ignores ``num_classes``): ``positive [B, B]``, pairs of different images
      with the same label; ``negative [B, B]``, every pair of different images.

    With such masks a batch in which no two images share a label has no positive pair and
    no bound is defined on it. With ``pair_every_batch`` such batches are *repaired*: the
    last image is swapped for another image with the first image's label. This keeps every
    step a training step and the stream a pure function of the step; it happens to about 1
    batch in 2,800 at batch 10 with 10 balanced classes (``10!/10^10``) and to none in
    practice at batch 100 with 100 classes. :meth:`repaired_batches` counts them.

    Args:
        images: float ``[N, C, H, W]`` (on the device where batches are wanted, or on the
            CPU: each batch is then moved to ``device``).
        labels: int64 ``[N]``.
        num_classes: ``K``.
        masks: the benchmark's :data:`MaskBuilder`.
        pair_every_batch: repair the batches without a same-label pair (see above).
        batch_size: images per batch, ``2 <= batch_size <= N``.
        seed: seeds the data order.
        device: where the batches go (default: where ``images`` are).
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        num_classes: int,
        *,
        masks: MaskBuilder,
        pair_every_batch: bool = False,
        batch_size: int,
        seed: int,
        device: torch.device | str | None = None,
    ):
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels")
        if not 2 <= batch_size <= labels.shape[0]:
            raise ValueError(f"batch_size must lie in [2, {labels.shape[0]}], got {batch_size}")
        self.images = images
        self.labels = labels
        self.num_classes = num_classes
        self.masks = masks
        self.pair_every_batch = pair_every_batch
        self.batch_size = batch_size
        self.seed = seed
        self.device = torch.device(device) if device is not None else images.device
        self.steps_per_epoch = labels.shape[0] // batch_size
        self.true_mi = label_entropy(labels, num_classes)
        self._labels_np = labels.cpu().numpy()
        self._by_label = {
            int(k): np.flatnonzero(self._labels_np == k) for k in np.unique(self._labels_np)
        }
        if pair_every_batch and max(len(v) for v in self._by_label.values()) < 2:
            raise ValueError("a same-label pair in every batch needs a label shared by at least "
                             "two images")
        self._cached_epoch: int | None = None
        self._cached_order: Tensor | None = None

    def epoch_order(self, epoch: int) -> tuple[np.ndarray, int]:
        """The image indices of every batch of ``epoch``, ``[steps_per_epoch, B]``, and the
        number of batches repaired to contain a same-label pair (0 without
        ``pair_every_batch``)."""
        rng = _epoch_generator(self.seed, epoch)
        used = self.steps_per_epoch * self.batch_size
        order = rng.permutation(len(self._labels_np))[:used].reshape(-1, self.batch_size)
        repaired = 0
        if self.pair_every_batch:
            repaired = _pair_every_batch(order, self._labels_np, self._by_label, rng)
        return order, repaired

    def repaired_batches(self, epochs: int) -> int:
        """How many of the batches of the first ``epochs`` epochs were repaired."""
        return sum(self.epoch_order(epoch)[1] for epoch in range(epochs))

    def indices(self, step: int) -> Tensor:
        """int64 ``[B]``: the training images of the batch at ``step``."""
        epoch, position = divmod(step, self.steps_per_epoch)
        if epoch != self._cached_epoch:
            order, _ = self.epoch_order(epoch)
            self._cached_order = torch.from_numpy(order).to(self.images.device)
            self._cached_epoch = epoch
        return self._cached_order[position]

    def __call__(self, step: int) -> Batch:
        index = self.indices(step)
        images = self.images[index].to(self.device, non_blocking=True)
        labels = self.labels[index].to(self.device, non_blocking=True)
        positive, negative = self.masks(labels, self.num_classes)
        return Batch((images,), positive, negative, self.true_mi)
