"""Render the image benchmarks' results as the paper's Table 1, beside the paper's numbers.

Reads the ``runs`` table collected from a results folder
(:func:`~remi_tutorial.benchmarks.image_results.collect`, the cells that
:func:`~remi_tutorial.benchmarks.image_cells.run_sweep` finished) and shows, for every
benchmark, dataset and loss, the mean and standard deviation over seeds of the MI estimate
and the test accuracy, the original loss beside its regularized version, and the numbers
published in the paper (:mod:`~remi_tutorial.benchmarks.paper_table1`), labelled as the
paper's.

Command line: ``python -m remi_tutorial.benchmarks table1`` (``--help`` shows the options
and examples); ``--out FILE`` writes the summary behind the table (:func:`summarize_runs`).
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import pandas as pd

from ..bounds import ORIGINAL_NAMES, bound_spec
from .cli import add_out, write_result
from .image_registry import IMAGE_BENCHMARKS
from .image_results import collect, format_number
from .paper_table1 import paper_table1

__all__ = ["summarize_runs", "render_table1", "render_paper_table1", "add_arguments", "main"]

_DATASET_LABELS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "digits": "digits"}
_BENCHMARK_ORDER = tuple(IMAGE_BENCHMARKS)
_SETTING_COLUMNS = ("model", "stem", "batch_size", "epochs", "lr", "width", "embed_dim")


def summarize_runs(runs: pd.DataFrame, *, alpha: float | str = "best") -> pd.DataFrame:
    """Mean and standard deviation over seeds of every (benchmark, dataset, loss, variant).

    Args:
        runs: the ``runs`` table of :func:`~remi_tutorial.benchmarks.image_results.collect`.
        alpha: which regularizer weight represents a regularized loss: a number (runs
            with that ``alpha``), or ``"best"``: per benchmark, dataset and loss, the weight
            with the highest mean test accuracy. Choosing on test accuracy flatters the
            regularized losses; the chosen weight is shown.

    Returns:
        One row per (benchmark, dataset, loss, variant, and for the second-order loss
        ``order, beta, ridge`` where the runs have them) with ``alpha``, ``true_mi``, ``runs``,
        ``diverged`` (how many runs diverged), ``mi_mean, mi_std, accuracy_mean,
        accuracy_std`` (standard deviations with ``ddof=1``; NaN for a single run).

    Raises:
        ValueError: runs of one benchmark and dataset mix settings (network, stem, batch
            size, epochs, learning rate, widths, embedding size), or no run has the requested
            ``alpha``.
    """
    if runs.empty:
        raise ValueError("no runs to summarize")
    setting_columns = [column for column in _SETTING_COLUMNS if column in runs]
    for (benchmark, dataset), group in runs.groupby(["benchmark", "dataset"]):
        settings = group[setting_columns].drop_duplicates()
        if len(settings) > 1:
            raise ValueError(
                f"the {benchmark} runs on {dataset} mix settings; summarize one at a time:\n"
                f"{settings.to_string(index=False)}"
            )
    runs = runs.assign(
        variant=np.where(runs.regularized.astype(bool), "regularized", "original"),
        diverged=runs.diverged_at.notna(),
        alpha=runs.alpha.astype(float),
    )
    # The second-order loss's settings keep its cells apart (NaN for the bounds).
    keys = ["benchmark", "dataset", "base_loss", "variant", "alpha",
            *(column for column in ("order", "beta", "ridge") if column in runs)]
    summary = (
        runs.groupby(keys, dropna=False)
        .agg(
            true_mi=("true_mi", "mean"),
            runs=("seed", "size"),
            diverged=("diverged", "sum"),
            mi_mean=("mi_estimate", "mean"),
            mi_std=("mi_estimate", "std"),
            accuracy_mean=("test_accuracy", "mean"),
            accuracy_std=("test_accuracy", "std"),
        )
        .reset_index()
        .rename(columns={"base_loss": "loss"})
    )
    original = summary[summary.variant == "original"]
    regularized = summary[summary.variant == "regularized"]
    if regularized.empty:
        chosen = regularized
    elif alpha == "best":
        best = regularized.groupby(["benchmark", "dataset", "loss"]).accuracy_mean.idxmax()
        chosen = regularized.loc[best.to_numpy()]
    else:
        chosen = regularized[np.isclose(regularized.alpha, float(alpha))]
        if chosen.empty:
            raise ValueError(f"no regularized run has alpha={alpha}; alphas run: "
                             f"{sorted(regularized.alpha.unique())}")
    return pd.concat([original, chosen], ignore_index=True)


def _mean_std(mean: float, std: float, decimals: int) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "—"
    text = format_number(mean, decimals)
    if std is not None and not (isinstance(std, float) and math.isnan(std)):
        text += f" ± {format_number(std, decimals)}"
    return text


def render_table1(
    runs: pd.DataFrame, *, alpha: float | str = "best", paper: bool = True, decimals: int = 3
) -> pd.DataFrame:
    """Table 1 of the paper from our runs, with the paper's numbers beside them.

    Args:
        runs: the ``runs`` table of :func:`~remi_tutorial.benchmarks.image_results.collect`.
        alpha: see :func:`summarize_runs`.
        paper: add the paper's published numbers (CIFAR rows only; "—" elsewhere).
        decimals: decimals of every number.

    Returns:
        A table of strings, one row per (benchmark, dataset, loss) in the paper's order.
        Runs of losses that are not in Table 1 (the second-order loss ``"explicit"``) are
        left out; :func:`summarize_runs` includes them.
        Columns (two levels; second level ``original`` / ``regularized``): ``MI estimate
        (ours)``, ``test accuracy (ours)``, ``runs (ours)`` (how many seeds, and how many of
        them diverged), ``MI estimate (paper's Table 1)``, ``test accuracy (paper's
        Table 1)``; and single columns ``true MI`` and ``alpha`` (the regularizer weight
        shown).
    """
    summary = summarize_runs(runs, alpha=alpha)
    summary = summary[summary.loss.isin(ORIGINAL_NAMES)]
    if summary.empty:
        raise ValueError(f"no run of a loss of Table 1 ({', '.join(ORIGINAL_NAMES)} and their "
                         f"regularized versions)")
    published = paper_table1().set_index(["benchmark", "dataset", "loss", "variant"])
    rows = []
    present = summary[["benchmark", "dataset", "loss"]].drop_duplicates()
    present = present.assign(
        _b=present.benchmark.map(_BENCHMARK_ORDER.index),
        _l=present.loss.map(ORIGINAL_NAMES.index),
    ).sort_values(["_b", "dataset", "_l"])
    for benchmark, dataset, loss in present[["benchmark", "dataset", "loss"]].itertuples(index=False):
        cell = summary[(summary.benchmark == benchmark) & (summary.dataset == dataset) & (summary.loss == loss)]
        row = {
            ("benchmark", ""): benchmark,
            ("dataset", ""): _DATASET_LABELS.get(dataset, dataset),
            ("loss", ""): bound_spec(loss).label,
            ("true MI", ""): f"{cell.true_mi.iloc[0]:.{decimals}f}",
        }
        for variant in ("original", "regularized"):
            ours = cell[cell.variant == variant]
            if ours.empty:
                mi = accuracy = count = "—"
            else:
                first = ours.iloc[0]
                mi = _mean_std(first.mi_mean, first.mi_std, decimals)
                accuracy = _mean_std(first.accuracy_mean, first.accuracy_std, decimals)
                count = f"{int(first.runs)}" + (f" ({int(first.diverged)} diverged)" if first.diverged else "")
                if variant == "regularized":
                    row[("alpha", "")] = f"{first.alpha:g}"
            row[("MI estimate (ours)", variant)] = mi
            row[("test accuracy (ours)", variant)] = accuracy
            row[("runs (ours)", variant)] = count
            if paper:
                key = (benchmark, dataset, loss, variant)
                if key in published.index:
                    p = published.loc[key]
                    row[("MI estimate (paper's Table 1)", variant)] = _mean_std(p.mi_mean, p.mi_std, decimals)
                    row[("test accuracy (paper's Table 1)", variant)] = _mean_std(
                        p.accuracy_mean, p.accuracy_std, decimals)
                else:
                    row[("MI estimate (paper's Table 1)", variant)] = "—"
                    row[("test accuracy (paper's Table 1)", variant)] = "—"
        row.setdefault(("alpha", ""), "—")
        rows.append(row)
    table = pd.DataFrame(rows)
    order = [("benchmark", ""), ("dataset", ""), ("loss", ""), ("true MI", ""), ("alpha", "")]
    for group in ("MI estimate (ours)", "MI estimate (paper's Table 1)", "test accuracy (ours)",
                  "test accuracy (paper's Table 1)", "runs (ours)"):
        order += [(group, "original"), (group, "regularized")]
    order = [column for column in order if column in table.columns]
    table = table[order]
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    return table.set_index([("benchmark", ""), ("dataset", ""), ("loss", "")]).rename_axis(
        ["benchmark", "dataset", "loss"])


def render_paper_table1(benchmark: str | None = None, *, decimals: int = 3) -> pd.DataFrame:
    """The paper's published Table 1 in the layout of :func:`render_table1`.

    Args:
        benchmark: ``"supervised"``, ``"contrastive"`` or ``None`` for both.
        decimals: decimals of every number.

    Returns:
        One row per (benchmark, dataset, loss); columns ``MI estimate (paper's Table 1)``
        and ``test accuracy (paper's Table 1)``, each ``original`` / ``regularized``.
    """
    published = paper_table1()
    if benchmark is not None:
        if benchmark not in _BENCHMARK_ORDER:
            raise ValueError(f"benchmark must be one of {_BENCHMARK_ORDER}, got {benchmark!r}")
        published = published[published.benchmark == benchmark]
    rows = {}
    for row in published.itertuples(index=False):
        key = (row.benchmark, _DATASET_LABELS[row.dataset], bound_spec(row.loss).label)
        cells = rows.setdefault(key, {})
        cells[("MI estimate (paper's Table 1)", row.variant)] = _mean_std(row.mi_mean, row.mi_std, decimals)
        cells[("test accuracy (paper's Table 1)", row.variant)] = _mean_std(
            row.accuracy_mean, row.accuracy_std, decimals)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    table.index = pd.MultiIndex.from_tuples(table.index, names=["benchmark", "dataset", "loss"])
    return table


EXAMPLES = """examples:
  %(prog)s --results results
  # the regularized losses at alpha 0.01, as Markdown, and the summary behind the table
  %(prog)s --results results --alpha 0.01 --markdown --out results/table1_summary.csv
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m remi_tutorial.benchmarks table1``."""
    parser.add_argument("--results", default="results",
                        help="the results folder of the supervised and contrastive commands")
    parser.add_argument("--alpha", default="best",
                        help="the regularizer weight to show: a number, or 'best' (per loss, "
                             "the one with the highest mean test accuracy)")
    parser.add_argument("--no-paper", action="store_true", help="leave out the paper's numbers")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    add_out(parser, None)


def main(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    collected = collect(args.results)
    if collected.runs.empty:
        raise SystemExit(f"no results in {args.results}: run the supervised or contrastive "
                         "command first")
    print(f"{args.results}: {collected.report()}\n")
    alpha = args.alpha if args.alpha == "best" else float(args.alpha)
    table = render_table1(collected.runs, alpha=alpha, paper=not args.no_paper)
    if args.markdown:
        flat = table.copy()
        flat.columns = [" ".join(part for part in column if part) for column in flat.columns]
        print(flat.reset_index().to_markdown(index=False))
    else:
        with pd.option_context("display.width", 250, "display.max_columns", 50):
            print(table.to_string())
    if args.out:
        summary = summarize_runs(collected.runs, alpha=alpha)
        summary.attrs = {"results": str(args.results), "alpha": args.alpha}
        write_result(summary, args.out, started=started)
