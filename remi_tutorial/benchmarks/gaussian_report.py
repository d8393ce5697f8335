"""Render the Gaussian benchmark's figure and per-stage summary from a saved result.

Reads the table written by the ``gaussian`` command, draws the Figure 4 grid (one per
trained critic; the closed-form rows, critic ``"none"``, have no panel there) and prints,
and with ``--out`` writes, the bias, variance and MSE of every stage
(:func:`~remi_tutorial.benchmarks.gaussian.stage_summary`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

from . import cli
from .gaussian import CRITICS, stage_summary
from .tables import load_table

EXAMPLES = """examples:
  %(prog)s results/gaussian.parquet
  %(prog)s results/gaussian.parquet --figure figures/staircase.png --out results/summary.csv
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m remi_tutorial.benchmarks gaussian-report``."""
    parser.add_argument("result", help="a table written by the gaussian command")
    parser.add_argument("--figure", default=None,
                        help="the figure's path (None: RESULT without its suffix + _CRITIC.png); "
                             "with several critics, _CRITIC is added to it")
    parser.add_argument("--smoothing", type=int, default=200,
                        help="moving-average window of the smoothed line, in steps")
    cli.add_out(parser, default=None)


def main(args: argparse.Namespace) -> None:
    """Draw the figure(s), print the per-stage summary and write it with ``--out``."""
    started = time.perf_counter()
    matplotlib.use("Agg")
    from ..plots import plot_gaussian_benchmark

    table = load_table(args.result)
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
    print(summary.round(3).to_string(index=False))
    if args.out:
        settings = {key: value for key, value in table.attrs.items() if key != "provenance"}
        summary.attrs = {"result": str(args.result), **settings}
        cli.write_result(summary, args.out, started=started)
