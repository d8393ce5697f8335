"""Read a training history and say what went wrong: drifting, explosion, collapse, over cap.

:func:`diagnose` takes the table that :func:`~remi_tutorial.train.train` records (or any
table with its columns: ``step``, ``mi`` and, where known, ``objective``, ``joint``,
``marginal``, ``penalty``, ``true_mi``; one run, or one run per ``estimator`` and any other
label column), and reports, for each run, the symptoms of Choi & Lee (2022) it shows and the
step where each began:

* **drifting**: the marginal term walks away from where it sat (or, for a regularized
  bound, away from its target) while the estimate stays flat: the critic's free additive
  constant is moving, and the joint term moves with it. The step where it began is the
  bend of a flat-then-linear fit to the windowed marginal term;
* **explosion**: a non-finite objective, or terms growing without bound;
* **collapse**: an estimate stuck at exactly zero or at a constant;
* **over cap**: an estimate above a value it cannot exceed: InfoNCE's ``log N``, a
  classifier's ``log K``, or the true MI (every bound of this package is a lower bound).

What a run's estimator *is* comes from the bounds registry
(:func:`~remi_tutorial.bounds.bound_spec`): its family says in which units the ``marginal``
column is recorded (``log E_Q[e^T]`` for the DV family; ``E_Q[e^(T-1)]``, whose logarithm is
compared, for the NWJ family), whether it is regularized and where its penalty puts the
marginal term. Runs whose names are not bound names are still diagnosed, with the marginal
taken as recorded.

The checks compare window statistics of the per-step records; every threshold is a keyword
parameter of :func:`diagnose`, documented there with the reason for its default.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from .bounds import BoundSpec, bound_spec

__all__ = ["SYMPTOMS", "Diagnosis", "diagnose", "marginal_target"]

SYMPTOMS: tuple[str, ...] = ("drifting", "explosion", "collapse", "over cap")
"""The symptoms :func:`diagnose` reports, in the order it reports them."""

_MEASURES = frozenset({"step", "true_mi", "mi", "objective", "joint", "marginal", "penalty", "stage"})
"""Columns that are measured per step; every other column labels a run."""


@dataclass(frozen=True)
class Diagnosis:
    """What :func:`diagnose` found.

    Attributes:
        findings: one row per symptom of a run: the label columns (``estimator``, and any
            other column that names a run), ``symptom`` (one of :data:`SYMPTOMS`),
            ``began_at_step`` (int) and ``detail`` (a sentence with the numbers).
        healthy: the runs with no finding, in the history's order.
        runs: every run, in the history's order. A run is its ``estimator`` value when that
            is the only label column, a tuple of label values when there are several, and
            ``"run"`` for a history without labels.
        by: the label columns.
        window: the window (in steps) the checks used.
    """

    findings: pd.DataFrame
    healthy: tuple
    runs: tuple
    by: tuple[str, ...]
    window: int

    def symptoms(self, run) -> tuple[str, ...]:
        """The symptoms found in ``run`` (empty for a healthy run)."""
        return tuple(self._rows(run).symptom)

    def began_at(self, run, symptom: str) -> int | None:
        """The step where ``symptom`` began in ``run``, or ``None`` if it was not found."""
        rows = self._rows(run)
        rows = rows[rows.symptom == symptom]
        return int(rows.began_at_step.iloc[0]) if len(rows) else None

    def _rows(self, run) -> pd.DataFrame:
        if run not in self.runs:
            raise ValueError(f"no run {run!r}; the runs are {list(self.runs)}")
        if not self.by:
            return self.findings
        values = run if len(self.by) > 1 else (run,)
        mask = np.ones(len(self.findings), dtype=bool)
        for column, value in zip(self.by, values):
            mask &= (self.findings[column] == value).to_numpy()
        return self.findings[mask]

    def _label(self, run) -> str:
        if len(self.by) <= 1:
            return str(run)
        head, *rest = run
        return f"{head} ({', '.join(f'{c}={v}' for c, v in zip(self.by[1:], rest))})"

    def __str__(self) -> str:
        lines = [f"Diagnosis of {len(self.runs)} run(s), windows of {self.window} steps:"]
        for run in self.runs:
            rows = self._rows(run)
            if not len(rows):
                lines.append(f"  {self._label(run)}: healthy")
                continue
            for symptom, began, detail in zip(rows.symptom, rows.began_at_step, rows.detail):
                lines.append(f"  {self._label(run)}: {symptom} from step {began}: {detail}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- helpers


def marginal_target(spec: BoundSpec, **params) -> float | None:
    """Where a regularized bound's penalty puts the recorded ``marginal``, in log units.

    Found from the registry's own functions: the penalty of ``spec`` is evaluated on
    constant score matrices ``T = c``; the ``c`` at which the penalized term meets its
    target (a bisection; every penalty term increases with ``c``) is where the penalty is
    zero, and the bound's recorded ``marginal`` at that ``c`` is returned (its logarithm for
    the NWJ family). ReMINE's default gives 0 (``log E_Q[e^T] = 0``); ReNWJ's and ReTUBA's
    0 (``E_Q[e^(T-1)] = 1``); ReJS's -1 (its penalty sets ``E_Q[e^T] = 1`` and it records
    NWJ's ``E_Q[e^(T-1)] = e^-1``).

    Args:
        spec: a bound's :class:`~remi_tutorial.bounds.BoundSpec`.
        **params: the bound's keyword parameters, if not its defaults.

    Returns:
        The target, or ``None`` for an original (unregularized) bound.
    """
    if not spec.regularized:
        return None
    eye = torch.eye(2, dtype=torch.bool)
    penalty_params = {k: v for k, v in params.items() if k in spec.penalty_parameters}

    def scores(c: float) -> torch.Tensor:
        return torch.full((2, 2), c, dtype=torch.float64)

    def gap(c: float) -> float:
        term, target = spec.penalty(scores(c), ~eye, **penalty_params)
        return float(term) - float(target)

    low, high = -60.0, 60.0
    if not gap(low) < 0.0 < gap(high):
        return None
    for _ in range(100):
        middle = 0.5 * (low + high)
        if gap(middle) < 0.0:
            low = middle
        else:
            high = middle
    marginal = float(spec.function(scores(0.5 * (low + high)), eye, ~eye, **params).marginal)
    return math.log(marginal) if spec.family == "nwj" else marginal


def _hinge_onset(values: np.ndarray) -> int:
    """Index where a flat-then-linear fit of ``values`` bends (least squares over every bend).

    The model is ``a + b * max(0, t - tau)``; for each ``tau`` the best ``a, b`` are in
    closed form, from suffix sums, so every ``tau`` is tried in ``O(n)``.
    """
    y = np.asarray(values, dtype=float)
    n = len(y)
    if n < 3:
        return 0
    t = np.arange(n, dtype=float)
    count = n - t  # points at or after each candidate tau = t[k]
    suffix_t = np.cumsum(t[::-1])[::-1]
    suffix_tt = np.cumsum((t * t)[::-1])[::-1]
    suffix_y = np.cumsum(y[::-1])[::-1]
    suffix_ty = np.cumsum((t * y)[::-1])[::-1]
    sx = suffix_t - count * t
    sxx = suffix_tt - 2.0 * t * suffix_t + count * t * t
    sxy = suffix_ty - t * suffix_y
    sy, syy = y.sum(), (y * y).sum()
    denominator = n * sxx - sx * sx
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(denominator > 0, (n * sxy - sx * sy) / denominator, 0.0)
    intercept = (sy - slope * sx) / n
    sse = syy - intercept * sy - slope * sxy
    sse[-1] = np.inf  # a bend at the last point fits nothing
    return int(np.argmin(sse))


def _rolling(series: pd.Series, window: int):
    return series.rolling(window, center=True, min_periods=max(1, window // 2))


def _first(mask: np.ndarray) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if len(hits) else None


def _fmt(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.2e}"


@dataclass
class _Context:
    name: object
    spec: BoundSpec | None
    target: float | None
    caps: list[tuple[str, float, bool]]  # (what, value, hard)


# --------------------------------------------------------------------------- the checks


def _non_finite(run: pd.DataFrame) -> int | None:
    column = "objective" if "objective" in run else "mi"
    return _first(~np.isfinite(run[column].to_numpy(dtype=float)))


def _log_marginal_per_step(run: pd.DataFrame, spec: BoundSpec | None) -> np.ndarray | None:
    if "marginal" not in run:
        return None
    marginal = run.marginal.to_numpy(dtype=float)
    if spec is not None and spec.family == "nwj":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log(marginal)  # 0 (underflow) -> -inf: scores far below zero
    return marginal


def _smoothed_marginal(run: pd.DataFrame, spec: BoundSpec | None, window: int):
    """The marginal term's window mean in log units and its standard error, ``[n]`` each.

    The NWJ family's recorded ``E_Q[e^(T-1)]`` is averaged before its log is taken: a
    batch mean of ``e^T`` is heavy-tailed at small batches, and its typical value (what a
    median or a mean of logs sees) can sit far below its expectation while nothing drifts.
    """
    raw = run.marginal.astype(float).where(np.isfinite(run.marginal.astype(float)))
    rolling = _rolling(raw, window)
    mean, std, count = rolling.mean(), rolling.std(), rolling.count()
    if spec is not None and spec.family == "nwj":
        with np.errstate(divide="ignore", invalid="ignore"):
            level = np.log(mean.to_numpy())
            error = (std / (mean * np.sqrt(count))).to_numpy()
    else:
        level = mean.to_numpy()
        error = (std / np.sqrt(count)).to_numpy()
    return level, np.nan_to_num(error, nan=0.0, posinf=0.0)


def _check_explosion(run, context, window, *, explosion_floor, explosion_factor, term_limit):
    """``(began_index, detail)`` or ``None``; the index where growth began."""
    mi = np.abs(run.mi.to_numpy(dtype=float))
    parts = {"estimate": mi}
    if "joint" in run:
        parts = {"joint term": np.abs(run.joint.to_numpy(dtype=float))}
        log_marginal = _log_marginal_per_step(run, context.spec)
        if log_marginal is not None:
            parts["marginal term"] = np.abs(log_marginal)
        if context.spec is None:
            parts["estimate"] = mi
    names = list(parts)
    stacked = np.stack([np.nan_to_num(parts[k], nan=0.0, posinf=np.inf) for k in names])
    scale = stacked.max(axis=0)
    which = stacked.argmax(axis=0)
    reference = max([value for _, value, _ in context.caps] + [0.0])
    level = max(explosion_floor, explosion_factor * reference)
    finite_scale = np.where(np.isfinite(scale), scale, np.finfo(float).max)
    smoothed = _rolling(pd.Series(finite_scale), window).median().to_numpy()
    crossing = _first(smoothed > level)
    spike = _first(scale >= term_limit)
    if crossing is None and spike is None:
        return None
    details = []
    began = None
    if crossing is not None:
        began = _hinge_onset(smoothed[: crossing + 1])
        peak = int(np.argmax(smoothed))
        details.append(
            f"the {names[which[peak]]} grew to {_fmt(smoothed[peak])} nats (median over "
            f"{window} steps; limit {_fmt(level)}: max({_fmt(explosion_floor)}, "
            f"{_fmt(explosion_factor)} x {_fmt(reference)}))"
        )
    if spike is not None:
        began = spike if began is None else min(began, spike)
        details.append(
            f"the {names[which[spike]]} reached {_fmt(scale[spike])} nats at step "
            f"{int(run.step.iloc[spike])} (e^T overflows float32 past 88.7)"
        )
    return began, "; ".join(details)


def _flat_segments(estimate: np.ndarray, tolerance: float) -> list[tuple[int, int]]:
    """Maximal stretches ``[start, stop)`` on which the estimate stays within ``tolerance``
    of its value at the stretch's start (greedy, left to right)."""
    segments, start = [], 0
    n = len(estimate)
    while start < n:
        anchor = estimate[start]
        if not np.isfinite(anchor):
            start += 1
            continue
        stop = start + 1
        while stop < n and abs(estimate[stop] - anchor) <= tolerance:
            stop += 1
        segments.append((start, stop))
        start = stop
    return segments


def _stages(run: pd.DataFrame, window: int) -> list[tuple[int, int]]:
    """Stretches ``[start, stop)`` of constant true MI (the whole run if it has none).

    After a change of the true MI the critic relearns, so a stage's first window is left
    out; before a change, half a window, where centered windows mix two stages."""
    n = len(run)
    if "true_mi" not in run:
        return [(0, n)]
    true_mi = run.true_mi.to_numpy(dtype=float)
    same = (true_mi[1:] == true_mi[:-1]) | (np.isnan(true_mi[1:]) & np.isnan(true_mi[:-1]))
    changes = [0, *(np.flatnonzero(~same) + 1).tolist(), n]
    half = window // 2
    stages = []
    for start, stop in zip(changes[:-1], changes[1:]):
        start, stop = start + (window if start > 0 else 0), stop - (half if stop < n else 0)
        if stop > start:
            stages.append((start, stop))
    return stages


def _check_drift(run, context, window, *, drift_threshold, drift_ratio, flat_tolerance,
                 noise_sigmas):
    if "marginal" not in run or len(run) < 2 * window:
        return None
    estimate = _rolling(run.mi.astype(float).where(np.isfinite(run.mi.astype(float))),
                        window).mean().to_numpy()
    level, error = _smoothed_marginal(run, context.spec, window)
    stride = max(1, window // 10)
    persist = max(1, window // 2)
    segments = [
        (stage_start + start, stage_start + stop)
        for stage_start, stage_stop in _stages(run, window)
        for start, stop in _flat_segments(estimate[stage_start:stage_stop], flat_tolerance)
    ]
    for start, stop in segments:
        if stop - start < 2 * window:
            continue
        segment = level[start:stop]
        if not np.isfinite(segment).all():
            continue
        if context.target is not None:
            away = np.abs(segment - context.target) - abs(segment[0] - context.target)
        else:
            away = np.abs(segment - segment[0])
        need = np.maximum(
            drift_threshold, noise_sigmas * np.sqrt(error[start] ** 2 + error[start:stop] ** 2)
        )
        # A walk, not a blip: the marginal stays beyond the threshold for half a window.
        beyond = np.convolve((away > need).astype(float), np.ones(persist), "valid")
        for end in np.flatnonzero(beyond >= persist)[::stride]:
            # Where the slide began: the bend of a flat-then-linear fit up to this point (a
            # fit up to the end of a slide that slows down would start its line too early).
            onset = _hinge_onset(segment[: end + 1])
            moved = segment[end] - segment[onset]
            learned = estimate[start + end] - estimate[start + onset]
            # The terms slide together: the marginal moves, the estimate (nearly) does not.
            # A critic that is still learning moves both.
            if abs(moved) >= need[end] and drift_ratio * abs(learned) <= abs(moved):
                return start + onset, _drift_detail(
                    run, context, window, estimate, level, start + onset, start + end,
                    start + end + int(np.argmax(away[end:])),
                )
    return None


def _drift_detail(run, context, window, estimate, level, onset, end, peak) -> str:
    reference = (f"its target {_fmt(context.target)}" if context.target is not None
                 else "where it sat")

    def step(index):
        return int(run.step.iloc[index])

    detail = (
        f"the marginal term moved by {level[end] - level[onset]:+.2f} nats (from "
        f"{_fmt(level[onset])} at step {step(onset)} to {_fmt(level[end])} at step "
        f"{step(end)}; away from {reference}) while the estimate moved by "
        f"{estimate[end] - estimate[onset]:+.2f} (from {_fmt(estimate[onset])})"
    )
    if "joint" in run:
        joint = _rolling(run.joint.astype(float), window).mean().to_numpy()
        detail += f"; the joint term moved by {joint[end] - joint[onset]:+.2f}"
    if peak != end:
        detail += (f"; it went on to {_fmt(level[peak])} at step {step(peak)} "
                   f"({level[peak] - level[onset]:+.2f} in all)")
    return detail


def _check_collapse(run, *, collapse_steps, collapse_tolerance):
    values = run.mi.to_numpy(dtype=float)
    n = len(values)
    start = 0
    while start < n:
        if not np.isfinite(values[start]):
            start += 1
            continue
        low = high = values[start]
        stop = start + 1
        while stop < n and np.isfinite(values[stop]):
            low, high = min(low, values[stop]), max(high, values[stop])
            if high - low > collapse_tolerance * max(1.0, abs(high), abs(low)):
                break
            stop += 1
        if stop - start >= collapse_steps:
            value = float(np.median(values[start:stop]))
            what = ("exactly 0" if abs(value) <= collapse_tolerance
                    else f"the constant {value:.6g}")
            until = ("to the end of the run" if stop == n
                     else f"until step {int(run.step.iloc[stop - 1])}")
            detail = (f"the estimate stayed at {what} for {stop - start} steps, {until} "
                      "(scores that no longer depend on the batch)")
            return start, detail
        start = stop if stop > start + 1 else start + 1
    return None


def _check_over_cap(run, context, window, *, over_margin, noise_sigmas, cap_tolerance):
    values = run.mi.astype(float).where(np.isfinite(run.mi.astype(float)))
    found = []
    for what, cap, hard in context.caps:
        if hard:
            index = _first(values.to_numpy() > cap + cap_tolerance * max(1.0, abs(cap)))
            if index is not None:
                found.append((index, f"the estimate {_fmt(values.iloc[index])} exceeds {what} "
                                     f"= {_fmt(cap)}, which it cannot exceed on any batch"))
    rolling = _rolling(values, window)
    mean = rolling.mean().to_numpy()
    error = (rolling.std() / np.sqrt(rolling.count())).to_numpy()
    need = np.maximum(over_margin, noise_sigmas * np.nan_to_num(error, nan=np.inf))
    for what, cap, hard in context.caps:
        if hard:
            continue
        cap_series = (_rolling(run.true_mi.astype(float), window).mean().to_numpy()
                      if what == "the true MI" else np.full(len(run), cap))
        excess = mean - cap_series
        index = _first(excess > need)
        if index is not None:
            found.append((index, f"the estimate averages {_fmt(mean[index])} nats over "
                                 f"{window} steps, {_fmt(excess[index])} above {what} "
                                 f"({_fmt(cap_series[index])})"))
    if not found:
        return None
    found.sort(key=lambda item: item[0])
    return found[0][0], "; ".join(detail for _, detail in found)


# --------------------------------------------------------------------------- entry point


def diagnose(
    history,
    *,
    bounds: str | Mapping | None = None,
    by: Sequence[str] | None = None,
    candidates: int | None = None,
    num_classes: int | None = None,
    diverged_at: int | Mapping | None = None,
    window: int = 100,
    drift_threshold: float = 0.5,
    drift_ratio: float = 3.0,
    flat_tolerance: float = 0.5,
    explosion_floor: float = 20.0,
    explosion_factor: float = 10.0,
    term_limit: float = 80.0,
    collapse_steps: int = 50,
    collapse_tolerance: float = 1e-5,
    over_margin: float = 0.1,
    cap_tolerance: float = 1e-4,
    noise_sigmas: float = 4.0,
) -> Diagnosis:
    """Diagnose every run of a training history: drifting, explosion, collapse, over cap.

    Example::

        run = train_one_hot({"mine": get_bound("mine"), "nwj": get_bound("nwj")}, DRIFTING)
        print(diagnose(run))  # mine: drifting from step ...; nwj: healthy

    Args:
        history: a table with columns ``step`` and ``mi`` and, where known, ``objective``,
            ``joint``, ``marginal``, ``penalty``, ``true_mi`` (NaN where unknown), plus label
            columns (``estimator``, ``critic``, ``seed``, ...); or a run record with a
            ``history`` attribute (:class:`~remi_tutorial.train.TrainResult`,
            :class:`~remi_tutorial.benchmarks.symptoms.OneHotRun`), whose ``diverged_at``
            is then used too.
        bounds: which bound each run trained, where its ``estimator`` value is not a bound
            name: a mapping ``estimator value -> bound name`` (e.g. ``{0: "mine", 1:
            "nwj"}`` for a stacked run, ``{"alpha=1": "remine"}``), or one bound name for
            every run (e.g. a history without an ``estimator`` column). Runs whose bound is
            neither given nor a registry name are diagnosed without one.
        by: the label columns that identify a run; default: every column that is not a
            per-step measure (``step``, ``true_mi``, ``stage`` and the bound's fields).
        candidates: ``N`` in InfoNCE's cap ``log N``, the size of each row's candidate set
            (the batch size for paired samples; 2 for the one-hot task's independent
            marginal pairs). ``None``: InfoNCE's cap is not checked.
        num_classes: ``K`` for a classifier's logits: no estimate of ``I(image; label)``
            can exceed ``H(label) <= log K``. ``None``: not checked.
        diverged_at: the step at which training stopped on a non-finite loss (the history
            of :func:`~remi_tutorial.train.train` ends before it, so this is the only trace
            of it); reported as an explosion. Or, for a stack whose estimators diverged one
            by one (each frozen while the others trained on), a mapping ``estimator value ->
            step``: each step is reported as an explosion of that estimator's runs only.
            Taken from a run record's ``diverged`` (:class:`~remi_tutorial.train.TrainResult`)
            or ``diverged_at`` when given one.
        window: steps per window of every smoothed statistic (centered), capped at a
            quarter of the run. Default 100: a batch estimate's noise (0.3-0.5 nats per step
            in this course's runs) averages down to a few hundredths, and a symptom that
            lasts less than 100 steps is not one that needs a name.
        drift_threshold: how far, in nats, the windowed marginal term must move while the
            estimate stays flat to count as drifting (and at least ``noise_sigmas``
            standard errors of the two windows), and stay that far for half a window (a
            walk, not a blip). Where the true MI changes (a staircase) each stage is looked
            at on its own, without its first window, in which the critic relearns. Default
            0.5: well above the window noise of a healthy run (NWJ's log marginal in the
            symptoms chapter holds within 0.05), well below the drifts of several nats the
            paper shows.
        drift_ratio: the marginal term must also move at least this many times as far as
            the estimate over the same steps: drifting is the two terms sliding *together*;
            a critic that is still learning moves them apart. Default 3: MINE's drift in
            the symptoms chapter moves the marginal ten times as far as its estimate, while
            InfoNCE learning its first half nat moves its marginal term only about twice
            as far.
        flat_tolerance: how far, in nats, the windowed estimate may wander for it to be
            "flat" while the marginal moves. Default 0.5: the estimate of a drifting run
            keeps learning a little (MINE's creeps up by ~0.2 nats while its terms slide
            2 nats), while a run that is still learning moves by more than half a nat.
        explosion_floor, explosion_factor: terms grow without bound when the window median
            of the largest term (``|E_P[T]|``, and the marginal term in log units; or the
            estimate when the bound is unknown) passes ``max(explosion_floor,
            explosion_factor * reference)``, with ``reference`` the largest known cap or
            true MI (0 if none). Defaults 20 nats and 10: no task of the course has an MI
            above 10 nats, so a critic whose average score is ten times the MI (or 20
            nats, e^20 = 5e8) is not estimating it; drift below that is reported as
            drifting. Raise the floor for a task of higher MI with no ``true_mi``. The
            growth began where a flat-then-linear fit to that median bends.
        term_limit: a single step whose largest term reaches this many nats (or is
            infinite) is an explosion at once. Default 80: ``e^88.7`` overflows float32,
            so scores of 80 are a few steps from a non-finite loss.
        collapse_steps: how many consecutive steps of an unchanging estimate make a
            collapse. Default 50: fresh random batches move a working estimate at every
            step; fifty equal values in a row mean scores that ignore the batch (a constant
            critic, every score past SMILE's clip, a dead network).
        collapse_tolerance: "unchanging" means within this many nats (relative to the
            value, for values above 1). Default 1e-5: float32 rounding of a mean of equal
            scores leaves errors of about 1e-7 of the score.
        over_margin: how far, in nats, the windowed mean estimate must exceed a cap (the
            true MI, ``log K``) to count, and at least ``noise_sigmas`` standard errors.
            Default 0.1: smaller excesses are within the small-batch bias of the DV
            estimate at its optimum and within the rounding of what a figure shows.
        cap_tolerance: InfoNCE cannot exceed ``log N`` on any batch, so one step above
            ``log N`` by more than this (relative above 1) is reported. Default 1e-4:
            float32 rounding.
        noise_sigmas: how many standard errors of a windowed mean a drift or an excess
            must also exceed. Default 4: over a few dozen independent windows per run a
            4-sigma excess by chance is rare (about 3e-5 each, one-sided).

    Returns:
        :class:`Diagnosis`.

    Raises:
        ValueError: for a table without ``step`` or ``mi``, or a label column in ``by``
            that it lacks.
    """
    if hasattr(history, "history") and not isinstance(history, pd.DataFrame):
        if diverged_at is None:
            per_estimator = getattr(history, "diverged", None)
            stacked = isinstance(history.history, pd.DataFrame) and "estimator" in history.history
            diverged_at = (per_estimator if per_estimator and stacked
                           else getattr(history, "diverged_at", None))
        history = history.history
    if not isinstance(history, pd.DataFrame):
        raise ValueError(f"history must be a pandas DataFrame, got {type(history).__name__}")
    missing = {"step", "mi"} - set(history.columns)
    if missing:
        raise ValueError(f"history lacks the column(s) {', '.join(sorted(missing))}")
    if window < 1 or collapse_steps < 1:
        raise ValueError(f"window and collapse_steps must be positive, got {window}, {collapse_steps}")
    if by is None:
        by = [c for c in history.columns if c not in _MEASURES]
        if "estimator" in by:
            by.remove("estimator")
            by.insert(0, "estimator")
    by = tuple(by)
    absent = [c for c in by if c not in history.columns]
    if absent:
        raise ValueError(f"history lacks the label column(s) {', '.join(absent)}")

    if by:
        groups = [(key if len(by) > 1 else key[0], frame)
                  for key, frame in history.groupby(list(by), sort=False, dropna=False)]
    else:
        groups = [("run", history)]
    runs = tuple(key for key, _ in groups)

    settings = dict(
        drift=dict(drift_threshold=drift_threshold, drift_ratio=drift_ratio,
                   flat_tolerance=flat_tolerance, noise_sigmas=noise_sigmas),
        explosion=dict(explosion_floor=explosion_floor, explosion_factor=explosion_factor,
                       term_limit=term_limit),
        collapse=dict(collapse_steps=collapse_steps, collapse_tolerance=collapse_tolerance),
        over=dict(over_margin=over_margin, noise_sigmas=noise_sigmas,
                  cap_tolerance=cap_tolerance),
    )
    per_run = {}
    used_window = window
    for key, frame in groups:
        run = frame.sort_values("step").reset_index(drop=True)
        name = run.estimator.iloc[0] if "estimator" in run else key
        context = _context(name, bounds, run, candidates=candidates, num_classes=num_classes)
        run_window = max(1, min(window, len(run) // 4))
        used_window = min(used_window, run_window)
        per_run[key] = _diagnose_run(run, context, run_window, **settings)
    if isinstance(diverged_at, Mapping):
        _attribute_estimator_divergence(per_run, by, diverged_at)
    elif diverged_at is not None:
        _attribute_divergence(per_run, int(diverged_at))
    rows = []
    for key, found in per_run.items():
        labels = dict(zip(by, key if len(by) > 1 else (key,)))
        for symptom, began, detail in found:
            rows.append({**labels, "symptom": symptom, "began_at_step": int(began),
                         "detail": detail})
    findings = pd.DataFrame(rows, columns=[*by, "symptom", "began_at_step", "detail"])
    if len(findings):
        order = {run: i for i, run in enumerate(runs)}
        run_of = (findings[list(by)].apply(tuple, axis=1) if len(by) > 1
                  else findings[by[0]] if by else pd.Series("run", index=findings.index))
        findings = findings.assign(
            _run=run_of.map(order), _symptom=findings.symptom.map(SYMPTOMS.index)
        ).sort_values(["_run", "_symptom"]).drop(columns=["_run", "_symptom"])
        findings = findings.reset_index(drop=True)
        findings["began_at_step"] = findings.began_at_step.astype(int)
    sick = set(findings[list(by)].apply(tuple, axis=1) if len(by) > 1
               else findings[by[0]] if by else (["run"] if len(findings) else []))
    healthy = tuple(run for run in runs if run not in sick)
    return Diagnosis(findings, healthy, runs, by, used_window)


def _context(name, bounds, run, *, candidates, num_classes) -> _Context:
    bound_name = None
    if isinstance(bounds, str):
        bound_name = bounds
    elif isinstance(bounds, Mapping) and name in bounds:
        bound_name = bounds[name]
    spec = None
    if bound_name is not None:
        spec = bound_spec(bound_name)  # a name the caller gave must be a bound
    elif isinstance(name, str):
        try:
            spec = bound_spec(name)
        except ValueError:
            spec = None
    caps: list[tuple[str, float, bool]] = []
    if spec is not None and spec.base == "infonce" and candidates is not None:
        caps.append((f"InfoNCE's cap log N (N = {candidates})", math.log(candidates), True))
    if num_classes is not None:
        caps.append((f"the classifier's cap log K (K = {num_classes})", math.log(num_classes), False))
    if "true_mi" in run:
        true_mi = run.true_mi.to_numpy(dtype=float)
        if np.isfinite(true_mi).any():
            caps.append(("the true MI", float(np.nanmax(np.where(np.isfinite(true_mi), true_mi, np.nan))), False))
    target = _default_target(spec.name) if spec is not None else None
    return _Context(name, spec, target, caps)


@functools.lru_cache(maxsize=None)
def _default_target(name: str) -> float | None:
    return marginal_target(bound_spec(name))


def _attribute_divergence(per_run: dict, step: int) -> None:
    """Add the run's stop on a non-finite loss to the runs it can be blamed on.

    The history does not record which of several stacked estimators turned non-finite: the
    stop goes to the runs already exploding, to every run if none is (saying so), and to
    the only run if there is one.
    """
    exploding = [key for key, found in per_run.items() if any(s == "explosion" for s, _, _ in found)]
    blamed = exploding or list(per_run)
    note = f"training stopped on a non-finite loss at step {step}"
    if not exploding and len(per_run) > 1:
        note += " (the history does not say which of the stacked estimators caused it)"
    for key in blamed:
        _add_explosion(per_run[key], step, note)


def _attribute_estimator_divergence(per_run: dict, by: tuple, diverged: Mapping) -> None:
    """Add each estimator's own non-finite step (``diverged``: estimator value -> step) to
    its runs."""
    position = by.index("estimator") if "estimator" in by else None
    for estimator, step in diverged.items():
        keys = [key for key in per_run
                if (key[position] if isinstance(key, tuple) and position is not None else key)
                == estimator]
        if not keys:
            raise ValueError(f"diverged_at names the estimator {estimator!r}, which is not a "
                             f"run of the history (runs: {list(per_run)})")
        note = (f"its loss turned non-finite at step {int(step)}; it was frozen there while "
                "the other estimators trained on")
        for key in keys:
            _add_explosion(per_run[key], int(step), note)


def _add_explosion(found: list, step: int, note: str) -> None:
    """Record an explosion from ``step`` in one run's findings (merged with one found already)."""
    for index, (symptom, began, detail) in enumerate(found):
        if symptom == "explosion":
            found[index] = (symptom, min(began, step), f"{note}; {detail}")
            break
    else:
        found.append(("explosion", step, note))
    found.sort(key=lambda item: SYMPTOMS.index(item[0]))


def _diagnose_run(run, context, window, *, drift, explosion, collapse, over):
    """The findings of one run: ``[(symptom, began_at_step, detail)]`` in :data:`SYMPTOMS` order."""
    findings = []
    steps = run.step.to_numpy()
    non_finite = _non_finite(run)
    finite = run.iloc[:non_finite] if non_finite is not None else run

    exploded = _check_explosion(finite, context, window, **explosion) if len(finite) > 0 else None
    if exploded is not None or non_finite is not None:
        began, details = [], []
        if non_finite is not None:
            column = "objective" if "objective" in run else "mi"
            began.append(int(steps[non_finite]))
            details.append(f"the {column} is {run[column].iloc[non_finite]} at step {began[-1]}")
        if exploded is not None:
            began.append(int(steps[exploded[0]]))
            details.append(exploded[1])
        findings.append(("explosion", min(began), "; ".join(details)))
    # Drift is looked for before the terms blow up, where "the estimate stays flat" means
    # something.
    before = finite.iloc[: exploded[0]] if exploded is not None else finite
    drifted = _check_drift(before, context, window, **drift)
    if drifted is not None:
        findings.append(("drifting", int(before.step.iloc[drifted[0]]), drifted[1]))
    collapsed = _check_collapse(finite, **collapse)
    if collapsed is not None:
        findings.append(("collapse", int(finite.step.iloc[collapsed[0]]), collapsed[1]))
    if context.caps and len(finite):
        over_cap = _check_over_cap(finite, context, window, **over)
        if over_cap is not None:
            findings.append(("over cap", int(finite.step.iloc[over_cap[0]]), over_cap[1]))
    return findings
