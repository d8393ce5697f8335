"""Merge the cells of a results folder into one table; report the cells missing, running or diverged.

The ``supervised`` and ``contrastive`` commands write one set of files per cell
(:mod:`~remi_tutorial.benchmarks.image_results`), whatever ``--launcher`` ran them. This
command reads them (:func:`~remi_tutorial.benchmarks.image_results.collect`): it prints how
many cells are finished, diverged, running (a checkpoint but no result: training, or
interrupted) and missing (asked for, not started), which is how to watch a sweep on a
cluster, and with ``--out`` writes the finished cells' table, the one ``table1`` renders.

Command line: ``python -m remi_tutorial.benchmarks collect`` (``--help`` shows the options).
"""

from __future__ import annotations

import argparse
import time

from .cli import add_out, write_result
from .image_results import collect

__all__ = ["add_arguments", "main"]

EXAMPLES = """examples:
  # how far a sweep has come
  %(prog)s --results results
  # the finished cells as one table, with the cells still missing or running in its record
  %(prog)s --results results --out results/runs.csv
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m remi_tutorial.benchmarks collect``."""
    parser.add_argument("--results", default="results",
                        help="the results folder of the supervised and contrastive commands")
    parser.add_argument("--checkpoints", default=None,
                        help="the checkpoint folder, RESULTS/checkpoints if None")
    add_out(parser, None)


def main(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    collected = collect(args.results, checkpoint_dir=args.checkpoints)
    print(f"{args.results}: {collected.report()}")
    if args.out:
        runs = collected.runs
        runs.attrs = {"results": str(args.results)}
        write_result(runs, args.out, started=started, missing=collected.missing,
                     running=collected.running, diverged=collected.diverged)
