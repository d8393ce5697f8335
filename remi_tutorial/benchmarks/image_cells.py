"""The engine of the image benchmarks: train and evaluate one cell, run a sweep of cells.

Both image benchmarks run here, on what their
:class:`~remi_tutorial.benchmarks.image_spec.ImageBenchmark` says: its score head makes the
critic, its masks (and whether every batch needs a same-label pair) make the batches, its
metric evaluates the trained critic. :func:`run_image_cell` trains one cell of
:class:`~remi_tutorial.benchmarks.image_config.ImageRunConfig` with the shared training
loop; :func:`finish_cell` runs it unless its result is already in the results folder
(:mod:`~remi_tutorial.benchmarks.image_results`) and writes it there; :func:`run_sweep`
does that for many cells in one process, :class:`CellJob` for one cell in a process of its
own (a job of :mod:`~remi_tutorial.benchmarks.launch`); :func:`training_throughput`
measures a cell's speed.

A cell's loss is one of the twelve bounds, which score pairs of images with the critic, or
the second-order objective :func:`~remi_tutorial.explicit.explicit_mi`
(:data:`~remi_tutorial.benchmarks.image_config.SECOND_ORDER_LOSS`), which takes the
embeddings themselves. :func:`cell_model` is the one place where that difference is
handled: it gives every cell a module to train, an objective for
:func:`~remi_tutorial.train.train`, and the critic its evaluation uses; everything else
(training, checkpoints, results, sweeps) is the same for every loss.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import pandas as pd
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ..bounds import Bound, get_bound
from ..critics import ImageCritic
from ..datasets import ImageBatches, ImageDataset, load_image_dataset, place_dataset
from ..explicit import PairedEmbeddings, explicit_mi
from ..networks import ResNet18, SmallConvNet
from ..train import default_device, make_adam, train
from .image_config import KEY_COLUMNS, SECOND_ORDER_LOSS, ImageRunConfig, amp_supported
from .image_results import (
    checkpoint_file,
    checkpoint_folder,
    format_number,
    read_cell_result,
    request_cells,
    write_cell_result,
)

__all__ = [
    "CURVE_POINTS_PER_EPOCH",
    "build_network",
    "CellModel",
    "cell_model",
    "ImageRun",
    "run_image_cell",
    "training_throughput",
    "finish_cell",
    "CellJob",
    "training_flops_per_image",
    "sweep_seconds",
    "refuse_cpu_sweep",
    "run_sweep",
]

CURVE_POINTS_PER_EPOCH = 10
"""Points per epoch of a cell's training curve."""


def build_network(config: ImageRunConfig, dataset: ImageDataset) -> torch.nn.Module:
    """The network of a cell, with the benchmark's number of outputs
    (:meth:`~remi_tutorial.benchmarks.image_spec.ImageBenchmark.network_outputs`): ``K``
    logits for the ``"logits"`` head; for the ``"dot"`` head an encoder without final layer,
    or with a linear one to ``config.embed_dim`` outputs."""
    outputs = config.benchmark.network_outputs(dataset.num_classes, config.embed_dim)
    channels = dataset.image_shape[0]
    if config.model == "resnet18":
        return ResNet18(outputs, stem=config.stem, in_channels=channels)
    if config.width is None:
        return SmallConvNet(outputs, in_channels=channels)
    return SmallConvNet(outputs, in_channels=channels, widths=(32, 64, config.width))


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
        critic: the benchmark's critic on the same network (the same weights), which the
            benchmark's metric evaluates.
    """

    trainee: nn.Module
    objective: Callable[..., Bound]
    critic: ImageCritic


def cell_model(config: ImageRunConfig, dataset: ImageDataset) -> CellModel:
    """The trainee, objective and critic of a cell: the one place where the loss decides.

    The critic is :class:`~remi_tutorial.critics.ImageCritic` with the benchmark's head on
    :func:`build_network`.

    * A bound (:data:`~remi_tutorial.bounds.BOUND_NAMES`) scores pairs: the trainee is the
      critic itself and the objective is ``get_bound(loss, **config.bound_params())``.
    * The second-order loss (:data:`~remi_tutorial.benchmarks.image_config.SECOND_ORDER_LOSS`)
      takes the embeddings, not their scores: the trainee is
      :class:`~remi_tutorial.explicit.PairedEmbeddings` of the critic's embedding (one batch
      paired with itself, as the masks say) and the objective is
      :func:`~remi_tutorial.explicit.explicit_mi` with the cell's ``order``, ``beta`` and
      ``ridge``. Its network ends with a batch norm without learned parameters: the loss
      sees only correlations, which no per-coordinate affine map changes, so the norm
      changes no loss value; it hands the dot-product evaluation standardized coordinates
      (the loss leaves their scales and offsets arbitrary).

    Builds the network with the global torch generator (seed it first).
    """
    network = build_network(config, dataset)
    if config.loss == SECOND_ORDER_LOSS:
        network.head = nn.Sequential(
            network.head, nn.BatchNorm1d(network.out_features, affine=False))
        critic = ImageCritic(network, config.benchmark.head, amp=config.amp)
        objective = functools.partial(explicit_mi, **config.bound_params())
        return CellModel(PairedEmbeddings(_CriticEmbedding(critic)), objective, critic)
    critic = ImageCritic(network, config.benchmark.head, amp=config.amp)
    return CellModel(critic, get_bound(config.loss, **config.bound_params()), critic)


@dataclass
class ImageRun:
    """What one cell produced.

    Attributes:
        summary: the cell's row of the results' ``runs`` table (see :func:`run_image_cell`).
        history: the training history, one row per step (``TrainResult.history`` with an
            ``epoch`` column: the epochs completed after that step).
        curve: the cell's rows of the ``curves`` table, one per tenth of an epoch: the
            cell's settings, ``epoch`` (the epochs completed at the end of the segment) and
            the means of ``mi, joint, marginal, penalty`` over its steps.
        critic: the trained critic (the ``critic`` of the cell's :class:`CellModel`), as it
            was evaluated.
    """

    summary: dict
    history: pd.DataFrame
    curve: pd.DataFrame
    critic: ImageCritic


def _batches(config: ImageRunConfig, images: torch.Tensor, labels: torch.Tensor,
             num_classes: int, device: torch.device | None = None) -> ImageBatches:
    """The cell's batch stream, with its benchmark's masks."""
    return ImageBatches(
        images, labels, num_classes, masks=config.benchmark.masks,
        pair_every_batch=config.benchmark.pair_every_batch, batch_size=config.batch_size,
        seed=config.seed, device=device,
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
    :class:`~remi_tutorial.datasets.ImageBatches` with the same seed and the benchmark's
    masks. With a ``checkpoint_dir`` the run writes a checkpoint (``KEY.pt``) at the end of
    every epoch and resumes from it if it exists.

    The summary's ``mi_estimate`` is the mean MI estimate over the training batches of the
    last epoch (over the last epoch's worth of recorded steps for a run that diverged; NaN
    if it diverged at its first check). ``test_accuracy`` is the benchmark's metric
    (the test accuracy of the classifier, or the 1-nearest-neighbour test accuracy of the
    embedding), with the weights the run ended with (after a divergence: the weights of its
    last finite check). ``repaired_batches`` counts the batches the stream repaired to hold
    a same-label pair. ``train_seconds`` counts the training done by this call only.

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
    batches = _batches(config, dataset.train_images, dataset.train_labels, dataset.num_classes,
                       device)
    per_epoch = batches.steps_per_epoch
    checkpoint = checkpoint_file(checkpoint_dir, config.key()) if checkpoint_dir is not None else None
    benchmark = config.benchmark
    start = time.perf_counter()
    with warnings.catch_warnings():
        # A divergence is reported in the summary (diverged_at, message), not as a warning.
        warnings.simplefilter("ignore", RuntimeWarning)
        result = train(
            model.trainee,
            model.objective,
            batches,
            steps=config.epochs * per_epoch,
            optimizer=make_adam(model.trainee.parameters(), config.lr),
            check_every=min(100, per_epoch),
            checkpoint=checkpoint,
            checkpoint_every=per_epoch,
            progress=progress,
            description=f"{benchmark.name} {config.dataset} {config.loss} seed {config.seed}",
        )
    train_seconds = time.perf_counter() - start
    accuracy = benchmark.metric(model.critic, dataset)

    history = result.history
    history.insert(1, "epoch", (history.step + 1) / per_epoch)
    last_epoch = history.tail(per_epoch)
    settings = config.settings()
    summary = {
        **settings,
        "base_loss": config.base_loss,
        "regularized": config.regularized,
        "steps": config.epochs * per_epoch,
        "true_mi": batches.true_mi,
        "mi_estimate": float(last_epoch.mi.mean()) if len(last_epoch) else math.nan,
        "test_accuracy": accuracy,
        "diverged_at": result.diverged_at,
        "repaired_batches": batches.repaired_batches(config.epochs),
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
        curve.insert(0, column, settings[column])
    return ImageRun(summary, history, curve, model.critic)


def training_throughput(
    config: ImageRunConfig,
    *,
    image_shape: tuple[int, int, int] = (3, 32, 32),
    num_classes: int = 10,
    steps: int = 10,
    warmup: int = 2,
    device: torch.device | str | None = None,
    channels_last: bool = False,
) -> float:
    """Images per second of the cell's training loop, measured on random images.

    Builds the cell's model (:func:`cell_model`), and times ``steps`` steps of
    :func:`~remi_tutorial.train.train` (after ``warmup`` untimed ones) on random images of
    ``image_shape`` with random labels; the arithmetic does not depend on the content.
    Multiply the training set's size by the epochs and divide by this rate to estimate a
    cell's duration.

    With ``channels_last`` the model's weights and the images ``[N, C, H, W]`` are stored
    channels-last (``torch.channels_last``: the channels of a pixel adjacent in memory), a
    layout some convolution kernels run faster on; the values, and so the losses, are those
    of the default layout up to rounding. The batches are rows of the stored images, which
    keep their layout, so every batch reaches the network channels-last.

    Returns:
        Training images per second.
    """
    device = torch.device(device) if device is not None else default_device()
    count = (warmup + steps) * config.batch_size
    generator = torch.Generator().manual_seed(0)
    images = (torch.rand(count, *image_shape, generator=generator) * 2 - 1).to(device)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    labels = (torch.arange(count) % num_classes).to(device)
    synthetic = ImageDataset(config.dataset, images, labels, images[:1], labels[:1], num_classes)
    torch.manual_seed(config.seed)
    model = cell_model(config, synthetic)
    model.trainee.to(device)
    if channels_last:
        model.trainee.to(memory_format=torch.channels_last)
    batches = _batches(config, images, labels, num_classes)
    optimizer = make_adam(model.trainee.parameters(), config.lr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if warmup:
            train(model.trainee, model.objective, batches, steps=warmup, optimizer=optimizer,
                  progress=False)
        _synchronize(device)
        start = time.perf_counter()
        train(model.trainee, model.objective, lambda step: batches(warmup + step), steps=steps,
              optimizer=optimizer, progress=False)
        _synchronize(device)
    return steps * config.batch_size / (time.perf_counter() - start)


def training_flops_per_image(
    config: ImageRunConfig,
    *,
    image_shape: tuple[int, int, int] = (3, 32, 32),
    num_classes: int = 10,
) -> float:
    """Floating-point operations of one training step per image (forward and backward of
    the cell's model and loss, two per multiply-add), counted by torch's FLOP counter on a
    batch of two random images with one label on the CPU (the network's count per image does
    not depend on the batch; the loss's share is negligible). Divide a device's sustained
    FLOP/s by it for an assumed training rate where none can be measured."""
    pair = dataclasses.replace(config, batch_size=2)
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(2, *image_shape, generator=generator) * 2 - 1
    labels = torch.zeros(2, dtype=torch.int64)
    synthetic = ImageDataset(config.dataset, images, labels, images[:1], labels[:1], num_classes)
    torch.manual_seed(config.seed)
    model = cell_model(pair, synthetic)
    batch = _batches(pair, images, labels, num_classes)(0)
    counter = FlopCounterMode(display=False)
    with counter, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        output = model.trainee(*batch.inputs)
        model.objective(output, batch.positive, batch.negative, check=False).loss.backward()
    return counter.get_total_flops() / 2


def sweep_seconds(configs: Sequence[ImageRunConfig], train_images: int, rate: float) -> float:
    """Estimated training time of a sweep: every cell's ``epochs x train_images`` images at
    ``rate`` images per second (evaluation not counted)."""
    if rate <= 0:
        raise ValueError(f"rate must be positive, got {rate}")
    return sum(config.epochs for config in configs) * train_images / rate


def refuse_cpu_sweep(configs: Sequence[ImageRunConfig], device: torch.device | str, seconds: float,
                     *, allow_cpu: bool = False) -> None:
    """Raise before a sweep of ResNet-18 cells starts on a CPU, unless ``allow_cpu``.

    Args:
        configs: the sweep's cells.
        device: where it would train.
        seconds: its estimated duration there (:func:`sweep_seconds`), quoted in the error.
        allow_cpu: the explicit override.

    Raises:
        RuntimeError: on a CPU, for a sweep with a ResNet-18 cell and no override.
    """
    if allow_cpu or torch.device(device).type != "cpu":
        return
    if any(config.model == "resnet18" for config in configs):
        raise RuntimeError(
            f"refusing to start {len(configs)} ResNet-18 runs on a CPU: at the rate just measured "
            f"they would take about {seconds / 3600:,.0f} hours. Run them on a GPU (on Colab: "
            "Runtime -> Change runtime type -> GPU), or pass allow_cpu=True (ALLOW_CPU = True "
            "in the chapter) to start anyway.")


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def finish_cell(
    config: ImageRunConfig,
    dataset: ImageDataset,
    results_dir: str | os.PathLike,
    *,
    device: torch.device | str | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    keep_checkpoints: bool = False,
    progress: bool = True,
) -> str:
    """Run one cell unless its result is already in ``results_dir``, and record it there.

    The one step that every way of running a sweep takes for each cell (:func:`run_sweep`
    in one process, :class:`CellJob` in a process of its own). A finished cell (a diverged
    one included: it is a result) writes its curve and summary to the results folder
    (:func:`~remi_tutorial.benchmarks.image_results.write_cell_result`), and its checkpoint
    is deleted unless ``keep_checkpoints``. A cell that was interrupted resumes from its
    last epoch checkpoint.

    Args:
        config: the cell.
        dataset: its dataset.
        results_dir: the results folder.
        device: where to train.
        checkpoint_dir: the folder of the per-epoch checkpoints (default
            ``results_dir/checkpoints``).
        keep_checkpoints: keep the cell's last checkpoint after it finishes.
        progress: show a progress bar.

    Returns:
        The line a sweep logs for the cell (its MI estimate and accuracy, or that it was
        skipped).
    """
    if read_cell_result(results_dir, config.key()) is not None:
        return f"skip {config.loss} seed {config.seed}: already in {results_dir}"
    if checkpoint_dir is None:
        checkpoint_dir = checkpoint_folder(results_dir)
    run = run_image_cell(config, dataset, device=device, checkpoint_dir=checkpoint_dir,
                         progress=progress)
    write_cell_result(results_dir, run.summary, run.curve)
    if not keep_checkpoints:
        checkpoint_file(checkpoint_dir, config.key()).unlink(missing_ok=True)
    summary = run.summary
    ending = "" if summary["diverged_at"] is None else f", diverged at step {summary['diverged_at']}"
    return (f"{config.label()}: "
            f"MI {format_number(summary['mi_estimate'])} (true {summary['true_mi']:.3f}), "
            f"accuracy {summary['test_accuracy']:.3f}{ending}")


@dataclass(frozen=True)
class CellJob:
    """:func:`finish_cell` as a job of its own: ``job(config) -> log line``.

    Made for a launcher that runs every cell in a process of its own, possibly on another
    machine (:func:`~remi_tutorial.benchmarks.launch.launch`): it holds only plain settings
    (it is pickled), and the job loads the cell's dataset, sets torch's threads and picks
    the device and the mixed precision where it runs (a login node has no GPU to ask).

    Attributes:
        results_dir: the results folder.
        checkpoint_dir: the checkpoint folder (``None``: ``results_dir/checkpoints``).
        data_root: where the CIFAR folders are (already downloaded: the jobs never download).
        device: ``"auto"`` (:func:`~remi_tutorial.train.default_device` where the job runs),
            ``"cpu"``, ``"cuda"``, ...
        amp: ``"auto"`` (:func:`~remi_tutorial.benchmarks.image_config.amp_supported` on the
            job's device), ``"on"`` or ``"off"``; replaces the config's ``amp``, which is
            not part of a cell's key.
        threads: torch's CPU threads.
        keep_checkpoints: see :func:`finish_cell`.
        progress: show a progress bar.
    """

    results_dir: str
    checkpoint_dir: str | None = None
    data_root: str = "data"
    device: str = "auto"
    amp: str = "auto"
    threads: int = 1
    keep_checkpoints: bool = False
    progress: bool = False

    def __call__(self, config: ImageRunConfig) -> str:
        torch.set_num_threads(self.threads)
        device = default_device() if self.device == "auto" else torch.device(self.device)
        amp = amp_supported(device) if self.amp == "auto" else self.amp == "on"
        dataset = place_dataset(load_image_dataset(config.dataset, self.data_root), device)
        return finish_cell(
            replace(config, amp=amp), dataset, self.results_dir, device=device,
            checkpoint_dir=self.checkpoint_dir, keep_checkpoints=self.keep_checkpoints,
            progress=self.progress,
        )


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
    """Run every cell whose result is not yet in ``results_dir``, one after another in this
    process, and return the results of all of them.

    The cells are first recorded as asked for; then :func:`finish_cell` runs each one. A
    sweep that is killed and started again skips the finished cells and resumes the
    interrupted one from its last epoch. (The command line can also run each cell as a job
    of its own: :mod:`~remi_tutorial.benchmarks.launch`.)

    Args:
        configs: the cells, e.g. from :func:`~remi_tutorial.benchmarks.image_config.image_configs`.
        dataset: their dataset.
        results_dir: the results folder.
        device: where to train.
        checkpoint_dir: the folder of the per-epoch checkpoints (default
            ``results_dir/checkpoints``).
        keep_checkpoints: keep a cell's last checkpoint after it finishes.
        progress: show progress bars.
        log: called with one line per cell.

    Returns:
        ``(runs, curves)``: the summary rows and curves of the requested cells, in the order
        of ``configs`` (the tables of
        :class:`~remi_tutorial.benchmarks.image_results.CollectedResults`).
    """
    request_cells(results_dir, (config.settings() for config in configs))
    for config in configs:
        log(finish_cell(config, dataset, results_dir, device=device, checkpoint_dir=checkpoint_dir,
                        keep_checkpoints=keep_checkpoints, progress=progress))
    results = [read_cell_result(results_dir, key)
               for key in dict.fromkeys(config.key() for config in configs)]
    runs = pd.concat([summary for summary, _ in results], ignore_index=True)
    curves = pd.concat([curve for _, curve in results], ignore_index=True)
    return runs, curves
