"""How fast the Gaussian benchmark trains: sequential vs batched, against the hardware and torch-mist.

Prints, in one run on one machine, for the separable and the concat critic of the paper
(batch 64, dimension 20, hidden widths 256, 256):

* the FLOPs of one estimator-step (forward and backward), counted by
  ``torch.utils.flop_counter.FlopCounterMode``;
* a plain large matrix product's FLOP/s, the hardware's reference (the fastest of several
  measurements around the timings);
* estimator-steps per second when the twelve estimators train one after another
  (``remi_tutorial.train.train`` on each critic, the reference implementation) and all at
  once (one stacked critic, one stacked bound, one Adam, fused where torch has the kernel),
  each the best of ``--rounds`` alternating timings; the FLOP/s each achieves and the speed-up.
  The concat critic is stacked both ways (its pair layers batched over the estimators, or
  looped over them), and the script names the one the Gaussian benchmark uses on this device
  (``remi_tutorial.stacked.stacked_critic``);
* the cost of evaluating the twelve bounds per step: the stacked bound vs one bound call
  per estimator;
* torch-mist's estimator-steps per second on the same configuration, when ``--torch-mist-python``
  names a Python that has it (``scripts/bench_gaussian.sh`` sets one up), or why it did not run.

Usage: ``python scripts/bench_gaussian.py [--threads 1] [--torch-mist-python PATH]``.
Timings depend on the machine and on what else runs on it: report them with both.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from remi_tutorial.benchmarks.gaussian import GaussianBenchmarkConfig, make_critic
from remi_tutorial.bounds import BOUND_NAMES, Bound, get_bound
from remi_tutorial.stacked import (
    StackedConcatCritic,
    StackedSeparableCritic,
    stack_bounds,
    stacked_critic,
)
from remi_tutorial.tasks import gaussian_batches, paired_masks
from remi_tutorial.train import make_adam, train

DIM, BATCH, LR = 20, 64, 5e-4
NAMES = list(BOUND_NAMES)
PARAMS = GaussianBenchmarkConfig().bound_params()
# How the twelve critics of each kind can be stacked: name -> critics -> stacked critic.
STRATEGIES = {
    "separable": {"batched": StackedSeparableCritic},
    "concat": {
        "batched": StackedConcatCritic,
        "looped": functools.partial(StackedConcatCritic, loop_estimators=True),
    },
}


def strategy_used(kind: str) -> str:
    """The strategy the Gaussian benchmark uses for ``kind`` on the CPU."""
    used = stacked_critic([make_critic(kind, 2, hidden_dims=(2,), embed_dim=2)], torch.device("cpu"))
    return "looped" if getattr(used, "loop_estimators", False) else "batched"


def matmul_flops_per_second(size: int = 1024, repeats: int = 20) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def flops_per_estimator_step(kind: str) -> int:
    critic = make_critic(kind, DIM)
    positive, negative = paired_masks(BATCH)
    x, y = torch.randn(BATCH, DIM), torch.randn(BATCH, DIM)
    with FlopCounterMode(display=False) as counter:
        get_bound("mine")(critic(x, y), positive, negative).loss.backward()
    return counter.get_total_flops()


def optimizer(module: torch.nn.Module) -> torch.optim.Optimizer:
    return make_adam(module.parameters(), LR)


def stream():
    return gaussian_batches(DIM, BATCH, 2.0, seed=0)


def sequential_rate(kind: str, steps: int) -> float:
    """Estimator-steps per second: the twelve trained one after another."""
    critics = [make_critic(kind, DIM) for _ in NAMES]
    for critic, name in zip(critics, NAMES):  # warm-up
        train(critic, get_bound(name, **PARAMS[name]), stream(), steps=3,
              optimizer=optimizer(critic), progress=False)
    start = time.perf_counter()
    for critic, name in zip(critics, NAMES):
        train(critic, get_bound(name, **PARAMS[name]), stream(), steps=steps,
              optimizer=optimizer(critic), progress=False)
    return len(NAMES) * steps / (time.perf_counter() - start)


def batched_rate(kind: str, strategy: str, steps: int) -> float:
    """Estimator-steps per second: the twelve trained at once, stacked by ``strategy``."""
    stacked = STRATEGIES[kind][strategy]([make_critic(kind, DIM) for _ in NAMES])
    bound = stack_bounds(NAMES, PARAMS)
    train(stacked, bound, stream(), steps=3, optimizer=optimizer(stacked), progress=False)
    start = time.perf_counter()
    train(stacked, bound, stream(), steps=steps, optimizer=optimizer(stacked), progress=False)
    return len(NAMES) * steps / (time.perf_counter() - start)


def bound_step_seconds(evaluate, repeats: int = 300) -> float:
    """Seconds to evaluate the twelve bounds on ``[12, 64, 64]`` scores and backpropagate."""
    positive, negative = paired_masks(BATCH)
    scores = torch.randn(len(NAMES), BATCH, BATCH, requires_grad=True)
    for _ in range(10):
        evaluate(scores, positive, negative).objective.sum().backward()
    start = time.perf_counter()
    for _ in range(repeats):
        evaluate(scores, positive, negative).objective.sum().backward()
    return (time.perf_counter() - start) / repeats


def one_call_per_estimator(scores, positive, negative) -> Bound:
    bounds = [get_bound(name, **PARAMS[name]) for name in NAMES]
    results = [bound(scores[index], positive, negative, check=False)
               for index, bound in enumerate(bounds)]
    return Bound(*(torch.stack(field) for field in zip(*results)))


def torch_mist_rates(python: str | None, steps: int, threads: int) -> dict | str:
    if not python:
        return "not run: no --torch-mist-python given (scripts/bench_gaussian.sh sets one up)"
    if not Path(python).exists():
        return f"not run: {python} does not exist"
    script = Path(__file__).with_name("bench_gaussian_torch_mist.py")
    completed = subprocess.run(
        [python, str(script), "--steps", str(steps), "--threads", str(threads)],
        capture_output=True, text=True, cwd="/tmp",
    )
    if completed.returncode != 0:
        return "failed: " + (completed.stderr.strip().splitlines() or ["no output"])[-1]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--separable-steps", type=int, default=200)
    parser.add_argument("--concat-steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2,
                        help="alternating sequential/batched timings per critic; the best counts")
    parser.add_argument("--torch-mist-python", default=os.environ.get("TORCH_MIST_PYTHON"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}")
    # The machine may be shared: measure the reference around every timing and keep the
    # fastest, so that "% of the matmul" is never flattered by a slow reference.
    references = [matmul_flops_per_second()]
    steps = {"separable": args.separable_steps, "concat": args.concat_steps}
    rates = {}
    for kind in ("separable", "concat"):
        timings = {"sequential": [], **{strategy: [] for strategy in STRATEGIES[kind]}}
        for _ in range(args.rounds):  # alternate, and keep each one's best round
            timings["sequential"].append(sequential_rate(kind, steps[kind]))
            for strategy in STRATEGIES[kind]:
                timings[strategy].append(batched_rate(kind, strategy, steps[kind]))
            references.append(matmul_flops_per_second())
        rates[kind] = (flops_per_estimator_step(kind),
                       {label: max(values) for label, values in timings.items()})
    reference = max(references)
    print(f"plain 1024x1024 fp32 matmul: {reference / 1e9:.1f} GFLOP/s (the fastest of "
          f"{len(references)} measurements around the timings; slowest "
          f"{min(references) / 1e9:.1f})")
    for kind, (flops, best) in rates.items():
        used = strategy_used(kind)
        print(f"\n{kind} critic: {flops / 1e6:.1f} MFLOP per estimator-step (forward + backward)")
        for label, rate in best.items():
            achieved = rate * flops
            mark = " <- the benchmark's batched run on a CPU" if label == used else ""
            print(f"  {label:<10} {rate:8.1f} estimator-steps/s = {rate / 12:6.2f} steps/s of "
                  f"all twelve; {achieved / 1e9:5.1f} GFLOP/s = {achieved / reference:4.0%} of "
                  f"the matmul{mark}")
        stacked, sequential = best[used], best["sequential"]
        print(f"  {used} / sequential: {stacked / sequential:.2f}x; a paper-size run of the "
              f"twelve (20,000 steps): {20000 * 12 / stacked / 60:.1f} min {used}, "
              f"{20000 * 12 / sequential / 60:.1f} min sequential")

    stacked = bound_step_seconds(stack_bounds(NAMES, PARAMS))
    looped = bound_step_seconds(one_call_per_estimator)
    print(f"\ntwelve bounds on [12, 64, 64] scores, forward + backward: stacked bound "
          f"{stacked * 1e3:.2f} ms, one call per estimator {looped * 1e3:.2f} ms")

    mist = torch_mist_rates(args.torch_mist_python, args.separable_steps, args.threads)
    if isinstance(mist, str):
        print(f"\ntorch-mist: {mist}")
    else:
        mist_rates = mist["estimators"]
        total = len(mist_rates) / sum(1 / value["steps_per_second"]
                                      for value in mist_rates.values())
        print(f"\ntorch-mist {mist['torch_mist']} (torch {mist['torch']}, numpy {mist['numpy']}), "
              f"separable critic, its six original estimators one after another: "
              f"{total:.1f} estimator-steps/s")
        print("  " + ", ".join(f"{name} {value['steps_per_second']:.1f}"
                               for name, value in mist_rates.items()))


if __name__ == "__main__":
    sys.exit(main())
