"""What the supervised and contrastive benchmarks share: settings, one run, sweeps, results.

A *cell* of the paper's Table 1 is one training run: a benchmark, a dataset, a loss (with
its regularizer weight ``alpha`` if it is regularized) and a seed. :class:`ImageRunConfig`
holds its settings, :data:`PRESETS` the paper's settings for CIFAR and ours for the
CPU-size runs on digits, :func:`run_image_cell` trains and evaluates one cell with the
shared training loop, and :func:`run_sweep` runs many, skipping the cells already in a
results folder and appending each finished cell to two tidy tables there:

* ``image_runs.csv``: one row per cell (its settings, the MI estimate, the true MI, the
  test accuracy, where it diverged, how long it trained);
* ``image_curves.csv``: the training curve of each cell, one row per tenth of an epoch (the
  means of the recorded :class:`~remi_tutorial.bounds.Bound` fields over its batches).

Both are rewritten atomically (a temporary file, then a rename) under a lock, so a killed
run or two concurrent runs never leave a half-written table.

A cell's loss is one of the twelve bounds of :mod:`remi_tutorial.bounds`, which score pairs of
images with the benchmark's critic, or, in the contrastive benchmark, the second-order
objective :func:`~remi_tutorial.explicit.explicit_mi` (:data:`SECOND_ORDER_LOSS`), which takes
the embeddings themselves. :func:`cell_model` is the one place where that difference is
handled: it gives every cell a module to train, an objective for
:func:`~remi_tutorial.train.train`, and the critic its evaluation uses; everything else
(training, checkpoints, tables, sweeps, the command line) is the same for every loss.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import os
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from torch import nn

from ..bounds import BOUND_NAMES, Bound, get_bound
from ..explicit import PairedEmbeddings, explicit_mi
from ..images import (
    DATASET_NAMES,
    ImageBatches,
    ImageCritic,
    ImageDataset,
    ResNet18,
    SmallConvNet,
    load_image_dataset,
    place_dataset,
)
from ..train import default_device, train

__all__ = [
    "BENCHMARKS",
    "SECOND_ORDER_LOSS",
    "LOSS_NAMES",
    "KEY_COLUMNS",
    "PAPER_ALPHAS",
    "PRESETS",
    "ImageRunConfig",
    "ImageRun",
    "image_configs",
    "build_network",
    "CellModel",
    "cell_model",
    "run_image_cell",
    "training_throughput",
    "format_number",
    "run_sweep",
    "read_results",
    "append_rows",
    "RUNS_FILE",
    "CURVES_FILE",
    "CURVE_POINTS_PER_EPOCH",
]

BENCHMARKS: tuple[str, ...] = ("supervised", "contrastive")
"""The two image benchmarks."""

PAPER_ALPHAS: tuple[float, ...] = (0.1, 0.01, 0.001)
"""The regularizer weights the authors swept on CIFAR."""

SECOND_ORDER_LOSS = "explicit"
"""The name of the second-order loss, :func:`~remi_tutorial.explicit.explicit_mi` on the
embeddings (contrastive benchmark only; see :func:`cell_model`)."""

LOSS_NAMES: tuple[str, ...] = (*BOUND_NAMES, SECOND_ORDER_LOSS)
"""The losses a cell can train with, the twelve bounds and then the second-order loss."""

PRESETS: dict[tuple[str, str], dict] = {
    # The paper's settings (Choi & Lee, 2022, Table 1; Adam, lr 1e-3).
    ("supervised", "cifar10"): dict(batch_size=10, epochs=40, lr=1e-3, model="resnet18"),
    ("contrastive", "cifar10"): dict(batch_size=10, epochs=100, lr=1e-3, model="resnet18"),
    ("supervised", "cifar100"): dict(batch_size=100, epochs=100, lr=1e-3, model="resnet18"),
    ("contrastive", "cifar100"): dict(batch_size=100, epochs=150, lr=1e-3, model="resnet18"),
    # Ours, for a CPU: CIFAR-10's batch size and learning rate, a small network, few epochs.
    ("supervised", "digits"): dict(batch_size=10, epochs=2, lr=1e-3, model="small"),
    ("contrastive", "digits"): dict(batch_size=10, epochs=4, lr=1e-3, model="small"),
}
"""``(benchmark, dataset) -> settings``: the paper's for CIFAR, ours for digits."""

RUNS_FILE = "image_runs.csv"
"""The table of finished cells in a results folder, one row per cell."""
CURVES_FILE = "image_curves.csv"
"""The table of training curves in a results folder."""
CURVE_POINTS_PER_EPOCH = 10
"""Points per epoch of the training curves in ``image_curves.csv``."""

KEY_COLUMNS: tuple[str, ...] = (
    "benchmark", "dataset", "model", "stem", "loss", "alpha", "tau", "seed",
    "batch_size", "epochs", "lr", "width", "embed_dim", "order", "beta", "ridge",
)
"""The settings that identify a cell in the results tables."""

_LATER_KEY_COLUMNS: tuple[str, ...] = ("width", "embed_dim", "order", "beta", "ridge")
"""Key columns added after the first results tables were written. They enter a cell's key
only when they are set, so the cells and checkpoints of those tables keep their keys."""


@dataclass(frozen=True)
class ImageRunConfig:
    """The settings of one cell.

    Attributes:
        benchmark: ``"supervised"`` or ``"contrastive"``.
        dataset: one of :data:`~remi_tutorial.images.DATASET_NAMES`.
        loss: one of :data:`LOSS_NAMES`: a bound of :data:`~remi_tutorial.bounds.BOUND_NAMES`,
            or :data:`SECOND_ORDER_LOSS` (contrastive benchmark only).
        seed: seeds the network's initial weights and the data order.
        batch_size: images per batch.
        epochs: passes over the training set.
        lr: Adam's learning rate.
        model: ``"resnet18"`` or ``"small"`` (:class:`~remi_tutorial.images.SmallConvNet`).
        stem: ResNet-18's stem, ``"cifar"`` (32x32) or ``"imagenet"`` (the authors' 224x224
            upsampling); ignored by the small network.
        alpha: the regularizer weight of a regularized loss; ``None`` for an original one.
        tau: SMILE's clipping threshold (10, as in the authors' CIFAR code); ``None`` for
            the other losses.
        amp: bfloat16 autocast for the network's features (see
            :class:`~remi_tutorial.images.ImageCritic`).
        width: the small network's widths become ``(32, 64, width)``: ``width`` is the
            number of its features; ``None`` for its default, 512 (ResNet-18's).
        embed_dim: contrastive benchmark: a final linear layer from the network's features
            to ``embed_dim`` outputs (a projection head); ``None`` for none, the features
            themselves (512 of them for both networks), as in the paper.
        order: the second-order loss's series order (see
            :func:`~remi_tutorial.explicit.explicit_mi`); ``None`` for the exact
            log-determinants. ``None`` for the bounds.
        beta: the series' rescaling; ``None`` for the adaptive choice. Only with an
            ``order``.
        ridge: the shrinkage of the second-order loss's correlation matrices (``1e-3`` in
            :func:`image_configs`); ``None`` for the bounds.
    """

    benchmark: str
    dataset: str
    loss: str
    seed: int
    batch_size: int
    epochs: int
    lr: float
    model: str
    stem: str = "cifar"
    alpha: float | None = None
    tau: float | None = None
    amp: bool = False
    width: int | None = None
    embed_dim: int | None = None
    order: int | None = None
    beta: float | None = None
    ridge: float | None = None

    def __post_init__(self):
        if self.benchmark not in BENCHMARKS:
            raise ValueError(f"benchmark must be one of {BENCHMARKS}, got {self.benchmark!r}")
        if self.dataset not in DATASET_NAMES:
            raise ValueError(f"dataset must be one of {DATASET_NAMES}, got {self.dataset!r}")
        if self.loss not in LOSS_NAMES:
            raise ValueError(f"loss must be one of {LOSS_NAMES}, got {self.loss!r}")
        if self.model not in ("resnet18", "small"):
            raise ValueError(f"model must be 'resnet18' or 'small', got {self.model!r}")
        if self.stem not in ("cifar", "imagenet"):
            raise ValueError(f"stem must be 'cifar' or 'imagenet', got {self.stem!r}")
        if self.regularized != (self.alpha is not None):
            raise ValueError(f"{self.loss!r} needs alpha {'set' if self.regularized else 'None'}")
        if ("smile" in self.loss) != (self.tau is not None):
            raise ValueError(f"tau applies to smile and resmile only, got tau={self.tau} for {self.loss!r}")
        if self.batch_size < 2 or self.epochs < 1 or self.lr <= 0:
            raise ValueError("batch_size must be >= 2, epochs >= 1 and lr > 0")
        if self.width is not None and (self.model != "small" or self.width < 1):
            raise ValueError(f"width is a positive width of the small network, got {self.width} "
                             f"for model {self.model!r}")
        if self.embed_dim is not None and (self.benchmark != "contrastive" or self.embed_dim < 1):
            raise ValueError(f"embed_dim is a positive size of the contrastive benchmark's "
                             f"embedding, got {self.embed_dim} for {self.benchmark!r}")
        self._check_second_order()

    def _check_second_order(self) -> None:
        settings = {"order": self.order, "beta": self.beta, "ridge": self.ridge}
        if self.loss != SECOND_ORDER_LOSS:
            given = [name for name, value in settings.items() if value is not None]
            if given:
                raise ValueError(f"{', '.join(given)} apply to the second-order loss "
                                 f"{SECOND_ORDER_LOSS!r} only, not to {self.loss!r}")
            return
        if self.benchmark != "contrastive":
            raise ValueError(f"the second-order loss {SECOND_ORDER_LOSS!r} is a loss on the "
                             f"embeddings of pairs of images: contrastive benchmark only")
        if self.ridge is None or self.ridge < 0:
            raise ValueError(f"{SECOND_ORDER_LOSS!r} needs a ridge >= 0, got {self.ridge}")
        if self.order is not None and (isinstance(self.order, bool) or not isinstance(self.order, int)
                                       or self.order < 1):
            raise ValueError(f"order must be a positive integer or None, got {self.order!r}")
        if self.beta is not None and (self.order is None or self.beta <= 0):
            raise ValueError(f"beta rescales the series: it needs an order and must be positive, "
                             f"got beta={self.beta} with order={self.order}")

    @property
    def regularized(self) -> bool:
        return self.loss.startswith("re")

    @property
    def base_loss(self) -> str:
        """Name of the original loss (``"mine"`` for ``"remine"``)."""
        return self.loss[2:] if self.regularized else self.loss

    def bound_params(self) -> dict:
        """The keyword parameters of the loss: of :func:`~remi_tutorial.bounds.get_bound`
        for a bound, of :func:`~remi_tutorial.explicit.explicit_mi` for the second-order
        loss."""
        if self.loss == SECOND_ORDER_LOSS:
            return {"order": self.order, "beta": self.beta, "ridge": self.ridge}
        params = {}
        if self.alpha is not None:
            params["alpha"] = self.alpha
        if self.tau is not None:
            params["tau"] = self.tau
        return params

    def key(self) -> str:
        """A file-name-safe identifier of the cell, made of :data:`KEY_COLUMNS`."""
        return _key(dataclasses.asdict(self))


def format_number(value: float, decimals: int = 3) -> str:
    """``value`` with ``decimals`` decimals, or in scientific notation beyond 10,000 in size
    (the estimates just before a divergence can be of order ``1e37``)."""
    if math.isnan(value) or abs(value) < 1e4:
        return f"{value:.{decimals}f}"
    return f"{value:.3g}"


def _format_key_value(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _key(values) -> str:
    """``values``: a mapping (a dict, or a row of a results table, which may predate some
    of :data:`KEY_COLUMNS`)."""
    parts = []
    for column in KEY_COLUMNS:
        text = _format_key_value(values.get(column))
        if not (text == "-" and column in _LATER_KEY_COLUMNS):
            parts.append(f"{column}={text}")
    return "_".join(parts)


def image_configs(
    benchmark: str,
    dataset: str,
    *,
    losses: Iterable[str] = BOUND_NAMES,
    seeds: Iterable[int] = (0,),
    alphas: Iterable[float] = (0.1,),
    stem: str = "cifar",
    amp: bool = False,
    tau: float = 10.0,
    embed_dim: int | None = None,
    order: int | None = None,
    beta: float | None = None,
    ridge: float = 1e-3,
    **overrides,
) -> list[ImageRunConfig]:
    """The cells of a sweep: every loss (regularized ones at every alpha) and every seed.

    Settings come from :data:`PRESETS` for ``(benchmark, dataset)``; ``overrides``
    (``batch_size``, ``epochs``, ``lr``, ``model``, ``width``) replace them. ``tau`` goes to
    the SMILE losses, ``order``, ``beta`` and ``ridge`` to the second-order loss,
    ``embed_dim`` to every cell (see :class:`ImageRunConfig`).

    Returns:
        The configurations, seed-major (all losses of seed 0 first).
    """
    if (benchmark, dataset) not in PRESETS:
        raise ValueError(f"no preset for {benchmark!r} on {dataset!r}; presets: {sorted(PRESETS)}")
    unknown = set(overrides) - {"batch_size", "epochs", "lr", "model", "width"}
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}")
    settings = {**PRESETS[(benchmark, dataset)], **overrides}
    configs = []
    for seed in seeds:
        for loss in losses:
            loss = loss.lower()
            smile_tau = tau if "smile" in loss else None
            second_order = (
                dict(order=order, beta=beta, ridge=ridge) if loss == SECOND_ORDER_LOSS else {}
            )
            for alpha in (alphas if loss.startswith("re") else (None,)):
                configs.append(ImageRunConfig(
                    benchmark, dataset, loss, seed, stem=stem, alpha=alpha, tau=smile_tau,
                    amp=amp, embed_dim=embed_dim, **second_order, **settings,
                ))
    return configs


def build_network(config: ImageRunConfig, dataset: ImageDataset) -> torch.nn.Module:
    """The network of a cell: a classifier for the supervised benchmark (``K`` logits), an
    encoder for the contrastive one (without final layer, or with a linear one to
    ``config.embed_dim`` outputs)."""
    num_classes = dataset.num_classes if config.benchmark == "supervised" else config.embed_dim
    channels = dataset.image_shape[0]
    if config.model == "resnet18":
        return ResNet18(num_classes, stem=config.stem, in_channels=channels)
    if config.width is None:
        return SmallConvNet(num_classes, in_channels=channels)
    return SmallConvNet(num_classes, in_channels=channels, widths=(32, 64, config.width))


class _CriticEmbedding(nn.Module):
    """``images [B, C, H, W] -> critic.embed(images) [B, D]``: the critic's network with the
    critic's mixed precision, as a module of its own."""

    def __init__(self, critic: ImageCritic):
        super().__init__()
        self.critic = critic

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.critic.embed(images)


@dataclass
class CellModel:
    """What a cell trains, what it maximizes, and what evaluates it.

    Attributes:
        trainee: the module :func:`~remi_tutorial.train.train` optimizes; its output on
            ``*batch.inputs`` is the first argument of ``objective``.
        objective: ``(output, positive, negative, *, check) -> Bound``.
        critic: the benchmark's critic on the same network (the same weights): its logits
            give the supervised test accuracy, its dot products the 1-nearest-neighbour
            accuracy.
    """

    trainee: nn.Module
    objective: Callable[..., Bound]
    critic: ImageCritic


def cell_model(config: ImageRunConfig, dataset: ImageDataset) -> CellModel:
    """The trainee, objective and critic of a cell: the one place where the loss decides.

    * A bound (:data:`~remi_tutorial.bounds.BOUND_NAMES`) scores pairs: the trainee is the
      critic itself (``"logits"`` for the supervised benchmark, ``"dot"`` for the
      contrastive one) and the objective is ``get_bound(loss, **config.bound_params())``.
    * The second-order loss (:data:`SECOND_ORDER_LOSS`) takes the embeddings, not their
      scores: the trainee is :class:`~remi_tutorial.explicit.PairedEmbeddings` of the
      critic's embedding (one batch paired with itself, as the contrastive masks say) and
      the objective is :func:`~remi_tutorial.explicit.explicit_mi` with the cell's
      ``order``, ``beta`` and ``ridge``. Its network ends with a batch norm without learned
      parameters: the loss sees only correlations, which no per-coordinate affine map
      changes, so the norm changes no loss value; it hands the dot-product evaluation
      standardized coordinates (the loss leaves their scales and offsets arbitrary).

    Builds the network with the global torch generator (seed it first).
    """
    network = build_network(config, dataset)
    if config.loss == SECOND_ORDER_LOSS:
        network.head = nn.Sequential(
            network.head, nn.BatchNorm1d(network.out_features, affine=False))
        critic = ImageCritic(network, "dot", amp=config.amp)
        objective = functools.partial(explicit_mi, **config.bound_params())
        return CellModel(PairedEmbeddings(_CriticEmbedding(critic)), objective, critic)
    critic = ImageCritic(
        network, "logits" if config.benchmark == "supervised" else "dot", amp=config.amp)
    return CellModel(critic, get_bound(config.loss, **config.bound_params()), critic)


@dataclass
class ImageRun:
    """What one cell produced.

    Attributes:
        summary: one row of ``image_runs.csv`` (see :func:`run_image_cell`).
        history: the training history, one row per step (``TrainResult.history`` with an
            ``epoch`` column: the epochs completed after that step).
        curve: one row of ``image_curves.csv`` per tenth of an epoch: the cell's settings,
            ``epoch`` (the epochs completed at the end of the segment) and the means of
            ``mi, joint, marginal, penalty`` over its steps.
        critic: the trained critic (the ``critic`` of the cell's :class:`CellModel`), as it
            was evaluated.
    """

    summary: dict
    history: pd.DataFrame
    curve: pd.DataFrame
    critic: ImageCritic


def _evaluate(critic: ImageCritic, dataset: ImageDataset, benchmark: str) -> float:
    if benchmark == "supervised":
        from .supervised import test_accuracy
        return test_accuracy(critic, dataset.test_images, dataset.test_labels)
    from .contrastive import nearest_neighbour_accuracy
    return nearest_neighbour_accuracy(
        critic, dataset.train_images, dataset.train_labels, dataset.test_images, dataset.test_labels
    )


def run_image_cell(
    config: ImageRunConfig,
    dataset: ImageDataset,
    *,
    device: torch.device | str | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> ImageRun:
    """Train and evaluate one cell with :func:`~remi_tutorial.train.train`.

    The network is initialised with ``torch.manual_seed(config.seed)`` and trained as
    :func:`cell_model` says; the batches come from
    :class:`~remi_tutorial.images.ImageBatches` with the same seed. With a
    ``checkpoint_dir`` the run writes a checkpoint at the end of every epoch and resumes
    from it if it exists.

    The summary's ``mi_estimate`` is the mean MI estimate over the training batches of the
    last epoch (over the last epoch's worth of recorded steps for a run that diverged; NaN
    if it diverged at its first check). ``test_accuracy`` is the test accuracy of the
    classifier (supervised) or the 1-nearest-neighbour test accuracy of the embedding
    (contrastive), with the weights the run ended with (after a divergence: the weights of
    its last finite check). ``train_seconds`` counts the training done by this call only.

    Args:
        config: the cell.
        dataset: its dataset, already loaded (``dataset.name`` must be ``config.dataset``).
        device: where to train (default :func:`~remi_tutorial.train.default_device`).
        checkpoint_dir: the folder of the per-epoch checkpoints, or ``None``.
        progress: show a progress bar.

    Returns:
        :class:`ImageRun`.
    """
    if dataset.name != config.dataset:
        raise ValueError(f"the config is for {config.dataset!r} but the dataset is {dataset.name!r}")
    device = torch.device(device) if device is not None else default_device()
    torch.manual_seed(config.seed)
    model = cell_model(config, dataset)
    model.trainee.to(device)
    batches = ImageBatches(
        dataset.train_images, dataset.train_labels, dataset.num_classes,
        benchmark=config.benchmark, batch_size=config.batch_size, seed=config.seed, device=device,
    )
    per_epoch = batches.steps_per_epoch
    checkpoint = Path(checkpoint_dir) / f"{config.key()}.pt" if checkpoint_dir is not None else None
    start = time.perf_counter()
    with warnings.catch_warnings():
        # A divergence is reported in the summary (diverged_at, message), not as a warning.
        warnings.simplefilter("ignore", RuntimeWarning)
        result = train(
            model.trainee,
            model.objective,
            batches,
            steps=config.epochs * per_epoch,
            optimizer=_adam(model.trainee, config.lr),
            check_every=min(100, per_epoch),
            checkpoint=checkpoint,
            checkpoint_every=per_epoch,
            progress=progress,
            description=f"{config.benchmark} {config.dataset} {config.loss} seed {config.seed}",
        )
    train_seconds = time.perf_counter() - start
    accuracy = _evaluate(model.critic, dataset, config.benchmark)

    history = result.history
    history.insert(1, "epoch", (history.step + 1) / per_epoch)
    last_epoch = history.tail(per_epoch)
    summary = {
        **{column: getattr(config, column) for column in KEY_COLUMNS},
        "base_loss": config.base_loss,
        "regularized": config.regularized,
        "steps": config.epochs * per_epoch,
        "true_mi": batches.true_mi,
        "mi_estimate": float(last_epoch.mi.mean()) if len(last_epoch) else math.nan,
        "test_accuracy": accuracy,
        "diverged_at": result.diverged_at,
        "repaired_batches": batches.repaired_batches(config.epochs)
        if config.benchmark == "contrastive" else 0,
        "train_seconds": train_seconds,
        "device": str(device),
        "amp": config.amp,
        "message": result.message,
    }
    segment = max(1, per_epoch // CURVE_POINTS_PER_EPOCH)
    curve = (
        history.assign(segment=history.step // segment)
        .groupby("segment")
        .agg(epoch=("epoch", "last"), mi=("mi", "mean"), joint=("joint", "mean"),
             marginal=("marginal", "mean"), penalty=("penalty", "mean"))
        .reset_index(drop=True)
    )
    for column in reversed(KEY_COLUMNS):
        curve.insert(0, column, getattr(config, column))
    return ImageRun(summary, history, curve, model.critic)


def _adam(critic: torch.nn.Module, lr: float) -> torch.optim.Adam:
    """Adam with its fused kernel (one kernel for all weights; on CPUs since torch 2.4)."""
    fused = torch.torch_version.TorchVersion(torch.__version__) >= (2, 4)
    return torch.optim.Adam(critic.parameters(), lr=lr, fused=fused or None)


def training_throughput(
    config: ImageRunConfig,
    *,
    image_shape: tuple[int, int, int] = (3, 32, 32),
    num_classes: int = 10,
    steps: int = 10,
    warmup: int = 2,
    device: torch.device | str | None = None,
) -> float:
    """Images per second of the cell's training loop, measured on random images.

    Builds the cell's model (:func:`cell_model`), and times ``steps`` steps of
    :func:`~remi_tutorial.train.train` (after ``warmup`` untimed ones) on random images of
    ``image_shape`` with random labels; the arithmetic does not depend on the content.
    Multiply the training set's size by the epochs and divide by this rate to estimate a
    cell's duration.

    Returns:
        Training images per second.
    """
    device = torch.device(device) if device is not None else default_device()
    count = (warmup + steps) * config.batch_size
    generator = torch.Generator().manual_seed(0)
    images = (torch.rand(count, *image_shape, generator=generator) * 2 - 1).to(device)
    labels = (torch.arange(count) % num_classes).to(device)
    synthetic = ImageDataset(config.dataset, images, labels, images[:1], labels[:1], num_classes)
    torch.manual_seed(config.seed)
    model = cell_model(config, synthetic)
    model.trainee.to(device)
    batches = ImageBatches(images, labels, num_classes, benchmark=config.benchmark,
                           batch_size=config.batch_size, seed=config.seed)
    optimizer = _adam(model.trainee, config.lr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        train(model.trainee, model.objective, batches, steps=warmup, optimizer=optimizer,
              progress=False)
        _synchronize(device)
        start = time.perf_counter()
        train(model.trainee, model.objective, lambda step: batches(warmup + step), steps=steps,
              optimizer=optimizer, progress=False)
        _synchronize(device)
    return steps * config.batch_size / (time.perf_counter() - start)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------- results tables


@contextmanager
def _locked(path: Path):
    """Hold an exclusive lock on ``path.lock`` (POSIX; elsewhere concurrent writers are not
    serialised, which a single process does not need)."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def append_rows(path: str | os.PathLike, rows: pd.DataFrame) -> None:
    """Append ``rows`` to the CSV table at ``path`` atomically.

    The table is read, extended and written to a temporary file that then replaces it, all
    under a lock: a reader sees the old table or the new one, never a partial one.
    """
    path = Path(path)
    with _locked(path):
        table = pd.concat([read_results(path), rows], ignore_index=True) if path.exists() else rows
        partial = path.with_name(path.name + ".partial")
        with open(partial, "w", newline="") as handle:
            table.to_csv(handle, index=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)


def read_results(path: str | os.PathLike) -> pd.DataFrame:
    """A results table written by :func:`append_rows` (empty if the file does not exist)."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(columns=list(KEY_COLUMNS))
    return pd.read_csv(path)


def _finished_keys(runs: pd.DataFrame) -> set[str]:
    return {_key(row) for row in runs.to_dict("records")}


def run_sweep(
    configs: Sequence[ImageRunConfig],
    dataset: ImageDataset,
    results_dir: str | os.PathLike,
    *,
    device: torch.device | str | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    keep_checkpoints: bool = False,
    progress: bool = True,
    log=print,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run every cell not yet in ``results_dir`` and return the results of all of them.

    Each finished cell (a diverged one included: it is a result) is appended to
    ``image_runs.csv`` and ``image_curves.csv`` before the next starts, and its checkpoint
    is then deleted unless ``keep_checkpoints``. A sweep that is killed and started again
    skips the finished cells and resumes the interrupted one from its last epoch.

    Args:
        configs: the cells, e.g. from :func:`image_configs`.
        dataset: their dataset.
        results_dir: the folder of the two tables.
        device: where to train.
        checkpoint_dir: the folder of the per-epoch checkpoints (default
            ``results_dir/checkpoints``).
        keep_checkpoints: keep a cell's last checkpoint after it finishes.
        progress: show progress bars.
        log: called with one line per cell.

    Returns:
        ``(runs, curves)``: the rows of ``image_runs.csv`` and ``image_curves.csv`` of the
        requested cells, in the order of ``configs``.
    """
    results_dir = Path(results_dir)
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else results_dir / "checkpoints"
    runs_path, curves_path = results_dir / RUNS_FILE, results_dir / CURVES_FILE
    finished = _finished_keys(read_results(runs_path))
    for config in configs:
        if config.key() in finished:
            log(f"skip {config.loss} seed {config.seed}: already in {runs_path}")
            continue
        run = run_image_cell(
            config, dataset, device=device, checkpoint_dir=checkpoint_dir, progress=progress
        )
        append_rows(curves_path, run.curve)
        append_rows(runs_path, pd.DataFrame([run.summary]))
        finished.add(config.key())
        if not keep_checkpoints:
            (checkpoint_dir / f"{config.key()}.pt").unlink(missing_ok=True)
        summary = run.summary
        ending = "" if summary["diverged_at"] is None else f", diverged at step {summary['diverged_at']}"
        later = "".join(f" {column}={_format_key_value(getattr(config, column))}"
                        for column in _LATER_KEY_COLUMNS if getattr(config, column) is not None)
        log(
            f"{config.loss:>9} alpha={_format_key_value(config.alpha):>5}{later} seed {config.seed}: "
            f"MI {format_number(summary['mi_estimate'])} (true {summary['true_mi']:.3f}), "
            f"accuracy {summary['test_accuracy']:.3f}{ending}"
        )
    wanted = [config.key() for config in configs]
    order = {key: position for position, key in enumerate(wanted)}

    def select(table: pd.DataFrame, unique: list[str]) -> pd.DataFrame:
        # A cell killed after writing its curve but before its summary is run (resumed)
        # again and writes its curve twice: keep the last copy.
        keys = table.apply(_key, axis=1) if len(table) else pd.Series([], dtype=str)
        chosen = table[keys.isin(order)].assign(_order=keys.map(order))
        chosen = chosen.drop_duplicates(["_order", *unique], keep="last")
        return chosen.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)

    return select(read_results(runs_path), []), select(read_results(curves_path), ["epoch"])


# --------------------------------------------------------------------------- command line


def add_image_arguments(parser: argparse.ArgumentParser, benchmark: str) -> None:
    """The options of the ``supervised`` and ``contrastive`` commands (the latter with the
    embedding size and the second-order loss's settings)."""
    parser.add_argument("--dataset", required=True, choices=DATASET_NAMES,
                        help="the dataset (no fallback from one to another)")
    contrastive = benchmark == "contrastive"
    parser.add_argument("--loss", nargs="+", default=list(BOUND_NAMES),
                        choices=LOSS_NAMES if contrastive else BOUND_NAMES, metavar="LOSS",
                        help="losses to run (default: the twelve bounds"
                             + (f"; {SECOND_ORDER_LOSS!r} is the second-order loss)" if contrastive else ")"))
    parser.add_argument("--seed", nargs="+", type=int, default=[0], help="seeds (default: 0)")
    parser.add_argument("--alpha", nargs="+", type=float, default=list(PAPER_ALPHAS),
                        help="regularizer weights of the regularized losses "
                             "(default: the paper's 0.1 0.01 0.001)")
    parser.add_argument("--results", default="results", help="the results folder")
    parser.add_argument("--checkpoints", default=None,
                        help="the checkpoint folder (default: RESULTS/checkpoints)")
    parser.add_argument("--keep-checkpoints", action="store_true")
    parser.add_argument("--data-root", default="data", help="where the CIFAR folders are")
    parser.add_argument("--download", action="store_true",
                        help="download CIFAR with torchvision if it is absent")
    parser.add_argument("--device", default="auto", help="'auto' (a GPU if there is one), 'cpu', 'cuda', ...")
    parser.add_argument("--amp", choices=("auto", "on", "off"), default="auto",
                        help="bfloat16 autocast of the network's features (auto: on a CUDA GPU "
                             "that runs bfloat16 natively, compute capability >= 8.0)")
    parser.add_argument("--stem", choices=("cifar", "imagenet"), default="cifar",
                        help="ResNet-18's stem: 32x32, or the authors' 224x224 upsampling")
    parser.add_argument("--model", choices=("resnet18", "small"), default=None,
                        help="override the preset's network")
    parser.add_argument("--epochs", type=int, default=None, help="override the preset")
    parser.add_argument("--batch-size", type=int, default=None, help="override the preset")
    parser.add_argument("--width", type=int, default=None,
                        help="the small network's features, its widths becoming 32 64 WIDTH "
                             "(default: 512)")
    parser.add_argument("--no-progress", action="store_true")
    parser.set_defaults(benchmark=benchmark, embed_dim=None, order=None, beta=None, ridge=1e-3)
    if contrastive:
        parser.add_argument("--embed-dim", type=int, default=None,
                            help="a final linear layer to this many outputs (default: none, "
                                 "the network's 512 features)")
        group = parser.add_argument_group(f"the second-order loss {SECOND_ORDER_LOSS!r}")
        group.add_argument("--order", type=int, default=None,
                           help="train on the log-det series with this many terms "
                                "(default: the exact log-determinants)")
        group.add_argument("--beta", type=float, default=None,
                           help="the series' rescaling (default: adaptive); needs --order")
        group.add_argument("--ridge", type=float, default=1e-3,
                           help="shrinkage of the correlation matrices (default: 1e-3)")


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> :func:`~remi_tutorial.train.default_device`; anything else as given."""
    return default_device() if name == "auto" else torch.device(name)


def amp_supported(device: torch.device | str) -> bool:
    """Whether ``device`` runs bfloat16 natively: a CUDA GPU of compute capability 8.0 or
    later (Ampere, Hopper, ...). Never on a CPU.

    ``torch.cuda.is_bf16_supported()`` is not the test: it is also True on older GPUs (a
    T4, capability 7.5), which emulate bfloat16 more slowly than float32. Those train in
    full precision.
    """
    device = torch.device(device)
    return device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 0)


def run_from_args(args: argparse.Namespace) -> None:
    """Run the sweep that the command-line options describe and print one line per cell."""
    device = resolve_device(args.device)
    amp = amp_supported(device) if args.amp == "auto" else args.amp == "on"
    overrides = {
        name: value
        for name, value in (("model", args.model), ("epochs", args.epochs),
                            ("batch_size", args.batch_size), ("width", args.width))
        if value is not None
    }
    configs = image_configs(
        args.benchmark, args.dataset, losses=args.loss, seeds=args.seed, alphas=args.alpha,
        stem=args.stem, amp=amp, embed_dim=args.embed_dim, order=args.order, beta=args.beta,
        ridge=args.ridge, **overrides,
    )
    try:
        dataset = load_image_dataset(args.dataset, args.data_root, download=args.download)
    except FileNotFoundError as error:
        raise SystemExit(f"{error}\nOn the command line: add --download.") from error
    dataset = place_dataset(dataset, device)
    first = configs[0]
    print(f"benchmark: {args.benchmark}")
    print(f"dataset:   {dataset}")
    print(f"settings:  batch {first.batch_size}, {first.epochs} epochs, Adam lr {first.lr:g}, "
          f"model {first.model}" + (f" (stem {first.stem})" if first.model == "resnet18" else "")
          + f", amp {'on' if amp else 'off'}, device {device}")
    print(f"cells:     {len(configs)} -> {Path(args.results) / RUNS_FILE}")
    run_sweep(
        configs, dataset, args.results, device=device, checkpoint_dir=args.checkpoints,
        keep_checkpoints=args.keep_checkpoints, progress=not args.no_progress,
    )
