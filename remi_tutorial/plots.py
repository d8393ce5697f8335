"""Figures drawn from the tidy tables that training and the benchmarks return.

Colours follow the paper: an original bound in blue, its regularized counterpart in orange,
the ground truth in black.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

__all__ = ["ORIGINAL_COLOR", "REGULARIZED_COLOR", "TRUTH_COLOR", "bound_color", "plot_training",
           "plot_gaussian_benchmark"]

ORIGINAL_COLOR = "tab:blue"
REGULARIZED_COLOR = "tab:orange"
TRUTH_COLOR = "black"


def bound_color(name: str) -> str:
    """The paper's colour for a bound name: orange for a regularized one (``re...``), else blue."""
    return REGULARIZED_COLOR if name.lower().startswith("re") else ORIGINAL_COLOR


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
    layout = [
        ["mine", "remine", "smile", "resmile"],
        ["infonce", "reinfonce", "nwj", "renwj"],
        ["tuba", "retuba", "js", "rejs"],
    ]
    labels = {"mine": "MINE", "smile": "SMILE", "infonce": "InfoNCE", "nwj": "NWJ",
              "tuba": "TUBA", "js": "JS"}
    fig, axes = plt.subplots(3, 4, figsize=(15, 9.5), sharex=True, sharey=True)
    truth = table.groupby("step").true_mi.first()
    top = 1.3 * float(truth.max())
    for row, names in enumerate(layout):
        for column, name in enumerate(names):
            ax = axes[row, column]
            base = name[2:] if name.startswith("re") else name
            label = ("Re" + labels[base]) if name.startswith("re") else labels[base]
            ax.set_title(label, color=bound_color(name))
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
            if base == "infonce":
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
