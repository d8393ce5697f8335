"""Estimators on tasks with a known MI beyond the Gaussian: bias per task, dimension and size.

For each task of :data:`~remi_tutorial.tasks.MI_TASKS` (the Gaussian, its invertible
transforms, the Student-t, additive uniform noise), dimension, number of pairs and seed,
:func:`run_beyond_normal` draws the pairs once, estimates their MI with
:func:`~remi_tutorial.estimate.estimate_mi` (the bounds asked for, trained stacked, each
read on held-out pairs) and, if asked, with KSG (:func:`~remi_tutorial.ksg.ksg_mi`, on all
the pairs: it trains nothing), and records each estimate next to the truth. The command line
prints the mean bias per task and estimator and, with ``--out``, writes the tidy table.
"""

from __future__ import annotations

import argparse
import inspect
import time
from collections.abc import Sequence

import pandas as pd
import torch
from torch import Tensor

from ..bounds import BOUND_NAMES
from ..estimate import estimate_mi
from ..ksg import ksg_mi
from ..tasks import MI_TASKS, mi_task
from . import cli

__all__ = ["TABLE_COLUMNS", "draw_pairs", "run_beyond_normal"]

# estimate_mi's keyword defaults: the command line's defaults are read from its signature
_ESTIMATE_DEFAULTS = {name: parameter.default
                      for name, parameter in inspect.signature(estimate_mi).parameters.items()}

TABLE_COLUMNS = ("task", "dim", "pairs", "seed", "estimator", "true_mi", "estimate", "ci_low",
                 "ci_high", "bias", "steps", "seconds")
"""The columns of :func:`run_beyond_normal`'s table; ``ci_low``, ``ci_high`` and ``steps``
are NaN for KSG, ``seconds`` is the wall time of the call that gave the estimate."""


def draw_pairs(task: str, pairs: int, dim: int, mi: float, seed: int) -> tuple[Tensor, Tensor]:
    """The pairs ``x [pairs, dim]``, ``y [pairs, dim]`` of ``task`` (a name of
    :data:`~remi_tutorial.tasks.MI_TASKS`) with MI ``mi`` that :func:`run_beyond_normal`
    estimates for ``seed``, drawn with a CPU generator seeded ``10_000 + seed``."""
    generator = torch.Generator().manual_seed(10_000 + seed)
    return mi_task(task).sample(pairs, dim, mi, generator=generator)


def run_beyond_normal(
    tasks: Sequence[str] = tuple(MI_TASKS),
    *,
    estimators: Sequence[str] = ("remine",),
    ksg: bool = True,
    dims: Sequence[int] = (3,),
    pairs: Sequence[int] = (2000,),
    mi: float = 1.0,
    seeds: Sequence[int] = (0,),
    device: torch.device | str | None = None,
    progress: bool = True,
    **settings,
) -> pd.DataFrame:
    """Estimate the MI of every task, dimension, size and seed; one row per estimate.

    Args:
        tasks: names of :data:`~remi_tutorial.tasks.MI_TASKS`.
        estimators: bound names, trained stacked by one
            :func:`~remi_tutorial.estimate.estimate_mi` call per sample.
        ksg: also estimate with KSG (``k = 3``).
        dims: the dimension of ``x`` and of ``y``.
        pairs: the numbers of pairs drawn.
        mi: the true MI, in nats (a Student-t pair has at least
            :func:`~remi_tutorial.tasks.student_t_correction`).
        seeds: seed the samples (``10_000 + seed``) and ``estimate_mi``.
        device: where ``estimate_mi`` trains; default: the GPU when there is one.
        progress: show ``estimate_mi``'s progress bars.
        **settings: more keyword arguments of ``estimate_mi`` (``hidden``, ``max_steps``...).

    Returns:
        A table with :data:`TABLE_COLUMNS`.

    Raises:
        ValueError: for an unknown task or estimator, or an MI a task cannot have.
    """
    rows = []
    for name in tasks:
        for dim in dims:
            for size in pairs:
                for seed in seeds:
                    x, y = draw_pairs(name, size, dim, mi, seed)
                    labels = {"task": name, "dim": dim, "pairs": size, "seed": seed,
                              "true_mi": mi}
                    started = time.perf_counter()
                    result = estimate_mi(x, y, estimator=list(estimators), seed=seed,
                                         device=device, progress=progress, **settings)
                    seconds = time.perf_counter() - started
                    for row in result.table.itertuples():
                        rows.append({**labels, "estimator": row.estimator,
                                     "estimate": row.estimate, "ci_low": row.ci_low,
                                     "ci_high": row.ci_high, "steps": result.steps,
                                     "seconds": seconds})
                    if ksg:
                        started = time.perf_counter()
                        value = ksg_mi(x, y)
                        rows.append({**labels, "estimator": "ksg", "estimate": value,
                                     "seconds": time.perf_counter() - started})
    table = pd.DataFrame(rows)
    table["bias"] = table.estimate - table.true_mi
    return table.reindex(columns=list(TABLE_COLUMNS))


EXAMPLES = """examples:
  %(prog)s --tasks gaussian student_t --pairs 2000 --no-progress
  %(prog)s --estimators remine mine infonce --dims 3 5 --pairs 1000 4000 --seeds 0 1 2 --out results/beyond_normal.parquet
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m remi_tutorial.benchmarks beyond-normal``."""
    parser.add_argument("--tasks", nargs="+", default=list(MI_TASKS), choices=list(MI_TASKS),
                        metavar="TASK", help=f"tasks: {', '.join(MI_TASKS)}")
    parser.add_argument("--estimators", nargs="+", default=["remine"], choices=BOUND_NAMES,
                        metavar="BOUND", help=f"bounds: {', '.join(BOUND_NAMES)}")
    parser.add_argument("--no-ksg", action="store_true", help="leave KSG out")
    parser.add_argument("--dims", type=int, nargs="+", default=[3],
                        help="dimensions of x and of y")
    parser.add_argument("--pairs", type=int, nargs="+", default=[2000], help="numbers of pairs")
    parser.add_argument("--mi", type=float, default=1.0, help="the true MI, in nats")
    parser.add_argument("--max-steps", type=int, default=_ESTIMATE_DEFAULTS["max_steps"],
                        help="estimate_mi's most training steps (it stops earlier when the "
                             "held-out estimate plateaus)")
    cli.add_seeds(parser)
    cli.add_out(parser, default=None)
    cli.add_runtime(parser)


def main(args: argparse.Namespace) -> None:
    """Print the mean bias per task and estimator; with ``--out``, write the tidy table."""
    started = time.perf_counter()
    cli.apply_threads(args)
    table = run_beyond_normal(
        args.tasks, estimators=args.estimators, ksg=not args.no_ksg, dims=args.dims,
        pairs=args.pairs, mi=args.mi, seeds=args.seeds, device=cli.resolve_device(args.device),
        progress=not args.no_progress, max_steps=args.max_steps,
    )
    print(table.pivot_table(index=["task", "dim", "pairs"], columns="estimator", values="bias",
                            sort=False).round(3).to_string())
    if args.out:
        table.attrs = {"tasks": list(args.tasks), "estimators": list(args.estimators),
                       "ksg": not args.no_ksg, "dims": list(args.dims), "pairs": list(args.pairs),
                       "mi": args.mi, "max_steps": args.max_steps, "seeds": list(args.seeds)}
        cli.write_result(table, args.out, started=started)
