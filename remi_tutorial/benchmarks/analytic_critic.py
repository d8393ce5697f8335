"""The bounds evaluated at the correlated Gaussian's analytic optimal critic, against batch size.

With the critic fixed at its optimum, everything that is left of an estimator's error is
the batch: the DV estimate's upward bias (the log sits outside the batch mean) and each
estimate's variance. :func:`estimates_at_analytic_critic` draws many independent batches
of each size and records every bound's estimate; :func:`batch_size_summary` reduces them to
a mean, a bias, a standard deviation and a standard error per bound and batch size. The
command line prints (and with ``--out`` writes) that summary, over the batches of every seed.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from ..bounds import BOUND_NAMES, bound_spec, get_bound
from ..tasks import gaussian_log_density_ratio, gaussian_rho, paired_masks, sample_gaussian
from . import cli

__all__ = [
    "estimates_at_analytic_critic",
    "batch_size_summary",
]


def estimates_at_analytic_critic(
    bounds: Sequence[str] = ("mine", "nwj"),
    batch_sizes: Sequence[int] = (8, 16, 32, 64, 128, 256, 512),
    *,
    mi: float = 4.0,
    dim: int = 20,
    repeats: int = 200,
    seed: int = 0,
    shifts: Mapping[str, float] | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
) -> pd.DataFrame:
    """Each bound's estimate on ``repeats`` fresh batches of each size, at the optimal critic.

    A batch is ``B`` pairs of the correlated Gaussian
    (:func:`~remi_tutorial.tasks.sample_gaussian`), scored all against all by
    ``log dP/dQ + shift``
    (:func:`~remi_tutorial.tasks.gaussian_log_density_ratio`), with the diagonal as the
    joint pairs and the off-diagonal as the marginal pairs
    (:func:`~remi_tutorial.tasks.paired_masks`). Every bound sees the same batches.

    Args:
        bounds: bound names (with their default parameters).
        batch_sizes: the batch sizes ``B``, each at least 2.
        mi: the true MI in nats.
        dim: the dimension of ``x`` and ``y``.
        repeats: independent batches per batch size.
        seed: seeds the batches.
        shifts: bound name -> the constant added to ``log dP/dQ``; by default each bound's
            the ``optimal_shift`` of :class:`~remi_tutorial.bounds.BoundSpec`.
        dtype: the dtype of samples and scores.
        device: where the samples are drawn and scored (default: the CPU).

    Returns:
        Columns ``bound, batch_size, repeat, estimate, true_mi``; one row per bound, batch
        size and repeat.
    """
    shifts = {name: bound_spec(name).optimal_shift for name in bounds} | dict(shifts or {})
    if repeats < 1:
        raise ValueError(f"repeats must be positive, got {repeats}")
    functions = {name: get_bound(name) for name in bounds}
    rho = gaussian_rho(mi, dim)
    generator = torch.Generator().manual_seed(seed)  # CPU draws: the same batches on any device
    rows: dict[str, list] = {"bound": [], "batch_size": [], "repeat": [], "estimate": []}
    for batch_size in batch_sizes:
        positive, negative = paired_masks(batch_size, device=device)
        estimates = {name: [] for name in bounds}
        for _ in range(repeats):
            x, y = sample_gaussian(
                batch_size, dim, rho, generator=generator, device=device, dtype=dtype
            )
            scores = gaussian_log_density_ratio(x, y, rho)  # [B, B]
            for name, function in functions.items():
                shifted = scores + shifts[name]
                estimates[name].append(function(shifted, positive, negative, check=False).mi)
        for name in bounds:
            rows["bound"] += [name] * repeats
            rows["batch_size"] += [batch_size] * repeats
            rows["repeat"] += list(range(repeats))
            rows["estimate"] += torch.stack(estimates[name]).cpu().tolist()
    table = pd.DataFrame(rows)
    table["true_mi"] = float(mi)
    return table


def batch_size_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean, bias, standard deviation and standard error of the estimates, per bound and size.

    Args:
        table: the output of :func:`estimates_at_analytic_critic`.

    Returns:
        Columns ``bound, batch_size, mean, bias, std, standard_error, true_mi``, where
        ``bias = mean - true_mi`` and ``standard_error = std / sqrt(repeats)`` (the
        uncertainty of ``mean``).
    """
    grouped = table.groupby(["bound", "batch_size"], sort=False)
    summary = grouped.agg(
        mean=("estimate", "mean"), std=("estimate", "std"), repeats=("estimate", "size"),
        true_mi=("true_mi", "first"),
    ).reset_index()
    summary["bias"] = summary["mean"] - summary["true_mi"]
    summary["standard_error"] = summary["std"] / np.sqrt(summary["repeats"])
    return summary[["bound", "batch_size", "mean", "bias", "std", "standard_error", "true_mi"]]


# --------------------------------------------------------------------------- command line


EXAMPLES = """examples:
  %(prog)s --mi 4 --repeats 200
  %(prog)s --bounds mine nwj js --batch-sizes 16 64 256 --seeds 0 1 2 --out results/analytic.csv
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m remi_tutorial.benchmarks analytic-critic``."""
    parser.add_argument("--bounds", nargs="+", default=["mine", "nwj"],
                        choices=BOUND_NAMES, metavar="BOUND",
                        help=f"bound names: {', '.join(BOUND_NAMES)}")
    parser.add_argument("--batch-sizes", type=int, nargs="+",
                        default=[8, 16, 32, 64, 128, 256, 512], help="the batch sizes B")
    parser.add_argument("--mi", type=float, default=4.0, help="the true MI, in nats")
    parser.add_argument("--dim", type=int, default=20, help="the dimension of x and y")
    parser.add_argument("--repeats", type=int, default=200,
                        help="independent batches per batch size and seed")
    cli.add_seeds(parser)
    cli.add_out(parser, default=None)
    cli.add_threads(parser)


def main(args: argparse.Namespace) -> None:
    """Print, and with ``--out`` write, the summary of every seed's batches."""
    started = time.perf_counter()
    cli.apply_threads(args)
    table = pd.concat([
        estimates_at_analytic_critic(
            args.bounds, args.batch_sizes, mi=args.mi, dim=args.dim, repeats=args.repeats,
            seed=seed,
        ).assign(seed=seed)
        for seed in args.seeds
    ], ignore_index=True)
    summary = batch_size_summary(table)
    print(summary.round(4).to_string(index=False))
    if args.out:
        summary.attrs = {"bounds": list(args.bounds), "batch_sizes": list(args.batch_sizes),
                         "mi": args.mi, "dim": args.dim, "repeats": args.repeats,
                         "seeds": list(args.seeds)}
        cli.write_result(summary, args.out, started=started)
