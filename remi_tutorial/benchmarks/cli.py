"""What every benchmark command shares: its help page, its seeds, its device and its output.

Conventions (one for every command of ``python -m remi_tutorial.benchmarks`` / ``remi-tutorial``):

* ``--help`` shows the module's description (its docstring), every option's default and
  examples (the module's ``EXAMPLES``, where ``%(prog)s`` stands for the command);
* ``--seeds 0 1 2`` lists the seeds to run (never a count);
* ``--out FILE`` (``.parquet`` or ``.csv``) writes the command's tidy table and, beside it,
  ``FILE.json`` with the settings, the exact command, the wall time and the environment
  (:func:`~remi_tutorial.benchmarks.tables.save_table`);
* ``--device auto|cpu|cuda...``, ``--threads N`` and ``--no-progress`` where training runs.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import pandas as pd
import torch

from ..train import default_device
from .tables import command_line, save_table

__all__ = ["HelpFormatter", "add_seeds", "add_out", "add_threads", "add_runtime",
           "resolve_device", "apply_threads", "write_result"]


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Defaults shown after every option's help; descriptions and examples kept as written."""


def add_seeds(parser: argparse.ArgumentParser, default: Sequence[int] = (0,)) -> None:
    """``--seeds 0 1 2``: the seeds to run."""
    parser.add_argument("--seeds", nargs="+", type=int, default=list(default), metavar="SEED",
                        help="the seeds to run, e.g. --seeds 0 1 2")


def add_out(parser: argparse.ArgumentParser, default: str | None) -> None:
    """``--out FILE``: the tidy table, with its provenance in ``FILE.json``."""
    parser.add_argument("--out", default=default, metavar="FILE",
                        help="write the tidy table here (.parquet or .csv), with its settings, "
                             "command and environment in FILE.json")


def add_threads(parser: argparse.ArgumentParser) -> None:
    """``--threads N``: torch's CPU threads (:func:`apply_threads` sets them)."""
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads: small matmuls on a shared CPU gain nothing from more")


def add_runtime(parser: argparse.ArgumentParser) -> None:
    """``--device``, ``--threads`` and ``--no-progress``."""
    parser.add_argument("--device", default="auto",
                        help="'auto' (the first GPU if there is one, else the CPU), 'cpu', 'cuda', ...")
    add_threads(parser)
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> :func:`~remi_tutorial.train.default_device`; anything else as given."""
    return default_device() if name == "auto" else torch.device(name)


def apply_threads(args: argparse.Namespace) -> None:
    """Set torch's CPU threads from ``--threads``."""
    torch.set_num_threads(args.threads)


def write_result(table: pd.DataFrame, path: str, *, started: float, **record) -> None:
    """Save ``table`` with :func:`~remi_tutorial.benchmarks.tables.save_table`, recording the
    command and the wall time since ``started`` (a ``time.perf_counter()`` value)."""
    record = {"command": command_line(), "wall_seconds": time.perf_counter() - started, **record}
    save_table(table, path, record=record)
    print(f"wrote {path} ({len(table)} rows) and {path}.json")
