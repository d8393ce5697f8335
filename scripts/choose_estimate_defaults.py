"""Choose estimate_mi's defaults by measurement: bias against the truth across tasks with known MI.

Runs :func:`remi_tutorial.estimate.estimate_mi` (ReMINE, its default estimator) on samples of
every task of :data:`remi_tutorial.tasks.MI_TASKS` (the Gaussian, its invertible transforms,
the Student-t, additive uniform noise), drawn as ``run_beyond_normal`` draws them (``draw_pairs``), for a
grid of settings varied around a base setting: the critic's width and the stopping rule
(patience and the most steps), plus, with ``--all-settings``, the held-out fraction, the
learning rate and the batch size. Prints the held-out estimate's bias (estimate - true MI,
nats) per task and setting, then per setting the mean absolute bias, the worst bias, the
mean steps and the seconds. With ``--out`` it writes the tidy table (one row per setting,
task and seed) and its provenance (``FILE.json``: command, wall time, environment), the
files the chapter "Estimating MI on your own data" reads from ``book/measurements/``.

Usage: ``python scripts/choose_estimate_defaults.py [--pairs 2000] [--dim 3] [--mi 1.0]
[--seeds 0] [--threads 1] [--all-settings] [--out FILE.csv]``; the chapter's two tables:
``--pairs 2000 --dim 3 --out book/measurements/estimate_defaults_2000x3.csv`` and
``--pairs 10000 --dim 5 --out book/measurements/estimate_defaults_10000x5.csv``. Each took
about 12 and 6 minutes on one thread of this book's shared CPU (the sidecars record the
wall time; early stopping makes the larger size the quicker one). The numbers move with the seed by a few hundredths of a nat (see the
interval widths that estimate_mi reports), so read smaller differences as ties.
"""

from __future__ import annotations

import argparse
import sys
import time

import pandas as pd
import torch

from remi_tutorial.benchmarks.beyond_normal import draw_pairs
from remi_tutorial.benchmarks.tables import save_table
from remi_tutorial.estimate import estimate_mi
from remi_tutorial.tasks import MI_TASKS

BASE = dict(hidden=(64, 64), embed_dim=16, max_steps=2000, patience=3, held_out=0.5, lr=1e-3,
            batch_size=128)
"""The base setting (estimate_mi's defaults until this measurement); each other setting
changes one group of it."""

SETTINGS = {
    "width 64, patience 3, max 2,000 steps": {},
    "width 64, patience 5, max 10,000": dict(patience=5, max_steps=10_000),
    "width 64, patience 10, max 10,000": dict(patience=10, max_steps=10_000),
    "width 128, patience 3, max 2,000": dict(hidden=(128, 128), embed_dim=32),
    "width 128, patience 5, max 10,000": dict(hidden=(128, 128), embed_dim=32, patience=5,
                                              max_steps=10_000),
    "width 128, patience 10, max 10,000": dict(hidden=(128, 128), embed_dim=32, patience=10,
                                               max_steps=10_000),
}
"""The settings compared by default: the critic's size and how long training may go on."""

MORE_SETTINGS = {
    "width 32": dict(hidden=(32, 32), embed_dim=8),
    "held out 0.25": dict(held_out=0.25),
    "held out 0.75": dict(held_out=0.75),
    "lr 3e-3": dict(lr=3e-3),
    "batch 64": dict(batch_size=64),
    "batch 256": dict(batch_size=256),
}
"""Settings added by ``--all-settings``, each one change from the base."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2000)
    parser.add_argument("--dim", type=int, default=3)
    parser.add_argument("--mi", type=float, default=1.0)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--all-settings", action="store_true")
    parser.add_argument("--out", help="write the tidy table here (.csv or .parquet) and FILE.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = {**SETTINGS, **(MORE_SETTINGS if args.all_settings else {})}

    started_all = time.perf_counter()
    rows = []
    for setting, change in settings.items():
        started = time.perf_counter()
        for name in MI_TASKS:
            for seed in args.seeds:
                x, y = draw_pairs(name, args.pairs, args.dim, args.mi, seed)
                call_started = time.perf_counter()
                result = estimate_mi(x, y, **{**BASE, **change}, seed=seed, device="cpu",
                                     progress=False)
                rows.append({"setting": setting, "task": name, "seed": seed, "pairs": args.pairs,
                             "dim": args.dim, "true_mi": args.mi, "estimate": result.estimate,
                             "bias": result.estimate - args.mi, "steps": result.steps,
                             "seconds": time.perf_counter() - call_started})
        print(f"{setting}: {time.perf_counter() - started:.0f} s", flush=True)

    table = pd.DataFrame(rows)
    bias = table.pivot_table(index="setting", columns="task", values="bias", sort=False)
    summary = pd.DataFrame({
        "mean |bias|": bias.abs().mean(axis=1),
        "worst bias": bias.apply(lambda row: row.loc[row.abs().idxmax()], axis=1),
        "mean steps": table.groupby("setting", sort=False).steps.mean(),
        "seconds": table.groupby("setting", sort=False).seconds.sum(),
    })
    pd.set_option("display.width", 200)
    print(f"\n{args.pairs} pairs, dimension {args.dim} + {args.dim}, true MI {args.mi} nats, "
          f"seeds {args.seeds}, ReMINE, separable critic; bias = held-out estimate - true MI")
    print(bias.round(3).to_string())
    print()
    print(summary.round(3).to_string())
    if args.out:
        table.attrs = {"base": {k: list(v) if isinstance(v, tuple) else v for k, v in BASE.items()},
                       "settings": {k: {kk: list(vv) if isinstance(vv, tuple) else vv
                                        for kk, vv in v.items()} for k, v in settings.items()}}
        command = "python scripts/choose_estimate_defaults.py " + " ".join(sys.argv[1:])
        save_table(table, args.out, record={"command": command,
                                            "wall_seconds": time.perf_counter() - started_all})
        print(f"wrote {args.out} and {args.out}.json")


if __name__ == "__main__":
    main()
