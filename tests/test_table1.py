import math

import numpy as np
import pandas as pd
import pytest

from remi_tutorial.benchmarks.__main__ import main as cli
from remi_tutorial.benchmarks.image_results import write_cell_result
from remi_tutorial.benchmarks.paper_table1 import paper_table1
from remi_tutorial.benchmarks.table1 import render_paper_table1, render_table1, summarize_runs
from remi_tutorial.benchmarks.tables import load_table
from remi_tutorial.bounds import bound_spec


def fake_runs(rows):
    """Rows of the collected runs table from (benchmark, dataset, loss, alpha, seed, mi, accuracy,
    diverged_at)."""
    records = []
    for benchmark, dataset, loss, alpha, seed, mi, accuracy, diverged_at in rows:
        records.append(dict(
            benchmark=benchmark, dataset=dataset, model="resnet18", stem="cifar", loss=loss,
            alpha=alpha, tau=np.nan, seed=seed, batch_size=10, epochs=40, lr=1e-3,
            base_loss=bound_spec(loss).base, regularized=bound_spec(loss).regularized,
            true_mi=math.log(10), mi_estimate=mi, test_accuracy=accuracy, diverged_at=diverged_at,
        ))
    return pd.DataFrame(records)


RUNS = fake_runs([
    ("supervised", "cifar10", "mine", np.nan, 0, 2.0, 0.80, np.nan),
    ("supervised", "cifar10", "mine", np.nan, 1, 2.2, 0.90, np.nan),
    ("supervised", "cifar10", "remine", 0.1, 0, 2.1, 0.85, np.nan),
    ("supervised", "cifar10", "remine", 0.1, 1, 2.3, 0.87, np.nan),
    ("supervised", "cifar10", "remine", 0.01, 0, 1.0, 0.95, np.nan),
    ("supervised", "cifar10", "remine", 0.01, 1, 1.2, 0.97, np.nan),
    ("contrastive", "cifar10", "nwj", np.nan, 0, np.nan, 0.10, 0),
    ("contrastive", "cifar10", "nwj", np.nan, 1, np.nan, 0.10, 3),
    ("contrastive", "cifar10", "renwj", 0.1, 0, 1.9, 0.83, np.nan),
])


# --------------------------------------------------------------------------- the paper's numbers


def test_the_papers_table_has_each_cell_of_table1_once():
    paper = paper_table1()
    assert len(paper) == 2 * 2 * 6 * 2
    assert not paper.duplicated(["benchmark", "dataset", "loss", "variant"]).any()


def test_the_papers_rows_follow_the_mapping_of_mi_ranges_and_chance_accuracies():
    paper = paper_table1()
    cifar10, cifar100 = paper[paper.dataset == "cifar10"], paper[paper.dataset == "cifar100"]
    assert (cifar10.mi_mean <= math.log(10) + 1e-3).all()
    assert (cifar100[cifar100.benchmark == "supervised"].mi_mean > math.log(10)).all()
    collapsed = paper[(paper.benchmark == "contrastive") & paper.loss.isin(["smile", "nwj", "tuba"])
                      & (paper.variant == "original")]
    chance = 1 / collapsed.dataset.map({"cifar10": 10, "cifar100": 100})
    assert np.allclose(collapsed.accuracy_mean, chance, atol=0.003)
    assert (collapsed.mi_mean == 0).all()


def test_render_paper_table1_selects_one_benchmark_in_the_papers_order():
    table = render_paper_table1("contrastive")
    assert list(table.index.get_level_values("loss"))[:6] == ["MINE", "SMILE", "InfoNCE", "NWJ", "TUBA", "JS"]
    assert table.loc[("contrastive", "CIFAR-10", "SMILE"), ("test accuracy (paper's Table 1)", "regularized")] \
        == "0.830 ± 0.008"


# --------------------------------------------------------------------------- our runs


def test_summaries_are_means_and_sample_standard_deviations_over_seeds():
    summary = summarize_runs(RUNS, alpha=0.1).set_index(["benchmark", "loss", "variant"])
    mine = summary.loc[("supervised", "mine", "original")]
    assert mine.mi_mean == pytest.approx(2.1)
    assert mine.mi_std == pytest.approx(np.std([2.0, 2.2], ddof=1))
    assert mine.accuracy_mean == pytest.approx(0.85)
    assert mine.runs == 2


def test_best_alpha_is_the_one_with_the_highest_mean_accuracy():
    summary = summarize_runs(RUNS, alpha="best")
    chosen = summary[(summary.loss == "mine") & (summary.variant == "regularized")]
    assert chosen.alpha.tolist() == [0.01]


def test_a_fixed_alpha_that_was_not_run_raises():
    with pytest.raises(ValueError, match="no regularized run has alpha=0.5"):
        summarize_runs(RUNS, alpha=0.5)


def test_runs_of_one_dataset_with_different_settings_raise():
    mixed = pd.concat([RUNS, RUNS.assign(epochs=1, seed=RUNS.seed + 10)])
    with pytest.raises(ValueError, match="mix settings"):
        summarize_runs(mixed)


def test_render_puts_original_and_regularized_side_by_side_with_mean_and_std():
    table = render_table1(RUNS, alpha=0.1)
    row = table.loc[("supervised", "CIFAR-10", "MINE")]
    assert row[("MI estimate (ours)", "original")] == "2.100 ± 0.141"
    assert row[("MI estimate (ours)", "regularized")] == "2.200 ± 0.141"
    assert row[("test accuracy (ours)", "regularized")] == "0.860 ± 0.014"
    assert row[("alpha", "")] == "0.1"


def test_render_labels_the_papers_numbers_as_the_papers():
    table = render_table1(RUNS, alpha=0.1)
    row = table.loc[("supervised", "CIFAR-10", "MINE")]
    assert row[("MI estimate (paper's Table 1)", "original")] == "2.300 ± 0.003"
    assert row[("test accuracy (paper's Table 1)", "regularized")] == "0.856 ± 0.004"
    assert ("MI estimate (paper's Table 1)", "original") not in render_table1(RUNS, paper=False).columns


def test_render_counts_diverged_runs_and_leaves_missing_estimates_blank():
    row = render_table1(RUNS, alpha=0.1).loc[("contrastive", "CIFAR-10", "NWJ")]
    assert row[("runs (ours)", "original")] == "2 (2 diverged)"
    assert row[("MI estimate (ours)", "original")] == "—"
    assert row[("runs (ours)", "regularized")] == "1"
    assert row[("MI estimate (ours)", "regularized")] == "1.900"


def test_render_orders_rows_as_the_paper():
    runs = fake_runs([("supervised", "digits", loss, np.nan, 0, 1.0, 0.5, np.nan)
                      for loss in ["js", "tuba", "mine", "infonce", "nwj", "smile"]])
    assert list(render_table1(runs, paper=False).index.get_level_values("loss")) == \
        ["MINE", "SMILE", "InfoNCE", "NWJ", "TUBA", "JS"]


def test_the_table1_command_prints_the_table_of_the_collected_cells(tmp_path, capsys):
    for row in RUNS.to_dict("records"):
        write_cell_result(tmp_path, row, pd.DataFrame([{**row, "epoch": 1.0, "mi": row["mi_estimate"]}]))
    out = tmp_path / "summary.csv"
    cli(["table1", "--results", str(tmp_path), "--alpha", "0.1", "--out", str(out)])
    printed = capsys.readouterr().out
    assert "2.100 ± 0.141" in printed and "paper's Table 1" in printed
    assert "9 finished cells (2 diverged), 0 running, 0 missing" in printed
    summary = load_table(out)
    expected = summarize_runs(RUNS, alpha=0.1)
    pd.testing.assert_frame_equal(summary[expected.columns], expected, check_dtype=False)
    assert summary.attrs["alpha"] == "0.1"


def test_the_table1_command_without_results_says_what_to_run(tmp_path):
    with pytest.raises(SystemExit, match="run the supervised or contrastive command first"):
        cli(["table1", "--results", str(tmp_path)])
