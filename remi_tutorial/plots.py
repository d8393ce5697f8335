"""Figures drawn from the tidy tables that training and the benchmarks return.

Colours follow the paper: an original bound in blue, its regularized counterpart in orange,
the ground truth in black.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from .bounds import BOUND_NAMES, ORIGINAL_NAMES, bound_spec, regularized_name

__all__ = ["ORIGINAL_COLOR", "REGULARIZED_COLOR", "TRUTH_COLOR", "FAILED_COLOR",
           "bound_color", "plot_training",
           "plot_gaussian_benchmark", "EXPLICIT_COLOR", "estimator_color",
           "plot_staircase_comparison", "plot_estimate_bars", "plot_log_truncations",
           "plot_image_benchmark", "plot_image_accuracy",
           "JOINT_PAIR_COLOR", "MARGINAL_PAIR_COLOR", "plot_batch_size_sweep",
           "plot_score_histograms", "plot_alpha_sweep", "plot_terms_with_targets"]

ORIGINAL_COLOR = "tab:blue"
REGULARIZED_COLOR = "tab:orange"
TRUTH_COLOR = "black"
FAILED_COLOR = "tab:red"

def bound_color(name: str) -> str:
    """The paper's colour for a bound name: orange for a regularized one, else blue."""
    return REGULARIZED_COLOR if bound_spec(name).regularized else ORIGINAL_COLOR


def _marginal_at_optimum(name: str) -> float:
    """The recorded ``marginal`` of bound ``name`` at its optimal critic, whatever ``dP/dQ``.

    At ``T = log r + c`` the marginal term only sees ``E_Q[r] = 1``, so it is the bound's
    marginal on a constant critic ``c`` (its ``optimal_shift``): 0 for the DV family
    (``log E_Q[e^T]``, ReMINE's target), 1 for NWJ and TUBA (``E_Q[e^(T-1)]`` at NWJ's optimum),
    ``1/e`` for JS (its critic is optimal at ``log r``, one nat below NWJ's).
    """
    spec = bound_spec(name)
    eye = torch.eye(2, dtype=torch.bool)
    scores = torch.full((2, 2), spec.optimal_shift, dtype=torch.float64)
    return float(spec.function(scores, eye, ~eye).marginal)


def _smooth(values: pd.Series, window: int) -> pd.Series:
    return values.rolling(window, min_periods=1, center=True).mean()


def plot_training(
    histories: Mapping[str, pd.DataFrame],
    *,
    smoothing: int = 50,
    title: str | None = None,
) -> plt.Figure:
    """The MI estimate and its two terms over training, one column per run.

    Top row: the estimate (faint: per step; solid: a centred moving average) against the
    true MI. Bottom row: the joint term ``E_P[T]`` and the marginal term, whose difference
    is the estimate for the DV family; when they move in parallel the critic is drifting.
    A dotted line marks where the marginal term sits at the bound's optimal critic (0 for
    the DV family, 1 for NWJ and TUBA, ``1/e`` for JS): for MINE it is one point of a free
    line, for every other bound the value the optimum (or the penalty) puts it at.

    Args:
        histories: run name (a bound name such as ``"mine"``) -> ``TrainResult.history``.
        smoothing: the moving-average window in steps.
        title: the figure's title.

    Returns:
        The figure.
    """
    sns.set_theme(style="whitegrid", context="notebook")
    fig, axes = plt.subplots(
        2, len(histories), figsize=(4.2 * len(histories), 6), sharex=True, squeeze=False
    )
    for column, (name, history) in enumerate(histories.items()):
        top, bottom = axes[0, column], axes[1, column]
        color = bound_color(name)
        top.plot(history.step, history.mi, color=color, alpha=0.25, linewidth=0.8)
        top.plot(history.step, _smooth(history.mi, smoothing), color=color, label="estimate")
        top.plot(history.step, history.true_mi, color=TRUTH_COLOR, linestyle="--", label="true MI")
        top.set_title(name)
        top.set_ylabel("MI (nats)")
        top.legend(loc="lower right")
        bottom.plot(history.step, _smooth(history.joint, smoothing), label="joint  $E_P[T]$")
        bottom.plot(history.step, _smooth(history.marginal, smoothing), label="marginal term")
        reference = _marginal_at_optimum(name)
        bottom.axhline(reference, color=TRUTH_COLOR, linestyle=":", linewidth=1.0,
                       label=f"marginal at the optimum ({reference:.3g})")
        bottom.set_xlabel("training step")
        bottom.set_ylabel("term value")
        bottom.legend(loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_gaussian_benchmark(
    table: pd.DataFrame,
    *,
    batch_size: int = 64,
    smoothing: int = 200,
    ylim: tuple[float, float] | None = None,
    title: str | None = None,
) -> plt.Figure:
    """The paper's Figure 4: every estimate on the MI staircase, each original beside its
    regularized version.

    One panel per estimator, in a grid of three rows: (MINE, ReMINE, SMILE, ReSMILE),
    (InfoNCE, ReInfoNCE, NWJ, ReNWJ), (TUBA, ReTUBA, JS, ReJS); estimators missing from the
    table leave their panel empty. Each panel shows the raw estimates of every seed (faint),
    their centred moving average over ``smoothing`` steps (averaged over seeds), the true MI
    as a black step line and, on the InfoNCE panels, the ``log batch_size`` cap.

    Args:
        table: the output of :func:`remi_tutorial.benchmarks.gaussian.run_gaussian_benchmark`
            for one critic (columns ``estimator, seed, step, true_mi, mi``).
        batch_size: the batch size of the run, for InfoNCE's cap.
        smoothing: the moving-average window, in steps.
        ylim: the y range; default from ``-1`` to 1.3 times the largest true MI.
        title: the figure's title.

    Returns:
        The figure.
    """
    if table.empty:
        raise ValueError("the table is empty: nothing to plot")
    if "critic" in table and table.critic.nunique() > 1:
        raise ValueError("plot one critic at a time: select table[table.critic == NAME]")
    sns.set_theme(style="whitegrid", context="notebook")
    pairs = [name for base in ORIGINAL_NAMES for name in (base, regularized_name(base))]
    layout = [pairs[row * 4:row * 4 + 4] for row in range(3)]
    fig, axes = plt.subplots(3, 4, figsize=(15, 9.5), sharex=True, sharey=True)
    truth = table.groupby("step").true_mi.first()
    top = 1.3 * float(truth.max())
    for row, names in enumerate(layout):
        for column, name in enumerate(names):
            ax = axes[row, column]
            spec = bound_spec(name)
            ax.set_title(spec.label, color=bound_color(name))
            runs = table[table.estimator == name]
            if runs.empty:
                ax.text(0.5, 0.5, "not run", ha="center", va="center", transform=ax.transAxes)
            color = bound_color(name)
            for _, run in runs.groupby("seed"):
                ax.plot(run.step, run.mi, color=color, alpha=0.2, linewidth=0.5)
            if not runs.empty:
                mean = runs.groupby("step").mi.mean()
                ax.plot(mean.index, _smooth(mean, smoothing), color=color, linewidth=1.8,
                        label="estimate (smoothed)")
            ax.step(truth.index, truth.to_numpy(), where="post", color=TRUTH_COLOR,
                    linewidth=1.2, label="true MI")
            if spec.base == "infonce":
                ax.axhline(math.log(batch_size), color=TRUTH_COLOR, linestyle=":",
                           linewidth=1.2, label=f"log {batch_size}")
                ax.legend(loc="upper left", fontsize="small")
            if row == 2:
                ax.set_xlabel("training step")
            if column == 0:
                ax.set_ylabel("MI (nats)")
    axes[0, 0].legend(loc="upper left", fontsize="small")
    axes[0, 0].set_ylim(*(ylim or (-1.0, top)))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- explicit MI

EXPLICIT_COLOR = "tab:green"
"""The colour of the second-order (explicit) estimators, which are neither original nor
regularized bounds."""

_LINESTYLES = ("-", "--", "-.", ":")


def estimator_color(name: str) -> str:
    """:func:`bound_color` for the twelve bounds, :data:`EXPLICIT_COLOR` for any other name."""
    return bound_color(name) if name.lower() in BOUND_NAMES else EXPLICIT_COLOR


def plot_staircase_comparison(
    table: pd.DataFrame,
    *,
    smoothing: int = 50,
    batch_size: int | None = None,
    labels: Mapping[str, str] | None = None,
    title: str | None = None,
) -> plt.Figure:
    """Every estimator's MI estimate on the staircase, on one axis, against the true MI.

    Bounds get the paper's colours (original blue, regularized orange), other estimators
    :data:`EXPLICIT_COLOR`; estimators of one colour differ by line style. Each curve is
    the centred moving average over ``smoothing`` steps of the mean over seeds.

    Args:
        table: columns ``estimator, step, true_mi, mi`` (and optionally ``seed``), e.g. the
            output of :func:`remi_tutorial.benchmarks.gaussian.run_gaussian_benchmark` with
            the histories of other estimators appended.
        smoothing: the moving-average window, in steps.
        batch_size: draw InfoNCE's ``log batch_size`` cap when given.
        labels: estimator -> legend label (default: the estimator's name).
        title: the axis title.

    Returns:
        The figure.
    """
    if table.empty:
        raise ValueError("the table is empty: nothing to plot")
    sns.set_theme(style="whitegrid", context="notebook")
    fig, ax = plt.subplots(figsize=(9, 5))
    truth = table.groupby("step").true_mi.first()
    ax.step(truth.index, truth.to_numpy(), where="post", color=TRUTH_COLOR, linewidth=1.5,
            label="true MI")
    used: dict[str, int] = {}
    for name in table.estimator.unique():
        color = estimator_color(name)
        style = _LINESTYLES[used.get(color, 0) % len(_LINESTYLES)]
        used[color] = used.get(color, 0) + 1
        mean = table[table.estimator == name].groupby("step").mi.mean()
        ax.plot(mean.index, _smooth(mean, smoothing), color=color, linestyle=style,
                linewidth=1.8, label=(labels or {}).get(name, name))
    if batch_size is not None:
        ax.axhline(math.log(batch_size), color=TRUTH_COLOR, linestyle=":", linewidth=1.0,
                   label=f"log {batch_size} (InfoNCE's cap)")
    ax.set_xlabel("step")
    ax.set_ylabel("MI estimate (nats)")
    ax.legend(loc="upper left", fontsize="small", ncol=2)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_estimate_bars(
    values: Mapping[str, float],
    *,
    reference: float | None = None,
    reference_label: str = "true MI",
    colors: Mapping[str, str] | None = None,
    xlabel: str = "MI estimate (nats)",
    title: str | None = None,
    ax: plt.Axes | None = None,
) -> plt.Axes:
    """One horizontal bar per estimate, with a reference (the truth) as a black line.

    Args:
        values: label -> value, drawn top to bottom in this order.
        reference: the value of the black vertical line, or ``None`` for none.
        reference_label: its legend label.
        colors: label -> colour (default :func:`estimator_color` of the label).
        xlabel: the x-axis label.
        title: the axis title.
        ax: draw there (default: a new figure).

    Returns:
        The axis.
    """
    if not values:
        raise ValueError("values is empty: nothing to plot")
    sns.set_theme(style="whitegrid", context="notebook")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 0.5 * len(values) + 1.2))
    names = list(values)
    positions = range(len(names))[::-1]
    ax.barh(list(positions), [values[name] for name in names],
            color=[(colors or {}).get(name, estimator_color(name)) for name in names])
    ax.set_yticks(list(positions), names)
    for position, name in zip(positions, names):
        ax.text(values[name], position, f" {values[name]:.2f}", va="center", fontsize="small")
    largest = max([*values.values(), reference if reference is not None else 0.0, 0.0])
    ax.set_xlim(right=1.15 * largest)  # room for the value labels
    if reference is not None:
        ax.axvline(reference, color=TRUTH_COLOR, linewidth=1.5, label=reference_label)
        ax.legend(loc="best", fontsize="small", framealpha=0.9)
    ax.set_xlabel(xlabel)
    if title:
        ax.set_title(title)
    return ax


def plot_log_truncations(
    orders: tuple[int, ...] = (2, 4, 8), *, low: float = -0.95, high: float = 2.5
) -> plt.Figure:
    """``log(1 + a)`` and its Taylor polynomials ``sum_{k<=K} (-1)^(k+1) a^k / k``.

    The series converges for ``a`` in ``(-1, 1]``; the shaded band marks it. Applied to the
    eigenvalues ``a`` of ``beta * Sigma - I`` this is the log-det series of
    :func:`remi_tutorial.explicit.logdet_series`.

    Args:
        orders: the truncation orders drawn.
        low: the left end of the ``a`` axis, above ``-1``.
        high: the right end.

    Returns:
        The figure.
    """
    sns.set_theme(style="whitegrid", context="notebook")
    fig, ax = plt.subplots(figsize=(7, 4.2))
    a = np.linspace(low, high, 400)
    ax.axvspan(-1.0, 1.0, color="0.92", label="series converges")
    ax.plot(a, np.log1p(a), color=TRUTH_COLOR, linewidth=2, label="log(1 + a)")
    palette = sns.color_palette("viridis", len(orders))
    for color, order in zip(palette, orders):
        polynomial = sum((-1) ** (k + 1) * a ** k / k for k in range(1, order + 1))
        ax.plot(a, polynomial, color=color, linestyle="--", label=f"order {order}")
    ax.set_ylim(-3.5, 2.0)
    ax.set_xlim(low, high)
    ax.set_xlabel("a  (an eigenvalue of beta * Sigma - I)")
    ax.set_ylabel("value")
    ax.set_title("Truncated series of log(1 + a)")
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    return fig


def plot_image_benchmark(
    curves: pd.DataFrame,
    runs: pd.DataFrame | None = None,
    *,
    value: str = "mi",
    truth: float | None = None,
    ylim: tuple[float, float] | None = None,
    ylabel: str = "MI estimate (nats)",
    title: str | None = None,
) -> plt.Figure:
    """A training curve of each loss of an image benchmark, original beside regularized.

    One panel per original loss (MINE, SMILE, InfoNCE, NWJ, TUBA, JS) holding the
    original (blue) and its regularized version (orange), one line per seed. Values outside
    ``ylim`` (such as the astronomically negative estimates just before a divergence) are
    cut off by the axes; given ``runs``, each panel says which of its runs diverged and at
    which step (a run that diverged at its first step has no curve at all). For
    ``value="marginal"`` each panel draws its family's value at the optimal critic as a
    dotted line (0 for the DV family, 1 for NWJ and TUBA, ``1/e`` for JS).

    Args:
        curves: training curves from
            :func:`remi_tutorial.benchmarks.image_cells.run_sweep` (columns ``loss, seed,
            epoch`` and ``value``) for one benchmark and dataset.
        runs: the matching summary rows (columns ``loss, diverged_at``), or ``None``.
        value: the column to draw: ``"mi"``, ``"joint"``, ``"marginal"`` or ``"penalty"``.
        truth: the true value, drawn as a black dashed line (``H(Y)`` for ``"mi"``).
        ylim: the y range; default from -1 to 1.25 times ``truth`` (or the data's range).
        ylabel: the y axis label.
        title: the figure's title.

    Returns:
        The figure.
    """
    if curves.empty:
        raise ValueError("the table is empty: nothing to plot")
    sns.set_theme(style="whitegrid", context="notebook")
    fig, axes = plt.subplots(2, 3, figsize=(10.5, 6.5), sharex=True, sharey=True)
    for ax, base in zip(axes.flat, ORIGINAL_NAMES):
        pair = [bound_spec(name) for name in (base, regularized_name(base))]
        ax.set_title(f"{pair[0].label} vs {pair[1].label}")
        notes = []
        for name, label in ((spec.name, spec.label) for spec in pair):
            color = bound_color(name)
            for index, (_, run) in enumerate(curves[curves.loss == name].groupby("seed")):
                ax.plot(run.epoch, run[value], color=color, linewidth=1.4, alpha=0.8,
                        label=label if index == 0 else None)
            if runs is not None:
                mine = runs[runs.loss == name]
                stopped = mine.diverged_at.dropna().astype(int)
                if len(stopped):
                    steps = ", ".join(str(step) for step in sorted(set(stopped)))
                    notes.append((f"{label}: {len(stopped)} of {len(mine)} runs diverged "
                                  f"(step {steps})", color))
        if truth is not None:
            ax.axhline(truth, color=TRUTH_COLOR, linestyle="--", linewidth=1.2, label="true value")
        if value == "marginal":
            reference = _marginal_at_optimum(base)
            ax.axhline(reference, color=TRUTH_COLOR, linestyle=":", linewidth=1.2,
                       label=f"at the optimum ({reference:.3g})")
        for line, (note, color) in enumerate(notes):
            ax.text(0.03, 0.55 - 0.09 * line, note, transform=ax.transAxes, color=color,
                    fontsize="small", fontweight="bold")
        ax.legend(loc="upper left", fontsize="small")
    for ax in axes[1]:
        ax.set_xlabel("epoch")
    for ax in axes[:, 0]:
        ax.set_ylabel(ylabel)
    if ylim is None and truth is not None:
        ylim = (-1.0, 1.25 * truth)
    if ylim is not None:
        axes[0, 0].set_ylim(*ylim)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_image_accuracy(
    runs: pd.DataFrame,
    *,
    chance: float | None = None,
    reference: float | None = None,
    reference_label: str = "untrained network",
    ylabel: str = "test accuracy",
    title: str | None = None,
) -> plt.Figure:
    """Each loss's test accuracy, original beside regularized, one dot per seed.

    Args:
        runs: summary rows of :func:`remi_tutorial.benchmarks.image_cells.run_sweep` for one
            benchmark and dataset (columns ``loss, base_loss, regularized, seed,
            test_accuracy``).
        chance: the accuracy of guessing, drawn as a dotted line.
        reference: another accuracy to draw as a dashed line (e.g. an untrained network's).
        reference_label: its legend label.
        ylabel: the y axis label.
        title: the figure's title.

    Returns:
        The figure.
    """
    if runs.empty:
        raise ValueError("the table is empty: nothing to plot")
    sns.set_theme(style="whitegrid", context="notebook")
    losses = ORIGINAL_NAMES
    labels = [bound_spec(name).label for name in losses]
    fig, ax = plt.subplots(figsize=(9, 4.2))
    for offset, regularized in ((-0.17, False), (0.17, True)):
        color = REGULARIZED_COLOR if regularized else ORIGINAL_COLOR
        for position, base in enumerate(losses):
            accuracy = runs[(runs.base_loss == base) & (runs.regularized == regularized)].test_accuracy
            if accuracy.empty:
                continue
            ax.bar(position + offset, accuracy.mean(), width=0.32, color=color, alpha=0.75,
                   label=("regularized" if regularized else "original") if position == 0 else None)
            ax.plot([position + offset] * len(accuracy), accuracy, "o", color="black", markersize=3)
    if chance is not None:
        ax.axhline(chance, color=TRUTH_COLOR, linestyle=":", linewidth=1.2, label="chance")
    if reference is not None:
        ax.axhline(reference, color=TRUTH_COLOR, linestyle="--", linewidth=1.0, label=reference_label)
    ax.set_xticks(range(len(losses)), labels)
    ax.set_ylim(0, 1)
    ax.set_ylabel(ylabel)
    ax.legend(loc="upper right", fontsize="small")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- the symptoms

JOINT_PAIR_COLOR = "tab:green"
"""The colour of scores of pairs drawn from the joint distribution P."""
MARGINAL_PAIR_COLOR = "tab:red"
"""The colour of scores of pairs drawn from the product of marginals Q."""


def plot_batch_size_sweep(summary: pd.DataFrame, *, title: str | None = None) -> plt.Figure:
    """Estimates at a fixed critic against batch size: their mean and spread, then their variance.

    Left: each bound's mean estimate (line) with a band of one standard deviation, against
    the true MI (black). Right: the standard deviation on log-log axes, with a
    ``1/sqrt(B)`` reference line. Bounds of one colour differ by line style and marker.

    Args:
        summary: columns ``bound, batch_size, mean, std, true_mi``, e.g. from
            :func:`remi_tutorial.benchmarks.analytic_critic.batch_size_summary`.
        title: the figure's title.

    Returns:
        The figure.
    """
    if summary.empty:
        raise ValueError("the summary is empty: nothing to plot")
    sns.set_theme(style="whitegrid", context="notebook")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    markers = ("o", "s", "^", "D")
    used: dict[str, int] = {}
    for name in summary.bound.unique():
        rows = summary[summary.bound == name].sort_values("batch_size")
        color = estimator_color(name)
        index = used.get(color, 0)
        used[color] = index + 1
        style = dict(color=color, linestyle=_LINESTYLES[index % len(_LINESTYLES)],
                     marker=markers[index % len(markers)], label=name)
        left.plot(rows.batch_size, rows["mean"], **style)
        left.fill_between(rows.batch_size, rows["mean"] - rows["std"], rows["mean"] + rows["std"],
                          color=color, alpha=0.12 if index == 0 else 0.06)
        right.plot(rows.batch_size, rows["std"], **style)
    truth = float(summary.true_mi.iloc[0])
    left.axhline(truth, color=TRUTH_COLOR, linestyle="--", label="true MI")
    sizes = np.sort(summary.batch_size.unique())
    reference = summary[summary.batch_size == sizes[0]]["std"].max() * np.sqrt(sizes[0] / sizes)
    right.plot(sizes, reference, color=TRUTH_COLOR, linestyle=":", label=r"$\propto 1/\sqrt{B}$")
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size $B$")
        ax.legend(loc="best", fontsize="small")
    right.set_yscale("log")
    left.set_ylabel("estimate (nats): mean ± 1 std")
    right.set_ylabel("standard deviation (nats)")
    left.set_title("mean estimate against the truth")
    right.set_title("spread of the estimate")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_score_histograms(
    scores: pd.DataFrame, *, bins: int = 60, title: str | None = None
) -> plt.Figure:
    """Histograms of a trained critic's scores on joint pairs and on marginal pairs.

    One panel per estimator. Well-separated histograms mean the critic tells the two
    distributions apart, whatever its loss is doing.

    Args:
        scores: columns ``estimator, pair ("joint" or "marginal"), score``, e.g. from
            :func:`remi_tutorial.benchmarks.symptoms.pair_scores`.
        bins: histogram bins per panel.
        title: the figure's title.

    Returns:
        The figure.
    """
    if scores.empty:
        raise ValueError("the table is empty: nothing to plot")
    sns.set_theme(style="whitegrid", context="notebook")
    names = list(scores.estimator.unique())
    fig, axes = plt.subplots(1, len(names), figsize=(4.6 * len(names), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names):
        rows = scores[scores.estimator == name]
        edges = np.histogram_bin_edges(rows.score, bins=bins)
        for pair, color, label in (("marginal", MARGINAL_PAIR_COLOR, "marginal pairs  $Q$"),
                                   ("joint", JOINT_PAIR_COLOR, "joint pairs  $P$")):
            ax.hist(rows[rows.pair == pair].score, bins=edges, color=color, alpha=0.6,
                    label=label, density=True)
        ax.set_title(name)
        ax.set_xlabel("critic score $T(x, y)$")
        ax.set_ylabel("density")
        ax.legend(loc="upper center", fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_alpha_sweep(
    summary: pd.DataFrame, *, drift: str = "marginal_drift", title: str | None = None
) -> plt.Figure:
    """The penalty weight's trade-off: the estimate and the drift against ``alpha``.

    One column per setting. Top: the estimate (mean over the last steps, with one standard
    deviation of the per-step estimate) against the true MI; a log scale where some estimate
    exceeds 20 times the truth. Bottom: how far a term moved over the second half of
    training (by default the marginal term, which for the DV family is the log-partition the
    penalty pins), on a log scale. ``alpha = 0`` (the unregularized bound)
    is drawn in the original colour, every ``alpha > 0`` in the regularized colour; the
    ``alpha`` axis is linear below ``1e-3`` (so that 0 fits) and logarithmic above. Runs
    marked ``failed`` are drawn as red crosses, labelled "failed", in both rows: a run that
    never learned has a small drift for the wrong reason.

    Args:
        summary: columns ``setting, alpha, estimate, estimate_std, true_mi`` and ``drift``,
            e.g. :func:`remi_tutorial.benchmarks.symptoms.symptom_summary` with the
            ``setting`` and ``alpha`` columns added; optionally a boolean ``failed`` column
            (e.g. the runs :func:`remi_tutorial.diagnose.diagnose` finds collapsed).
        drift: the column drawn in the bottom row, ``"marginal_drift"`` or ``"joint_drift"``.
        title: the figure's title.

    Returns:
        The figure.
    """
    if summary.empty:
        raise ValueError("the summary is empty: nothing to plot")
    sns.set_theme(style="whitegrid", context="notebook")
    settings = list(summary.setting.unique())
    fig, axes = plt.subplots(2, len(settings), figsize=(5.2 * len(settings), 7), squeeze=False,
                             sharex=True)
    for column, setting in enumerate(settings):
        rows = summary[summary.setting == setting].sort_values("alpha")
        top, bottom = axes[0, column], axes[1, column]
        colors = [ORIGINAL_COLOR if alpha == 0 else REGULARIZED_COLOR for alpha in rows.alpha]
        top.plot(rows.alpha, rows.estimate, color=REGULARIZED_COLOR, linewidth=1, zorder=1)
        top.errorbar(rows.alpha, rows.estimate, yerr=rows.estimate_std, fmt="none",
                     ecolor="gray", elinewidth=1, capsize=3, zorder=1)
        top.scatter(rows.alpha, rows.estimate, c=colors, s=40, zorder=2)
        truth = float(rows.true_mi.iloc[0])
        top.axhline(truth, color=TRUTH_COLOR, linestyle="--", label="true MI")
        if (rows.estimate > 0).all() and rows.estimate.max() > 20 * truth:
            top.set_yscale("log")
        moved = rows[drift].abs()
        bottom.plot(rows.alpha, moved, color=REGULARIZED_COLOR, linewidth=1, zorder=1)
        bottom.scatter(rows.alpha, moved, c=colors, s=40, zorder=2)
        bottom.set_yscale("log")
        failed = rows[rows.failed.astype(bool)] if "failed" in rows else rows.iloc[:0]
        for ax, ys in ((top, failed.estimate), (bottom, failed[drift].abs())) if len(failed) else ():
            ax.scatter(failed.alpha, ys, marker="x", color=FAILED_COLOR, s=120, zorder=3,
                       label="failed run")
            for alpha, y in zip(failed.alpha, ys):
                ax.annotate("failed", (alpha, y), textcoords="offset points", xytext=(-30, 8),
                            color=FAILED_COLOR, fontsize="small", fontweight="bold")
        top.set_title(setting)
        top.set_ylabel("estimate (nats)")
        bottom.set_ylabel(f"|{drift.replace('_', ' ')}| over the second half")
        bottom.set_xlabel(r"penalty weight $\alpha$")
        bottom.set_xscale("symlog", linthresh=1e-3)
        top.legend(loc="best", fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_terms_with_targets(
    curves: pd.DataFrame,
    targets: Mapping[str, tuple[str, float]],
    *,
    title: str | None = None,
) -> plt.Figure:
    """The two terms of several losses over training, the marginal term against its target.

    Left: ``E_P[T]`` (``joint``); right: the marginal term (``marginal``: ``log E_Q[e^T]`` for
    the DV family, ``E_Q[e^(T-1)]`` for the NWJ family), with each family's target as a black
    dashed line named at its right end. One colour per loss; a curve that ends early marks a
    run that diverged.

    Args:
        curves: training curves (columns ``loss, seed, epoch, joint, marginal``), e.g. from
            :func:`remi_tutorial.benchmarks.image_cells.run_sweep`.
        targets: ``loss -> (name of its target, value)``, e.g. ``{"mine": ("DV: 0", 0.0),
            "nwj": ("NWJ: 1", 1.0), "js": ("JS: 1/e", math.exp(-1))}``: the losses to draw, in
            this order.
        title: the figure's title.

    Returns:
        The figure.
    """
    missing = set(targets) - set(curves.loss)
    if missing:
        raise ValueError(f"no curves for {sorted(missing)}")
    sns.set_theme(style="whitegrid", context="notebook")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    colors = dict(zip(targets, sns.color_palette("tab10", len(targets))))
    for name, value in dict(targets.values()).items():
        right.axhline(value, color=TRUTH_COLOR, linestyle="--", linewidth=1.0, alpha=0.6)
        right.annotate(f"target {name}", (1.0, value), xycoords=("axes fraction", "data"),
                       xytext=(4, 0), textcoords="offset points", va="center", fontsize="small")
    for loss in targets:
        for index, (_, run) in enumerate(curves[curves.loss == loss].groupby("seed")):
            label = bound_spec(loss).label if index == 0 else None
            left.plot(run.epoch, run.joint, color=colors[loss], linewidth=1.3, label=label)
            right.plot(run.epoch, run.marginal, color=colors[loss], linewidth=1.3, label=label)
    left.set_ylabel("joint term $E_P[T]$")
    right.set_ylabel("marginal term")
    for ax in (left, right):
        ax.set_xlabel("epoch")
    left.legend(fontsize="small", ncol=2)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
