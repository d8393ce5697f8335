"""Variational lower bounds on mutual information, as functions of a score matrix.

Every bound in this module takes the same three tensors:

* ``scores``: float ``[..., N, M]``, ``scores[..., i, j] = T(x_i, y_j)`` for a critic ``T``.
  Leading dimensions are batch dimensions (for example many estimators trained at once);
  every field of the returned :class:`Bound` then has shape ``[...]``.
* ``positive``: bool, broadcastable to ``scores``; True where the pair ``(x_i, y_j)`` was
  drawn from the joint distribution P (the diagonal for paired samples, the one-hot label
  mask for a classifier's logits, same-label pairs for contrastive learning).
* ``negative``: bool, broadcastable to ``scores``, or ``None`` for every pair; True where the
  pair stands for a sample of the product of marginals Q.

and returns a :class:`Bound` record. The Donsker-Varadhan (DV) family is
``E_P[T] - log E_Q[e^T]`` (MINE, SMILE, InfoNCE); the Nguyen-Wainwright-Jordan (NWJ) family
is ``E_P[T] - E_Q[e^(T-1)]`` (NWJ, TUBA, JS). The regularized counterparts of Choi & Lee
(2022) subtract ``alpha * d(term, target)`` from the training objective and report the same
MI estimate as their base bound.

Value checks (NaN or infinite scores, empty masks) need the tensor's values and so a device
synchronisation; every bound runs them unless called with ``check=False``, which is what a
training loop (which checks every so many steps) and ``torch.func.vmap`` need. Shape, dtype
and device checks are always run.
"""

from __future__ import annotations

import functools
import inspect
import math
from dataclasses import dataclass
from typing import Callable, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "Bound",
    "validate_inputs",
    "joint_term",
    "dv_marginal",
    "nwj_marginal",
    "mine",
    "smile",
    "infonce",
    "nwj",
    "tuba",
    "js",
    "regularizer",
    "penalized",
    "dv_penalty",
    "renwj_penalty",
    "retuba_penalty",
    "rejs_penalty",
    "remine",
    "resmile",
    "reinfonce",
    "renwj",
    "retuba",
    "rejs",
    "BoundSpec",
    "REGISTRY",
    "BOUND_NAMES",
    "ORIGINAL_NAMES",
    "TENSOR_PARAMETERS",
    "bound_spec",
    "regularized_name",
    "get_bound",
]

Distance = Literal["squared", "absolute"]
NWJPenaltyVariant = Literal["paper", "authors_code"]


class Bound(NamedTuple):
    """What a bound returns: the reported estimate, the training objective and its parts.

    Every field is a tensor of shape ``scores.shape[:-2]`` (a scalar for one score matrix).

    Attributes:
        mi: the mutual-information estimate that is reported, in nats.
        objective: what the optimizer maximizes. Equal to ``mi`` for most bounds; the
            Jensen-Shannon divergence bound for ``js``; ``base objective - penalty`` for the
            regularized bounds.
        joint: the first term, ``E_P[T]`` over the positive pairs.
        marginal: the second term: ``log E_Q[e^T]`` for the DV family, ``E_Q[e^(T-1)]`` for
            NWJ (``E_Q[e^T / a]`` for TUBA with baseline ``a``).
        penalty: ``alpha * d(term, target)`` for a regularized bound, zero otherwise.
    """

    mi: Tensor
    objective: Tensor
    joint: Tensor
    marginal: Tensor
    penalty: Tensor

    @property
    def loss(self) -> Tensor:
        """``-objective``: the quantity to minimize with a PyTorch optimizer."""
        return -self.objective


# --------------------------------------------------------------------------- input checks


def _check_mask(name: str, mask: Tensor, scores: Tensor) -> None:
    if not isinstance(mask, Tensor):
        raise ValueError(f"{name} must be a bool tensor, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise ValueError(f"{name} must be a bool tensor, got dtype {mask.dtype}")
    if mask.device != scores.device:
        raise ValueError(f"{name} is on {mask.device} but scores are on {scores.device}")
    try:
        broadcast = torch.broadcast_shapes(mask.shape, scores.shape)
    except RuntimeError:
        broadcast = None
    if broadcast != scores.shape:
        raise ValueError(
            f"{name} mask of shape {tuple(mask.shape)} does not broadcast to scores of "
            f"shape {tuple(scores.shape)}"
        )


def validate_inputs(
    scores: Tensor,
    positive: Tensor,
    negative: Tensor | None = None,
    *,
    check_values: bool = True,
) -> None:
    """Raise ``ValueError`` naming the problem if the inputs of a bound are unusable.

    Args:
        scores: float ``[..., N, M]``.
        positive: bool, broadcastable to ``scores``.
        negative: bool, broadcastable to ``scores``, or ``None``.
        check_values: also check that every score is finite and that every score matrix
            has at least one positive and one negative pair. These checks read the values
            (a device synchronisation); shape, dtype and device checks never do.
    """
    if not isinstance(scores, Tensor):
        raise ValueError(f"scores must be a tensor, got {type(scores).__name__}")
    if not scores.is_floating_point():
        raise ValueError(f"scores must be a floating-point tensor, got dtype {scores.dtype}")
    if scores.dim() < 2:
        raise ValueError(f"scores must have shape [..., N, M], got {tuple(scores.shape)}")
    _check_mask("positive", positive, scores)
    if negative is not None:
        _check_mask("negative", negative, scores)
    if not check_values:
        return
    finite = torch.isfinite(scores)
    if not bool(finite.all()):
        bad = int((~finite).sum())
        raise ValueError(f"scores contain NaN or inf ({bad} of {scores.numel()} entries)")
    if not bool(positive.expand_as(scores).flatten(-2).any(-1).all()):
        raise ValueError(
            "positive mask selects no pair: each score matrix needs at least one pair drawn "
            "from the joint distribution (e.g. a contrastive batch with no same-label pair)"
        )
    if negative is not None and not bool(negative.expand_as(scores).flatten(-2).any(-1).all()):
        raise ValueError("negative mask selects no pair: the marginal term needs at least one")


# --------------------------------------------------------------------------- the two terms


def _every_pair(scores: Tensor, negative: Tensor | None) -> Tensor:
    if negative is None:
        return torch.ones(scores.shape[-2:], dtype=torch.bool, device=scores.device)
    return negative


def _matrix_shaped(mask: Tensor, scores: Tensor) -> Tensor:
    """``mask`` expanded (not copied) to the score matrices' shape ``[N, M]`` in its last two
    dimensions; its leading dimensions as they are."""
    if mask.shape[-2:] == scores.shape[-2:]:
        return mask
    leading = mask.shape[:-2] if mask.dim() > 2 else ()
    return mask.expand(*leading, *scores.shape[-2:])


class _Pairs(NamedTuple):
    """A mask of pairs and how many pairs it selects in each score matrix: ``count`` has the
    scores' dtype (dividing by it converts nothing) and shape ``[...]``, or one that
    broadcasts to it. A bound counts each of its masks once."""

    mask: Tensor
    count: Tensor


def _pairs(mask: Tensor | None, scores: Tensor) -> _Pairs:
    """``mask`` (``None``: every pair) and its pair count, counted without copying the mask
    to the scores' shape."""
    mask = _every_pair(scores, mask)
    return _Pairs(mask, _matrix_shaped(mask, scores).sum((-2, -1), dtype=scores.dtype))


def _masked_mean(values: Tensor, pairs: _Pairs) -> Tensor:
    """Mean of ``values [..., N, M]`` over the pairs: ``[...]``. The entries outside the mask
    are replaced, not multiplied by zero, so an infinite one does not make the mean NaN."""
    return torch.where(pairs.mask, values, 0.0).sum((-2, -1)) / pairs.count


def _log_mean_exp(scores: Tensor, pairs: _Pairs) -> Tensor:
    """``log`` of the mean of ``e^scores`` over the pairs, with a masked log-sum-exp: ``[...]``."""
    masked = torch.where(pairs.mask, scores, -math.inf)
    return torch.logsumexp(masked, dim=(-2, -1)) - torch.log(pairs.count)


def joint_term(scores: Tensor, positive: Tensor) -> Tensor:
    """``E_P[T]``: the mean score over the positive pairs.

    Args:
        scores: float ``[..., N, M]``.
        positive: bool, broadcastable to ``scores``.

    Returns:
        ``[...]``.
    """
    return _masked_mean(scores, _pairs(positive, scores))


def dv_marginal(scores: Tensor, negative: Tensor | None = None) -> Tensor:
    """``log E_Q[e^T]``: the log-mean-exp of the scores over the negative pairs.

    Computed with a masked log-sum-exp, so it is finite for any finite scores.

    Args:
        scores: float ``[..., N, M]``.
        negative: bool, broadcastable to ``scores``, or ``None`` for every pair.

    Returns:
        ``[...]``.
    """
    return _log_mean_exp(scores, _pairs(negative, scores))


def nwj_marginal(scores: Tensor, negative: Tensor | None = None) -> Tensor:
    """``E_Q[e^(T-1)]``, the second term of the NWJ representation.

    Args:
        scores: float ``[..., N, M]``.
        negative: bool, broadcastable to ``scores``, or ``None`` for every pair.

    Returns:
        ``[...]``.
    """
    return torch.exp(dv_marginal(scores, negative) - 1.0)


def _row_log_mean_exp(scores: Tensor, candidates: Tensor) -> Tensor:
    """``log mean_{j in candidates[i]} e^(scores[i, j])`` for every row: ``[..., N]``.

    A row without candidates gets 0 (and no gradient) instead of ``-inf``, so that giving it
    weight zero later cannot produce ``0 * inf = nan``.
    """
    candidates = _matrix_shaped(candidates, scores)
    row_has_any = candidates.any(-1, keepdim=True)
    masked = torch.where(candidates, scores, torch.where(row_has_any, -math.inf, 0.0))
    count = candidates.sum(-1, dtype=scores.dtype).clamp_min(1)
    return torch.logsumexp(masked, dim=-1) - torch.log(count)


def _zero_penalty(mi: Tensor) -> Tensor:
    return torch.zeros(mi.shape, dtype=mi.dtype, device=mi.device)  # one op fewer than zeros_like


# --------------------------------------------------------------------------- the DV family


def mine(
    scores: Tensor, positive: Tensor, negative: Tensor | None = None, *, check: bool = True
) -> Bound:
    """MINE as the paper uses the name: the Donsker-Varadhan bound on one batch.

    ``I_MINE = E_P[T] - log E_Q[e^T]`` with both expectations replaced by batch means
    (Belghazi et al., 2018, eq. 10, without the moving-average gradient correction).
    Invariant to ``T -> T + c``: nothing in it pins the critic's additive constant, which is
    what lets the two terms drift.

    Args:
        scores: float ``[..., N, M]``.
        positive: bool, broadcastable to ``scores``: pairs from the joint.
        negative: bool, broadcastable to ``scores``, or ``None`` for every pair.
        check: run the value checks of :func:`validate_inputs`.

    Returns:
        :class:`Bound` with ``marginal = log E_Q[e^T]``; every field ``[...]``.
    """
    validate_inputs(scores, positive, negative, check_values=check)
    joint = joint_term(scores, positive)
    marginal = dv_marginal(scores, negative)
    mi = joint - marginal
    return Bound(mi, mi, joint, marginal, _zero_penalty(mi))


def _fgan_js(scores: Tensor, p_pairs: _Pairs, q_pairs: _Pairs) -> Tensor:
    """The f-GAN Jensen-Shannon objective ``E_P[-softplus(-T)] - E_Q[softplus(T)]``.

    Its maximizer is ``T = log dP/dQ`` (Nowozin et al., 2016; Poole et al., 2019, eq. 16).
    """
    from_joint = _masked_mean(-F.softplus(-scores), p_pairs)
    from_marginal = _masked_mean(F.softplus(scores), q_pairs)
    return from_joint - from_marginal


def smile(
    scores: Tensor,
    positive: Tensor,
    negative: Tensor | None = None,
    *,
    tau: float = 5.0,
    clip: Literal["both", "marginal"] = "both",
    gradient: Literal["dv", "js"] = "dv",
    check: bool = True,
) -> Bound:
    """SMILE: the DV bound with the scores clipped to ``[-tau, tau]`` (Song & Ermon, 2020).

    Three published variants differ in what is clipped and what is trained:

    * ``clip="both", gradient="dv"`` (default): the clipped DV bound
      ``E_P[clip T] - log E_Q[e^(clip T)]`` is reported and trained, as in the CIFAR code of
      Choi & Lee. Its objective is bounded by ``2 tau``.
    * ``clip="marginal", gradient="dv"``: only the marginal scores are clipped, as in the
      Gaussian code of Choi & Lee. Its objective is unbounded: once the marginal scores
      pass ``tau`` their gradient vanishes and ``E_P[T]`` can grow without limit.
    * ``clip="marginal", gradient="js"``: Song & Ermon's own code, which trains the critic
      on the Jensen-Shannon bound and only reports the clipped DV value.

    Args:
        scores: float ``[..., N, M]``.
        positive: bool, broadcastable to ``scores``.
        negative: bool, broadcastable to ``scores``, or ``None`` for every pair.
        tau: the clipping threshold, ``> 0``.
        clip: which terms see clipped scores.
        gradient: ``"dv"`` trains on the reported value; ``"js"`` on the f-GAN JS bound.
        check: run the value checks of :func:`validate_inputs`.

    Returns:
        :class:`Bound` with ``joint`` and ``marginal`` as clipped for the reported value.
    """
    if tau <= 0:
        raise ValueError(f"tau must be positive, got {tau}")
    if clip not in ("both", "marginal"):
        raise ValueError(f"clip must be 'both' or 'marginal', got {clip!r}")
    if gradient not in ("dv", "js"):
        raise ValueError(f"gradient must be 'dv' or 'js', got {gradient!r}")
    validate_inputs(scores, positive, negative, check_values=check)
    p_pairs, q_pairs = _pairs(positive, scores), _pairs(negative, scores)
    clipped = scores.clamp(-tau, tau)
    joint = _masked_mean(clipped if clip == "both" else scores, p_pairs)
    marginal = _log_mean_exp(clipped, q_pairs)
    mi = joint - marginal
    objective = mi if gradient == "dv" else _fgan_js(scores, p_pairs, q_pairs)
    return Bound(mi, objective, joint, marginal, _zero_penalty(mi))


def infonce(
    scores: Tensor, positive: Tensor, negative: Tensor | None = None, *, check: bool = True
) -> Bound:
    """InfoNCE (van den Oord et al., 2018; Poole et al., 2019, eq. 12), row by row.

    For each positive pair ``(i, j)`` the score is contrasted with row ``i``'s candidate set
    ``C_i = positive[i] | negative[i]``::

        I_NCE = mean over positive (i, j) of  T(x_i, y_j) - log mean_{k in C_i} e^T(x_i, y_k)

    so rows are weighted by their number of positives. The positive pair sits in its own
    denominator, which is what makes it a bound and caps it at ``log max_i |C_i|`` (``log N``
    for paired samples; ``log K`` minus the cross-entropy for a classifier's logits).

    Args:
        scores: float ``[..., N, M]``.
        positive: bool, broadcastable to ``scores``.
        negative: bool, broadcastable to ``scores``, or ``None`` for every pair.
        check: run the value checks of :func:`validate_inputs`.

    Returns:
        :class:`Bound` with ``marginal`` the positive-weighted mean of the rows'
        log-mean-exp; every field ``[...]``.
    """
    validate_inputs(scores, positive, negative, check_values=check)
    candidates = _every_pair(scores, negative) | positive
    row_weights = _matrix_shaped(positive, scores).sum(-1, dtype=scores.dtype)  # [..., N]
    p_pairs = _Pairs(positive, row_weights.sum(-1))
    row_marginals = _row_log_mean_exp(scores, candidates)
    joint = _masked_mean(scores, p_pairs)
    marginal = (row_weights * row_marginals).sum(-1) / p_pairs.count
    # Each pair's own difference, not joint - marginal: the two terms can be large and
    # nearly equal, and their difference would lose the cap to rounding.
    mi = _masked_mean(scores - row_marginals[..., None], p_pairs)
    return Bound(mi, mi, joint, marginal, _zero_penalty(mi))


# --------------------------------------------------------------------------- the NWJ family


def _clipped(scores: Tensor, tau: float | None) -> Tensor:
    return scores if tau is None else scores.clamp(-tau, tau)


def _check_tau(tau: float | None) -> None:
    if tau is not None and tau <= 0:
        raise ValueError(f"tau must be positive (or None for no clipping), got {tau}")


def tuba(
    scores: Tensor,
    positive: Tensor,
    negative: Tensor | None = None,
    *,
    log_baseline: float | Tensor = 0.0,
    tau: float | None = None,
    check: bool = True,
) -> Bound:
    """TUBA (Poole et al., 2019, eq. 9) with baseline ``a(y) = exp(log_baseline)``.

    ``I_TUBA = 1 + E_P[T - log a(y)] - E_Q[e^T / a(y)]``. With ``a = 1`` (default, as in the
    paper) this is ``1 + E_P[T] - E_Q[e^T]``; with ``a = e`` it is NWJ. In general
    ``TUBA(T; a) = NWJ(T + 1 - log a)``, so the optimal critic is ``log dP/dQ + log a``.

    Args:
        scores: float ``[..., N, M]``.
        positive: bool, broadcastable to ``scores``.
        negative: bool, broadcastable to ``scores``, or ``None`` for every pair.
        log_baseline: ``log a(y)``: a number, or a tensor broadcastable to ``scores``
            (``[M]`` for one baseline per column ``y_j``).
        tau: clip the scores to ``[-tau, tau]`` in both terms, as Choi & Lee's image
            code does for ReNWJ and ReTUBA (``tau = 10``); ``None`` (default): no clipping.
            A clipped bound is bounded, but its gradient vanishes beyond the clip.
        check: run the value checks of :func:`validate_inputs`.

    Returns:
        :class:`Bound` with ``joint = E_P[T]`` and ``marginal = E_Q[e^T / a]`` (of the
        clipped scores when ``tau`` is set).
    """
    _check_tau(tau)
    validate_inputs(scores, positive, negative, check_values=check)
    return _tuba(scores, _pairs(positive, scores), _pairs(negative, scores), log_baseline, tau)


def _tuba(
    scores: Tensor, p_pairs: _Pairs, q_pairs: _Pairs, log_baseline: float | Tensor,
    tau: float | None,
) -> Bound:
    clipped = _clipped(scores, tau)
    shifted = clipped - log_baseline
    joint = _masked_mean(clipped, p_pairs)
    marginal = torch.exp(_log_mean_exp(shifted, q_pairs))
    mi = 1.0 + _masked_mean(shifted, p_pairs) - marginal
    return Bound(mi, mi, joint, marginal, _zero_penalty(mi))


def nwj(
    scores: Tensor,
    positive: Tensor,
    negative: Tensor | None = None,
    *,
    tau: float | None = None,
    check: bool = True,
) -> Bound:
    """NWJ (Nguyen, Wainwright & Jordan, 2010), also called f-MINE: ``E_P[T] - E_Q[e^(T-1)]``.

    TUBA with ``a = e``. Not invariant to ``T -> T + c``: its optimal critic is
    ``1 + log dP/dQ``, where ``E_Q[e^(T-1)] = 1``, so the bound pins its own offset.

    Args:
        scores: float ``[..., N, M]``.
        positive: bool, broadcastable to ``scores``.
        negative: bool, broadcastable to ``scores``, or ``None`` for every pair.
        tau: clip the scores to ``[-tau, tau]`` (see :func:`tuba`); ``None``: no clipping.
        check: run the value checks of :func:`validate_inputs`.

    Returns:
        :class:`Bound` with ``marginal = E_Q[e^(T-1)]``.
    """
    return tuba(scores, positive, negative, log_baseline=1.0, tau=tau, check=check)


def js(
    scores: Tensor,
    positive: Tensor,
    negative: Tensor | None = None,
    *,
    report_shift: float = 0.0,
    check: bool = True,
) -> Bound:
    """JS: train on the f-GAN Jensen-Shannon bound, report NWJ at the critic.

    The objective ``E_P[-softplus(-T)] - E_Q[softplus(T)]`` is maximized at
    ``T = log dP/dQ`` (Poole et al., 2019, eq. 16). The reported estimate is
    ``NWJ(T + report_shift)``. With ``report_shift = 0`` (default) it is the value that
    Poole et al.'s and Choi & Lee's code report; at the JS optimum it equals ``I - 1/e``,
    because NWJ's own optimum sits one nat higher. ``report_shift = 1`` evaluates NWJ where
    that optimum lands and gives exactly ``I`` there.

    Args:
        scores: float ``[..., N, M]``.
        positive: bool, broadcastable to ``scores``.
        negative: bool, broadcastable to ``scores``, or ``None`` for every pair.
        report_shift: the constant added to the critic before NWJ is evaluated.
        check: run the value checks of :func:`validate_inputs`.

    Returns:
        :class:`Bound` with ``objective`` the JS bound, ``joint = E_P[T]`` and
        ``marginal = E_Q[e^(T + report_shift - 1)]``.
    """
    validate_inputs(scores, positive, negative, check_values=check)
    p_pairs, q_pairs = _pairs(positive, scores), _pairs(negative, scores)
    # NWJ(T + s) is TUBA(T) with log a = 1 - s, whose joint term E_P[T] is JS's own.
    reported = _tuba(scores, p_pairs, q_pairs, log_baseline=1.0 - report_shift, tau=None)
    return reported._replace(objective=_fgan_js(scores, p_pairs, q_pairs))


# --------------------------------------------------------------------------- the regularizer
#
# A regularized bound is its base bound, trained with a penalty on one of the base bound's
# terms: ``objective = base objective - alpha * d(term, target)``; it reports the base
# bound's ``mi``. Each ``*_penalty`` function below returns ``(term, target)`` for one
# regularized bound; the registry at the end of the module records which base bound and
# which penalty make each regularized bound, and :mod:`remi_tutorial.stacked` evaluates
# many estimators through exactly these functions.


def regularizer(
    term: Tensor,
    target: float | Tensor,
    *,
    alpha: float | Tensor,
    distance: Distance = "squared",
) -> Tensor:
    """The penalty of Choi & Lee (2022): ``alpha * d(term, target)``.

    ``D_ReDV`` uses ``term = log E_Q[e^T]`` (any target ``C``); ``D_ReNWJ`` uses
    ``term = E_Q[e^(T-1)]`` with target 1.

    Args:
        term: ``[...]``.
        target: the value at which the penalty is zero: a number, or a tensor
            broadcastable to ``term``.
        alpha: the weight, ``>= 0``: a number, or a tensor broadcastable to ``term`` (one
            weight per estimator; its values are not checked here).
        distance: ``"squared"``: ``(term - target)^2``; ``"absolute"``: ``|term - target|``.

    Returns:
        ``[...]``.
    """
    if not isinstance(alpha, Tensor) and alpha < 0:
        raise ValueError(f"alpha must be non-negative, got {alpha}")
    gap = term - target
    if distance == "squared":
        return alpha * (gap * gap)  # what gap.square() computes, in fewer operations
    if distance == "absolute":
        return alpha * gap.abs()
    raise ValueError(f"distance must be 'squared' or 'absolute', got {distance!r}")


def penalized(base: Bound, penalty: Tensor) -> Bound:
    """``base`` trained with ``penalty``: the objective loses it, the reported ``mi`` does not.

    Args:
        base: the base bound's :class:`Bound`, fields ``[...]``.
        penalty: ``[...]``.
    """
    return base._replace(objective=base.objective - penalty, penalty=penalty)


def dv_penalty(
    scores: Tensor, negative: Tensor | None = None, *, target: float | Tensor = 0.0
) -> tuple[Tensor, float | Tensor]:
    """The ``D_ReDV`` penalty's term and target: ``(log E_Q[e^T], C)``, on the raw scores.

    The penalty of ReMINE, ReSMILE (on the *unclipped* scores, so it still pulls them back
    when every score sits beyond SMILE's clip) and ReInfoNCE (over the negative pairs).

    Args:
        scores: float ``[..., N, M]``.
        negative: bool, broadcastable to ``scores``, or ``None`` for every pair.
        target: ``C``.

    Returns:
        ``(term [...], target)``.
    """
    return dv_marginal(scores, negative), target


def _nwj_family_penalty(
    scores: Tensor,
    negative: Tensor | None,
    *,
    nwj_shift: float | Tensor,
    variant: NWJPenaltyVariant,
) -> tuple[Tensor, float]:
    """``variant="paper"``: ``(E_Q[e^(T' - 1)], 1)`` with ``T' = T + nwj_shift`` the critic as
    NWJ sees it, zero at the bound's own optimum. ``"authors_code"``: ``(log E_Q[e^T], 0)``,
    as Choi & Lee's code penalises ReNWJ and ReTUBA."""
    if variant == "paper":
        return nwj_marginal(scores + nwj_shift, negative), 1.0
    if variant == "authors_code":
        return dv_marginal(scores, negative), 0.0
    raise ValueError(f"variant must be 'paper' or 'authors_code', got {variant!r}")


def renwj_penalty(
    scores: Tensor, negative: Tensor | None = None, *, variant: NWJPenaltyVariant = "paper"
) -> tuple[Tensor, float]:
    """ReNWJ's penalty term and target, on the raw (unclipped) scores.

    ``"paper"``: ``(E_Q[e^(T-1)], 1)``, the paper's ``D_ReNWJ``, zero at NWJ's optimum.
    ``"authors_code"``: ``(log E_Q[e^T], 0)``, as Choi & Lee's code does; that target is
    *not* at NWJ's optimum (there ``log E_Q[e^T] = 1``) and biases the estimate low, but
    the term is a log-mean-exp, whose gradient does not grow like ``e^(2T)``.

    Returns:
        ``(term [...], target)``.
    """
    return _nwj_family_penalty(scores, negative, nwj_shift=0.0, variant=variant)


def retuba_penalty(
    scores: Tensor,
    negative: Tensor | None = None,
    *,
    log_baseline: float | Tensor = 0.0,
    variant: NWJPenaltyVariant = "paper",
) -> tuple[Tensor, float]:
    """ReTUBA's penalty term and target, on the raw (unclipped) scores.

    ``TUBA(T; a) = NWJ(T + 1 - log a)``, so the paper's penalty on that critic is
    ``(E_Q[e^T / a], 1)``, zero at TUBA's optimum. ``"authors_code"``: ``(log E_Q[e^T], 0)``,
    which for ``a = 1`` sits at the same optimum.

    Returns:
        ``(term [...], target)``.
    """
    return _nwj_family_penalty(scores, negative, nwj_shift=1.0 - log_baseline, variant=variant)


def rejs_penalty(
    scores: Tensor, negative: Tensor | None = None, *, variant: NWJPenaltyVariant = "paper"
) -> tuple[Tensor, float]:
    """ReJS's penalty term and target.

    ``"paper"``: ``(E_Q[e^T], 1)``. The JS optimum ``T = log dP/dQ`` is NWJ's optimum
    shifted by one, so this is ``D_ReNWJ``'s ``E_Q[e^(T'-1)]`` at ``T' = T + 1``, zero there.
    ``"authors_code"``: ``(E_Q[softplus(T)], 1)``, the JS objective's own marginal term, as
    Choi & Lee's code penalises ReJS: finite at any score scale (``softplus`` grows
    linearly), where ``e^T`` overflows.

    Returns:
        ``(term [...], target)``.
    """
    if variant == "authors_code":
        return _masked_mean(F.softplus(scores), _pairs(negative, scores)), 1.0
    return _nwj_family_penalty(scores, negative, nwj_shift=1.0, variant=variant)


def remine(
    scores: Tensor,
    positive: Tensor,
    negative: Tensor | None = None,
    *,
    alpha: float = 0.1,
    target: float = 0.0,
    distance: Distance = "squared",
    check: bool = True,
) -> Bound:
    """ReMINE: MINE trained with the penalty ``alpha * d(log E_Q[e^T], target)``.

    Reports MINE's estimate. The penalty pins the additive constant that the DV bound leaves
    free, so the two terms cannot drift (Choi & Lee, 2022, D_ReDV).

    Args:
        scores: float ``[..., N, M]``.
        positive: bool, broadcastable to ``scores``.
        negative: bool, broadcastable to ``scores``, or ``None`` for every pair.
        alpha: the penalty weight.
        target: ``C``, the value ``log E_Q[e^T]`` is pulled towards.
        distance: ``"squared"`` or ``"absolute"``.
        check: run the value checks of :func:`validate_inputs`.

    Returns:
        :class:`Bound`.
    """
    base = mine(scores, positive, negative, check=check)
    term, goal = dv_penalty(scores, negative, target=target)
    return penalized(base, regularizer(term, goal, alpha=alpha, distance=distance))


def resmile(
    scores: Tensor,
    positive: Tensor,
    negative: Tensor | None = None,
    *,
    tau: float = 5.0,
    clip: Literal["both", "marginal"] = "both",
    gradient: Literal["dv", "js"] = "dv",
    alpha: float = 0.1,
    target: float = 0.0,
    distance: Distance = "squared",
    check: bool = True,
) -> Bound:
    """ReSMILE: SMILE with the DV penalty on the *unclipped* ``log E_Q[e^T]``.

    The penalty sees the raw scores, so it still pulls them back when every score sits
    beyond the clip and SMILE's own gradient is zero. Parameters as in :func:`smile` and
    :func:`remine`.

    Returns:
        :class:`Bound` reporting SMILE's estimate.
    """
    base = smile(scores, positive, negative, tau=tau, clip=clip, gradient=gradient, check=check)
    term, goal = dv_penalty(scores, negative, target=target)
    return penalized(base, regularizer(term, goal, alpha=alpha, distance=distance))


def reinfonce(
    scores: Tensor,
    positive: Tensor,
    negative: Tensor | None = None,
    *,
    alpha: float = 0.1,
    target: float = 0.0,
    distance: Distance = "squared",
    check: bool = True,
) -> Bound:
    """ReInfoNCE: InfoNCE with the DV penalty on ``log E_Q[e^T]`` over the negative pairs.

    Parameters as in :func:`infonce` and :func:`remine`.

    Returns:
        :class:`Bound` reporting InfoNCE's estimate.
    """
    base = infonce(scores, positive, negative, check=check)
    term, goal = dv_penalty(scores, negative, target=target)
    return penalized(base, regularizer(term, goal, alpha=alpha, distance=distance))


def renwj(
    scores: Tensor,
    positive: Tensor,
    negative: Tensor | None = None,
    *,
    tau: float | None = None,
    alpha: float = 0.1,
    distance: Distance = "squared",
    variant: NWJPenaltyVariant = "paper",
    check: bool = True,
) -> Bound:
    """ReNWJ: NWJ trained with the penalty ``alpha * d(E_Q[e^(T-1)], 1)`` (paper's D_ReNWJ).

    The penalty is zero at NWJ's optimum ``T = 1 + log dP/dQ``, so it does not move it.
    Choi & Lee's image code differs in two ways, both available here: it penalises
    ``d(log E_Q[e^T], 0)`` (``variant="authors_code"``, see :func:`renwj_penalty`) and
    clips the scores of the NWJ terms to ``[-10, 10]`` (``tau=10``); the penalty always
    sees the raw scores.

    Args:
        scores: float ``[..., N, M]``.
        positive: bool, broadcastable to ``scores``.
        negative: bool, broadcastable to ``scores``, or ``None`` for every pair.
        tau: clip the scores of NWJ's terms (see :func:`tuba`); ``None``: no clipping.
        alpha: the penalty weight.
        distance: ``"squared"`` or ``"absolute"``.
        variant: ``"paper"`` or ``"authors_code"``.
        check: run the value checks of :func:`validate_inputs`.

    Returns:
        :class:`Bound` reporting NWJ's estimate.
    """
    base = nwj(scores, positive, negative, tau=tau, check=check)
    term, goal = renwj_penalty(scores, negative, variant=variant)
    return penalized(base, regularizer(term, goal, alpha=alpha, distance=distance))


def retuba(
    scores: Tensor,
    positive: Tensor,
    negative: Tensor | None = None,
    *,
    log_baseline: float | Tensor = 0.0,
    tau: float | None = None,
    alpha: float = 0.1,
    distance: Distance = "squared",
    variant: NWJPenaltyVariant = "paper",
    check: bool = True,
) -> Bound:
    """ReTUBA: TUBA with the ReNWJ penalty ``alpha * d(E_Q[e^T / a], 1)``.

    See :func:`retuba_penalty` for the two variants and :func:`renwj` for the clip.
    Parameters as in :func:`tuba` and :func:`renwj`.

    Returns:
        :class:`Bound` reporting TUBA's estimate.
    """
    base = tuba(scores, positive, negative, log_baseline=log_baseline, tau=tau, check=check)
    term, goal = retuba_penalty(scores, negative, log_baseline=log_baseline, variant=variant)
    return penalized(base, regularizer(term, goal, alpha=alpha, distance=distance))


def rejs(
    scores: Tensor,
    positive: Tensor,
    negative: Tensor | None = None,
    *,
    report_shift: float = 0.0,
    alpha: float = 0.1,
    distance: Distance = "squared",
    variant: NWJPenaltyVariant = "paper",
    check: bool = True,
) -> Bound:
    """ReJS: the JS bound with the ReNWJ penalty ``alpha * d(E_Q[e^T], 1)``.

    The JS optimum is NWJ's optimum shifted by one, so the paper's penalty is zero there
    whatever ``report_shift`` is (``report_shift`` only changes what is reported).
    ``variant="authors_code"`` penalises ``d(E_Q[softplus(T)], 1)`` instead (see
    :func:`rejs_penalty`). Parameters as in :func:`js` and :func:`renwj`.

    Returns:
        :class:`Bound` reporting JS's estimate.
    """
    base = js(scores, positive, negative, report_shift=report_shift, check=check)
    term, goal = rejs_penalty(scores, negative, variant=variant)
    return penalized(base, regularizer(term, goal, alpha=alpha, distance=distance))


# --------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class BoundSpec:
    """Everything the package states about one bound, in one place.

    Attributes:
        name: the registry key, e.g. ``"remine"``.
        label: the printed name, e.g. ``"ReMINE"``.
        function: the bound, ``(scores, positive, negative=None, *, ..., check=True) -> Bound``.
        family: ``"dv"`` (built on ``log E_Q[e^T]``: MINE, SMILE, InfoNCE) or ``"nwj"``
            (built on ``E_Q[e^(T-1)]``: NWJ, TUBA, JS).
        base: the original bound a regularized bound trains with a penalty (``"mine"`` for
            ``"remine"``); an original bound's own name.
        penalty: for a regularized bound, ``(scores, negative, **params) -> (term,
            target)``, the term its regularizer pulls towards the target; ``None`` for an
            original bound.
        optimal_shift: ``c`` such that ``log dP/dQ + c`` is an optimal critic with the
            default parameters. The DV family is optimal at any ``c`` (0 is also where
            ReMINE's default target puts it); NWJ's optimum is ``1 + log dP/dQ``; TUBA
            (``a = 1``) and JS are optimal at ``log dP/dQ``, where JS *reports*
            ``NWJ(log dP/dQ) = I - 1/e``.
        same_as: where ``function`` is another function of this module with some
            parameters fixed, ``(**its keyword parameters) -> (that function, its
            parameters)``: NWJ is TUBA with ``log a = 1``. ``None``: it is its own.
        penalty_same_as: the same for ``penalty``: the ReNWJ, ReTUBA and (paper) ReJS
            penalties are one NWJ-family penalty on the critic shifted by ``0``,
            ``1 - log a`` and ``1``. Together with :data:`TENSOR_PARAMETERS` this lets
            :mod:`remi_tutorial.stacked` evaluate NWJ and TUBA, or the three penalties, in
            one call; ``tests/test_bounds.py`` checks that each statement holds.
    """

    name: str
    label: str
    function: Callable[..., Bound]
    family: Literal["dv", "nwj"]
    base: str
    penalty: Callable[..., tuple[Tensor, float | Tensor]] | None
    optimal_shift: float
    same_as: Callable[..., tuple[Callable, dict]] | None = None
    penalty_same_as: Callable[..., tuple[Callable, dict]] | None = None

    @property
    def regularized(self) -> bool:
        """Whether the bound is an original bound trained with a penalty."""
        return self.penalty is not None

    @property
    def parameters(self) -> tuple[str, ...]:
        """The keyword parameters of ``function`` (``check`` aside)."""
        return _keyword_parameters(self.function)

    @property
    def penalty_parameters(self) -> tuple[str, ...]:
        """The keyword parameters of ``penalty`` (empty for an original bound)."""
        return _keyword_parameters(self.penalty) if self.regularized else ()

    def defaults(self) -> dict:
        """Each of :attr:`parameters` with its default value."""
        signature = inspect.signature(self.function)
        return {name: signature.parameters[name].default for name in self.parameters}

    def as_general(self, params: dict) -> tuple[Callable, dict]:
        """``function`` with keyword parameters ``params`` (every one of
        :attr:`parameters`) as ``(function, params)`` of the function of this module that
        it is (see ``same_as``): ``(tuba, {"log_baseline": 1.0, "tau": None})`` for NWJ."""
        return (self.function, dict(params)) if self.same_as is None else self.same_as(**params)

    def penalty_as_general(self, params: dict) -> tuple[Callable, dict]:
        """The same for ``penalty``, with every one of :attr:`penalty_parameters`."""
        if not self.regularized:
            raise ValueError(f"{self.name!r} has no penalty")
        if self.penalty_same_as is None:
            return self.penalty, dict(params)
        return self.penalty_same_as(**params)


def _keyword_parameters(function: Callable) -> tuple[str, ...]:
    return tuple(
        p.name for p in inspect.signature(function).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "check"
    )


def _spec(label, function, family, base, penalty, optimal_shift, *, same_as=None,
          penalty_same_as=None) -> BoundSpec:
    return BoundSpec(function.__name__, label, function, family, base, penalty, optimal_shift,
                     same_as, penalty_same_as)


def _nwj_as_tuba(*, tau):
    """NWJ is TUBA with ``a = e``."""
    return tuba, {"log_baseline": 1.0, "tau": tau}


def _renwj_penalty_as_nwj_family(*, variant):
    """ReNWJ's penalty is the NWJ family's on the critic itself."""
    return _nwj_family_penalty, {"nwj_shift": 0.0, "variant": variant}


def _retuba_penalty_as_nwj_family(*, log_baseline, variant):
    """ReTUBA's penalty is the NWJ family's on ``T + 1 - log a``, NWJ's view of TUBA's critic."""
    return _nwj_family_penalty, {"nwj_shift": 1.0 - log_baseline, "variant": variant}


def _rejs_penalty_as_nwj_family(*, variant):
    """ReJS's paper penalty is the NWJ family's on ``T + 1``; the authors' code one is its own."""
    if variant == "paper":
        return _nwj_family_penalty, {"nwj_shift": 1.0, "variant": variant}
    return rejs_penalty, {"variant": variant}


REGISTRY: dict[str, BoundSpec] = {
    spec.name: spec for spec in (
        _spec("MINE", mine, "dv", "mine", None, 0.0),
        _spec("SMILE", smile, "dv", "smile", None, 0.0),
        _spec("InfoNCE", infonce, "dv", "infonce", None, 0.0),
        _spec("NWJ", nwj, "nwj", "nwj", None, 1.0, same_as=_nwj_as_tuba),
        _spec("TUBA", tuba, "nwj", "tuba", None, 0.0),
        _spec("JS", js, "nwj", "js", None, 0.0),
        _spec("ReMINE", remine, "dv", "mine", dv_penalty, 0.0),
        _spec("ReSMILE", resmile, "dv", "smile", dv_penalty, 0.0),
        _spec("ReInfoNCE", reinfonce, "dv", "infonce", dv_penalty, 0.0),
        _spec("ReNWJ", renwj, "nwj", "nwj", renwj_penalty, 1.0,
              penalty_same_as=_renwj_penalty_as_nwj_family),
        _spec("ReTUBA", retuba, "nwj", "tuba", retuba_penalty, 0.0,
              penalty_same_as=_retuba_penalty_as_nwj_family),
        _spec("ReJS", rejs, "nwj", "js", rejs_penalty, 0.0,
              penalty_same_as=_rejs_penalty_as_nwj_family),
    )
}
"""The twelve bounds of the paper, keyed by name; six originals, then their regularized
versions in the same order. Every other module reads what a bound is from here."""

BOUND_NAMES: tuple[str, ...] = tuple(REGISTRY)
"""The names :func:`get_bound` accepts, in the paper's order."""

ORIGINAL_NAMES: tuple[str, ...] = tuple(n for n, spec in REGISTRY.items() if not spec.regularized)
"""The six original bounds, in the paper's order."""

TENSOR_PARAMETERS: dict[str, Literal["scores", "term"]] = {
    "log_baseline": "scores",  # tuba (and retuba_penalty)
    "nwj_shift": "scores",  # _nwj_family_penalty
    "target": "term",  # dv_penalty
}
"""The number parameters that the functions taking them also accept as tensors, each
broadcastable to the scores (``[k, 1, 1]``, one value per score matrix) or to a penalty's
term (``[k]``), as the value says. Estimators that differ only in these (and in ``alpha``)
share one call in :mod:`remi_tutorial.stacked`."""


def bound_spec(name: str) -> BoundSpec:
    """The :class:`BoundSpec` of the bound called ``name`` (case-insensitive).

    Raises:
        ValueError: for an unknown name.
    """
    key = name.lower()
    if key not in REGISTRY:
        raise ValueError(f"unknown bound {name!r}; choose one of {', '.join(BOUND_NAMES)}")
    return REGISTRY[key]


def regularized_name(name: str) -> str:
    """The regularized counterpart of an original bound: ``"mine" -> "remine"``."""
    spec = bound_spec(name)
    if spec.regularized:
        raise ValueError(f"{name!r} is already a regularized bound")
    return next(n for n, other in REGISTRY.items() if other.regularized and other.base == spec.name)


def get_bound(name: str, **params) -> Callable[..., Bound]:
    """The bound called ``name`` (case-insensitive) with its keyword parameters fixed.

    Example::

        bound = get_bound("remine", alpha=0.1)
        result = bound(scores, positive, negative)

    Args:
        name: one of :data:`BOUND_NAMES`.
        **params: keyword parameters of that bound (``alpha``, ``tau``, ...).

    Returns:
        A callable ``(scores, positive, negative=None, *, check=True) -> Bound``.

    Raises:
        ValueError: for an unknown name or a parameter the bound does not take.
    """
    spec = bound_spec(name)
    unknown = sorted(set(params) - set(spec.parameters))
    if unknown:
        raise ValueError(
            f"bound {spec.name!r} takes no parameter {', '.join(unknown)}; "
            f"it takes {', '.join(spec.parameters) or 'none'}"
        )
    return functools.partial(spec.function, **params)
