"""MI between two arrays in one call: split, stacked training, held-out estimate, diagnosis.

:func:`estimate_mi` is a thin layer over the rest of the package: it holds out part of the
pairs, trains one stacked critic (:mod:`~remi_tutorial.stacked`) on the rest with the bounds
of :mod:`~remi_tutorial.bounds` through :func:`~remi_tutorial.train.train`, and reads each
estimator's bound on the held-out pairs, in batches of the training batch size. A bound read
on the batches its critic trained on is biased upward by what the critic memorised (a
lower bound can then read above the truth), so the estimate, its confidence interval and
the early stopping all use held-out pairs only; :func:`~remi_tutorial.diagnose.diagnose`
reads the training history.
"""

from __future__ import annotations

import math
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import t as student_t
from torch import Tensor, nn
from tqdm import TqdmWarning

from .bounds import BOUND_NAMES
from .critics import ConcatCritic, SeparableCritic
from .diagnose import Diagnosis, diagnose
from .stacked import stack_bounds, stacked_critic
from .tasks import Batch, paired_masks
from .train import default_device, make_adam, train

with warnings.catch_warnings():
    warnings.simplefilter("ignore", TqdmWarning)  # as in train: the text bar without ipywidgets
    from tqdm.auto import tqdm

__all__ = ["MIEstimate", "estimate_mi", "CRITICS", "MIN_PAIRS_PER_SPLIT"]

CRITICS = ("separable", "concat")
"""The critics :func:`estimate_mi` can train (:mod:`~remi_tutorial.critics`)."""

MIN_PAIRS_PER_SPLIT = 32
"""Fewest pairs the training split and the held-out split may each hold."""


@dataclass
class MIEstimate:
    """What :func:`estimate_mi` returns.

    Attributes:
        estimate: the held-out estimate of the first estimator named, in nats.
        ci: its confidence interval ``(low, high)``.
        table: one row per estimator: ``estimator``, ``estimate`` (the mean of its bound
            over the held-out batches at its best evaluation), ``ci_low``, ``ci_high``,
            ``std_error``, ``best_step`` (the step of that evaluation),
            ``train_estimate`` (its bound on the last training batches, for comparison:
            read on pairs the critic trained on, it is biased upward), ``diverged_at``
            (the step its objective turned non-finite, or NaN).
        held_out: one row per evaluation and estimator: ``step``, ``estimator``, ``mi``,
            ``joint``, ``marginal`` (means over the held-out batches) and ``std_error``.
        history: the training history of :func:`~remi_tutorial.train.train`, one row per
            step and estimator (named), with both terms ``joint`` and ``marginal``.
        diagnosis: :func:`~remi_tutorial.diagnose.diagnose` of ``history``.
        critic: the trained stacked critic (estimator ``e`` at index ``e``), each estimator
            with its weights at its best held-out evaluation.
        steps: the steps trained.
        stopped_early: whether the held-out estimate plateaued before ``max_steps``.
        n_train: the pairs trained on.
        n_held_out: the pairs held out.
        batch_size: the batch size of training and of the held-out batches.
        confidence: the confidence level of the intervals.
    """

    estimate: float
    ci: tuple[float, float]
    table: pd.DataFrame
    held_out: pd.DataFrame
    history: pd.DataFrame
    diagnosis: Diagnosis
    critic: nn.Module
    steps: int
    stopped_early: bool
    n_train: int
    n_held_out: int
    batch_size: int
    confidence: float

    def __str__(self) -> str:
        ending = "stopped early: held-out estimate plateaued" if self.stopped_early else "ran to max_steps"
        lines = [f"MI estimate on {self.n_held_out} held-out pairs (trained on {self.n_train}, "
                 f"{self.steps} steps, {ending}):"]
        for row in self.table.itertuples():
            lines.append(
                f"  {row.estimator}: {row.estimate:.3f} nats, {self.confidence:.0%} CI "
                f"[{row.ci_low:.3f}, {row.ci_high:.3f}] at step {row.best_step} (on its "
                f"training batches at the end: {row.train_estimate:.3f})"
                + ("" if math.isnan(row.diverged_at) else f"; diverged at step {int(row.diverged_at)}")
            )
        return "\n".join(lines) + "\n" + str(self.diagnosis)


def _as_matrix(name: str, values) -> Tensor:
    """``values`` (a tensor or an array, ``[n]`` or ``[n, d]``) as a float32 ``[n, d]`` CPU tensor."""
    tensor = torch.as_tensor(np.asarray(values) if not isinstance(values, Tensor) else values)
    tensor = tensor.detach().to("cpu", torch.float32)
    if tensor.dim() == 1:
        tensor = tensor[:, None]
    if tensor.dim() != 2:
        raise ValueError(f"{name} must have shape [n] or [n, d], got {tuple(tensor.shape)}")
    return tensor


def _check_inputs(x: Tensor, y: Tensor) -> None:
    if len(x) != len(y):
        raise ValueError(f"x and y must hold the same number of pairs: x has {len(x)} rows, "
                         f"y has {len(y)}")
    for name, values in (("x", x), ("y", y)):
        bad = (~torch.isfinite(values)).any(dim=1).nonzero()[:, 0]
        if len(bad):
            rows = ", ".join(str(int(row)) for row in bad[:5])
            raise ValueError(f"{name} has {len(bad)} row(s) with NaN or infinite values "
                             f"(rows {rows}{', ...' if len(bad) > 5 else ''}); drop them first")


def _names(estimator: str | Sequence[str]) -> list[str]:
    names = [estimator] if isinstance(estimator, str) else list(estimator)
    names = [name.lower() for name in names]
    unknown = [name for name in names if name not in BOUND_NAMES]
    if not names or unknown:
        raise ValueError(f"unknown estimator(s) {unknown or names}; choose from "
                         f"{', '.join(BOUND_NAMES)}")
    if len(set(names)) != len(names):
        raise ValueError(f"each estimator may be named once, got {names}")
    return names


def _standardized(values: Tensor, reference: Tensor) -> Tensor:
    """``values`` with each column centred and scaled by ``reference``'s mean and std."""
    std = reference.std(dim=0)
    return (values - reference.mean(dim=0)) / torch.where(std > 0, std, torch.ones_like(std))


def _stacked_critic(kind: str, x_dim: int, y_dim: int, hidden: Sequence[int], embed_dim: int,
                    estimators: int) -> nn.Module:
    """``estimators`` copies of one freshly initialised critic, stacked."""
    if kind == "separable":
        critic = SeparableCritic(x_dim, y_dim, hidden, embed_dim)
    else:
        critic = ConcatCritic(x_dim, y_dim, hidden)
    return stacked_critic([critic] * estimators)


class _EpochBatches:
    """``step -> Batch`` of the training pairs, a new random order every epoch (a pure
    function of the step and the seed, so :func:`~remi_tutorial.train.train` can resume)."""

    def __init__(self, x: Tensor, y: Tensor, batch_size: int, seed: int):
        self.x, self.y, self.batch_size, self.seed = x, y, batch_size, seed
        self.per_epoch = len(x) // batch_size
        self.positive, self.negative = paired_masks(batch_size, device=x.device)
        self._epoch, self._order = -1, None

    def __call__(self, step: int) -> Batch:
        epoch, index = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._order = torch.randperm(len(self.x), generator=generator).to(self.x.device)
            self._epoch = epoch
        rows = self._order[index * self.batch_size:(index + 1) * self.batch_size]
        return Batch((self.x[rows], self.y[rows]), self.positive, self.negative, math.nan)


class _BestWeights:
    """Each estimator's best held-out read so far, its step and its weights then, in a
    stacked critic whose every parameter has the estimators along its first dimension."""

    def __init__(self, critic: nn.Module):
        self.weights = [parameter.detach().clone() for parameter in critic.parameters()]
        self.reads = np.full(int(critic.num_estimators), -np.inf)
        self.steps = [0] * int(critic.num_estimators)

    def update(self, critic: nn.Module, reads: np.ndarray, step: int) -> None:
        """Keep the current weights of the estimators whose held-out ``reads [E]`` at
        ``step`` are their best so far."""
        better = np.flatnonzero(reads > self.reads)
        if not len(better):
            return
        index = torch.as_tensor(better, device=self.weights[0].device)
        with torch.no_grad():
            for kept, parameter in zip(self.weights, critic.parameters()):
                kept.index_copy_(0, index, parameter[index])
        self.reads[better] = reads[better]
        for e in better:
            self.steps[int(e)] = step

    def restore(self, critic: nn.Module) -> None:
        """Return every estimator to its best weights."""
        with torch.no_grad():
            for kept, parameter in zip(self.weights, critic.parameters()):
                parameter.copy_(kept)


def _held_out_terms(critic: nn.Module, bound, x: Tensor, y: Tensor, batch_size: int) -> Tensor:
    """The bound's ``mi, joint, marginal`` on each held-out batch: ``[K, 3, E]``."""
    positive, negative = paired_masks(batch_size, device=x.device)
    batches = len(x) // batch_size
    was_training = critic.training
    critic.eval()
    values = []
    with torch.no_grad():
        for k in range(batches):
            rows = slice(k * batch_size, (k + 1) * batch_size)
            result = bound(critic(x[rows], y[rows]), positive, negative, check=False)
            values.append(torch.stack([result.mi, result.joint, result.marginal]))
    critic.train(was_training)
    return torch.stack(values).double().cpu()


def estimate_mi(
    x,
    y,
    *,
    estimator: str | Sequence[str] = "remine",
    critic: str = "separable",
    hidden: Sequence[int] = (64, 64),
    embed_dim: int = 16,
    batch_size: int = 128,
    lr: float = 1e-3,
    max_steps: int = 10_000,
    eval_every: int = 100,
    patience: int = 10,
    min_delta: float = 0.01,
    held_out: float = 0.5,
    confidence: float = 0.95,
    standardize: bool = True,
    bound_params: Mapping[str, Mapping] | None = None,
    seed: int = 0,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> MIEstimate:
    """Estimate the MI between paired samples ``x [n, d_x]`` and ``y [n, d_y]``, in nats.

    Example::

        result = estimate_mi(x, y)                          # ReMINE, a separable critic
        print(result.estimate, result.ci)
        both = estimate_mi(x, y, estimator=["mine", "remine", "infonce"])
        print(both.table, both.diagnosis)

    A fraction ``held_out`` of the pairs (chosen at random) is set aside; a critic per
    estimator, all starting from the same weights and stacked in one network, trains on the
    rest with :func:`~remi_tutorial.train.train` in epochs of random batches. Every
    ``eval_every`` steps each estimator's bound is evaluated on the held-out pairs, cut into
    ``K = n_held_out // batch_size`` batches; training stops when no estimator's held-out
    estimate has risen more than ``min_delta`` above its best (the best that did so) for
    ``patience`` evaluations in a row, or at ``max_steps``. Each estimator's critic is then
    returned to its weights at its best held-out evaluation (a critic that trains on past
    it memorises its training pairs, and its held-out reading falls), and the estimate is
    that evaluation's held-out mean, with a ``confidence`` interval ``mean +- t * s /
    sqrt(K)`` over the K held-out batches. Picking the best of several evaluations of the
    same held-out pairs reads slightly high, by at most about one standard error when the
    evaluations sit on a plateau. An estimator whose objective turns non-finite is frozen
    at its last good weights and named in ``table.diverged_at``; the others train on.

    Args:
        x: ``[n, d_x]`` (or ``[n]``) tensor or array.
        y: ``[n, d_y]`` (or ``[n]``), row ``i`` paired with ``x``'s row ``i``.
        estimator: a bound name of :data:`~remi_tutorial.bounds.BOUND_NAMES`, or several
            (trained stacked, at once).
        critic: ``"separable"`` (``g(x)^T h(y)``) or ``"concat"`` (an MLP on ``[x, y]``).
        hidden: hidden widths of the critic's networks.
        embed_dim: the separable critic's embedding dimension.
        batch_size: pairs per training batch and per held-out batch (clipped to a quarter
            of the training split and half the held-out split). Bounds such as InfoNCE cannot exceed
            ``log batch_size``.
        lr: Adam's learning rate.
        max_steps: the most optimizer steps.
        eval_every: steps between held-out evaluations.
        patience: evaluations without a rise of ``min_delta`` nats before stopping.
        min_delta: the rise, in nats, that counts as progress.
        held_out: the fraction of pairs held out, in (0, 1).
        confidence: the confidence level of the interval.
        standardize: centre and scale each column by the training split's mean and
            standard deviation (MI does not change under such a map).
        bound_params: bound name -> its keyword parameters (e.g. ``{"remine": {"alpha":
            0.1}}``), as for :func:`~remi_tutorial.stacked.stack_bounds`.
        seed: seeds the split, the batch order and the critic's initial weights.
        device: where to train; default :func:`~remi_tutorial.train.default_device` (the
            GPU when there is one).
        progress: show a progress bar.

    Returns:
        :class:`MIEstimate`.

    Raises:
        ValueError: for ``x`` and ``y`` of different lengths, rows with NaN or infinite
            values, fewer than :data:`MIN_PAIRS_PER_SPLIT` pairs in either split, an unknown
            estimator or critic, or a setting out of range.
    """
    names = _names(estimator)
    if critic not in CRITICS:
        raise ValueError(f"unknown critic {critic!r}; choose from {', '.join(CRITICS)}")
    if not 0 < held_out < 1 or not 0 < confidence < 1:
        raise ValueError(f"held_out and confidence must lie in (0, 1), got {held_out}, {confidence}")
    if min(batch_size, max_steps, eval_every, patience) < 1 or min_delta < 0:
        raise ValueError("batch_size, max_steps, eval_every and patience must be positive and "
                         "min_delta non-negative")
    x, y = _as_matrix("x", x), _as_matrix("y", y)
    _check_inputs(x, y)
    n = len(x)
    n_held_out = int(round(held_out * n))
    n_train = n - n_held_out
    if min(n_train, n_held_out) < MIN_PAIRS_PER_SPLIT:
        raise ValueError(
            f"too few samples: {n} pairs split into {n_train} for training and {n_held_out} "
            f"held out (held_out={held_out}); each split needs at least {MIN_PAIRS_PER_SPLIT}"
        )
    batch_size = min(batch_size, n_train // 4, n_held_out // 2)
    device = torch.device(device) if device is not None else default_device()

    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    train_rows, held_rows = order[:n_train], order[n_train:]
    x_train, y_train, x_held, y_held = x[train_rows], y[train_rows], x[held_rows], y[held_rows]
    if standardize:
        x_held, y_held = _standardized(x_held, x_train), _standardized(y_held, y_train)
        x_train, y_train = _standardized(x_train, x_train), _standardized(y_train, y_train)
    x_train, y_train, x_held, y_held = (t.to(device) for t in (x_train, y_train, x_held, y_held))

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        stacked = _stacked_critic(critic, x.shape[1], y.shape[1], hidden, embed_dim, len(names))
    stacked = stacked.to(device)
    bound = stack_bounds(names, bound_params)
    optimizer = make_adam(stacked.parameters(), lr)
    batches = _EpochBatches(x_train, y_train, batch_size, seed)

    cuda_devices = list(range(torch.cuda.device_count())) if device.type == "cuda" else []
    evaluations, best, waited = [], np.full(len(names), -np.inf), np.zeros(len(names), int)
    best_weights = _BestWeights(stacked)
    step, stopped_early, result = 0, False, None
    bar = tqdm(total=max_steps, desc="estimate_mi", disable=not progress, leave=False)
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        # A run of several rounds resumes train's checkpoint, which holds the estimators
        # that diverged; each round would warn about them again: one warning at the end.
        warnings.simplefilter("ignore", RuntimeWarning)
        checkpoint = Path(folder) / "run.pt"
        while step < max_steps and not stopped_early:
            until = min(step + eval_every, max_steps)
            # train's resume sets torch's random states: keep the caller's.
            with torch.random.fork_rng(devices=cuda_devices):
                result = train(stacked, bound, batches, steps=until, optimizer=optimizer,
                               check_every=min(eval_every, 100), checkpoint=checkpoint,
                               checkpoint_every=eval_every, progress=False)
            bar.update(until - step)
            step = until
            terms = _held_out_terms(stacked, bound, x_held, y_held, batch_size)  # [K, 3, E]
            mean = terms.mean(dim=0)
            error = terms[:, 0].std(dim=0) / math.sqrt(len(terms))
            for e, name in enumerate(names):
                evaluations.append({"step": step, "estimator": name, "mi": float(mean[0, e]),
                                    "joint": float(mean[1, e]), "marginal": float(mean[2, e]),
                                    "std_error": float(error[e])})
            estimate = mean[0].numpy()
            best_weights.update(stacked, estimate, step)
            training = np.array([e not in result.diverged for e in range(len(names))])
            improved = estimate > best + min_delta
            best = np.where(improved, estimate, best)  # a slow rise adds up until it counts
            waited = np.where(improved, 0, waited + 1)
            stopped_early = bool((waited[training] >= patience).all())
            bar.set_postfix(held_out_mi=f"{float(estimate[0]):.3f}")
            if result.diverged_at is not None:
                break  # every estimator diverged: train restored the last good weights
    bar.close()
    best_weights.restore(stacked)
    return _result(names, result, evaluations, best_weights.steps, stacked, step, stopped_early,
                   n_train, n_held_out, batch_size, confidence)


def _result(names, result, evaluations, best_steps, stacked, steps, stopped_early, n_train,
            n_held_out, batch_size, confidence) -> MIEstimate:
    """Assemble the :class:`MIEstimate` from the last round's result and the evaluations
    (each estimator's estimate from its evaluation at ``best_steps[e]``)."""
    history = result.history
    history["estimator"] = np.asarray(names)[history.estimator.to_numpy()]
    held_out = pd.DataFrame(evaluations, columns=["step", "estimator", "mi", "joint", "marginal",
                                                  "std_error"])
    batches = n_held_out // batch_size
    quantile = float(student_t.ppf(0.5 + confidence / 2, df=max(batches - 1, 1)))
    rows = []
    for e, name in enumerate(names):
        best = held_out[(held_out.estimator == name) & (held_out.step == best_steps[e])]
        estimate = float(best.mi.iloc[0]) if len(best) else math.nan
        error = float(best.std_error.iloc[0]) if len(best) else math.nan
        trained = history[history.estimator == name].mi
        rows.append({
            "estimator": name, "estimate": estimate, "ci_low": estimate - quantile * error,
            "ci_high": estimate + quantile * error, "std_error": error,
            "best_step": best_steps[e],
            "train_estimate": float(trained.tail(max(1, min(100, len(trained) // 4))).mean()),
            "diverged_at": float(result.diverged.get(e, math.nan)),
        })
    table = pd.DataFrame(rows)
    diverged = result.diverged
    if diverged:
        warnings.warn(f"estimate_mi: {result.message}", RuntimeWarning, stacklevel=3)
    diagnosis = diagnose(history, candidates=batch_size,
                         diverged_at={names[e]: step for e, step in result.diverged.items()})
    first = table.iloc[0]
    return MIEstimate(
        estimate=float(first.estimate), ci=(float(first.ci_low), float(first.ci_high)),
        table=table, held_out=held_out, history=history, diagnosis=diagnosis, critic=stacked,
        steps=steps, stopped_early=stopped_early, n_train=n_train, n_held_out=n_held_out,
        batch_size=batch_size, confidence=confidence,
    )
