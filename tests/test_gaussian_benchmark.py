import dataclasses
import json
import math

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

import remi_tutorial.benchmarks.gaussian as gaussian
from remi_tutorial.benchmarks.__main__ import main as cli
from remi_tutorial.benchmarks.gaussian import (
    TABLE_COLUMNS,
    GaussianBenchmarkConfig,
    run_gaussian_benchmark,
    stage_summary,
)
from remi_tutorial.benchmarks.tables import load_table
from remi_tutorial.bounds import BOUND_NAMES, bound_spec, get_bound
from remi_tutorial.tasks import gaussian_batches, gaussian_mi, gaussian_rho
from remi_tutorial.train import CompileFailedWarning
from helpers import ExplodingStack

matplotlib.use("Agg")


@pytest.fixture
def tiny_run(tiny_gaussian):
    """``tiny_run(**changes)``: the tiny config with ``changes``, run without a progress bar."""
    def run(**changes):
        return run_gaussian_benchmark(dataclasses.replace(tiny_gaussian, **changes), progress=False)
    return run


# --------------------------------------------------------------------------- the task


def test_staircase_gives_each_stage_its_level(tiny_run):
    table = tiny_run()
    stages = table.groupby("stage").true_mi.agg(["min", "max"])
    assert stages["min"].tolist() == [1.0, 2.0, 3.0]
    assert stages["max"].tolist() == [1.0, 2.0, 3.0]
    assert (table.stage == table.step // 4).all()


def test_table_has_one_row_per_estimator_seed_and_step(tiny_run):
    table = tiny_run(seeds=[0, 1])
    assert list(table.columns) == list(TABLE_COLUMNS)
    assert len(table) == 3 * 2 * 12
    counts = table.groupby(["estimator", "seed"]).step.agg(list)
    assert all(steps == list(range(12)) for steps in counts)


@pytest.mark.parametrize("mi, dim", [(2.0, 20), (10.0, 20), (0.5, 3)])
def test_rho_and_mi_are_inverse(mi, dim):
    assert gaussian_mi(gaussian_rho(mi, dim), dim) == pytest.approx(mi, rel=1e-12)


def test_samples_have_the_correlation_of_their_stage():
    mi, dim = 8.0, 20
    batch = gaussian_batches(dim, 20000, mi, seed=1, dtype=torch.float64)(0)
    x, y = batch.inputs
    correlation = ((x * y).mean(0) / (x.std(0) * y.std(0))).mean()
    # MI 8 nats in 20 dimensions: rho = sqrt(1 - exp(-0.8)) = 0.743...
    assert float(correlation) == pytest.approx(math.sqrt(1 - math.exp(-0.8)), abs=0.01)


# --------------------------------------------------------------------------- batched = sequential


@pytest.mark.parametrize("critic", ["separable", "concat"])
def test_batched_training_equals_sequential_training_in_float64(tiny_run, critic):
    settings = dict(critic=critic, seeds=[0, 3], estimators="all", dtype=torch.float64,
                    check_every=5)
    batched = tiny_run(batched=True, **settings)
    sequential = tiny_run(batched=False, **settings)
    assert batched[["estimator", "seed", "step"]].equals(sequential[["estimator", "seed", "step"]])
    for field in ("mi", "objective", "penalty"):
        np.testing.assert_allclose(batched[field], sequential[field], rtol=0, atol=1e-12,
                                   err_msg=field)
    # MINE and InfoNCE do not depend on the critic's additive constant, so its gradient is
    # zero up to rounding, and Adam turns that rounding into steps of ~lr * 1e-9: the two
    # terms (not their difference) move apart by that much.
    for field in ("joint", "marginal"):
        np.testing.assert_allclose(batched[field], sequential[field], rtol=0, atol=1e-8,
                                   err_msg=field)


def test_batched_training_equals_sequential_training_in_float32_over_a_few_dozen_steps(tiny_run):
    settings = dict(seeds=[0], estimators="all", stage_steps=12, dim=20, batch_size=64,
                    hidden_dims=(256, 256), embed_dim=32, lr=5e-4)
    batched = tiny_run(batched=True, **settings)
    sequential = tiny_run(batched=False, **settings)
    np.testing.assert_allclose(batched.mi, sequential.mi, atol=2e-3)


def test_estimators_of_a_seed_start_alike_and_see_the_same_batches(tiny_run):
    table = tiny_run(estimators="mine,remine", seeds=[0, 1])
    first = table[table.step == 0].set_index(["seed", "estimator"])
    # At step 0 ReMINE and MINE score the same batch with the same weights.
    assert first.loc[(0, "mine"), "mi"] == first.loc[(0, "remine"), "mi"]
    assert first.loc[(0, "mine"), "mi"] != first.loc[(1, "mine"), "mi"]


# --------------------------------------------------------------------------- the summary


def test_stage_summary_computes_bias_variance_and_mse_of_each_stage():
    table = pd.DataFrame({
        "critic": "separable", "estimator": "mine", "stage": [0, 0, 1, 1],
        "true_mi": [2.0, 2.0, 4.0, 4.0], "mi": [1.0, 3.0, 5.0, 5.0],
    })
    summary = stage_summary(table).set_index("stage")
    assert summary.bias.tolist() == [0.0, 1.0]
    assert summary.variance.tolist() == [1.0, 0.0]
    assert summary.mse.tolist() == [1.0, 1.0]
    assert summary.samples.tolist() == [2, 2]


def test_stage_summary_mse_is_squared_bias_plus_variance(tiny_run):
    summary = stage_summary(tiny_run(seeds=[0, 1]))
    np.testing.assert_allclose(summary.mse, summary.bias**2 + summary.variance, rtol=1e-9)
    assert (summary.samples == 2 * 4).all()


def test_stage_summary_rejects_a_table_without_estimates():
    with pytest.raises(ValueError, match="mi"):
        stage_summary(pd.DataFrame({"critic": [], "estimator": [], "stage": [], "true_mi": []}))


# --------------------------------------------------------------------------- settings


BOUND_PARAMETERS = tuple(dict.fromkeys(
    parameter for name in BOUND_NAMES for parameter in bound_spec(name).parameters))
"""Every keyword parameter of the twelve bounds."""

DISTINCT_VALUES = dict(alpha=0.37, target=0.25, distance="absolute", variant="authors_code",
                       tau=7.5, clip="both", gradient="dv", log_baseline=0.3, report_shift=0.2)
"""A valid value of each bound parameter that differs from the config's default."""


def test_every_bound_parameter_is_a_config_field_of_the_same_name():
    fields = {field.name for field in dataclasses.fields(GaussianBenchmarkConfig)}
    assert set(BOUND_PARAMETERS) == set(DISTINCT_VALUES)
    assert set(BOUND_PARAMETERS) <= fields


@pytest.mark.parametrize("parameter", sorted(DISTINCT_VALUES))
def test_a_field_reaches_exactly_the_bounds_that_take_it(parameter):
    value = DISTINCT_VALUES[parameter]
    params = GaussianBenchmarkConfig(**{parameter: value}).bound_params()
    default = GaussianBenchmarkConfig().bound_params()
    for name in BOUND_NAMES:
        if parameter in bound_spec(name).parameters:
            assert params[name][parameter] == value, name
            assert default[name][parameter] != value, name
        else:
            assert parameter not in params[name], name
    changed = {name for name in BOUND_NAMES if params[name] != default[name]}
    assert changed == {name for name in BOUND_NAMES if parameter in bound_spec(name).parameters}


def test_an_override_wins_for_its_bound_only():
    config = GaussianBenchmarkConfig(alpha=1.0,
                                     overrides={"ReSMILE": {"alpha": 0.1, "clip": "both"}})
    params = config.bound_params()
    assert params["resmile"]["alpha"] == 0.1 and params["resmile"]["clip"] == "both"
    assert params["remine"]["alpha"] == 1.0 and params["smile"]["clip"] == "marginal"


def test_bound_params_are_those_of_the_config_estimators_and_accepted_by_their_bounds():
    params = GaussianBenchmarkConfig(estimators="rejs,mine").bound_params()
    assert list(params) == ["rejs", "mine"]
    for name, values in GaussianBenchmarkConfig().bound_params().items():
        get_bound(name, **values)


def test_defaults_are_the_authors_gaussian_setting():
    config = GaussianBenchmarkConfig()
    params = config.bound_params()
    assert config.estimators == BOUND_NAMES and config.seeds == (0,)
    assert config.levels == (2.0, 4.0, 6.0, 8.0, 10.0) and config.steps == 20_000
    assert {params[name]["alpha"] for name in BOUND_NAMES if bound_spec(name).regularized} == {1.0}
    # SMILE as Song & Ermon published it; the NWJ family unclipped.
    assert params["smile"] == dict(tau=5.0, clip="marginal", gradient="js")
    assert {params[name]["tau"] for name in ("nwj", "tuba", "renwj", "retuba")} == {None}


@pytest.mark.parametrize("bad, match", [
    (dict(estimators="mine,mime"), "unknown estimators"),
    (dict(estimators="mine,mine"), "must not repeat"),
    (dict(estimators=()), "unknown estimators"),
    (dict(critic="bilinear"), "critic must be one of"),
    (dict(levels=()), "levels"),
    (dict(stage_steps=0), "stage_steps"),
    (dict(seeds=()), "seeds"),
    (dict(seeds=3), "seeds must list distinct seeds"),
    (dict(seeds=(1, 1)), "seeds"),
    (dict(distance="euclidean"), "distance must be"),
    (dict(variant="theirs"), "variant must be"),
    (dict(clip="none"), "clip must be"),
    (dict(gradient="nwj"), "gradient must be"),
    (dict(tau=-1.0), "tau must be positive"),
    (dict(alpha=-1.0), "alpha must be non-negative"),
    (dict(overrides={"mime": {"alpha": 1.0}}), "unknown bound 'mime'"),
    (dict(overrides={"mine": {"alpha": 1.0}}), "bound 'mine' takes no parameter alpha"),
])
def test_bad_settings_raise_a_clear_error(bad, match):
    with pytest.raises(ValueError, match=match):
        GaussianBenchmarkConfig(**bad)


# --------------------------------------------------------------------------- command line


def test_command_line_saves_the_table_and_the_report_renders_it(tmp_path, capsys):
    out = tmp_path / "gaussian.parquet"
    cli(["gaussian", "--estimators", "infonce,reinfonce", "--levels", "1", "2",
         "--stage-steps", "3", "--dim", "3", "--batch-size", "8", "--hidden-dims", "8",
         "--embed-dim", "4", "--alpha", "0.5", "--no-progress", "--out", str(out)])
    table = load_table(out)
    assert sorted(table.estimator.unique()) == ["infonce", "reinfonce"]
    assert table.attrs["bound_params"]["reinfonce"]["alpha"] == 0.5
    record = json.loads(out.with_suffix(".parquet.json").read_text())
    assert record["command"].startswith("python -m remi_tutorial.benchmarks")
    assert record["environment"]["torch"] == torch.__version__
    cli(["gaussian-report", str(out), "--figure", str(tmp_path / "figure.png"),
         "--out", str(tmp_path / "summary.csv")])
    assert (tmp_path / "figure.png").stat().st_size > 0
    summary = load_table(tmp_path / "summary.csv")
    assert len(summary) == 2 * 2
    assert summary.attrs["result"] == str(out) and summary.attrs["batch_size"] == 8
    assert "reinfonce" in capsys.readouterr().out


def test_command_line_options_are_the_config_fields():
    from remi_tutorial.benchmarks.__main__ import build_parser

    args = build_parser().parse_args(["gaussian"])
    defaults = GaussianBenchmarkConfig()
    for name in (*BOUND_PARAMETERS, "stage_steps", "dim", "batch_size", "lr", "embed_dim",
                 "closed_form_ridge", "batched"):
        assert getattr(args, name) == getattr(defaults, name), name
    assert tuple(args.seeds) == defaults.seeds and tuple(args.levels) == defaults.levels


def test_figure_has_a_panel_for_each_of_the_twelve_estimators(tiny_run):
    from remi_tutorial.plots import plot_gaussian_benchmark

    figure = plot_gaussian_benchmark(tiny_run(estimators="all"), batch_size=8, smoothing=2)
    titles = [axis.get_title() for axis in figure.axes]
    assert len(titles) == 12
    assert titles[:4] == ["MINE", "ReMINE", "SMILE", "ReSMILE"]
    infonce_axis = figure.axes[4]
    caps = [line for line in infonce_axis.lines if line.get_label() == "log 8"]
    assert caps and caps[0].get_ydata()[0] == pytest.approx(math.log(8))


def test_a_diverging_estimator_of_the_batched_run_stops_alone(tiny_run, monkeypatch):
    """The batched run freezes an estimator whose loss turns non-finite; the others train to
    the end exactly as in a run without the failure (the sequential run trains each alone)."""
    made = gaussian.stacked_critic
    monkeypatch.setattr(gaussian, "stacked_critic",
                        lambda critics: ExplodingStack(made(critics), explode=1, after=5))
    settings = dict(estimators="mine,nwj,infonce", dtype=torch.float64, check_every=2)
    with pytest.warns(RuntimeWarning, match=r"estimator 1 \(nwj\) diverged at step 5"):
        batched = tiny_run(batched=True, **settings)
    monkeypatch.setattr(gaussian, "stacked_critic", made)
    sequential = tiny_run(batched=False, **settings)
    steps = batched.groupby("estimator").step.max()
    assert steps["nwj"] == 4 and steps["mine"] == steps["infonce"] == 11
    survivors = batched[batched.estimator != "nwj"].reset_index(drop=True)
    expected = sequential[sequential.estimator != "nwj"].reset_index(drop=True)
    np.testing.assert_allclose(survivors.mi, expected.mi, rtol=0, atol=1e-12)


def test_a_compiled_run_reaches_train_and_falls_back_to_the_eager_numbers(tiny_gaussian,
                                                                          monkeypatch):
    """``compile`` goes through to every training run; a compiler that fails leaves the
    numbers of the eager run, with a warning."""
    modes = []

    def failing_compile(function, *, mode, dynamic):
        modes.append(mode)

        def compiled(*args):
            raise torch._dynamo.exc.TorchDynamoException("no working C++ compiler")

        return compiled

    for batched in (True, False):
        config = dataclasses.replace(tiny_gaussian, estimators="mine,nwj", batched=batched)
        eager = run_gaussian_benchmark(config, progress=False)
        with monkeypatch.context() as patch:
            patch.setattr(torch, "compile", failing_compile)
            with pytest.warns(CompileFailedWarning, match="torch.compile failed"):
                table = run_gaussian_benchmark(config, progress=False, compile=True)
        pd.testing.assert_frame_equal(table, eager, check_exact=True)
    assert modes == ["default"] * 3  # one stacked run, then one run per estimator
