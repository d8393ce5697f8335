"""Render the Gaussian benchmark's figure and per-stage table from a saved result.

``python -m remi_tutorial.benchmarks gaussian-report results/gaussian.parquet`` reads the
table written by ``python -m remi_tutorial.benchmarks gaussian``, draws the Figure 4 grid
(one per trained critic; the closed-form rows, critic ``"none"``, have no panel there) and
prints, and optionally writes, the bias/variance/MSE of every stage.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

from .gaussian import CRITICS, load_result, stage_summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m remi_tutorial.benchmarks gaussian-report``."""
    parser.add_argument("result", help="a table written by the gaussian command")
    parser.add_argument("--figure", default=None,
                        help="image path (default: RESULT without suffix + _CRITIC.png)")
    parser.add_argument("--table", default=None, help="also write the summary as CSV here")
    parser.add_argument("--smoothing", type=int, default=200,
                        help="moving-average window of the smoothed line, in steps")


def main(args: argparse.Namespace) -> None:
    """Draw the figure(s) and print the per-stage summary of a saved result."""
    matplotlib.use("Agg")
    from ..plots import plot_gaussian_benchmark

    table = load_result(args.result)
    batch_size = int(table.attrs.get("batch_size", 64))
    trained = table[table.critic.isin(CRITICS)]
    for critic, part in trained.groupby("critic", sort=False):
        figure_path = Path(args.figure) if args.figure else None
        if figure_path is None or trained.critic.nunique() > 1:
            stem = figure_path.with_suffix("") if figure_path else Path(args.result).with_suffix("")
            figure_path = Path(f"{stem}_{critic}.png")
        figure = plot_gaussian_benchmark(
            part, batch_size=batch_size, smoothing=args.smoothing,
            title=f"The Gaussian staircase, {critic} critic",
        )
        figure_path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(figure_path, dpi=120, bbox_inches="tight")
        print(f"wrote {figure_path}")
    summary = stage_summary(table)
    if args.table:
        summary.to_csv(args.table, index=False)
        print(f"wrote {args.table}")
    print(summary.round(3).to_string(index=False))
