"""estimate_mi: held-out estimate and interval, stacked estimators, early stopping, clear errors."""

import math

import numpy as np
import pytest
import torch

import remi_tutorial.estimate as estimate_module
from remi_tutorial import estimate_mi
from remi_tutorial.tasks import mi_task

from helpers import ExplodingStack

QUICK = dict(max_steps=200, eval_every=50, progress=False)


def gaussian_pairs(n, dim=2, mi=0.5, seed=1):
    return mi_task("gaussian").sample(n, dim, mi, generator=torch.Generator().manual_seed(seed))


def test_held_out_estimate_is_near_the_truth_on_an_easy_gaussian():
    x, y = gaussian_pairs(3000)
    result = estimate_mi(x, y, progress=False)
    assert abs(result.estimate - 0.5) < 0.15
    low, high = result.ci
    assert low < result.estimate < high and high - low < 0.3
    assert result.table.estimator.tolist() == ["remine"]


def test_independent_pairs_read_near_zero():
    x, _ = gaussian_pairs(2000, seed=1)
    _, y = gaussian_pairs(2000, seed=2)
    result = estimate_mi(x, y, **QUICK)
    assert abs(result.estimate) < 0.1


def test_the_estimate_and_its_interval_come_from_the_held_out_pairs_only(monkeypatch):
    seen = {}
    batches_class, terms_function = estimate_module._EpochBatches, estimate_module._held_out_terms

    def spying_batches(x, y, batch_size, seed):
        seen["train"] = x.clone()
        return batches_class(x, y, batch_size, seed)

    def spying_terms(critic, bound, x, y, batch_size):
        seen["held"] = x.clone()
        seen.setdefault("terms", []).append(terms_function(critic, bound, x, y, batch_size))
        return seen["terms"][-1]

    monkeypatch.setattr(estimate_module, "_EpochBatches", spying_batches)
    monkeypatch.setattr(estimate_module, "_held_out_terms", spying_terms)
    x, y = gaussian_pairs(600)
    result = estimate_mi(x, y, held_out=0.25, standardize=False, **QUICK)
    train_rows, held_rows = seen["train"], seen["held"]
    assert len(train_rows) == result.n_train == 450 and len(held_rows) == result.n_held_out == 150
    # the two splits are disjoint and together are the data
    as_set = lambda rows: {tuple(row.tolist()) for row in rows}
    assert not as_set(train_rows) & as_set(held_rows)
    assert as_set(train_rows) | as_set(held_rows) == as_set(x)
    # the estimate is the mean over the held-out batches of the best evaluation, the interval
    # t * s / sqrt(K) around it
    best = list(result.held_out.step).index(result.table.best_step.iloc[0])
    per_batch = seen["terms"][best][:, 0, 0]  # [K]
    assert len(per_batch) == 150 // result.batch_size
    assert result.estimate == pytest.approx(float(per_batch.mean()), abs=1e-12)
    half = (result.ci[1] - result.ci[0]) / 2
    from scipy.stats import t
    expected = t.ppf(0.975, len(per_batch) - 1) * float(per_batch.std()) / math.sqrt(len(per_batch))
    assert half == pytest.approx(expected, rel=1e-9)


def test_each_estimator_is_returned_to_its_best_held_out_evaluation(monkeypatch):
    held = {}
    terms_function = estimate_module._held_out_terms

    def spying_terms(critic, bound, x, y, batch_size):
        held.update(bound=bound, x=x, y=y, batch_size=batch_size)
        return terms_function(critic, bound, x, y, batch_size)

    monkeypatch.setattr(estimate_module, "_held_out_terms", spying_terms)
    x, y = gaussian_pairs(400, dim=5, mi=0.59)  # few pairs, a large critic: it overfits
    result = estimate_mi(x, y, estimator=["mine", "remine"], hidden=(256, 256), embed_dim=32,
                         max_steps=600, eval_every=50, patience=100,
                         **{k: v for k, v in QUICK.items() if k not in ("max_steps", "eval_every")})
    for e, row in enumerate(result.table.itertuples()):
        reads = result.held_out[result.held_out.estimator == row.estimator].set_index("step").mi
        assert row.estimate == reads.max() and row.best_step == reads.idxmax()
        assert reads.iloc[-1] < row.estimate  # training on past the best lowered the reading
    # the returned critic reads exactly those estimates on the held-out pairs again
    again = terms_function(result.critic, held["bound"], held["x"], held["y"], held["batch_size"])
    assert again[:, 0].mean(dim=0).tolist() == pytest.approx(list(result.table.estimate),
                                                             abs=1e-12)


def test_training_batches_read_higher_than_held_out_pairs_when_the_critic_overfits():
    x, y = gaussian_pairs(400, dim=5, mi=0.59)
    result = estimate_mi(x, y, estimator="mine", hidden=(256, 256), embed_dim=32, lr=1e-3,
                         max_steps=600, patience=100, **{k: v for k, v in QUICK.items()
                                                         if k != "max_steps"})
    row = result.table.iloc[0]
    assert row.train_estimate > row.estimate + 0.1


def test_numpy_input_equals_tensor_input():
    x, y = gaussian_pairs(500)
    from_tensors = estimate_mi(x, y, **QUICK)
    from_arrays = estimate_mi(x.numpy(), y.numpy().astype(np.float64), **QUICK)
    assert from_arrays.table.equals(from_tensors.table)
    assert from_arrays.history.equals(from_tensors.history)


def test_several_estimators_train_stacked_with_both_terms_and_a_diagnosis():
    x, y = gaussian_pairs(500)
    names = ["mine", "nwj", "infonce"]
    result = estimate_mi(x, y, estimator=names, **QUICK)
    assert result.table.estimator.tolist() == names
    assert result.estimate == result.table.estimate.iloc[0]
    assert set(result.history.estimator) == set(names)
    assert {"joint", "marginal", "mi"} <= set(result.history.columns)
    assert set(result.held_out.estimator) == set(names)
    assert set(result.diagnosis.runs) == set(names)
    # each estimator's critic is its own: after training they differ
    weights = next(result.critic.parameters())
    assert not torch.equal(weights[0], weights[1])


def test_early_stopping_ends_before_max_steps_when_the_held_out_estimate_is_flat():
    x, _ = gaussian_pairs(600, seed=1)
    _, y = gaussian_pairs(600, seed=2)  # independent: nothing to learn, a flat estimate
    stopped = estimate_mi(x, y, max_steps=2000, eval_every=20, patience=2, min_delta=0.05,
                          progress=False)
    assert stopped.stopped_early and stopped.steps < 2000
    assert stopped.held_out.step.max() == stopped.steps
    patient = estimate_mi(x, y, max_steps=60, eval_every=20, patience=100, progress=False)
    assert not patient.stopped_early and patient.steps == 60


@pytest.mark.parametrize("make, match", [
    (lambda x, y: (x, y[:-1]), "same number of pairs: x has 300 rows, y has 299"),
    (lambda x, y: (x.index_put((torch.tensor([7]), torch.tensor([1])), torch.tensor(math.nan)), y),
     r"x has 1 row\(s\) with NaN or infinite values \(rows 7\)"),
    (lambda x, y: (x, y.index_put((torch.tensor([3]),), torch.tensor(math.inf))),
     r"y has 1 row\(s\) with NaN or infinite values \(rows 3\)"),
    (lambda x, y: (x[:50], y[:50]), "too few samples: 50 pairs"),
    (lambda x, y: (x[:, :, None], y), r"x must have shape \[n\] or \[n, d\]"),
])
def test_bad_inputs_raise_a_clear_error(make, match):
    x, y = gaussian_pairs(300)
    with pytest.raises(ValueError, match=match):
        estimate_mi(*make(x, y), **QUICK)


@pytest.mark.parametrize("settings, match", [
    (dict(estimator="mien"), r"unknown estimator\(s\) \['mien'\]; choose from"),
    (dict(estimator=["mine", "mine"]), "each estimator may be named once"),
    (dict(estimator=[]), r"unknown estimator"),
    (dict(critic="bilinear"), "unknown critic 'bilinear'"),
    (dict(held_out=1.0), "held_out and confidence must lie in"),
])
def test_bad_settings_raise_a_clear_error(settings, match):
    x, y = gaussian_pairs(300)
    with pytest.raises(ValueError, match=match):
        estimate_mi(x, y, **{**QUICK, **settings})


def test_the_callers_random_state_is_left_as_it_was():
    x, y = gaussian_pairs(300)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    estimate_mi(x, y, **QUICK)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_on_the_gpu_the_split_and_the_initial_weights_are_the_cpus():
    x, y = gaussian_pairs(600)
    on_cpu = estimate_mi(x, y, device="cpu", **QUICK)
    on_gpu = estimate_mi(x, y, device="cuda", **QUICK)
    assert next(on_gpu.critic.parameters()).device.type == "cuda"
    assert (on_cpu.n_train, on_cpu.n_held_out, on_cpu.batch_size) == (
        on_gpu.n_train, on_gpu.n_held_out, on_gpu.batch_size)
    # float32 training on two devices drifts apart slowly: the estimates agree to a few 1e-2
    assert abs(on_cpu.estimate - on_gpu.estimate) < 0.05


def test_an_estimator_that_diverges_stays_frozen_and_named_while_the_others_go_on(monkeypatch):
    made = estimate_module._stacked_critic
    monkeypatch.setattr(estimate_module, "_stacked_critic",
                        lambda *args: ExplodingStack(made(*args), explode=1, after=30))
    weights, terms_function = [], estimate_module._held_out_terms

    def spying_terms(critic, *args):
        weights.append([parameter.detach().clone() for parameter in critic.parameters()])
        return terms_function(critic, *args)

    monkeypatch.setattr(estimate_module, "_held_out_terms", spying_terms)
    x, y = gaussian_pairs(600)
    with pytest.warns(RuntimeWarning, match=r"estimator 1 \(nwj\) diverged at step 30"):
        result = estimate_mi(x, y, estimator=["mine", "nwj", "infonce"], max_steps=100,
                             eval_every=20, patience=100, progress=False)
    assert result.steps == 100 and len(weights) == 5  # evaluations at steps 20, 40, ..., 100
    diverged = result.table.set_index("estimator").diverged_at
    assert diverged["nwj"] == 30 and diverged.drop("nwj").isna().all()
    assert result.history[result.history.estimator == "nwj"].step.max() == 29
    assert result.history[result.history.estimator == "mine"].step.max() == 99
    assert result.table.estimate.map(math.isfinite).all()
    exploded = result.diagnosis.findings[result.diagnosis.findings.symptom == "explosion"]
    assert exploded.estimator.tolist() == ["nwj"] and exploded.began_at_step.tolist() == [30]
    # from its last good check (step 20) on, nwj's weights never move again, round after round
    for later in weights[1:]:
        assert all(torch.equal(a[1], b[1]) for a, b in zip(weights[0], later))
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(weights[1], weights[-1]))


def test_one_dimensional_arrays_are_one_column_and_the_concat_critic_trains_too():
    x, y = gaussian_pairs(400, dim=1)
    columns = estimate_mi(x, y, **QUICK)
    flat = estimate_mi(x[:, 0].numpy(), y[:, 0].tolist(), **QUICK)
    assert flat.table.equals(columns.table)
    concat = estimate_mi(x, y, critic="concat", hidden=(16,), **QUICK)
    assert type(concat.critic).__name__ == "StackedConcatCritic"
    assert math.isfinite(concat.estimate) and concat.estimate > 0.1
