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


# --------------------------------------------------------------------------- beyond Gaussian
#
# Problems whose MI is known although the distribution is not Gaussian (Czyż et al., 2023,
# "Beyond Normal: On the Evaluation of Mutual Information Estimators"): invertible maps of
# the correlated Gaussian (MI is invariant under a smooth invertible map of X and of Y), the
# multivariate Student-t, and uniform variables with additive uniform noise. Each task is
# also in the small registry :data:`MI_TASKS`, where it is parametrized by its MI, so that a
# benchmark can loop over tasks at the same MI.

from dataclasses import dataclass as _dataclass, field as _field  # noqa: E402

__all__ += [
    "half_cube",
    "inverse_half_cube",
    "spiral",
    "inverse_spiral",
    "TRANSFORMS",
    "sample_transformed_gaussian",
    "student_t_correction",
    "student_t_mi",
    "sample_student_t",
    "uniform_noise_mi",
    "uniform_noise_epsilon",
    "sample_uniform_noise",
    "MITask",
    "MI_TASKS",
    "mi_task",
    "task_batches",
]


def half_cube(x: Tensor) -> Tensor:
    """``x |x|^(1/2)``, coordinate by coordinate: a signed ``x^(3/2)``, invertible on the reals.

    Args:
        x: ``[..., dim]`` (any shape).

    Returns:
        The same shape.
    """
    return x * x.abs().sqrt()


def inverse_half_cube(y: Tensor) -> Tensor:
    """The inverse of :func:`half_cube`: ``sign(y) |y|^(2/3)``."""
    return y.sign() * y.abs().pow(2.0 / 3.0)


def spiral(x: Tensor, speed: float = 1.0) -> Tensor:
    """Rotate the first two coordinates by the angle ``speed * |x|^2``.

    A rotation preserves ``|x|``, so the angle can be read back from the image and the map
    is inverted by rotating back (:func:`inverse_spiral`): ``spiral(x, -speed)``. Points far
    from the origin are wound round more than points near it, which turns a Gaussian into a
    spiral (the "spiral" diffeomorphism of Czyż et al., 2023, with the rotation generator
    in the plane of coordinates 0 and 1).

    Args:
        x: ``[..., dim]`` with ``dim >= 2``.
        speed: radians per unit of ``|x|^2``.

    Returns:
        ``[..., dim]``.
    """
    if x.shape[-1] < 2:
        raise ValueError(f"the spiral rotates two coordinates; x has {x.shape[-1]}")
    angle = speed * x.square().sum(-1)
    cos, sin = torch.cos(angle), torch.sin(angle)
    first, second = x[..., 0], x[..., 1]
    rotated = torch.stack([cos * first - sin * second, sin * first + cos * second], dim=-1)
    return torch.cat([rotated, x[..., 2:]], dim=-1)


def inverse_spiral(y: Tensor, speed: float = 1.0) -> Tensor:
    """The inverse of :func:`spiral`: ``spiral(y, -speed)`` (the rotation keeps ``|y| = |x|``)."""
    return spiral(y, -speed)


TRANSFORMS: dict[str, tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]] = {
    "half_cube": (half_cube, inverse_half_cube),
    "asinh": (torch.asinh, torch.sinh),
    "spiral": (spiral, inverse_spiral),
}
"""Invertible maps applied to both ``x`` and ``y`` of the correlated Gaussian, by name ->
``(forward, inverse)``. MI is invariant under an invertible (smooth) map of each variable, so
each transformed pair keeps the Gaussian's MI."""


def sample_transformed_gaussian(
    batch_size: int,
    dim: int,
    rho: float,
    transform: str,
    *,
    speed: float = 1.0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """The correlated Gaussian pair of :func:`sample_gaussian`, with ``transform`` applied to
    ``x`` and to ``y``: ``I(f(X); f(Y)) = I(X; Y) =`` :func:`gaussian_mi` ``(rho, dim)``.

    Args:
        batch_size: pairs to draw.
        dim: the dimension of ``x`` and ``y`` (at least 2 for ``"spiral"``).
        rho: the correlation of each coordinate pair before the transform.
        transform: a key of :data:`TRANSFORMS`: ``"half_cube"``, ``"asinh"`` or ``"spiral"``.
        speed: the spiral's winding speed (ignored by the other transforms).
        generator: a CPU generator, or ``None`` for torch's global one.
        device: where the samples go (drawn on the CPU first).
        dtype: their dtype.

    Returns:
        ``x [batch_size, dim]`` and ``y [batch_size, dim]``.
    """
    if transform not in TRANSFORMS:
        raise ValueError(f"unknown transform {transform!r}; choose one of {', '.join(TRANSFORMS)}")
    if transform == "spiral" and dim < 2:
        raise ValueError("the spiral transform needs dim >= 2")
    x, y = sample_gaussian(batch_size, dim, rho, generator=generator, dtype=dtype)
    forward = TRANSFORMS[transform][0]
    if transform == "spiral":
        x, y = forward(x, speed), forward(y, speed)
    else:
        x, y = forward(x), forward(y)
    return x.to(device), y.to(device)


# Student-t


def _log_gamma_minus_digamma(a: float) -> float:
    """``log Gamma(a/2) - (a/2) digamma(a/2)``."""
    half = 0.5 * a
    digamma = float(torch.special.digamma(torch.tensor(half, dtype=torch.float64)))
    return math.lgamma(half) - half * digamma


def student_t_correction(nu: float, dim_x: int, dim_y: int) -> float:
    """What the multivariate Student-t adds to the MI of the Gaussian with its dispersion.

    For ``(X, Y)`` multivariate t with ``nu`` degrees of freedom and dispersion ``Sigma``,
    ``I(X; Y) = -1/2 log(det Sigma / (det Sigma_X det Sigma_Y)) + c(nu, d_X, d_Y)`` with::

        c = k(nu) + k(nu + d_X + d_Y) - k(nu + d_X) - k(nu + d_Y),
        k(a) = log Gamma(a/2) - (a/2) digamma(a/2).

    Derivation: ``I = h(X) + h(Y) - h(X, Y)``, with the entropy of a ``d``-dimensional
    t (Arellano-Valle, Contreras-Reyes & Genton, 2013, *Scand. J. Stat.* 40, eq. 7)
    ``h = 1/2 log det Sigma + d/2 log(nu pi) + log Gamma(nu/2) - log Gamma((nu+d)/2)
    + (nu+d)/2 (digamma((nu+d)/2) - digamma(nu/2))``; the marginals of a t are t with the
    same ``nu`` and the sub-blocks of ``Sigma``. The ``log(nu pi)`` terms cancel. (The
    closed form printed on p. 47 of that paper has a sign slip, as Czyż et al.'s ``bmi``
    notes; the sum of entropies is right, and tests/test_mi_tasks.py checks it against a
    Monte-Carlo estimate of ``E[log p(x, y) - log p(x) - log p(y)]`` with scipy's densities.)
    ``c > 0``: even with ``Sigma`` block-diagonal, ``X`` and ``Y`` share the random scale.
    It goes to 0 as ``nu -> infinity``.

    Args:
        nu: degrees of freedom, ``> 0``.
        dim_x, dim_y: the dimensions of ``X`` and ``Y``.

    Returns:
        ``c`` in nats.
    """
    if not nu > 0:
        raise ValueError(f"nu must be positive, got {nu}")
    if dim_x < 1 or dim_y < 1:
        raise ValueError(f"dimensions must be positive, got {dim_x} and {dim_y}")
    k = _log_gamma_minus_digamma
    return k(nu) + k(nu + dim_x + dim_y) - k(nu + dim_x) - k(nu + dim_y)


def student_t_mi(rho: float, dim: int, nu: float) -> float:
    """MI of the multivariate t pair of :func:`sample_student_t`:
    :func:`gaussian_mi` ``(rho, dim) +`` :func:`student_t_correction` ``(nu, dim, dim)``.

    Args:
        rho: the correlation of each coordinate pair of the dispersion, ``|rho| < 1``.
        dim: the dimension of ``x`` and ``y``.
        nu: degrees of freedom, ``> 0``.
    """
    return gaussian_mi(rho, dim) + student_t_correction(nu, dim, dim)


def sample_student_t(
    batch_size: int,
    dim: int,
    rho: float,
    nu: float,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """Paired samples of a multivariate t with ``nu`` degrees of freedom.

    ``(x, y) = (u, v) / sqrt(w / nu)`` with ``(u, v)`` the correlated Gaussian pair of
    :func:`sample_gaussian` and ``w ~ chi^2_nu`` independent of it: the dispersion is
    ``[[I, rho I], [rho I, I]]``. The MI is :func:`student_t_mi` ``(rho, dim, nu)``.

    Args:
        batch_size: pairs to draw.
        dim: the dimension of ``x`` and ``y``.
        rho: the correlation of each coordinate pair of the dispersion.
        nu: degrees of freedom, ``> 0`` (the tails are heavier for smaller ``nu``; the
            variance is finite for ``nu > 2``).
        generator: a CPU generator, or ``None`` for torch's global one.
        device: where the samples go (drawn on the CPU first).
        dtype: their dtype.

    Returns:
        ``x [batch_size, dim]`` and ``y [batch_size, dim]``.
    """
    if not nu > 0:
        raise ValueError(f"nu must be positive, got {nu}")
    u, v = sample_gaussian(batch_size, dim, rho, generator=generator, dtype=dtype)
    # chi^2_nu = 2 Gamma(nu / 2); torch._standard_gamma is the sampler behind
    # torch.distributions.Gamma, and the only one that takes a generator.
    concentration = torch.full((batch_size, 1), 0.5 * nu, dtype=torch.float64)
    chi2 = 2.0 * torch._standard_gamma(concentration, generator=generator)
    scale = torch.rsqrt(chi2 / nu).to(dtype)
    return (u * scale).to(device), (v * scale).to(device)


# additive uniform noise


def uniform_noise_mi(epsilon: float, dim: int = 1) -> float:
    """MI of ``X ~ U(0, 1)^dim``, ``Y = X + N``, ``N ~ U(-epsilon, epsilon)^dim``.

    Per coordinate ``I = h(Y) - h(Y | X) = h(Y) - log(2 epsilon)``, and ``Y``'s density is
    the trapezoid ``U(0, 1) * U(-epsilon, epsilon)``: its two ramps contribute
    ``min(2 epsilon, 1)/2`` of entropy in all and its plateau ``log max(2 epsilon, 1)``
    weighted by its mass. Hence::

        I = epsilon - log(2 epsilon)   for epsilon <= 1/2,
        I = 1 / (4 epsilon)            for epsilon >= 1/2,

    (the formula of Czyż et al., 2023, derived again here and checked against Monte Carlo
    with the exact densities in tests/test_mi_tasks.py), times ``dim`` for independent
    coordinates. It decreases from infinity (no noise) to 0 (noise swamping the signal).

    Args:
        epsilon: the noise's half-width, ``> 0``.
        dim: the number of coordinates.
    """
    if not epsilon > 0:
        raise ValueError(f"epsilon must be positive, got {epsilon}")
    per_coordinate = epsilon - math.log(2.0 * epsilon) if epsilon <= 0.5 else 0.25 / epsilon
    return dim * per_coordinate


def uniform_noise_epsilon(mi: float, dim: int = 1) -> float:
    """The noise half-width that gives MI ``mi`` in :func:`uniform_noise_mi`: its inverse.

    ``1 / (4 m)`` for ``m = mi / dim <= 1/2``; otherwise the root in ``(0, 1/2)`` of
    ``epsilon - log(2 epsilon) = m``, found by bisection.
    """
    if not mi > 0:
        raise ValueError(f"mi must be positive, got {mi}")
    per_coordinate = mi / dim
    if per_coordinate <= 0.5:
        return 0.25 / per_coordinate
    low, high = 0.0, 0.5  # epsilon - log(2 epsilon) decreases from +inf to 1/2 on (0, 1/2]
    for _ in range(200):
        middle = 0.5 * (low + high)
        if middle - math.log(2.0 * middle) > per_coordinate:
            low = middle
        else:
            high = middle
        if high - low <= 1e-15 * high:
            break
    return 0.5 * (low + high)


def sample_uniform_noise(
    batch_size: int,
    dim: int,
    epsilon: float,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """``x ~ U(0, 1)^dim`` and ``y = x + n``, ``n ~ U(-epsilon, epsilon)^dim``.

    The MI is :func:`uniform_noise_mi` ``(epsilon, dim)``.

    Args:
        batch_size: pairs to draw.
        dim: the dimension of ``x`` and ``y``.
        epsilon: the noise's half-width, ``> 0``.
        generator: a CPU generator, or ``None`` for torch's global one.
        device: where the samples go (drawn on the CPU first).
        dtype: their dtype.

    Returns:
        ``x [batch_size, dim]`` and ``y [batch_size, dim]``.
    """
    if not epsilon > 0:
        raise ValueError(f"epsilon must be positive, got {epsilon}")
    uniform = torch.rand(2, batch_size, dim, generator=generator, dtype=dtype)
    x = uniform[0]
    y = x + epsilon * (2.0 * uniform[1] - 1.0)
    return x.to(device), y.to(device)


# the registry


@_dataclass(frozen=True)
class MITask:
    """A problem with a known MI, parametrized by that MI.

    Attributes:
        name: the registry key.
        description: one line on what it is.
        sampler: ``(batch_size, dim, **parameters, generator, device, dtype) -> (x [B, dim],
            y [B, dim])``, e.g. :func:`sample_student_t`.
        parameters: ``(mi, dim, **options) -> dict``, the sampler's parameters that give MI
            ``mi`` in dimension ``dim`` (e.g. ``{"rho": ..., "nu": 3.0}``).
        true_mi: ``(dim, **parameters) -> float``, the closed-form MI of those parameters.
        min_dim: the smallest dimension the task exists in.
        options: the task's own options and their defaults (e.g. ``nu`` for the t).
    """

    name: str
    description: str
    sampler: Callable[..., tuple[Tensor, Tensor]]
    parameters: Callable[..., dict]
    true_mi: Callable[..., float]
    min_dim: int = 1
    options: dict = _field(default_factory=dict)

    def sample(
        self,
        batch_size: int,
        dim: int,
        mi: float,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        **options,
    ) -> tuple[Tensor, Tensor]:
        """``batch_size`` pairs with MI ``mi`` in dimension ``dim``: ``x [B, dim]``, ``y [B, dim]``.

        ``options`` override ``options`` (e.g. ``nu=5.0``).
        """
        if dim < self.min_dim:
            raise ValueError(f"task {self.name!r} needs dim >= {self.min_dim}, got {dim}")
        params = self.parameters(mi, dim, **{**self.options, **options})
        return self.sampler(
            batch_size, dim, **params, generator=generator, device=device, dtype=dtype
        )

    def batches(
        self,
        dim: int,
        batch_size: int,
        mi: float | Callable[[int], float],
        *,
        seed: int = 0,
        device: torch.device | str | None = None,
        dtype: torch.dtype = torch.float32,
        **options,
    ) -> Callable[[int], Batch]:
        """A stream of fresh batches, scored all against all, like :func:`gaussian_batches`.

        Args:
            dim: the dimension of ``x`` and ``y``.
            batch_size: pairs per batch.
            mi: the true MI in nats, or a schedule ``step -> MI`` (:func:`mi_staircase`).
            seed: seeds the stream's own (CPU) generator.
            device: where the batches go (drawn on the CPU first: the same batches everywhere).
            dtype: their dtype.
            **options: override ``options``.

        Returns:
            ``batches(step) -> Batch`` with ``inputs = (x [B, dim], y [B, dim])`` and the
            :func:`paired_masks`.
        """
        if dim < self.min_dim:
            raise ValueError(f"task {self.name!r} needs dim >= {self.min_dim}, got {dim}")
        options = {**self.options, **options}
        schedule = mi if callable(mi) else (lambda step: float(mi))
        self.parameters(schedule(0), dim, **options)  # reject an impossible MI now
        generator = torch.Generator().manual_seed(seed)
        positive, negative = paired_masks(batch_size, device=device)

        def batches(step: int) -> Batch:
            true_mi = schedule(step)
            x, y = self.sample(
                batch_size, dim, true_mi, generator=generator, device=device, dtype=dtype,
                **options,
            )
            return Batch((x, y), positive, negative, true_mi)

        return batches


def _gaussian_parameters(mi: float, dim: int) -> dict:
    return {"rho": gaussian_rho(mi, dim)}


def _transformed(transform: str) -> Callable[..., tuple[Tensor, Tensor]]:
    def sampler(batch_size, dim, *, rho, speed=1.0, generator=None, device=None, dtype=torch.float32):
        return sample_transformed_gaussian(
            batch_size, dim, rho, transform, speed=speed,
            generator=generator, device=device, dtype=dtype,
        )

    sampler.__name__ = f"sample_{transform}_gaussian"
    return sampler


def _transformed_true_mi(dim: int, *, rho: float, speed: float = 1.0) -> float:
    return gaussian_mi(rho, dim)


def _student_t_parameters(mi: float, dim: int, *, nu: float) -> dict:
    correction = student_t_correction(nu, dim, dim)
    if mi < correction:
        raise ValueError(
            f"a Student-t pair with nu={nu} in dimension {dim} has MI at least "
            f"{correction:.4f} nats (the shared scale); asked for {mi}"
        )
    return {"rho": gaussian_rho(mi - correction, dim), "nu": nu}


def _student_t_true_mi(dim: int, *, rho: float, nu: float) -> float:
    return student_t_mi(rho, dim, nu)


def _uniform_noise_true_mi(dim: int, *, epsilon: float) -> float:
    return uniform_noise_mi(epsilon, dim)


def _gaussian_sampler(batch_size, dim, *, rho, generator=None, device=None, dtype=torch.float32):
    return sample_gaussian(batch_size, dim, rho, generator=generator, device=device, dtype=dtype)


MI_TASKS: dict[str, MITask] = {
    task.name: task for task in (
        MITask(
            "gaussian", "correlated Gaussian pair, y = rho x + sqrt(1 - rho^2) eps",
            _gaussian_sampler, _gaussian_parameters,
            lambda dim, *, rho: gaussian_mi(rho, dim),
        ),
        MITask(
            "half_cube", "correlated Gaussian pair through x |x|^(1/2) per coordinate",
            _transformed("half_cube"), _gaussian_parameters, _transformed_true_mi,
        ),
        MITask(
            "asinh", "correlated Gaussian pair through asinh per coordinate (lighter tails)",
            _transformed("asinh"), _gaussian_parameters, _transformed_true_mi,
        ),
        MITask(
            "spiral",
            "correlated Gaussian pair, coordinates 0 and 1 rotated by speed * |x|^2 radians",
            _transformed("spiral"),
            lambda mi, dim, *, speed: {**_gaussian_parameters(mi, dim), "speed": speed},
            _transformed_true_mi, min_dim=2, options={"speed": 1.0},
        ),
        MITask(
            "student_t", "multivariate t with nu degrees of freedom (heavy tails; shared scale)",
            sample_student_t, _student_t_parameters, _student_t_true_mi,
            options={"nu": 3.0},
        ),
        MITask(
            "uniform_noise", "x ~ U(0,1)^dim, y = x + U(-epsilon, epsilon)^dim",
            sample_uniform_noise,
            lambda mi, dim: {"epsilon": uniform_noise_epsilon(mi, dim)},
            _uniform_noise_true_mi,
        ),
    )
}
"""Problems with a known MI by name, each parametrized by its MI (:class:`MITask`): the
Gaussian, three invertible transforms of it (same MI), the Student-t (``nu = 3`` by default;
its MI is at least :func:`student_t_correction`), and additive uniform noise."""


def mi_task(name: str) -> MITask:
    """The :class:`MITask` called ``name``.

    Raises:
        ValueError: for an unknown name.
    """
    if name not in MI_TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(MI_TASKS)}")
    return MI_TASKS[name]


def task_batches(
    name: str,
    dim: int,
    batch_size: int,
    mi: float | Callable[[int], float],
    *,
    seed: int = 0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    **options,
) -> Callable[[int], Batch]:
    """:meth:`MITask.batches` of the task called ``name``: ``batches(step) -> Batch``.

    Example::

        for name in MI_TASKS:
            batches = task_batches(name, dim=5, batch_size=64, mi=2.0)
            result = train(critic, get_bound("remine"), batches, steps=1000)
    """
    return mi_task(name).batches(
        dim, batch_size, mi, seed=seed, device=device, dtype=dtype, **options
    )
