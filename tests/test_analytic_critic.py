"""Estimates at the Gaussian's analytic optimal critic, against batch size."""

import math

import pandas as pd
import pytest

from remi_tutorial.benchmarks.analytic_critic import (
    batch_size_summary,
    estimates_at_analytic_critic,
)


def test_table_has_one_row_per_bound_batch_size_and_repeat():
    table = estimates_at_analytic_critic(("mine", "nwj"), (4, 8), mi=1.0, dim=2, repeats=3)
    assert list(table.columns) == ["bound", "batch_size", "repeat", "estimate", "true_mi"]
    assert len(table) == 2 * 2 * 3


def test_every_bound_sees_the_same_batches():
    # MINE is shift invariant, so MINE at two shifts agrees batch by batch only if the
    # batches are the same.
    table = estimates_at_analytic_critic(("mine", "remine"), (8,), mi=1.0, dim=2, repeats=4,
                                         shifts={"mine": 0.0, "remine": 3.0})
    mine = table[table.bound == "mine"].estimate.to_numpy()
    remine = table[table.bound == "remine"].estimate.to_numpy()
    assert mine == pytest.approx(remine)


def test_dv_and_nwj_at_their_optima_are_near_the_truth_with_large_batches():
    table = estimates_at_analytic_critic(("mine", "nwj"), (400,), mi=2.0, dim=5, repeats=5)
    means = table.groupby("bound").estimate.mean()
    assert means["mine"] == pytest.approx(2.0, abs=0.1)
    assert means["nwj"] == pytest.approx(2.0, abs=0.1)


def test_js_at_its_optimum_reports_the_truth_minus_one_over_e():
    table = estimates_at_analytic_critic(("js",), (400,), mi=2.0, dim=5, repeats=5)
    assert table.estimate.mean() == pytest.approx(2.0 - 1 / math.e, abs=0.1)


def test_unknown_bound_raises_value_error():
    with pytest.raises(ValueError, match="unknown bound"):
        estimates_at_analytic_critic(("mine", "nope"), (8,))


def test_summary_bias_and_standard_error_follow_their_definitions():
    table = pd.DataFrame(dict(bound="b", batch_size=8, repeat=[0, 1, 2, 3],
                              estimate=[1.0, 2.0, 3.0, 4.0], true_mi=2.0))
    row = batch_size_summary(table).iloc[0]
    assert row["mean"] == pytest.approx(2.5)
    assert row["bias"] == pytest.approx(0.5)
    std = pd.Series([1.0, 2.0, 3.0, 4.0]).std()
    assert row["std"] == pytest.approx(std)
    assert row["standard_error"] == pytest.approx(std / 2)
