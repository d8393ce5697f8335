"""How long estimate_mi takes on 10,000 pairs in 5 + 5 dimensions, with its defaults.

Draws 10,000 pairs of a correlated Gaussian in dimension 5 + 5 with a known MI, times one
call of :func:`remi_tutorial.estimate.estimate_mi` with its defaults (the first call
included: it is what a user waits for) and prints the seconds, the steps trained, whether it
stopped early, the estimate with its interval next to the truth, and the machine.

Usage: ``python scripts/time_estimate_mi.py [--pairs 10000] [--dim 5] [--mi 0.59]
[--threads 1] [--repeats 1]``. Timings depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from remi_tutorial.estimate import estimate_mi
from remi_tutorial.tasks import mi_task
from remi_tutorial.train import default_device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=5)
    parser.add_argument("--mi", type=float, default=0.59)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x, y = mi_task("gaussian").sample(args.pairs, args.dim, args.mi,
                                      generator=torch.Generator().manual_seed(0))
    device = default_device()
    name = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu"
    print(f"{args.pairs} pairs, dimension {args.dim} + {args.dim}, true MI {args.mi} nats; "
          f"torch {torch.__version__}, {device} ({name}), {torch.get_num_threads()} thread(s)")
    for repeat in range(args.repeats):
        started = time.perf_counter()
        result = estimate_mi(x, y, seed=repeat, progress=False)
        seconds = time.perf_counter() - started
        low, high = result.ci
        print(f"run {repeat}: {seconds:.1f} s, {result.steps} steps "
              f"({'stopped early' if result.stopped_early else 'max_steps'}), estimate "
              f"{result.estimate:.3f} [{low:.3f}, {high:.3f}] vs true {args.mi}; on its training "
              f"batches {result.table.train_estimate.iloc[0]:.3f}")


if __name__ == "__main__":
    main()
