"""Draw the intro page's figure: MINE drifting and ReMINE holding still, side by side.

The one-hot task of the symptoms chapter (``DRIFTING``: 16 classes, a concat critic, SGD,
batches of 100, 3,000 steps, seed 0), trained with MINE and with ReMINE (α = 0.1): the
estimate of each on top, its two terms below. Run from the repository root:

    OMP_NUM_THREADS=1 python scripts/intro_figure.py   # about half a minute on one CPU core

It writes ``book/figures/intro_drifting.png``, which ``book/intro.md`` shows.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

from remi_tutorial.benchmarks.symptoms import DRIFTING, train_one_hot  # noqa: E402
from remi_tutorial.bounds import get_bound  # noqa: E402
from remi_tutorial.plots import plot_training  # noqa: E402

FIGURE = Path(__file__).resolve().parents[1] / "book" / "figures" / "intro_drifting.png"


def main() -> None:
    bounds = {"mine": get_bound("mine"), "remine": get_bound("remine", alpha=0.1)}
    run = train_one_hot(bounds, DRIFTING, seed=0, progress=False)
    histories = {name: group for name, group in run.history.groupby("estimator", sort=False)}
    figure = plot_training(
        histories, title="MINE drifts; ReMINE keeps its marginal term at 0 (one-hot task, log 16 nats)"
    )
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(FIGURE, dpi=110, bbox_inches="tight")
    print(f"wrote {FIGURE.relative_to(Path.cwd()) if FIGURE.is_relative_to(Path.cwd()) else FIGURE}"
          f" ({run.message})")


if __name__ == "__main__":
    main()
