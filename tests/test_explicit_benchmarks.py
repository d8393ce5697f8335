"""The second-order objective in the two benchmarks: a loss of the contrastive benchmark and
a critic-free estimator of the Gaussian staircase."""

import functools
import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from remi_tutorial.benchmarks.__main__ import main as cli
from remi_tutorial.benchmarks.gaussian import TABLE_COLUMNS, run_gaussian_benchmark, stage_summary
from remi_tutorial.benchmarks.tables import load_table
from remi_tutorial.benchmarks.contrastive import CONTRASTIVE
from remi_tutorial.benchmarks.image_cells import cell_model, run_image_cell
from remi_tutorial.benchmarks.image_config import ImageRunConfig, image_configs
from remi_tutorial.benchmarks.image_results import collect
from remi_tutorial.benchmarks.supervised import SUPERVISED
from remi_tutorial.benchmarks.table1 import render_table1
from remi_tutorial.critics import ImageCritic
from remi_tutorial.datasets import ImageBatches
from remi_tutorial.explicit import closed_form_mi, explicit_mi, gaussian_plugin_bias
from helpers import counted_accuracy, killed_and_resumed_cell
from remi_tutorial.tasks import gaussian_batches, mi_staircase


def explicit_config(**changes):
    settings = dict(benchmark=CONTRASTIVE, dataset="digits", loss="explicit", seed=0,
                    batch_size=20, epochs=2, lr=1e-3, model="small", embed_dim=8, ridge=1e-3)
    settings.update(changes)
    return ImageRunConfig(**settings)


# --------------------------------------------------------------------------- contrastive cells


def test_an_explicit_cell_trains_and_records_a_finite_mi_estimate(tiny_digits):
    run = run_image_cell(explicit_config(), tiny_digits, progress=False)
    assert run.summary["diverged_at"] is None
    assert np.isfinite(run.history[["mi", "objective", "joint", "marginal"]].to_numpy()).all()
    assert math.isfinite(run.summary["mi_estimate"]) and run.summary["mi_estimate"] > 0
    assert len(run.curve) == 2 * 10
    assert run.summary["test_accuracy"] == counted_accuracy(run.critic, tiny_digits)
    assert (run.summary["loss"], run.summary["order"], run.summary["ridge"]) == ("explicit", None, 1e-3)


def test_an_explicit_cell_records_explicit_mi_of_its_embeddings(tiny_digits):
    config = explicit_config(order=4, epochs=1)
    torch.manual_seed(config.seed)
    model = cell_model(config, tiny_digits)
    batch = ImageBatches(tiny_digits.train_images, tiny_digits.train_labels, 10,
                         masks=CONTRASTIVE.masks, pair_every_batch=True,
                         batch_size=config.batch_size, seed=config.seed)(0)
    with torch.no_grad():
        expected = explicit_mi(model.trainee.train()(*batch.inputs), batch.positive, order=4, ridge=1e-3)
    first = run_image_cell(config, tiny_digits, progress=False).history.iloc[0]
    assert first.mi == pytest.approx(float(expected.mi), rel=1e-5)
    assert first.objective == pytest.approx(float(expected.objective), rel=1e-5)


def test_an_explicit_cell_trains_the_network_its_critic_evaluates(tiny_digits):
    model = cell_model(explicit_config(), tiny_digits)
    assert isinstance(model.critic, ImageCritic) and model.critic.kind == "dot"
    trained = {id(p) for p in model.trainee.parameters()}
    assert trained == {id(p) for p in model.critic.parameters()}


def test_the_batch_norm_of_an_explicit_cell_changes_no_loss_value(tiny_digits):
    model = cell_model(explicit_config(embed_dim=6), tiny_digits).critic.train()
    batch = ImageBatches(tiny_digits.train_images, tiny_digits.train_labels, 10,
                         masks=CONTRASTIVE.masks, pair_every_batch=True, batch_size=40, seed=0)(0)
    projection, norm = model.network.head
    with torch.no_grad():
        before = projection(model.network.features(*batch.inputs)).double()
        after = norm(before.float()).double()
    for order in (None, 4):
        values = [explicit_mi((z, z), batch.positive, order=order, ridge=1e-3) for z in (before, after)]
        assert float(values[1].objective) == pytest.approx(float(values[0].objective), abs=1e-4)


def test_a_resumed_explicit_cell_ends_as_an_uninterrupted_one(tiny_digits, tmp_path, monkeypatch):
    config = explicit_config(order=4)
    uninterrupted, resumed = killed_and_resumed_cell(
        config, tiny_digits, tmp_path, monkeypatch, steps_into_second_epoch=3
    )

    assert resumed.history.equals(uninterrupted.history)
    assert resumed.summary["test_accuracy"] == uninterrupted.summary["test_accuracy"]
    assert "resumed from step 10" in resumed.summary["message"]


# --------------------------------------------------------------------------- settings and keys


@pytest.mark.parametrize("changes, match", [
    (dict(benchmark=SUPERVISED, embed_dim=None), "supervised benchmark offers the losses"),
    (dict(ridge=None), "needs a ridge"),
    (dict(ridge=-1.0), "needs a ridge"),
    (dict(order=0), "order must be a positive integer"),
    (dict(beta=0.5), "beta rescales the series: it needs an order"),
    (dict(order=4, beta=0.0), "must be positive"),
    (dict(loss="mine", ridge=1e-3), "apply to the second-order loss 'explicit' only"),
    (dict(loss="mine", ridge=None, order=4), "order apply to the second-order loss"),
    (dict(loss="mine", ridge=None, benchmark=SUPERVISED, embed_dim=8), "embed_dim"),
    (dict(model="resnet18", width=128), "width of the small network"),
])
def test_a_config_with_misplaced_second_order_settings_is_rejected(changes, match):
    with pytest.raises(ValueError, match=match):
        explicit_config(**changes)


def test_image_configs_give_the_second_order_settings_to_the_explicit_cells_only():
    configs = image_configs(CONTRASTIVE, "digits", losses=["mine", "explicit"], order=4, beta=0.1,
                            ridge=0.01, embed_dim=16)
    by_loss = {config.loss: config for config in configs}
    assert (by_loss["explicit"].order, by_loss["explicit"].beta, by_loss["explicit"].ridge) == (4, 0.1, 0.01)
    assert (by_loss["mine"].order, by_loss["mine"].beta, by_loss["mine"].ridge) == (None, None, None)
    assert {config.embed_dim for config in configs} == {16}


def test_width_sets_the_features_of_the_small_network(tiny_digits):
    network = cell_model(explicit_config(width=24, embed_dim=None), tiny_digits).critic.network
    assert network.out_features == 24
    assert network(tiny_digits.train_images[:5]).shape == (5, 24)


def test_explicit_cells_that_differ_only_in_series_settings_are_different_cells():
    keys = {explicit_config(**changes).key()
            for changes in (dict(), dict(order=4), dict(order=4, beta=0.1), dict(ridge=0.01))}
    assert len(keys) == 4


def test_a_cells_key_leaves_out_the_second_order_settings_it_does_not_set():
    # Its checkpoint keeps the name it had before those columns existed.
    config = ImageRunConfig(SUPERVISED, "digits", "mine", 0, batch_size=10, epochs=1, lr=1e-3,
                            model="small")
    assert not any(column in config.key() for column in ("width", "embed_dim", "order", "beta", "ridge"))
    assert explicit_config(order=4).key().endswith("_lr=0.001_embed_dim=8_order=4_ridge=0.001")


def test_the_contrastive_command_runs_the_second_order_loss(tmp_path, capsys):
    cli(["contrastive", "--dataset", "digits", "--loss", "explicit", "--width", "64",
         "--embed-dim", "8", "--order", "4", "--ridge", "0.01", "--epochs", "1",
         "--batch-size", "50", "--results", str(tmp_path), "--no-progress", "--device", "cpu"])
    runs = collect(tmp_path).runs
    assert runs[["loss", "width", "embed_dim", "order", "ridge"]].iloc[0].tolist() == [
        "explicit", 64, 8, 4, 0.01]
    assert math.isnan(runs.beta.iloc[0])
    assert ("explicit alpha=    - width=64 embed_dim=8 order=4 ridge=0.01 seed 0: MI"
            in capsys.readouterr().out)


def test_the_supervised_command_does_not_offer_the_second_order_loss(tmp_path):
    with pytest.raises(SystemExit):
        cli(["supervised", "--dataset", "digits", "--loss", "explicit", "--results", str(tmp_path)])


def test_table1_leaves_out_the_second_order_loss():
    base = dict(benchmark="contrastive", dataset="digits", model="small", stem="cifar", seed=0,
                batch_size=10, epochs=1, lr=1e-3, alpha=np.nan, true_mi=math.log(10),
                mi_estimate=1.0, test_accuracy=0.5, diverged_at=np.nan, regularized=False)
    runs = pd.DataFrame([dict(base, loss="mine", base_loss="mine"),
                         dict(base, loss="explicit", base_loss="explicit", order=4, ridge=1e-3)])
    table = render_table1(runs, paper=False)
    assert table.index.get_level_values("loss").tolist() == ["MINE"]


# --------------------------------------------------------------------------- Gaussian staircase

@pytest.fixture
def staircase(tiny_gaussian):
    """``staircase(**changes)``: two estimators on two stages of five steps, batches of 16, run."""
    base = replace(tiny_gaussian, estimators="mine,remine", levels=(1.0, 3.0), stage_steps=5,
                   batch_size=16)

    def run(**changes):
        return run_gaussian_benchmark(replace(base, **changes), progress=False)
    return run


def test_closed_form_rows_have_the_table_columns_and_no_critic(staircase):
    table = staircase(seeds=[0, 1], closed_form=("raw", "debiased"))
    assert list(table.columns) == list(TABLE_COLUMNS)
    rows = table[table.estimator.str.startswith("closed_form")]
    assert set(rows.critic) == {"none"}
    counts = rows.groupby(["estimator", "seed"]).step.agg(list)
    assert sorted(counts.index) == [(f"closed_form_{v}", s) for v in ("debiased", "raw") for s in (0, 1)]
    assert all(steps == list(range(10)) for steps in counts)
    assert (rows.objective == rows.mi).all() and (rows.penalty == 0).all()


def test_closed_form_rows_are_the_closed_form_of_the_bounds_batches(staircase):
    seeds = [2, 5]
    table = staircase(seeds=seeds, closed_form=("raw",))
    schedule = functools.partial(mi_staircase, stage_steps=5, levels=(1.0, 3.0))
    for seed in seeds:
        stream = gaussian_batches(3, 16, schedule, seed=seed)
        expected = [float(closed_form_mi(*stream(step).inputs, ridge=0.0)) for step in range(10)]
        rows = table[(table.estimator == "closed_form_raw") & (table.seed == seed)]
        np.testing.assert_allclose(rows.mi, expected, rtol=1e-5)


def test_debiased_closed_form_is_the_raw_one_minus_the_plugin_bias(staircase):
    table = staircase(closed_form=("raw", "debiased"))
    raw = table[table.estimator == "closed_form_raw"].mi.to_numpy()
    debiased = table[table.estimator == "closed_form_debiased"].mi.to_numpy()
    np.testing.assert_allclose(raw - debiased, gaussian_plugin_bias(16, 3, 3), rtol=1e-5)


def test_stage_summary_shows_the_debiased_closed_form_unbiased_and_the_raw_one_biased(staircase):
    summary = stage_summary(staircase(levels=(2.0,), stage_steps=400, estimators="mine",
                                      closed_form=("raw", "debiased")))
    summary = summary.set_index("estimator")
    standard_error = math.sqrt(summary.variance["closed_form_raw"] / 400)
    assert abs(summary.bias["closed_form_debiased"]) < 4 * standard_error
    assert summary.bias["closed_form_raw"] == pytest.approx(gaussian_plugin_bias(16, 3, 3),
                                                            abs=4 * standard_error)


@pytest.mark.parametrize("changes, match", [
    (dict(closed_form=("exact",)), "closed_form must list distinct variants"),
    (dict(closed_form=("raw", "raw")), "closed_form must list distinct variants"),
    (dict(closed_form=("raw",), closed_form_ridge=-1.0), "non-negative"),
    (dict(closed_form=("raw",), batch_size=6), "singular covariance"),
    (dict(closed_form=("debiased",), batch_size=6, closed_form_ridge=0.1), "singular covariance"),
])
def test_bad_closed_form_settings_raise_a_clear_error(tiny_gaussian, changes, match):
    with pytest.raises(ValueError, match=match):
        replace(tiny_gaussian, **changes)


def test_gaussian_command_adds_the_closed_form_once_and_the_report_plots_the_critics(tmp_path, capsys):
    out = tmp_path / "gaussian.parquet"
    cli(["gaussian", "--critic", "separable", "concat", "--estimators", "mine", "--levels", "1",
         "--stage-steps", "3", "--dim", "2", "--batch-size", "8", "--hidden-dims", "4",
         "--embed-dim", "2", "--closed-form", "debiased", "--no-progress", "--out", str(out)])
    table = load_table(out)
    assert table.groupby("critic").estimator.unique().map(list).to_dict() == {
        "concat": ["mine"], "none": ["closed_form_debiased"], "separable": ["mine"]}
    assert (table.estimator == "closed_form_debiased").sum() == 3
    cli(["gaussian-report", str(out), "--figure", str(tmp_path / "figure.png")])
    assert sorted(p.name for p in tmp_path.glob("figure_*.png")) == ["figure_concat.png",
                                                                      "figure_separable.png"]
    assert "closed_form_debiased" in capsys.readouterr().out
