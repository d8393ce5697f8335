import json
import math

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch

from remi_tutorial.benchmarks.__main__ import main as cli
from remi_tutorial.benchmarks.gaussian import (
    TABLE_COLUMNS,
    gaussian_bound_params,
    load_result,
    run_gaussian_benchmark,
    stage_summary,
)
from remi_tutorial.bounds import BOUND_NAMES, get_bound
from remi_tutorial.tasks import gaussian_batches, gaussian_mi, gaussian_rho

matplotlib.use("Agg")

TINY = dict(dim=3, batch_size=8, hidden_dims=(8,), embed_dim=4, lr=1e-2, progress=False)


def tiny_run(**changes):
    settings = dict(TINY, levels=(1.0, 2.0, 3.0), stage_steps=4, estimators="mine,remine,nwj")
    settings.update(changes)
    return run_gaussian_benchmark(**settings)


# --------------------------------------------------------------------------- the task


def test_staircase_gives_each_stage_its_level():
    table = tiny_run()
    stages = table.groupby("stage").true_mi.agg(["min", "max"])
    assert stages["min"].tolist() == [1.0, 2.0, 3.0]
    assert stages["max"].tolist() == [1.0, 2.0, 3.0]
    assert (table.stage == table.step // 4).all()


def test_table_has_one_row_per_estimator_seed_and_step():
    table = tiny_run(seeds=2)
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
def test_batched_training_equals_sequential_training_in_float64(critic):
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


def test_batched_training_equals_sequential_training_in_float32_over_a_few_dozen_steps():
    settings = dict(seeds=1, estimators="all", stage_steps=12, dim=20, batch_size=64,
                    hidden_dims=(256, 256), embed_dim=32, lr=5e-4)
    batched = tiny_run(batched=True, **settings)
    sequential = tiny_run(batched=False, **settings)
    np.testing.assert_allclose(batched.mi, sequential.mi, atol=2e-3)


def test_estimators_of_a_seed_start_alike_and_see_the_same_batches():
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


def test_stage_summary_mse_is_squared_bias_plus_variance():
    summary = stage_summary(tiny_run(seeds=2))
    np.testing.assert_allclose(summary.mse, summary.bias**2 + summary.variance, rtol=1e-9)
    assert (summary.samples == 2 * 4).all()


def test_stage_summary_rejects_a_table_without_estimates():
    with pytest.raises(ValueError, match="mi"):
        stage_summary(pd.DataFrame({"critic": [], "estimator": [], "stage": [], "true_mi": []}))


# --------------------------------------------------------------------------- settings


def test_default_bound_params_are_accepted_by_every_bound():
    params = gaussian_bound_params()
    assert set(params) == set(BOUND_NAMES)
    for name, values in params.items():
        get_bound(name, **values)


def test_default_regularizer_weight_is_the_authors_gaussian_weight():
    params = gaussian_bound_params()
    assert {params[name]["alpha"] for name in BOUND_NAMES if name.startswith("re")} == {1.0}


def test_default_smile_is_song_and_ermons_variant():
    assert gaussian_bound_params()["smile"] == dict(tau=5.0, clip="marginal", gradient="js")


@pytest.mark.parametrize("bad, match", [
    (dict(estimators="mine,mime"), "unknown estimators"),
    (dict(estimators="mine,mine"), "must not repeat"),
    (dict(critic="bilinear"), "critic must be one of"),
    (dict(levels=()), "levels"),
    (dict(stage_steps=0), "stage_steps"),
    (dict(seeds=0), "seeds"),
])
def test_bad_settings_raise_a_clear_error(bad, match):
    with pytest.raises(ValueError, match=match):
        tiny_run(**bad)


# --------------------------------------------------------------------------- command line


def test_command_line_saves_the_table_and_the_report_renders_it(tmp_path, capsys):
    out = tmp_path / "gaussian.parquet"
    cli(["gaussian", "--estimators", "infonce,reinfonce", "--levels", "1", "2",
         "--stage-steps", "3", "--dim", "3", "--batch-size", "8", "--hidden-dims", "8",
         "--embed-dim", "4", "--alpha", "0.5", "--no-progress", "--out", str(out)])
    table = load_result(out)
    assert sorted(table.estimator.unique()) == ["infonce", "reinfonce"]
    assert table.attrs["bound_params"]["reinfonce"]["alpha"] == 0.5
    record = json.loads(out.with_suffix(".parquet.json").read_text())
    assert record["command"].startswith("python -m remi_tutorial.benchmarks")
    assert record["environment"]["torch"] == torch.__version__
    cli(["gaussian-report", str(out), "--figure", str(tmp_path / "figure.png"),
         "--table", str(tmp_path / "summary.csv")])
    assert (tmp_path / "figure.png").stat().st_size > 0
    assert len(pd.read_csv(tmp_path / "summary.csv")) == 2 * 2
    assert "reinfonce" in capsys.readouterr().out


def test_figure_has_a_panel_for_each_of_the_twelve_estimators():
    from remi_tutorial.plots import plot_gaussian_benchmark

    figure = plot_gaussian_benchmark(tiny_run(estimators="all"), batch_size=8, smoothing=2)
    titles = [axis.get_title() for axis in figure.axes]
    assert len(titles) == 12
    assert titles[:4] == ["MINE", "ReMINE", "SMILE", "ReSMILE"]
    infonce_axis = figure.axes[4]
    caps = [line for line in infonce_axis.lines if line.get_label() == "log 8"]
    assert caps and caps[0].get_ydata()[0] == pytest.approx(math.log(8))
