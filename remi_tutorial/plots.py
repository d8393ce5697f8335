"""Figures drawn from the tidy tables that training and the benchmarks return.

Colours follow the paper: an original bound in blue, its regularized counterpart in orange,
the ground truth in black.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

__all__ = ["ORIGINAL_COLOR", "REGULARIZED_COLOR", "TRUTH_COLOR", "bound_color", "plot_training"]

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
