"""Explicit mutual information from second-order statistics: no critic, no bound.

For jointly Gaussian ``Z [dx]`` and ``Z' [dy]`` the MI has a closed form in their covariances
(Cover & Thomas, 2006, section 8.4)::

    I(Z; Z') = 1/2 log det S_Z + 1/2 log det S_Z' - 1/2 log det S_(Z,Z')
             = -1/2 sum_i log(1 - rho_i^2)        (rho_i: the canonical correlations)

Chang, Liu, Guo & Wen (2024) turn this into a self-supervised loss: MI is unchanged by
invertible maps of each variable, so if some invertible transform of the embeddings is
(generalized) Gaussian, the formula holds on the *transformed* variables' covariances, and
a truncated series of the log lets the loss use matrix products only. This module
implements that construction from the mathematics above; the authors' own equations (their
normalisation, the exact form of their series and of the rescaling ``beta``) may differ.

Conventions shared by every function here:

* Samples are rows: ``x [..., N, dx]``, ``y [..., M, dy]``; leading dimensions are batch
  dimensions (many estimators at once).
* Each coordinate is standardized (divided by its standard deviation, an invertible linear
  map that changes no MI), so the second-order statistics are **correlation** matrices
  ``R``; the shrunk matrices are ``R + ridge * I``. The ridge keeps every log-determinant
  finite for rank-deficient batches (fewer samples than dimensions, a dead coordinate, two
  identical views) and shrinks the canonical correlations towards zero (by the factor
  ``1 / (1 + ridge)`` when the coordinates within each variable are uncorrelated).
  With ``ridge = 0`` the estimate is exactly the plug-in Gaussian MI of the sample
  covariances, invariant to any invertible linear map of ``x`` and of ``y``.
* Which rows are paired is said by ``positive [..., N, M]`` as for the bounds of
  :mod:`remi_tutorial.bounds`: the pairs ``(x_i, y_j)`` with ``positive[i, j]`` are the
  samples of the joint distribution, each with weight ``1 / #positives``; the marginal
  statistics of ``x`` and ``y`` are the row and column marginals of that joint. ``None``
  means paired rows (``N = M``, the diagonal) without building an ``N x N`` mask.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from .bounds import Bound
from .tasks import Batch

__all__ = [
    "correlation_blocks",
    "joint_correlation_matrix",
    "closed_form_mi",
    "canonical_correlations",
    "canonical_correlation_mi",
    "gaussian_plugin_bias",
    "logdet_series",
    "series_spectrum",
    "explicit_mi",
    "PairedEmbeddings",
    "marginal_gaussianize",
    "transform_batches",
]

_VARIANCE_FLOOR = 1e-12
"""Added to each variance before standardizing, so that a constant coordinate gives a zero
row of the correlation matrix (then ``ridge`` on its diagonal) instead of ``0 / 0``."""


# --------------------------------------------------------------------------- statistics


def _check_pair(x: Tensor, y: Tensor, positive: Tensor | None) -> None:
    for name, value in (("x", x), ("y", y)):
        if not isinstance(value, Tensor) or not value.is_floating_point():
            raise ValueError(f"{name} must be a floating-point tensor [..., rows, features]")
        if value.dim() < 2:
            raise ValueError(f"{name} must have shape [..., rows, features], got {tuple(value.shape)}")
    if x.device != y.device or x.dtype != y.dtype:
        raise ValueError(f"x and y must share device and dtype, got {x.device}/{x.dtype} and "
                         f"{y.device}/{y.dtype}")
    if positive is None:
        if x.shape[-2] != y.shape[-2]:
            raise ValueError(f"paired rows need as many x as y, got {x.shape[-2]} and "
                             f"{y.shape[-2]} (pass a positive mask for unpaired batches)")
        if x.shape[-2] < 2:
            raise ValueError(f"second-order statistics need at least 2 samples, got {x.shape[-2]}")
        return
    if not isinstance(positive, Tensor) or positive.dtype != torch.bool:
        raise ValueError("positive must be a bool tensor [..., N, M]")
    pairs = (*torch.broadcast_shapes(x.shape[:-2], y.shape[:-2]), x.shape[-2], y.shape[-2])
    try:
        ok = torch.broadcast_shapes(positive.shape, pairs) == pairs
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(f"positive mask of shape {tuple(positive.shape)} does not broadcast to "
                         f"the pairs of x and y, {pairs}")


def _covariances(x: Tensor, y: Tensor, positive: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
    """Covariances of the joint distribution that ``positive`` puts on the pairs.

    Returns:
        ``S_xx [..., dx, dx]``, ``S_yy [..., dy, dy]``, ``S_xy [..., dx, dy]``, normalised
        by the total weight (the maximum-likelihood covariance; the normalisation cancels in
        every MI formula here).
    """
    if positive is None:
        x = x - x.mean(-2, keepdim=True)
        y = y - y.mean(-2, keepdim=True)
        rows = x.shape[-2]
        return x.mT @ x / rows, y.mT @ y / rows, x.mT @ y / rows
    weights = positive.to(x.dtype)
    weights = weights / weights.sum((-2, -1), keepdim=True)  # [..., N, M], sums to 1
    row_weights, column_weights = weights.sum(-1), weights.sum(-2)  # [..., N], [..., M]
    x = x - (row_weights[..., None, :] @ x)
    y = y - (column_weights[..., None, :] @ y)
    s_xx = (x * row_weights[..., None]).mT @ x
    s_yy = (y * column_weights[..., None]).mT @ y
    s_xy = x.mT @ weights @ y
    return s_xx, s_yy, s_xy


def correlation_blocks(
    x: Tensor, y: Tensor, *, positive: Tensor | None = None, ridge: float = 1e-3
) -> tuple[Tensor, Tensor, Tensor]:
    """The shrunk correlation matrices of ``x``, of ``y``, and their cross-correlation.

    Args:
        x: ``[..., N, dx]``.
        y: ``[..., M, dy]``.
        positive: bool ``[..., N, M]`` marking the joint pairs, or ``None`` for paired rows.
        ridge: added to the diagonal of both correlation matrices, ``>= 0``.

    Returns:
        ``R_xx + ridge I [..., dx, dx]``, ``R_yy + ridge I [..., dy, dy]``,
        ``R_xy [..., dx, dy]``. The joint matrix is ``[[R_xx, R_xy], [R_xy^T, R_yy]]``.
    """
    if ridge < 0:
        raise ValueError(f"ridge must be non-negative, got {ridge}")
    _check_pair(x, y, positive)
    s_xx, s_yy, s_xy = _covariances(x, y, positive)
    scale_x = (s_xx.diagonal(dim1=-2, dim2=-1) + _VARIANCE_FLOOR).rsqrt()  # [..., dx]
    scale_y = (s_yy.diagonal(dim1=-2, dim2=-1) + _VARIANCE_FLOOR).rsqrt()
    r_xx = s_xx * scale_x[..., :, None] * scale_x[..., None, :]
    r_yy = s_yy * scale_y[..., :, None] * scale_y[..., None, :]
    r_xy = s_xy * scale_x[..., :, None] * scale_y[..., None, :]
    eye_x = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
    eye_y = torch.eye(y.shape[-1], dtype=y.dtype, device=y.device)
    return r_xx + ridge * eye_x, r_yy + ridge * eye_y, r_xy


def joint_correlation_matrix(
    x: Tensor, y: Tensor, *, positive: Tensor | None = None, ridge: float = 1e-3
) -> Tensor:
    """The shrunk correlation matrix of the concatenation ``(x, y)``, as :func:`explicit_mi`
    uses it.

    Args:
        x: ``[..., N, dx]``.
        y: ``[..., M, dy]``.
        positive: bool ``[..., N, M]`` marking the joint pairs, or ``None`` for paired rows.
        ridge: shrinkage, ``>= 0``.

    Returns:
        ``[[R_xx, R_xy], [R_xy^T, R_yy]] + ridge I``: ``[..., dx + dy, dx + dy]``.
    """
    return _joint_matrix(*correlation_blocks(x, y, positive=positive, ridge=ridge))


def _joint_matrix(r_xx: Tensor, r_yy: Tensor, r_xy: Tensor) -> Tensor:
    """``[[R_xx, R_xy], [R_xy^T, R_yy]]``: ``[..., dx + dy, dx + dy]``."""
    batch = torch.broadcast_shapes(r_xx.shape[:-2], r_yy.shape[:-2], r_xy.shape[:-2])
    r_xx, r_yy, r_xy = (m.expand(*batch, *m.shape[-2:]) for m in (r_xx, r_yy, r_xy))
    top = torch.cat([r_xx, r_xy], dim=-1)
    bottom = torch.cat([r_xy.mT, r_yy], dim=-1)
    return torch.cat([top, bottom], dim=-2)


def _logdet(matrix: Tensor) -> Tensor:
    """``log det`` of symmetric positive-definite matrices ``[..., D, D]`` by Cholesky.

    A matrix that is not numerically positive definite gives NaN (no exception, so no device
    synchronisation); the callers' value checks turn that into a ``ValueError``.
    """
    factor, _ = torch.linalg.cholesky_ex(matrix)
    return 2.0 * factor.diagonal(dim1=-2, dim2=-1).log().sum(-1)


# --------------------------------------------------------------------------- the two forms


def gaussian_plugin_bias(num_samples: int | Tensor, x_dim: int, y_dim: int) -> float | Tensor:
    """The expected excess of the plug-in Gaussian MI over the truth, for Gaussian samples.

    With ``n = num_samples - 1`` degrees of freedom the scatter matrix is Wishart, and
    ``E[log det S] = log det Sigma + sum_{i=1..D} psi((n - i + 1) / 2) + D log(2 / n)``; the
    ``log(2 / n)`` terms cancel in the MI, leaving::

        bias = 1/2 [ sum_{i=1..dy} psi((n - i + 1)/2) - sum_{i=dx+1..dx+dy} psi((n - i + 1)/2) ]

    It does not depend on the true covariance, so subtracting it makes the plug-in estimate
    (:func:`closed_form_mi` with ``ridge = 0``) unbiased for Gaussian data. It grows like
    ``dx dy / (2 n)`` and is large when ``dx + dy`` is comparable to ``n``.

    Args:
        num_samples: ``N``, more than ``x_dim + y_dim`` (an int, or a tensor of counts).
        x_dim: ``dx``.
        y_dim: ``dy``.

    Returns:
        The bias in nats (a float for an int ``num_samples``, else a float64 tensor of its
        shape).
    """
    as_tensor = isinstance(num_samples, Tensor)
    if not as_tensor and num_samples <= x_dim + y_dim:
        raise ValueError(f"the plug-in bias needs more samples ({num_samples}) than dimensions "
                         f"({x_dim} + {y_dim})")
    n = torch.as_tensor(num_samples, dtype=torch.float64) - 1.0
    index = torch.arange(1, x_dim + y_dim + 1, dtype=torch.float64, device=n.device)
    digammas = torch.special.digamma((n[..., None] - index + 1.0) / 2.0)  # [..., dx + dy]
    bias = 0.5 * (digammas[..., :y_dim].sum(-1) - digammas[..., x_dim:].sum(-1))
    return bias if as_tensor else float(bias)


def closed_form_mi(
    x: Tensor, y: Tensor, *, ridge: float = 1e-3, debias: bool = False
) -> Tensor:
    """The Gaussian MI of paired samples from the log-determinants of their covariances.

    ``I = 1/2 log det R_xx + 1/2 log det R_yy - 1/2 log det R_joint`` on the shrunk
    correlation matrices of :func:`correlation_blocks` (Cholesky log-determinants). It is
    the true MI when ``(x, y)`` is jointly Gaussian, and the MI of the Gaussian with the same
    covariance otherwise.

    Args:
        x: ``[..., N, dx]``.
        y: ``[..., N, dy]``; row ``i`` of ``y`` is paired with row ``i`` of ``x``.
        ridge: shrinkage of the correlation matrices (see the module docstring).
        debias: subtract :func:`gaussian_plugin_bias` (exact for Gaussian samples at
            ``ridge = 0``; approximate otherwise).

    Returns:
        ``[...]``, in nats.
    """
    r_xx, r_yy, r_xy = correlation_blocks(x, y, ridge=ridge)
    mi = 0.5 * (_logdet(r_xx) + _logdet(r_yy) - _logdet(_joint_matrix(r_xx, r_yy, r_xy)))
    if debias:
        mi = mi - gaussian_plugin_bias(x.shape[-2], x.shape[-1], y.shape[-1])
    return mi


def canonical_correlations(x: Tensor, y: Tensor, *, ridge: float = 1e-3) -> Tensor:
    """The canonical correlations of paired samples, largest first.

    The singular values of ``L_x^-1 R_xy L_y^-T``, with ``L`` the Cholesky factors of the
    shrunk correlation matrices of :func:`correlation_blocks`: the correlations of the
    pairs of linear projections of ``x`` and ``y`` that are most correlated, then most
    correlated orthogonally to those, and so on (Hotelling, 1936).

    Args:
        x: ``[..., N, dx]``.
        y: ``[..., N, dy]``.
        ridge: shrinkage of the correlation matrices.

    Returns:
        ``[..., min(dx, dy)]`` in ``[0, 1)``.
    """
    r_xx, r_yy, r_xy = correlation_blocks(x, y, ridge=ridge)
    factor_x, _ = torch.linalg.cholesky_ex(r_xx)
    factor_y, _ = torch.linalg.cholesky_ex(r_yy)
    whitened = torch.linalg.solve_triangular(factor_x, r_xy, upper=False)
    whitened = torch.linalg.solve_triangular(factor_y, whitened.mT, upper=False).mT
    return torch.linalg.svdvals(whitened)


def canonical_correlation_mi(x: Tensor, y: Tensor, *, ridge: float = 1e-3) -> Tensor:
    """``-1/2 sum_i log(1 - rho_i^2)`` over the :func:`canonical_correlations`.

    Equal to :func:`closed_form_mi` for the same ``ridge``: with ``C = L_x^-1 R_xy L_y^-T``,
    ``det R_joint = det R_xx det R_yy det(I - C^T C)`` (a Schur complement).

    Args:
        x: ``[..., N, dx]``.
        y: ``[..., N, dy]``.
        ridge: shrinkage of the correlation matrices.

    Returns:
        ``[...]``, in nats.
    """
    rho = canonical_correlations(x, y, ridge=ridge)
    return -0.5 * torch.log1p(-rho.square()).sum(-1)


# --------------------------------------------------------------------------- the series


def _gershgorin_bound(matrix: Tensor) -> Tensor:
    """An upper bound on the eigenvalues of symmetric ``[..., D, D]``: the largest absolute
    row sum. ``[...]``."""
    return matrix.abs().sum(-1).amax(-1)


def series_spectrum(matrix: Tensor, beta: float | None = None) -> Tensor:
    """The eigenvalues of ``beta * matrix - I``, where the series of :func:`logdet_series` is
    expanded: it converges when they all lie in ``(-1, 1)``.

    Args:
        matrix: symmetric ``[..., D, D]``.
        beta: the rescaling; ``None`` for the value :func:`logdet_series` picks.

    Returns:
        ``[..., D]``, ascending.
    """
    scale = _series_beta(matrix, beta)
    eye = torch.eye(matrix.shape[-1], dtype=matrix.dtype, device=matrix.device)
    return torch.linalg.eigvalsh(scale[..., None, None] * matrix - eye)


def _series_beta(matrix: Tensor, beta: float | None) -> Tensor:
    if beta is None:
        return 1.0 / _gershgorin_bound(matrix).detach()
    if beta <= 0:
        raise ValueError(f"beta must be positive, got {beta}")
    return torch.full(matrix.shape[:-2], float(beta), dtype=matrix.dtype, device=matrix.device)


def logdet_series(matrix: Tensor, *, order: int, beta: float | None = None) -> Tensor:
    """``log det`` of a positive-definite matrix by a truncated series: matrix products only.

    With ``A = beta * matrix - I``, ``log det(matrix) = tr log(I + A) - D log beta`` and
    ``tr log(I + A) = sum_{k>=1} (-1)^(k+1) tr(A^k) / k``, truncated after ``order`` terms.

    **Where it converges.** The series of ``log(1 + a)`` converges for ``a`` in ``(-1, 1]``,
    so the matrix series converges when every eigenvalue of ``beta * matrix - I`` lies in
    ``(-1, 1)``, that is when ``0 < lambda < 2 / beta`` for every eigenvalue ``lambda`` of
    ``matrix``; it is accurate only well inside, and slow near ``a = -1`` (small eigenvalues)
    and ``a = 1``. Outside, the terms grow like ``|a|^k / k`` and the truncated sum is
    dominated by its last term: it no longer approximates ``log det`` at all.

    **What the code does.**

    * ``beta=None`` (default) picks ``beta = 1 / g`` with ``g`` the largest absolute row
      sum (Gershgorin: ``lambda_max <= g``), detached from the graph. Then every eigenvalue
      of ``A`` lies in ``(-1, 0]`` for a positive-definite matrix: the series always
      converges, at the price of slow convergence for matrices with a wide spectrum.
    * A fixed ``beta`` is used as given. This function never branches on values, so it
      evaluates the truncated polynomial wherever the spectrum lies; :func:`explicit_mi`
      with ``check=True`` raises ``ValueError`` when the spectrum leaves ``(-1, 1)``, and
      :func:`series_spectrum` shows where it lies.

    Args:
        matrix: symmetric positive-definite ``[..., D, D]``.
        order: the number of terms, ``>= 1``.
        beta: the rescaling, ``> 0``, or ``None``.

    Returns:
        ``[...]``.
    """
    if not isinstance(order, int) or isinstance(order, bool) or order < 1:
        raise ValueError(f"order must be a positive integer, got {order!r}")
    dim = matrix.shape[-1]
    scale = _series_beta(matrix, beta)  # [...]
    eye = torch.eye(dim, dtype=matrix.dtype, device=matrix.device)
    shifted = scale[..., None, None] * matrix - eye
    power = shifted
    total = torch.zeros_like(scale)
    for k in range(1, order + 1):
        if k > 1:
            power = power @ shifted
        total = total + (-1) ** (k + 1) * power.diagonal(dim1=-2, dim2=-1).sum(-1) / k
    return total - dim * torch.log(scale)


# --------------------------------------------------------------------------- the objective


def explicit_mi(
    embeddings: Sequence[Tensor],
    positive: Tensor | None = None,
    negative: Tensor | None = None,
    *,
    order: int | None = None,
    beta: float | None = None,
    ridge: float = 1e-3,
    debias: bool = False,
    check: bool = True,
) -> Bound:
    """The second-order MI of two batches of embeddings, as a training objective.

    It takes the place of a bound in :func:`remi_tutorial.train.train`: a critic that
    returns the embeddings themselves (:class:`PairedEmbeddings`) instead of scores, and
    ``explicit_mi`` (its parameters fixed with ``functools.partial``) instead of a bound.

    With ``R`` the shrunk correlation matrices (:func:`correlation_blocks`) of the joint
    distribution that ``positive`` puts on the pairs, and ``TC(R) = -1/2 log det R`` the
    Gaussian total correlation (the MI among all the coordinates)::

        I = TC(R_joint) - TC(R_xx) - TC(R_yy)

    Args:
        embeddings: ``(z [..., N, dx], z' [..., M, dy])``.
        positive: bool, broadcastable to ``[..., N, M]``: the pairs drawn from the joint;
            ``None`` for paired rows (``N = M``).
        negative: accepted for the bounds' signature and ignored: second-order statistics
            need no pairs from the product of marginals (the marginal covariances come from
            the rows and columns of the joint pairs).
        order: ``None`` trains on the exact log-determinants; an integer trains on the
            series of :func:`logdet_series` with that many terms.
        beta: the series' rescaling (see :func:`logdet_series`); ignored when ``order`` is
            ``None``.
        ridge: shrinkage of the correlation matrices, ``>= 0``.
        debias: subtract :func:`gaussian_plugin_bias` for ``#positives`` samples from the
            reported estimate (meaningful for independent paired samples).
        check: run the value checks (finite embeddings, a positive pair, a finite estimate,
            and for a fixed ``beta`` the series' spectrum inside ``(-1, 1)``); they read
            values, so training loops pass ``check=False``.

    Returns:
        :class:`~remi_tutorial.bounds.Bound` with every field ``[...]``:
        ``mi`` the exact closed form (always, also when training on the series);
        ``objective`` what is maximized: ``mi`` or its series version, with the same
        ``debias`` shift; ``joint = TC(R_joint)``; ``marginal = TC(R_xx) + TC(R_yy)``;
        ``penalty`` zero.
    """
    if not isinstance(embeddings, (tuple, list)) or len(embeddings) != 2:
        raise ValueError("embeddings must be a pair (z, z') of tensors; a critic that returns "
                         "scores cannot feed explicit_mi (use PairedEmbeddings)")
    x, y = embeddings
    r_xx, r_yy, r_xy = correlation_blocks(x, y, positive=positive, ridge=ridge)
    r_joint = _joint_matrix(r_xx, r_yy, r_xy)
    if check:
        _check_values(x, y, positive, r_joint, order, beta)
    joint = -0.5 * _logdet(r_joint)
    marginal = -0.5 * (_logdet(r_xx) + _logdet(r_yy))
    mi = joint - marginal
    if order is None:
        objective = mi
    else:
        objective = 0.5 * (
            logdet_series(r_xx, order=order, beta=beta)
            + logdet_series(r_yy, order=order, beta=beta)
            - logdet_series(r_joint, order=order, beta=beta)
        )
    if debias:
        count = x.shape[-2] if positive is None else positive.expand(
            *r_joint.shape[:-2], x.shape[-2], y.shape[-2]).sum((-2, -1))
        if check and int(torch.as_tensor(count).min()) <= x.shape[-1] + y.shape[-1]:
            raise ValueError(f"debias needs more joint pairs than dimensions "
                             f"({x.shape[-1]} + {y.shape[-1]})")
        bias = gaussian_plugin_bias(count, x.shape[-1], y.shape[-1])
        bias = torch.as_tensor(bias, dtype=mi.dtype, device=mi.device)
        mi, objective = mi - bias, objective - bias
    if check and not bool(torch.isfinite(mi).all()):
        raise ValueError("the joint correlation matrix is singular (a rank-deficient batch, "
                         "e.g. fewer samples than dimensions or two identical views): use "
                         "ridge > 0")
    return Bound(mi, objective, joint, marginal, torch.zeros_like(mi))


def _check_values(
    x: Tensor, y: Tensor, positive: Tensor | None, r_joint: Tensor,
    order: int | None, beta: float | None,
) -> None:
    for name, value in (("z", x), ("z'", y)):
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"embeddings {name} contain NaN or inf")
    if positive is not None and not bool(positive.flatten(-2).any(-1).all()):
        raise ValueError("positive mask selects no pair: the joint statistics need at least one")
    if order is not None and beta is not None:
        spectrum = series_spectrum(r_joint.detach(), beta)
        low, high = float(spectrum.min()), float(spectrum.max())
        if low <= -1.0 or high >= 1.0:
            raise ValueError(
                f"the log-det series diverges: the spectrum of beta * R - I spans "
                f"[{low:.3g}, {high:.3g}], outside (-1, 1) (beta = {beta}); use a beta below "
                f"{2.0 / (high + 1.0):.3g}, or beta=None"
            )


# --------------------------------------------------------------------------- helpers


class PairedEmbeddings(nn.Module):
    """A "critic" that returns the embeddings of the two variables instead of their scores.

    ``(x, y) -> (x_encoder(x), y_encoder(y))``, the input of :func:`explicit_mi`. With no
    encoders it is the identity, and :func:`remi_tutorial.train.train` then only evaluates
    (a module without parameters has nothing to train): a critic-free estimator.

    Args:
        x_encoder: maps ``x [N, dx_in]`` to ``z [N, dx]``; ``None`` for the identity.
        y_encoder: maps ``y`` to ``z'``; ``None`` for the same module as ``x_encoder``
            (shared weights, as for two views of the same images).
    """

    def __init__(self, x_encoder: nn.Module | None = None, y_encoder: nn.Module | None = None):
        super().__init__()
        self.x_encoder = x_encoder if x_encoder is not None else nn.Identity()
        self.y_encoder = y_encoder if y_encoder is not None else self.x_encoder

    def forward(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Embed both variables.

        Args:
            x: ``[N, ...]``.
            y: ``[M, ...]``, or ``None`` when a batch is paired with itself (the contrastive
                benchmark, whose masks mark pairs of rows of one batch): both embeddings
                are then ``x_encoder(x)``, computed once.

        Returns:
            ``(z [N, dx], z' [M, dy])``.
        """
        if y is None:
            if self.y_encoder is not self.x_encoder:
                raise ValueError("one input pairs a batch with itself, which needs a shared "
                                 "encoder; got separate x and y encoders")
            z = self.x_encoder(x)
            return z, z
        return self.x_encoder(x), self.y_encoder(y)


def marginal_gaussianize(x: Tensor) -> Tensor:
    """Map each coordinate to standard-normal scores through its ranks.

    ``Phi^-1((rank + 1) / (N + 1))`` per column: a monotone, hence invertible, map of each
    coordinate (on the sample), so it changes no MI; it makes every marginal Gaussian, and
    the pair jointly Gaussian exactly when the dependence is a Gaussian copula (for example
    Gaussian variables passed through increasing maps). Not differentiable.

    Args:
        x: ``[..., N, d]``.

    Returns:
        ``[..., N, d]``, same dtype.
    """
    rows = x.shape[-2]
    ranks = x.argsort(dim=-2).argsort(dim=-2).to(x.dtype)
    uniform = (ranks + 1.0) / (rows + 1.0)
    return math.sqrt(2.0) * torch.special.erfinv(2.0 * uniform - 1.0)


def transform_batches(
    batches: Callable[[int], Batch],
    x_map: Callable[[Tensor], Tensor],
    y_map: Callable[[Tensor], Tensor],
) -> Callable[[int], Batch]:
    """A stream of paired batches with each variable passed through its own map.

    ``I(f(X); g(Y)) = I(X; Y)`` for invertible ``f`` and ``g``, so the stream keeps the
    ``true_mi`` of ``batches``; it is the caller's job to pass invertible maps (the true MI
    would otherwise be wrong).

    Args:
        batches: ``step -> Batch`` with ``inputs = (x, y)``, e.g.
            :func:`~remi_tutorial.tasks.gaussian_batches`.
        x_map: applied to ``x``, e.g. ``lambda x: x ** 3``.
        y_map: applied to ``y``, e.g. ``torch.exp``.

    Returns:
        ``step -> Batch`` with ``inputs = (x_map(x), y_map(y))`` and the same masks.
    """

    def transformed(step: int) -> Batch:
        batch = batches(step)
        x, y = batch.inputs
        return batch._replace(inputs=(x_map(x), y_map(y)))

    return transformed
