"""diagnose: synthetic histories with each symptom and without any, then a real drifting run."""

import math
import types

import numpy as np
import pandas as pd
import pytest

from remi_tutorial.bounds import REGISTRY, bound_spec, get_bound
from remi_tutorial.diagnose import SYMPTOMS, Diagnosis, diagnose, marginal_target

STEPS = 2400


def _history(mi, marginal, *, family="dv", estimator="mine", true_mi=2.0, objective=None):
    """A history in train()'s format from per-step estimates and (log-space) marginal terms.

    ``marginal`` is ``log E_Q[e^T]``; for the NWJ family the recorded column is
    ``E_Q[e^(T-1)] = exp(marginal)`` and ``joint = mi + E_Q[e^(T-1)]``.
    """
    mi = np.asarray(mi, dtype=float)
    marginal = np.broadcast_to(np.asarray(marginal, dtype=float), mi.shape)
    recorded = marginal if family == "dv" else np.exp(marginal)
    table = pd.DataFrame({
        "step": np.arange(len(mi)),
        "true_mi": np.broadcast_to(true_mi, mi.shape).astype(float),
        "mi": mi,
        "objective": mi if objective is None else objective,
        "joint": mi + recorded,
        "marginal": recorded,
        "penalty": 0.0,
    })
    if estimator is not None:
        table.insert(1, "estimator", estimator)
    return table


def _noise(scale, seed, n=STEPS):
    return scale * np.random.default_rng(seed).standard_normal(n)


def _flat_run(estimator="mine", family="dv", seed=0, level=1.9):
    return _history(level + _noise(0.3, seed), 0.1 + _noise(0.3, seed + 1),
                    family=family, estimator=estimator)


def _learning_then_flat(estimator="mine", seed=0):
    """The estimate rises from 0 to 1.9 over 300 steps; the marginal term moves with it."""
    t = np.arange(STEPS)
    rise = np.minimum(t / 300, 1.0)
    return _history(1.9 * rise + _noise(0.3, seed), -0.8 * rise + _noise(0.3, seed + 1),
                    estimator=estimator)


def _sliding_run(estimator="mine", start=800, stop=1800, total=-2.0, seed=0, family="dv"):
    """The terms slide together by ``total`` nats between ``start`` and ``stop``."""
    t = np.arange(STEPS)
    slide = total * np.clip((t - start) / (stop - start), 0.0, 1.0)
    return _history(1.9 + _noise(0.3, seed), slide + _noise(0.3, seed + 1),
                    estimator=estimator, family=family)


# --------------------------------------------------------------------------- healthy


@pytest.mark.parametrize("name, family", [("mine", "dv"), ("nwj", "nwj"), ("critic_7", "dv")])
def test_a_flat_run_is_healthy(name, family):
    diagnosis = diagnose(_flat_run(name, family))
    assert diagnosis.healthy == (name,)
    assert diagnosis.findings.empty
    assert f"{name}: healthy" in str(diagnosis)


def test_learning_is_not_drifting():
    assert diagnose(_learning_then_flat()).healthy == ("mine",)


# --------------------------------------------------------------------------- drifting


@pytest.mark.parametrize("name, family", [("mine", "dv"), ("infonce", "dv"), ("tuba", "nwj"),
                                          ("unknown", "dv")])
def test_terms_sliding_together_under_a_flat_estimate_is_drifting(name, family):
    diagnosis = diagnose(_sliding_run(name, family=family))
    assert diagnosis.symptoms(name) == ("drifting",)
    assert diagnosis.began_at(name, "drifting") == pytest.approx(800, abs=60)
    assert "-2" in diagnosis.findings.detail[0]  # moved by about -2 nats


def test_a_slide_of_a_regularized_bound_away_from_its_target_is_drifting():
    diagnosis = diagnose(_sliding_run("remine"))
    assert diagnosis.symptoms("remine") == ("drifting",)
    assert "target 0" in diagnosis.findings.detail[0]


def test_a_regularized_bound_pulled_towards_its_target_is_not_drifting():
    # ReMINE's marginal starts 2 nats off its target and is pulled back to it.
    history = _sliding_run("remine", total=2.0)
    history["marginal"] -= 2.0
    history["joint"] -= 2.0
    assert diagnose(history).healthy == ("remine",)
    # The same movement by an unregularized bound is a drift.
    assert diagnose(history.assign(estimator="mine")).symptoms("mine") == ("drifting",)


def test_a_slide_smaller_than_the_threshold_is_not_drifting():
    history = _sliding_run(total=-0.3)
    assert diagnose(history).healthy == ("mine",)
    assert diagnose(history, drift_threshold=0.2).symptoms("mine") == ("drifting",)


# --------------------------------------------------------------------------- explosion


def test_a_non_finite_objective_is_an_explosion_at_that_step():
    history = _flat_run()
    history.loc[700:, "objective"] = np.inf
    history.loc[700:, "mi"] = np.nan
    diagnosis = diagnose(history)
    assert diagnosis.symptoms("mine") == ("explosion",)
    assert diagnosis.began_at("mine", "explosion") == 700
    assert "inf at step 700" in diagnosis.findings.detail[0]


def test_terms_growing_without_bound_are_an_explosion_from_where_growth_began():
    t = np.arange(STEPS)
    growth = np.maximum(t - 1000, 0) * 0.2  # 280 nats by the end
    history = _history(1.9 + growth + _noise(0.3, 0), -growth / 2 + _noise(0.3, 1))
    diagnosis = diagnose(history)
    assert "explosion" in diagnosis.symptoms("mine")
    assert diagnosis.began_at("mine", "explosion") == pytest.approx(1000, abs=100)
    assert "drifting" not in diagnosis.symptoms("mine")


def test_a_run_stopped_on_a_non_finite_loss_is_an_explosion():
    run = types.SimpleNamespace(history=_flat_run().iloc[:400], diverged_at=400)
    diagnosis = diagnose(run)
    assert diagnosis.symptoms("mine") == ("explosion",)
    assert diagnosis.began_at("mine", "explosion") == 400


def test_one_score_past_float32_exp_range_is_an_explosion():
    history = _flat_run("js", family="nwj")
    history.loc[1500, "marginal"] = np.inf  # E_Q[e^(T-1)] overflowed; JS trains on
    history.loc[1500, "mi"] = -np.inf       # a finite objective meanwhile
    diagnosis = diagnose(history)
    assert diagnosis.symptoms("js") == ("explosion",)
    assert diagnosis.began_at("js", "explosion") == 1500


# --------------------------------------------------------------------------- collapse


def test_an_estimate_at_exactly_zero_is_a_collapse():
    history = _history(np.zeros(STEPS), np.full(STEPS, 5.0), estimator="smile")
    diagnosis = diagnose(history)
    assert diagnosis.symptoms("smile") == ("collapse",)
    assert diagnosis.began_at("smile", "collapse") == 0
    assert "exactly 0" in diagnosis.findings.detail[0]


def test_an_estimate_stuck_at_a_constant_is_a_collapse_from_where_it_stuck():
    history = _flat_run()
    history.loc[300:, "mi"] = 1.2345
    diagnosis = diagnose(history)
    assert diagnosis.symptoms("mine") == ("collapse",)
    assert diagnosis.began_at("mine", "collapse") == 300
    assert "1.2345" in diagnosis.findings.detail[0]


# --------------------------------------------------------------------------- caps


def test_infonce_above_log_n_is_over_cap():
    batch = 64
    mi = np.minimum(math.log(batch) - 0.5 + _noise(0.1, 0), math.log(batch) - 1e-3)
    mi[500:] = math.log(batch) + np.abs(0.3 + _noise(0.05, 1, STEPS - 500))  # a bug's output
    history = _history(mi, 0.0, estimator="infonce", true_mi=np.nan)
    assert diagnose(history).healthy == ("infonce",)  # nothing to compare with
    diagnosis = diagnose(history, candidates=batch)
    assert diagnosis.symptoms("infonce") == ("over cap",)
    assert diagnosis.began_at("infonce", "over cap") == 500
    assert "log N" in diagnosis.findings.detail[0]
    # Below log N there is nothing to report.
    assert diagnose(history.iloc[:500], candidates=batch).healthy == ("infonce",)


def test_a_lower_bound_above_the_true_mi_is_over_cap():
    history = _flat_run()
    history.loc[1200:, "mi"] += 0.6
    diagnosis = diagnose(history)
    assert diagnosis.symptoms("mine") == ("over cap",)
    assert diagnosis.began_at("mine", "over cap") == pytest.approx(1200, abs=60)
    assert "true MI" in diagnosis.findings.detail[0]


def test_an_estimate_above_log_k_is_over_cap():
    history = _flat_run(level=2.7).assign(true_mi=np.nan)
    assert diagnose(history).healthy == ("mine",)
    assert diagnose(history, num_classes=10).symptoms("mine") == ("over cap",)


# --------------------------------------------------------------------------- formats


def test_a_history_without_estimator_or_true_mi_is_one_run():
    history = _sliding_run().drop(columns=["estimator", "true_mi"])
    diagnosis = diagnose(history)
    assert diagnosis.runs == ("run",)
    assert diagnosis.symptoms("run") == ("drifting",)
    named = diagnose(history, bounds="remine")
    assert "target 0" in named.findings.detail[0]


def test_stacked_estimator_indices_map_to_bounds_and_extra_labels_split_runs():
    drifting = _sliding_run(estimator=0)
    flat = _flat_run(estimator=1, family="nwj")
    history = pd.concat([drifting, flat, _sliding_run(estimator=1, family="nwj"),
                         _flat_run(estimator=0)])
    history.insert(2, "seed", np.repeat([0, 0, 1, 1], STEPS))
    diagnosis = diagnose(history, bounds={0: "mine", 1: "nwj"})
    assert diagnosis.by == ("estimator", "seed")
    assert diagnosis.runs == ((0, 0), (1, 0), (1, 1), (0, 1))
    assert diagnosis.healthy == ((1, 0), (0, 1))
    assert list(diagnosis.findings.columns) == ["estimator", "seed", "symptom", "began_at_step", "detail"]
    assert "0 (seed=0): drifting from step" in str(diagnosis)


def test_marginal_targets_come_from_the_registry():
    targets = {name: marginal_target(spec) for name, spec in REGISTRY.items()}
    assert all(targets[name] is None for name in ("mine", "smile", "infonce", "nwj", "tuba", "js"))
    for name, expected in [("remine", 0.0), ("resmile", 0.0), ("reinfonce", 0.0),
                           ("renwj", 0.0), ("retuba", 0.0), ("rejs", -1.0)]:
        assert targets[name] == pytest.approx(expected, abs=1e-9)
    # The authors' ReNWJ penalty sets log E_Q[e^T] = 0, so NWJ's recorded E_Q[e^(T-1)] is 1/e.
    authors = marginal_target(bound_spec("renwj"), variant="authors_code")
    assert authors == pytest.approx(-1.0, abs=1e-9)
    assert marginal_target(bound_spec("remine"), target=1.5) == pytest.approx(1.5, abs=1e-9)


def test_diagnosis_record_and_errors():
    diagnosis = diagnose(_sliding_run())
    assert isinstance(diagnosis, Diagnosis) and set(diagnosis.findings.symptom) <= set(SYMPTOMS)
    assert diagnosis.began_at("mine", "collapse") is None
    with pytest.raises(ValueError, match="no run"):
        diagnosis.symptoms("nwj")
    with pytest.raises(ValueError, match="lacks the column"):
        diagnose(pd.DataFrame({"step": [0, 1]}))
    with pytest.raises(ValueError, match="unknown bound"):
        diagnose(_flat_run(), bounds={"mine": "minee"})


# --------------------------------------------------------------------------- the real thing


def test_mine_drifts_and_nwj_does_not_in_the_symptoms_chapters_drifting_setting():
    """About 5 s: 1,200 steps of the symptoms chapter's drifting setting (MINE's terms start
    sliding after about 500-700 steps, depending on the seed)."""
    from remi_tutorial.benchmarks.symptoms import SETTINGS, train_one_hot

    run = train_one_hot({"mine": get_bound("mine"), "nwj": get_bound("nwj")},
                        SETTINGS["drifting"], seed=0, steps=1200, progress=False)
    diagnosis = diagnose(run)
    assert diagnosis.symptoms("mine") == ("drifting",)
    assert 300 <= diagnosis.began_at("mine", "drifting") <= 1000
    assert diagnosis.healthy == ("nwj",)
