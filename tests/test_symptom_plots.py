"""The figures of the symptoms chapters."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from remi_tutorial.plots import (  # noqa: E402
    ORIGINAL_COLOR,
    REGULARIZED_COLOR,
    plot_alpha_sweep,
    plot_batch_size_sweep,
    plot_score_histograms,
)


def _sweep(estimates):
    alphas = [0.0, 0.01, 0.1, 1.0][: len(estimates)]
    return pd.DataFrame(dict(setting="s", alpha=alphas, estimate=estimates,
                             estimate_std=0.1, marginal_drift=[1.0, 0.1, 0.05, 0.05][: len(estimates)],
                             true_mi=2.0))


def test_alpha_sweep_colours_alpha_zero_as_the_original_bound():
    fig = plot_alpha_sweep(_sweep([2.0, 2.1, 2.0, 1.9]))
    colors = fig.axes[0].collections[-1].get_facecolors()
    assert np.allclose(colors[0], matplotlib.colors.to_rgba(ORIGINAL_COLOR))
    assert np.allclose(colors[1], matplotlib.colors.to_rgba(REGULARIZED_COLOR))
    plt.close(fig)


def test_alpha_sweep_uses_a_log_scale_for_estimates_far_above_the_truth():
    wide, narrow = plot_alpha_sweep(_sweep([2000.0, 200.0, 20.0, 2.0])), plot_alpha_sweep(
        _sweep([2.0, 2.1, 2.0, 1.9]))
    assert wide.axes[0].get_yscale() == "log" and narrow.axes[0].get_yscale() == "linear"
    plt.close("all")


def test_alpha_sweep_has_two_rows_per_setting():
    table = pd.concat([_sweep([2.0, 2.1, 2.0, 1.9]).assign(setting=s) for s in ("a", "b")])
    fig = plot_alpha_sweep(table)
    assert len(fig.axes) == 4
    plt.close(fig)


def test_batch_size_sweep_draws_the_truth_as_a_line():
    summary = pd.DataFrame(dict(bound="mine", batch_size=[8, 16, 32], mean=[2.5, 2.2, 2.1],
                                std=[1.0, 0.7, 0.5], true_mi=2.0))
    fig = plot_batch_size_sweep(summary)
    assert any(np.allclose(line.get_ydata(), 2.0) for line in fig.axes[0].get_lines())
    plt.close(fig)


def test_score_histograms_have_one_panel_per_estimator():
    scores = pd.DataFrame(dict(estimator=np.repeat(["a", "b"], 20),
                               pair=np.tile(np.repeat(["joint", "marginal"], 10), 2),
                               score=np.arange(40.0)))
    fig = plot_score_histograms(scores)
    assert [ax.get_title() for ax in fig.axes] == ["a", "b"]
    plt.close(fig)


@pytest.mark.parametrize("plot", [plot_alpha_sweep, plot_batch_size_sweep, plot_score_histograms])
def test_empty_tables_raise_value_error(plot):
    with pytest.raises(ValueError, match="empty"):
        plot(pd.DataFrame())


def test_alpha_sweep_draws_the_requested_drift_column():
    table = _sweep([2.0, 2.1, 2.0, 1.9]).assign(joint_drift=[3.0, 2.0, 1.0, 0.5])
    fig = plot_alpha_sweep(table, drift="joint_drift")
    assert np.allclose(fig.axes[1].get_lines()[0].get_ydata(), [3.0, 2.0, 1.0, 0.5])
    assert "joint drift" in fig.axes[1].get_ylabel()
    plt.close(fig)


def test_alpha_sweep_keeps_a_linear_scale_for_an_estimate_collapsed_to_zero():
    fig = plot_alpha_sweep(_sweep([2.0, 2.1, 2.0, 1e-6]))
    assert fig.axes[0].get_yscale() == "linear"
    plt.close(fig)


def test_alpha_sweep_marks_failed_runs_with_a_cross_in_both_rows():
    table = _sweep([2.0, 2.1, 2.0, 0.0]).assign(failed=[False, False, False, True])
    fig = plot_alpha_sweep(table)
    for ax in fig.axes:
        red = matplotlib.colors.to_rgba("tab:red")
        crosses = [c for c in ax.collections
                   if len(c.get_facecolors()) and np.allclose(c.get_facecolors()[0], red)]
        assert len(crosses) == 1 and np.allclose(crosses[0].get_offsets()[:, 0], [1.0])
        assert any(text.get_text() == "failed" for text in ax.texts)
    plt.close(fig)


@pytest.mark.parametrize("name, reference", [("mine", 0.0), ("remine", 0.0), ("nwj", 1.0),
                                             ("renwj", 1.0), ("tuba", 1.0), ("js", np.exp(-1.0)),
                                             ("rejs", np.exp(-1.0))])
def test_training_plot_draws_each_family_its_marginal_at_the_optimum(name, reference):
    from remi_tutorial.plots import plot_training

    history = pd.DataFrame(dict(step=range(4), mi=1.0, true_mi=1.0, joint=1.0, marginal=0.5))
    fig = plot_training({name: history})
    levels = [line.get_ydata()[0] for line in fig.axes[1].get_lines() if line.get_linestyle() == ":"]
    assert np.allclose(levels, [reference])
    plt.close(fig)
