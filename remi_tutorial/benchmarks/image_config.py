"""The settings of the image benchmarks' runs: one cell, the paper's presets, a sweep's cells.

A *cell* of the paper's Table 1 is one training run: a benchmark, a dataset, a loss (with
its regularizer weight ``alpha`` if it is regularized) and a seed. :class:`ImageRunConfig`
holds its settings and names it by a key made of :data:`KEY_COLUMNS` (the file names of its
checkpoint and results), :data:`PRESETS` holds the paper's settings for CIFAR and ours for
the CPU-size runs on digits, and :func:`image_configs` lists the cells of a sweep.

A cell's loss is one of the twelve bounds of :mod:`remi_tutorial.bounds`, or, where the
benchmark offers it, the second-order objective :func:`~remi_tutorial.explicit.explicit_mi`
(:data:`SECOND_ORDER_LOSS`), which takes the embeddings themselves.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch

from ..bounds import BOUND_NAMES, BoundSpec, bound_spec
from ..datasets import DATASET_NAMES
from .image_spec import ImageBenchmark

__all__ = [
    "SECOND_ORDER_LOSS",
    "PAPER_ALPHAS",
    "AUTHORS_NWJ_CLIP",
    "PRESETS",
    "SIZES",
    "sized_configs",
    "KEY_COLUMNS",
    "ImageRunConfig",
    "cell_key",
    "format_setting",
    "image_configs",
    "amp_supported",
]

SECOND_ORDER_LOSS = "explicit"
"""The name of the second-order loss, :func:`~remi_tutorial.explicit.explicit_mi` on the
embeddings (see :func:`~remi_tutorial.benchmarks.image_cells.cell_model`)."""

PAPER_ALPHAS: tuple[float, ...] = (0.1, 0.01, 0.001)
"""The regularizer weights the authors swept on CIFAR."""

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
"""``(benchmark name, dataset) -> settings``: the paper's for CIFAR, ours for digits."""

AUTHORS_NWJ_CLIP = 10.0
"""The clip of the scores of ReNWJ and ReTUBA in the authors' image code (their NWJ and TUBA
are not clipped): the ``tau`` of those cells with ``nwj_variant="authors_code"`` in
:func:`image_configs`."""

KEY_COLUMNS: tuple[str, ...] = (
    "benchmark", "dataset", "model", "stem", "loss", "alpha", "tau", "seed",
    "batch_size", "epochs", "lr", "width", "embed_dim", "order", "beta", "ridge", "variant",
)
"""The settings that identify a cell in the results."""

_LATER_KEY_COLUMNS: tuple[str, ...] = ("width", "embed_dim", "order", "beta", "ridge", "variant")
"""Key columns added after the first results were written. They enter a cell's key only
when they are set, so the cells and checkpoints of those results keep their keys."""


def _bound(loss: str) -> BoundSpec | None:
    """The registry entry of a bound; ``None`` for the second-order loss."""
    return None if loss == SECOND_ORDER_LOSS else bound_spec(loss)


@dataclass(frozen=True)
class ImageRunConfig:
    """The settings of one cell.

    Attributes:
        benchmark: the benchmark, an :class:`~remi_tutorial.benchmarks.image_spec.ImageBenchmark`
            (:data:`~remi_tutorial.benchmarks.supervised.SUPERVISED` or
            :data:`~remi_tutorial.benchmarks.contrastive.CONTRASTIVE`).
        dataset: one of :data:`~remi_tutorial.datasets.DATASET_NAMES`.
        loss: one of the benchmark's ``losses``: a bound of
            :data:`~remi_tutorial.bounds.BOUND_NAMES`, or :data:`SECOND_ORDER_LOSS` where the
            benchmark offers it.
        seed: seeds the network's initial weights and the data order.
        batch_size: images per batch.
        epochs: passes over the training set.
        lr: Adam's learning rate.
        model: ``"resnet18"`` or ``"small"`` (:class:`~remi_tutorial.networks.SmallConvNet`).
        stem: ResNet-18's stem, ``"cifar"`` (32x32) or ``"imagenet"`` (the authors' 224x224
            upsampling); ignored by the small network.
        alpha: the regularizer weight of a regularized loss; ``None`` for an original one.
        tau: the clipping threshold of the scores: SMILE's (10, as in the authors' CIFAR
            code; required for SMILE and ReSMILE), or the clip of another bound that takes
            one (ReNWJ and ReTUBA in the authors' code, :data:`AUTHORS_NWJ_CLIP`); ``None``
            for none.
        amp: bfloat16 autocast for the network's features (see
            :class:`~remi_tutorial.critics.ImageCritic`).
        width: the small network's widths become ``(32, 64, width)``: ``width`` is the
            number of its features; ``None`` for its default, 512 (ResNet-18's).
        embed_dim: for a benchmark whose network outputs an embedding (the ``"dot"`` head):
            a final linear layer from the network's features to ``embed_dim`` outputs (a
            projection head); ``None`` for none, the features themselves (512 of them for
            both networks), as in the paper.
        order: the second-order loss's series order (see
            :func:`~remi_tutorial.explicit.explicit_mi`); ``None`` for the exact
            log-determinants. ``None`` for the bounds.
        beta: the series' rescaling; ``None`` for the adaptive choice. Only with an
            ``order``.
        ridge: the shrinkage of the second-order loss's correlation matrices (``1e-3`` in
            :func:`image_configs`); ``None`` for the bounds.
        variant: the penalty of ReNWJ, ReTUBA or ReJS: ``"authors_code"`` for the form of
            the authors' code (see :func:`~remi_tutorial.bounds.renwj_penalty`,
            :func:`~remi_tutorial.bounds.rejs_penalty`); ``None`` for the paper's form.
    """

    benchmark: ImageBenchmark
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
    variant: str | None = None

    def __post_init__(self):
        if not isinstance(self.benchmark, ImageBenchmark):
            raise TypeError(f"benchmark must be an ImageBenchmark (SUPERVISED or CONTRASTIVE; "
                            f"image_benchmark(name) finds one by name), got {self.benchmark!r}")
        name = self.benchmark.name
        if self.dataset not in DATASET_NAMES:
            raise ValueError(f"dataset must be one of {DATASET_NAMES}, got {self.dataset!r}")
        if self.loss not in self.benchmark.losses:
            raise ValueError(f"the {name} benchmark offers the losses {self.benchmark.losses}, "
                             f"not {self.loss!r}")
        if self.model not in ("resnet18", "small"):
            raise ValueError(f"model must be 'resnet18' or 'small', got {self.model!r}")
        if self.stem not in ("cifar", "imagenet"):
            raise ValueError(f"stem must be 'cifar' or 'imagenet', got {self.stem!r}")
        if self.regularized != (self.alpha is not None):
            raise ValueError(f"{self.loss!r} needs alpha {'set' if self.regularized else 'None'}")
        self._check_clip_and_variant()
        if self.batch_size < 2 or self.epochs < 1 or self.lr <= 0:
            raise ValueError("batch_size must be >= 2, epochs >= 1 and lr > 0")
        if self.width is not None and (self.model != "small" or self.width < 1):
            raise ValueError(f"width is a positive width of the small network, got {self.width} "
                             f"for model {self.model!r}")
        if self.embed_dim is not None and (not self.benchmark.embeds or self.embed_dim < 1):
            raise ValueError(f"embed_dim is a positive size of an embedding, got {self.embed_dim} "
                             f"for the {name} benchmark, whose head is {self.benchmark.head!r}")
        self._check_second_order()

    def _check_clip_and_variant(self) -> None:
        bound = _bound(self.loss)
        parameters = () if bound is None else bound.parameters
        if self.base_loss == "smile" and self.tau is None:
            raise ValueError(f"{self.loss!r} needs its clipping threshold tau")
        if self.tau is not None and ("tau" not in parameters or self.tau <= 0):
            raise ValueError(f"tau is a positive clip of a bound that takes one, got tau={self.tau} "
                             f"for {self.loss!r}")
        if self.variant is not None and ("variant" not in parameters or self.variant != "authors_code"):
            raise ValueError(f"variant is 'authors_code' (or None, the paper's form) for renwj, "
                             f"retuba or rejs, got {self.variant!r} for {self.loss!r}")

    def _check_second_order(self) -> None:
        settings = {"order": self.order, "beta": self.beta, "ridge": self.ridge}
        if self.loss != SECOND_ORDER_LOSS:
            given = [name for name, value in settings.items() if value is not None]
            if given:
                raise ValueError(f"{', '.join(given)} apply to the second-order loss "
                                 f"{SECOND_ORDER_LOSS!r} only, not to {self.loss!r}")
            return
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
        """Whether the loss is a regularized bound (read from the bounds registry)."""
        bound = _bound(self.loss)
        return bound is not None and bound.regularized

    @property
    def base_loss(self) -> str:
        """Name of the original loss (``"mine"`` for ``"remine"``); the second-order loss's
        own name."""
        bound = _bound(self.loss)
        return self.loss if bound is None else bound.base

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
        if self.variant is not None:
            params["variant"] = self.variant
        return params

    def settings(self) -> dict:
        """``{column: value}`` for every one of :data:`KEY_COLUMNS` (the benchmark by name):
        the cell's columns in the results."""
        values = {column: getattr(self, column) for column in KEY_COLUMNS}
        values["benchmark"] = self.benchmark.name
        return values

    def key(self) -> str:
        """A file-name-safe identifier of the cell, made of :data:`KEY_COLUMNS`."""
        return cell_key(self.settings())

    def label(self) -> str:
        """The cell in a few words, for a sweep's log: loss, alpha, the later settings that
        are set, seed."""
        later = "".join(f" {column}={format_setting(getattr(self, column))}"
                        for column in _LATER_KEY_COLUMNS if getattr(self, column) is not None)
        return f"{self.loss:>9} alpha={format_setting(self.alpha):>5}{later} seed {self.seed}"


def format_setting(value) -> str:
    """A setting as it appears in a cell's key: ``-`` for none (or NaN), ``%g`` for a float."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def cell_key(values: Mapping) -> str:
    """The key of a cell from its settings.

    Args:
        values: ``{column: value}`` with :data:`KEY_COLUMNS` (a config's
            :meth:`~ImageRunConfig.settings`, or a row of the results, which may predate
            some of the later columns).

    Returns:
        ``"benchmark=supervised_dataset=digits_..."``: every column as ``column=value``,
        the later columns (``width, embed_dim, order, beta, ridge``) only when they are set.
    """
    parts = []
    for column in KEY_COLUMNS:
        text = format_setting(values.get(column))
        if not (text == "-" and column in _LATER_KEY_COLUMNS):
            parts.append(f"{column}={text}")
    return "_".join(parts)


def image_configs(
    benchmark: ImageBenchmark,
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
    nwj_variant: str = "paper",
    **overrides,
) -> list[ImageRunConfig]:
    """The cells of a sweep: every loss (regularized ones at every alpha) and every seed.

    Settings come from :data:`PRESETS` for ``(benchmark.name, dataset)``; ``overrides``
    (``batch_size``, ``epochs``, ``lr``, ``model``, ``width``) replace them. ``tau`` goes to
    the SMILE losses, ``order``, ``beta`` and ``ridge`` to the second-order loss,
    ``embed_dim`` to every cell (see :class:`ImageRunConfig`). ``nwj_variant="authors_code"``
    gives ReNWJ, ReTUBA and ReJS the penalty of the authors' code and clips the scores of
    ReNWJ and ReTUBA at :data:`AUTHORS_NWJ_CLIP`, as that code does (NWJ and TUBA stay
    unclipped); ``"paper"`` (default): the paper's penalty, no clip.

    Returns:
        The configurations, seed-major (all losses of seed 0 first).
    """
    if (benchmark.name, dataset) not in PRESETS:
        raise ValueError(f"no preset for {benchmark.name!r} on {dataset!r}; presets: {sorted(PRESETS)}")
    unknown = set(overrides) - {"batch_size", "epochs", "lr", "model", "width"}
    if unknown:
        raise ValueError(f"unknown settings {sorted(unknown)}")
    if nwj_variant not in ("paper", "authors_code"):
        raise ValueError(f"nwj_variant must be 'paper' or 'authors_code', got {nwj_variant!r}")
    settings = {**PRESETS[(benchmark.name, dataset)], **overrides}
    configs = []
    for seed in seeds:
        for loss in losses:
            loss = loss.lower()
            bound = _bound(loss)
            clip = tau if bound is not None and bound.base == "smile" else None
            variant = None
            if nwj_variant == "authors_code" and bound is not None and "variant" in bound.parameters:
                variant = nwj_variant
                clip = AUTHORS_NWJ_CLIP if "tau" in bound.parameters else None
            second_order = dict(order=order, beta=beta, ridge=ridge) if bound is None else {}
            for alpha in (alphas if bound is not None and bound.regularized else (None,)):
                configs.append(ImageRunConfig(
                    benchmark, dataset, loss, seed, stem=stem, alpha=alpha, tau=clip,
                    amp=amp, embed_dim=embed_dim, variant=variant, **second_order, **settings,
                ))
    return configs


SIZES: dict[str, dict[str, dict]] = {
    # Ours, for a CPU within a book build: digits, two seeds, every loss.
    "small": {name: dict(dataset="digits", seeds=(0, 1), alphas=(0.1,))
              for name in ("supervised", "contrastive")},
    # About an hour or less of a free Colab GPU per chapter (see the chapters' estimate): one
    # seed, five epochs, the losses whose contrast the paper reports.
    "colab": {
        # the free constant: MINE and InfoNCE drift, their regularized versions hold it;
        # NWJ holds its own.
        "supervised": dict(dataset="cifar10", seeds=(0,), alphas=(0.1,), epochs=5,
                           losses=("mine", "remine", "infonce", "reinfonce", "nwj", "renwj")),
        # the collapse: SMILE and NWJ die at ResNet-18's initial scale, their regularized
        # versions (NWJ's in the authors' code form) train; InfoNCE and JS for reference.
        "contrastive": dict(dataset="cifar10", seeds=(0,), alphas=(0.1,), epochs=5,
                            losses=("smile", "resmile", "nwj", "renwj", "infonce", "js"),
                            nwj_variant="authors_code"),
    },
    # The paper's: every loss, three seeds, the three weights the authors swept.
    "paper": {name: dict(dataset="cifar10", seeds=(0, 1, 2), alphas=PAPER_ALPHAS)
              for name in ("supervised", "contrastive")},
}
"""``size -> benchmark name -> arguments of`` :func:`image_configs` (``dataset`` first):
the sweeps a chapter runs at each ``SIZE``."""


def sized_configs(benchmark: ImageBenchmark, size: str, *, amp: bool = False) -> list[ImageRunConfig]:
    """The cells of a chapter's sweep at ``size`` (one of :data:`SIZES`).

    Args:
        benchmark: the benchmark.
        size: ``"small"`` (digits on a CPU), ``"colab"`` (CIFAR-10, one seed, a few losses,
            five epochs: one free Colab GPU session) or ``"paper"`` (the paper's sweep).
        amp: bfloat16 autocast (see :func:`amp_supported`).

    Returns:
        The cells, as :func:`image_configs` lists them.
    """
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    arguments = dict(SIZES[size][benchmark.name])
    return image_configs(benchmark, arguments.pop("dataset"), amp=amp, **arguments)


def amp_supported(device: torch.device | str) -> bool:
    """Whether ``device`` runs bfloat16 natively: a CUDA GPU of compute capability 8.0 or
    later (Ampere, Hopper, ...). Never on a CPU.

    ``torch.cuda.is_bf16_supported()`` is not the test: it is also True on older GPUs (a
    T4, capability 7.5), which emulate bfloat16 more slowly than float32. Those train in
    full precision.
    """
    device = torch.device(device)
    return device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 0)
