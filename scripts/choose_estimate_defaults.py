"""Choose estimate_mi's defaults by measurement: bias against the truth across tasks with known MI.

Runs :func:`remi_tutorial.estimate.estimate_mi` (ReMINE, its default estimator) on samples of
the non-Gaussian tasks of :data:`remi_tutorial.tasks.MI_TASKS` and the Gaussian, for a small
grid of settings varied one at a time around a base setting: the critic's width, the
stopping rule (early stopping with two patiences, or a fixed number of steps), the
held-out fraction, the learning rate and the batch size. Prints the held-out estimate's bias (estimate - true MI, nats) per task
and setting, the mean absolute bias and the worst one per setting, and the seconds each
setting took.

Usage: ``python scripts/choose_estimate_defaults.py [--pairs 2000] [--dim 3] [--mi 1.0]
[--seeds 1] [--threads 1]``. The default size runs in a few minutes on one CPU thread; the
numbers move with the seed by a few hundredths of a nat (see the interval widths that
estimate_mi reports), so read differences smaller than that as ties.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from remi_tutorial.estimate import estimate_mi
from remi_tutorial.tasks import MI_TASKS

BASE = dict(hidden=(64, 64), embed_dim=16, max_steps=2000, patience=3, held_out=0.5, lr=1e-3,
            batch_size=128)
"""The base setting; each other setting changes one group of it."""

SETTINGS = {
    "base: width 64, patience 3, held out 0.5": {},
    "width 32": dict(hidden=(32, 32), embed_dim=8),
    "width 128": dict(hidden=(128, 128), embed_dim=32),
    "patience 1": dict(patience=1),
    "no early stop, 1000 steps": dict(max_steps=1000, patience=10**6),
    "held out 0.25": dict(held_out=0.25),
    "held out 0.75": dict(held_out=0.75),
    "lr 3e-3": dict(lr=3e-3),
    "batch 64": dict(batch_size=64),
    "batch 256": dict(batch_size=256),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--dim", type=int, default=3)
    parser.add_argument("--mi", type=float, default=1.0)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rows = []
    for setting, change in SETTINGS.items():
        started = time.perf_counter()
        for name, task in MI_TASKS.items():
            for seed in range(args.seeds):
                generator = torch.Generator().manual_seed(10_000 + seed)
                x, y = task.sample(args.pairs, args.dim, args.mi, generator=generator)
                result = estimate_mi(x, y, **{**BASE, **change}, seed=seed, device="cpu",
                                     progress=False)
                rows.append({"setting": setting, "task": name, "seed": seed,
                             "bias": result.estimate - args.mi, "steps": result.steps})
        seconds = time.perf_counter() - started
        for row in rows:
            row.setdefault("seconds", seconds)
        print(f"{setting}: {seconds:.0f} s", flush=True)

    table = pd.DataFrame(rows)
    bias = table.pivot_table(index="setting", columns="task", values="bias", sort=False)
    summary = pd.DataFrame({
        "mean |bias|": bias.abs().mean(axis=1),
        "worst bias": bias.apply(lambda row: row.loc[row.abs().idxmax()], axis=1),
        "mean steps": table.groupby("setting", sort=False).steps.mean(),
        "seconds": table.groupby("setting", sort=False).seconds.first(),
    })
    pd.set_option("display.width", 200)
    print(f"\n{args.pairs} pairs, dimension {args.dim} + {args.dim}, true MI {args.mi} nats, "
          f"{args.seeds} seed(s), ReMINE, separable critic; bias = held-out estimate - true MI")
    print(bias.round(3).to_string())
    print()
    print(summary.round(3).to_string())


if __name__ == "__main__":
    main()
