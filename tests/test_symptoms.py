"""The one-hot symptom experiments: stacked training, the run summary, the pair scores."""

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch

from remi_tutorial.bounds import get_bound
from remi_tutorial.critics import OneHotTableCritic
from remi_tutorial.stacked import StackedConcatCritic
from remi_tutorial.benchmarks.symptoms import (
    DRIFTING,
    EXPLOSION,
    exact_bound_values,
    pair_scores,
    symptom_summary,
    train_one_hot,
)

TINY = dataclasses.replace(DRIFTING, num_classes=4, batch_size=8, hidden_dims=(8,), steps=12)


def test_estimators_with_the_same_bound_train_identically():
    run = train_one_hot({"a": get_bound("mine"), "b": get_bound("mine")}, TINY, progress=False)
    a = run.history[run.history.estimator == "a"].drop(columns="estimator").reset_index(drop=True)
    b = run.history[run.history.estimator == "b"].drop(columns="estimator").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


def test_training_beside_another_bound_equals_training_alone():
    together = train_one_hot({"mine": get_bound("mine"), "nwj": get_bound("nwj")}, TINY,
                             progress=False).history
    alone = train_one_hot({"nwj": get_bound("nwj")}, TINY, progress=False).history
    np.testing.assert_allclose(together[together.estimator == "nwj"].mi.to_numpy(),
                               alone.mi.to_numpy(), rtol=1e-5, atol=1e-5)


def test_history_names_its_estimators_and_reports_log_k():
    run = train_one_hot({"x": get_bound("mine"), "y": get_bound("remine")}, TINY, progress=False)
    assert list(run.history.estimator.unique()) == ["x", "y"]
    assert run.history.true_mi.iloc[0] == pytest.approx(np.log(4))
    assert len(run.history) == 2 * TINY.steps


def test_steps_argument_overrides_the_setting():
    run = train_one_hot({"x": get_bound("mine")}, TINY, steps=5, progress=False)
    assert len(run.history) == 5 and run.setting.steps == 5


def test_explosion_setting_trains_without_table_lookup():
    tiny = dataclasses.replace(EXPLOSION, num_classes=4, hidden_dims=(8,), steps=3)
    run = train_one_hot({"x": get_bound("mine")}, tiny, progress=False)
    assert isinstance(run.critic, StackedConcatCritic)
    assert run.history.mi.notna().all() and len(run.history) == 3


def test_drifting_setting_scores_through_the_table_lookup():
    run = train_one_hot({"x": get_bound("mine")}, TINY, progress=False)
    assert isinstance(run.critic, OneHotTableCritic)


def test_unknown_optimizer_raises_value_error():
    with pytest.raises(ValueError, match="optimizer must be"):
        train_one_hot({"x": get_bound("mine")}, dataclasses.replace(TINY, optimizer="rmsprop"))


def _history(joint, marginal, mi):
    steps = len(joint)
    return pd.DataFrame(dict(estimator="run", step=np.arange(steps), true_mi=1.0, mi=mi,
                             joint=joint, marginal=marginal))


def test_joint_drift_is_the_move_of_the_joint_term_over_the_second_half():
    steps = np.arange(1000, dtype=float)
    summary = symptom_summary(_history(0.01 * steps, 0.01 * steps, np.ones(1000)), window=100)
    # last window: mean step 949.5; window ending at mid-run: mean step 449.5
    assert summary.joint_drift.iloc[0] == pytest.approx(0.01 * 500)
    assert summary.marginal_drift.iloc[0] == pytest.approx(0.01 * 500)


def test_summary_estimate_is_the_mean_over_the_last_window():
    mi = np.r_[np.zeros(900), np.full(100, 3.0)]
    summary = symptom_summary(_history(np.zeros(1000), np.zeros(1000), mi), window=100)
    assert summary.estimate.iloc[0] == pytest.approx(3.0)
    assert summary.max_abs_estimate.iloc[0] == pytest.approx(3.0)


def test_summary_of_a_too_short_history_raises_value_error():
    with pytest.raises(ValueError, match="fewer than two windows"):
        symptom_summary(_history(np.zeros(50), np.zeros(50), np.zeros(50)), window=100)


class _FixedTable(torch.nn.Module):
    """A 'critic' whose score table is fixed: T(a, b) = 10 a + b for classes a, b."""

    def __init__(self, k):
        super().__init__()
        self.table = torch.nn.Parameter(
            (10.0 * torch.arange(k)[:, None] + torch.arange(k)[None, :])[None]
        )

    def forward(self, x, y):
        return x @ self.table[0] @ y.T


def test_joint_pair_scores_come_from_matched_classes():
    scores = pair_scores(_FixedTable(5), ["fixed"], 5, samples=500)
    joint = scores[scores.pair == "joint"].score
    assert set(joint.unique()) <= {11.0 * c for c in range(5)}


def test_marginal_pair_classes_match_at_the_rate_one_over_k():
    scores = pair_scores(_FixedTable(5), ["fixed"], 5, samples=20_000)
    marginal = scores[scores.pair == "marginal"].score.to_numpy()
    matched = np.isin(marginal, [11.0 * c for c in range(5)]).mean()
    assert matched == pytest.approx(0.2, abs=0.01)


def test_exact_values_of_a_known_table_match_the_closed_form():
    # T(a, b) = 10 a + b: E_P[T] = mean_c 11 c, E_Q[e^T] = mean_{a,b} e^(10 a + b).
    k = 3
    values = exact_bound_values(_FixedTable(k), ["fixed"], k).iloc[0]
    classes = np.arange(k)
    joint = np.mean(11.0 * classes)
    log_partition = np.log(np.mean(np.exp(10.0 * classes[:, None] + classes[None, :])))
    assert values.joint == pytest.approx(joint)
    assert values.dv == pytest.approx(joint - log_partition)
    assert values.nwj == pytest.approx(joint - np.exp(log_partition - 1))


def test_exact_dv_of_the_optimal_one_hot_critic_approaches_log_k():
    # log dP/dQ = log K on matched pairs and -inf elsewhere; a large gap approximates it.
    k = 5
    table = torch.where(torch.eye(k, dtype=torch.bool), math.log(k), -30.0)

    class Table(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.t = torch.nn.Parameter(table[None].double())

        def forward(self, x, y):
            return x.double() @ self.t[0] @ y.double().T

    values = exact_bound_values(Table(), ["optimal"], k).iloc[0]
    assert values.dv == pytest.approx(math.log(k), abs=1e-6)
    assert values.nwj == pytest.approx(math.log(k) - 1 / math.e, abs=1e-6)
