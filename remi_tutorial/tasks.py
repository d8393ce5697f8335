"""Problems with a known mutual information, and the masks that say which pairs are which.

A task produces :class:`Batch` records: the critic's inputs, the positive and negative masks
of the score matrix the critic will produce, and the true MI. The training loop needs
nothing else.

Every sampler draws on the CPU, with a CPU generator, and then moves the samples to the
requested device: a seed means the same batches on a CPU and on a GPU (a CUDA generator
would draw other numbers from the same seed).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = [
    "Batch",
    "gaussian_mi",
    "gaussian_rho",
    "sample_gaussian",
    "gaussian_log_density_ratio",
    "mi_staircase",
    "sample_one_hot",
    "paired_masks",
    "label_masks",
    "contrastive_masks",
    "gaussian_batches",
    "independent_marginal_masks",
    "one_hot_batches",
]


class Batch(NamedTuple):
    """One training batch.

    Attributes:
        inputs: the critic's arguments; ``critic(*inputs)`` gives ``scores [N, M]``.
        positive: bool ``[N, M]``: pairs from the joint.
        negative: bool ``[N, M]`` or ``None`` (every pair): pairs standing for the marginals.
        true_mi: the ground-truth MI in nats, or ``nan`` where it is unknown.
    """

    inputs: tuple[Tensor, ...]
    positive: Tensor
    negative: Tensor | None
    true_mi: float


# --------------------------------------------------------------------------- Gaussian


def gaussian_mi(rho: float | Tensor, dim: int) -> float | Tensor:
    """MI of ``y = rho x + sqrt(1 - rho^2) eps`` with ``x, eps ~ N(0, I_dim)``: ``-dim/2 log(1 - rho^2)``.

    Args:
        rho: the correlation of each coordinate pair, ``|rho| < 1``.
        dim: the dimension of ``x`` and ``y``.

    Returns:
        The MI in nats (a tensor if ``rho`` is one).
    """
    if isinstance(rho, Tensor):
        return -0.5 * dim * torch.log1p(-rho.square())
    if not -1.0 < rho < 1.0:
        raise ValueError(f"rho must lie in (-1, 1), got {rho}")
    return -0.5 * dim * math.log1p(-rho * rho)


def gaussian_rho(mi: float | Tensor, dim: int) -> float | Tensor:
    """The correlation that gives MI ``mi`` in dimension ``dim``: ``sqrt(1 - exp(-2 mi / dim))``.

    The inverse of :func:`gaussian_mi` for ``rho >= 0``.
    """
    if isinstance(mi, Tensor):
        return torch.sqrt(-torch.expm1(-2.0 * mi / dim))
    if mi < 0:
        raise ValueError(f"mi must be non-negative, got {mi}")
    return math.sqrt(-math.expm1(-2.0 * mi / dim))


def sample_gaussian(
    batch_size: int,
    dim: int,
    rho: float,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """Paired samples ``x ~ N(0, I)``, ``y = rho x + sqrt(1 - rho^2) eps``.

    Args:
        batch_size: pairs to draw.
        dim: the dimension of ``x`` and ``y``.
        rho: the correlation of each coordinate pair.
        generator: a CPU generator, or ``None`` for torch's global one.
        device: where the samples go; they are drawn on the CPU first, so a seed gives
            the same samples on every device.
        dtype: their dtype.

    Returns:
        ``x [batch_size, dim]`` and ``y [batch_size, dim]``; row ``i`` of each is a pair.
    """
    noise = torch.randn(2, batch_size, dim, generator=generator, dtype=dtype).to(device)
    x = noise[0]
    y = rho * x + math.sqrt(1.0 - rho * rho) * noise[1]
    return x, y


def gaussian_log_density_ratio(x: Tensor, y: Tensor, rho: float) -> Tensor:
    """The optimal critic ``log p(y_j | x_i) - log p(y_j)`` of the correlated Gaussian.

    ``= -dim/2 log(1 - rho^2) - |y_j - rho x_i|^2 / (2 (1 - rho^2)) + |y_j|^2 / 2``.
    It is the optimal DV, TUBA (``a = 1``) and JS critic; NWJ's is this plus one.

    Args:
        x: ``[N, dim]``.
        y: ``[M, dim]``.
        rho: the correlation used to sample them.

    Returns:
        ``[N, M]``.
    """
    dim = x.shape[-1]
    residual = torch.cdist(rho * x, y).square()  # [N, M]
    return (
        -0.5 * dim * math.log1p(-rho * rho)
        - residual / (2.0 * (1.0 - rho * rho))
        + 0.5 * y.square().sum(-1)[None, :]
    )


def mi_staircase(
    step: int, *, stage_steps: int = 4000, levels: Sequence[float] = (2.0, 4.0, 6.0, 8.0, 10.0)
) -> float:
    """The true MI at ``step`` of the staircase schedule (Poole et al., 2019).

    The MI is ``levels[0]`` for the first ``stage_steps`` steps, then ``levels[1]``, ...;
    ``step`` counts from 0 and must be below ``len(levels) * stage_steps``.
    """
    stage = step // stage_steps
    if step < 0 or stage >= len(levels):
        raise ValueError(
            f"step {step} is outside the staircase of {len(levels)} stages of {stage_steps} steps"
        )
    return float(levels[stage])


# --------------------------------------------------------------------------- one-hot


def sample_one_hot(
    batch_size: int,
    num_classes: int,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """``x = y = one_hot(c)`` with ``c`` uniform over ``num_classes``: ``I(X; Y) = log K``.

    The classes are drawn on the CPU (with ``generator``, a CPU generator, or torch's global
    one) and moved to ``device``, so a seed gives the same samples on every device.

    Returns:
        ``x [batch_size, num_classes]`` and ``y``, equal to ``x``.
    """
    classes = torch.randint(num_classes, (batch_size,), generator=generator).to(device)
    x = torch.nn.functional.one_hot(classes, num_classes).to(dtype)
    return x, x.clone()


# --------------------------------------------------------------------------- masks


def paired_masks(n: int, device: torch.device | str | None = None) -> tuple[Tensor, Tensor]:
    """Masks for ``n`` paired samples scored all against all.

    Returns:
        ``positive``: bool ``[n, n]``, the diagonal; ``negative``: the ``n (n - 1)``
        off-diagonal pairs (a marginal that includes the diagonal is biased at high MI).
    """
    if n < 2:
        raise ValueError(f"paired masks need at least 2 samples, got {n}")
    positive = torch.eye(n, dtype=torch.bool, device=device)
    return positive, ~positive


def label_masks(labels: Tensor, num_classes: int) -> tuple[Tensor, None]:
    """Masks for a classifier's logits ``[B, K]`` used as scores of (image, class) pairs.

    Args:
        labels: int64 ``[B]`` in ``[0, num_classes)``.
        num_classes: ``K``.

    Returns:
        ``positive``: bool ``[B, K]``, one-hot labels; ``negative``: ``None``, every
        (image, class) pair, positives included.
    """
    if labels.dim() != 1:
        raise ValueError(f"labels must have shape [B], got {tuple(labels.shape)}")
    return torch.nn.functional.one_hot(labels, num_classes).bool(), None


def contrastive_masks(labels: Tensor) -> tuple[Tensor, Tensor]:
    """Masks for the scores of a batch's embeddings against themselves, ``[B, B]``.

    Args:
        labels: int64 ``[B]``.

    Returns:
        ``positive``: bool ``[B, B]``, pairs of *different* images with the same label;
        ``negative``: every pair of different images (the off-diagonal). A batch in which no
        two images share a label has no positive pair; the bounds reject it.
    """
    if labels.dim() != 1:
        raise ValueError(f"labels must have shape [B], got {tuple(labels.shape)}")
    different = ~torch.eye(labels.shape[0], dtype=torch.bool, device=labels.device)
    same_label = labels[:, None] == labels[None, :]
    return same_label & different, different


# --------------------------------------------------------------------------- batch streams


def gaussian_batches(
    dim: int,
    batch_size: int,
    mi: float | Callable[[int], float],
    *,
    seed: int = 0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Callable[[int], Batch]:
    """A stream of fresh correlated-Gaussian batches, scored all against all.

    Args:
        dim: the dimension of ``x`` and ``y``.
        batch_size: pairs per batch.
        mi: the true MI in nats, or a schedule ``step -> MI`` such as :func:`mi_staircase`.
        seed: seeds the stream's own (CPU) generator.
        device: where the batches go (drawn on the CPU first: the same batches everywhere).
        dtype: their dtype.

    Returns:
        ``batches(step) -> Batch`` with ``inputs = (x [B, dim], y [B, dim])`` and the
        :func:`paired_masks`.
    """
    generator = torch.Generator().manual_seed(seed)
    positive, negative = paired_masks(batch_size, device=device)
    schedule = mi if callable(mi) else (lambda step: float(mi))

    def batches(step: int) -> Batch:
        true_mi = schedule(step)
        x, y = sample_gaussian(
            batch_size, dim, gaussian_rho(true_mi, dim),
            generator=generator, device=device, dtype=dtype,
        )
        return Batch((x, y), positive, negative, true_mi)

    return batches


# --------------------------------------------------------------------------- one-hot stream


def independent_marginal_masks(
    n: int, device: torch.device | str | None = None
) -> tuple[Tensor, Tensor]:
    """Masks for ``n`` paired samples scored against themselves and ``n`` independent ``y``.

    The scores are ``critic(x [n, dx], y [2n, dy])`` with ``y = cat(paired y, fresh y')``:
    column ``j < n`` holds ``y_j`` (paired with ``x_j``), column ``n + j`` holds ``y'_j``,
    drawn independently of every ``x``.

    Returns:
        ``positive``: bool ``[n, 2n]``, True at ``(i, i)``: the ``n`` joint pairs;
        ``negative``: bool ``[n, 2n]``, True at ``(i, n + i)``: ``n`` pairs from the product
        of marginals, independent of one another (unlike the off-diagonal pairs of
        :func:`paired_masks`, which reuse every sample ``n - 1`` times).
    """
    if n < 1:
        raise ValueError(f"independent marginal masks need at least 1 sample, got {n}")
    eye = torch.eye(n, dtype=torch.bool, device=device)
    off = torch.zeros_like(eye)
    return torch.cat([eye, off], dim=1), torch.cat([off, eye], dim=1)


def one_hot_batches(
    num_classes: int,
    batch_size: int,
    *,
    marginal: str = "independent",
    seed: int = 0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Callable[[int], Batch]:
    """A stream of fresh one-hot batches, ``x = y = one_hot(c)``: ``I(X; Y) = log K``.

    Args:
        num_classes: ``K``, at least 2.
        batch_size: joint pairs per batch, ``B``.
        marginal: which pairs stand for the product of marginals Q.
            ``"independent"`` (default): ``B`` pairs ``(x_i, y'_i)`` with ``y'`` a fresh
            sample, so ``inputs = (x [B, K], y [2B, K])`` and the masks of
            :func:`independent_marginal_masks`. ``"off_diagonal"``: the ``B (B - 1)``
            off-diagonal pairs of the batch, ``inputs = (x [B, K], y [B, K])`` and
            :func:`paired_masks`.
        seed: seeds the stream's own (CPU) generator.
        device: where the batches go (drawn on the CPU first: the same batches everywhere).
        dtype: their dtype.

    Returns:
        ``batches(step) -> Batch`` with ``true_mi = log K``.
    """
    if num_classes < 2:
        raise ValueError(f"the one-hot task needs at least 2 classes, got {num_classes}")
    if marginal == "independent":
        positive, negative = independent_marginal_masks(batch_size, device=device)
    elif marginal == "off_diagonal":
        positive, negative = paired_masks(batch_size, device=device)
    else:
        raise ValueError(f"marginal must be 'independent' or 'off_diagonal', got {marginal!r}")
    generator = torch.Generator().manual_seed(seed)
    true_mi = math.log(num_classes)

    def batches(step: int) -> Batch:
        x, y = sample_one_hot(
            batch_size, num_classes, generator=generator, device=device, dtype=dtype
        )
        if marginal == "independent":
            fresh, _ = sample_one_hot(
                batch_size, num_classes, generator=generator, device=device, dtype=dtype
            )
            y = torch.cat([y, fresh])
        return Batch((x, y), positive, negative, true_mi)

    return batches
