"""How fast the Gaussian benchmark trains: sequential vs batched vs compiled, against the hardware and torch-mist.

Prints, in one run on one machine, for the separable and the concat critic of the paper
(batch 64, dimension 20, hidden widths 256, 256):

* the FLOPs of one estimator-step (forward and backward), counted by
  ``torch.utils.flop_counter.FlopCounterMode``;
* a plain large matrix product's FLOP/s, the hardware's reference (the fastest of several
  measurements around the timings);
* estimator-steps per second when the twelve estimators train one after another
  (``remi_tutorial.train.train`` on each critic, eager: the reference implementation) and all
  at once (one stacked critic, one stacked bound, one fused Adam), eager and with
  ``train(compile=True)`` (compilation time reported apart, not timed), each the best of
  ``--rounds`` alternating timings; the FLOP/s each achieves and the speed-ups. The concat
  critic is stacked both ways (its pair layers batched over the estimators, or looped over
  them), and the script names the one its default picks at this size
  (:data:`remi_tutorial.stacked.LOOP_ABOVE_BYTES`), then times that default against one
  critic after another at smaller batches (``--concat-batches``);
* a floor for one step of the twelve with the default stacking: its matrix products, each
  timed alone on warm caches, plus its Adam update alone (no trainer that runs these
  products and this update can be faster on this machine);
* the cost of evaluating the twelve bounds per step: the stacked bound vs one bound call
  per estimator;
* torch-mist's estimator-steps per second on the same configuration, when ``--torch-mist-python``
  names a Python that has it (``scripts/bench_gaussian.sh`` sets one up), or why it did not
  run, with the ratio to ours and the most any trainer could reach at the matmul's rate;
* on a machine with a CUDA GPU, the same batched rates on the GPU (eager, compiled, and
  captured in CUDA graphs), as a fraction of the GPU's fp32 and TF32 matmul rates, and the
  time of a paper-size run of the twelve (20,000 steps).

Usage: ``python scripts/bench_gaussian.py [--threads 1] [--rounds 2] [--torch-mist-python PATH]``
(about 10 minutes on one CPU core with the defaults, most of it the sequential concat runs and
two compilations). Timings depend on the machine and on what else runs on it: report them with both.
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
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from remi_tutorial.benchmarks.gaussian import GaussianBenchmarkConfig, make_critic
from remi_tutorial.bounds import BOUND_NAMES, Bound, get_bound
from remi_tutorial.stacked import (
    LOOP_ABOVE_BYTES,
    StackedConcatCritic,
    StackedSeparableCritic,
    stack_bounds,
    stacked_critic,
)
from remi_tutorial.tasks import gaussian_batches, paired_masks
from remi_tutorial.train import CompileFailedWarning, make_adam, train

from machine import device_name

DIM, BATCH, LR, PAPER_STEPS = 20, 64, 5e-4, 20_000
NAMES = list(BOUND_NAMES)
PARAMS = GaussianBenchmarkConfig().bound_params()
# How the twelve critics of each kind are stacked and trained: label -> (stacked critic, compile).
STRATEGIES = {
    "separable": {
        "batched": (StackedSeparableCritic, False),
        "batched, compiled": (StackedSeparableCritic, True),
    },
    "concat": {
        "batched": (functools.partial(StackedConcatCritic, loop_estimators=False), False),
        "looped": (functools.partial(StackedConcatCritic, loop_estimators=True), False),
        "looped, compiled": (functools.partial(StackedConcatCritic, loop_estimators=True), True),
    },
}


def default_strategy(kind: str, device: torch.device, batch: int = BATCH) -> str:
    """How :func:`~remi_tutorial.stacked.stacked_critic` stacks ``kind`` for ``batch`` pairs
    on ``device``."""
    stacked = stacked_critic([make_critic(kind, DIM) for _ in NAMES])
    if isinstance(stacked, StackedConcatCritic):
        return "looped" if stacked.loops(batch, batch, device, torch.float32) else "batched"
    return "batched"


def concat_batch_sweep(batches: list[int], concat_steps: int, rounds: int) -> None:
    """The concat critic's default stacking vs one critic after another, at smaller batches
    (each timed for about as many pairs as ``concat_steps`` steps at batch 64)."""
    if batches:
        print("  smaller batches, the default stacking vs one after another:")
    for batch in batches:
        steps = max(3, round(concat_steps * (BATCH / batch) ** 2))
        strategy = default_strategy("concat", torch.device("cpu"), batch)
        stack = STRATEGIES["concat"][strategy][0]
        sequential = max(sequential_rate("concat", steps, batch) for _ in range(rounds))
        stacked = max(batched_rate("concat", stack, False, steps, torch.device("cpu"), batch)[0]
                      for _ in range(rounds))
        print(f"    batch {batch:3d}: {strategy:<7} {stacked:7.1f} est-steps/s, one after another "
              f"{sequential:7.1f}: {stacked / sequential:.2f}x")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_flops_per_second(device: torch.device, size: int = 1024, repeats: int = 20) -> float:
    """The fastest of ``repeats`` fp32 ``size x size`` matrix products, in FLOP/s."""
    a, b = (torch.randn(size, size, device=device) for _ in range(2))
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
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


def stream(device: torch.device, batch: int = BATCH):
    return gaussian_batches(DIM, batch, 2.0, seed=0, device=device)


def sequential_rate(kind: str, steps: int, batch: int = BATCH) -> float:
    """Estimator-steps per second on the CPU: the twelve trained one after another, eagerly."""
    cpu = torch.device("cpu")
    critics = [make_critic(kind, DIM) for _ in NAMES]
    for critic, name in zip(critics, NAMES):  # warm-up
        train(critic, get_bound(name, **PARAMS[name]), stream(cpu, batch), steps=3,
              optimizer=optimizer(critic), progress=False)
    start = time.perf_counter()
    for critic, name in zip(critics, NAMES):
        train(critic, get_bound(name, **PARAMS[name]), stream(cpu, batch), steps=steps,
              optimizer=optimizer(critic), progress=False)
    return len(NAMES) * steps / (time.perf_counter() - start)


class CompileFailed(RuntimeError):
    """``train(compile=...)`` fell back to eager training: its rate is not a compiled rate."""


def batched_rate(kind: str, stack, compile: bool | str, steps: int,
                 device: torch.device, batch: int = BATCH) -> tuple[float, float]:
    """Estimator-steps per second with the twelve trained at once, stacked by ``stack``, and
    the seconds the untimed warm-up took (with ``compile``: mostly compiling). The timed
    call's first step runs eagerly, as every run's first step does (the bounds check it).

    Raises:
        CompileFailed: if ``compile`` was asked for and compiling failed.
    """
    stacked = stack([make_critic(kind, DIM) for _ in NAMES]).to(device)
    bound, adam = stack_bounds(NAMES, PARAMS), optimizer(stacked)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        start = time.perf_counter()
        train(stacked, bound, stream(device, batch), steps=3, optimizer=adam, progress=False,
              compile=compile)
        synchronize(device)
        warm_up = time.perf_counter() - start
        start = time.perf_counter()
        train(stacked, bound, stream(device, batch), steps=steps, optimizer=adam,
              progress=False, compile=compile)
        synchronize(device)
        rate = len(NAMES) * steps / (time.perf_counter() - start)
    failures = [str(w.message) for w in caught if issubclass(w.category, CompileFailedWarning)]
    if failures:
        raise CompileFailed(failures[0])
    return rate, warm_up


MATRIX_PRODUCTS = {torch.ops.aten.mm.default, torch.ops.aten.addmm.default,
                   torch.ops.aten.bmm.default, torch.ops.aten.baddbmm.default}


class RecordMatrixProducts(TorchDispatchMode):
    """Keeps every matrix product that runs under it, with its operands."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in MATRIX_PRODUCTS:
            self.calls.append((func, args, kwargs or {}))
        return func(*args, **(kwargs or {}))


def fastest_seconds(function, calls: int = 10, repeats: int = 3) -> float:
    """The fastest of ``repeats`` timings of ``calls`` back-to-back calls, per call."""
    function()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            function()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def step_floor_seconds(kind: str, stack) -> tuple[float, float, int]:
    """What one CPU training step of the twelve, stacked by ``stack``, costs at least: the
    seconds of its matrix products (forward and backward), each timed alone, back to back on
    warm caches; the seconds of its fused Adam update alone; and the number of products.
    Everything else a step does (the bounds, the activations, Python) is left out."""
    stacked = stack([make_critic(kind, DIM) for _ in NAMES])
    bound, adam = stack_bounds(NAMES, PARAMS), optimizer(stacked)
    positive, negative = paired_masks(BATCH)
    x, y = torch.randn(BATCH, DIM), torch.randn(BATCH, DIM)
    with RecordMatrixProducts() as recorded:
        bound(stacked(x, y), positive, negative).loss.sum().backward()
    with torch.no_grad():
        products = sum(fastest_seconds(functools.partial(func, *args, **kwargs))
                       for func, args, kwargs in recorded.calls)
    return products, fastest_seconds(adam.step, calls=5), len(recorded.calls)


def print_floor(kind: str, stack, flops: int, reference: float) -> float:
    """Print the step's floor (:func:`step_floor_seconds`); returns its est-steps/s."""
    products, adam, count = step_floor_seconds(kind, stack)
    rate = len(NAMES) / (products + adam)
    print(f"  floor: the step's {count} matrix products, each timed alone on warm caches, "
          f"{products * 1e3:.2f} ms ({len(NAMES) * flops / products / reference:.0%} of the matmul) "
          f"+ its Adam update alone {adam * 1e3:.2f} ms = at most {rate:.1f} est-steps/s "
          f"= {rate * flops / reference:.0%} of the matmul", flush=True)
    return rate


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


def print_header(kind: str, flops: int) -> None:
    print(f"\n{kind} critic: {flops / 1e6:.1f} MFLOP per estimator-step (forward + backward)",
          flush=True)


def print_row(label: str, rate: float, flops: int, reference: float, matmul: str,
              sequential: float | None = None, notes: Sequence[str] = ()) -> None:
    """One strategy's rate, its FLOP/s as a fraction of ``reference``, and the time of a
    paper-size run of the twelve."""
    achieved = rate * flops
    speed_up = f"{rate / sequential:5.2f}x sequential; " if sequential else ""
    print(f"  {label:<26} {rate:8.1f} est-steps/s  {speed_up}{achieved / 1e9:7.1f} GFLOP/s = "
          f"{achieved / reference:4.0%} of the {matmul}; paper-size twelve "
          f"{PAPER_STEPS * len(NAMES) / rate / 60:6.1f} min"
          + (f"  ({'; '.join(notes)})" if notes else ""), flush=True)


def notes_for(label: str, default: str, warm_ups: dict) -> list[str]:
    notes = ["the default at this size"] if label == default else []
    if label in warm_ups:
        notes.append(f"compiled in {warm_ups[label]:.0f} s, untimed")
    return notes


def cpu_section(args) -> dict:
    """Time every strategy on the CPU; returns kind -> (flops, label -> best rate, reference)."""
    cpu = torch.device("cpu")
    # The machine may be shared: measure the reference around every timing and keep the
    # fastest, so that "% of the matmul" is never flattered by a slow reference.
    references = [matmul_flops_per_second(cpu)]
    steps = {"separable": args.separable_steps, "concat": args.concat_steps}
    results = {}
    for kind in ("separable", "concat"):
        timings = {"sequential": [], **{label: [] for label in STRATEGIES[kind]}}
        warm_ups, failed = {}, {}
        for _ in range(args.rounds):  # alternate, and keep each one's best round
            timings["sequential"].append(sequential_rate(kind, steps[kind]))
            for label, (stack, compile) in STRATEGIES[kind].items():
                if label in failed:
                    continue
                try:
                    rate, warm_up = batched_rate(kind, stack, compile, steps[kind], cpu)
                except CompileFailed as error:
                    failed[label] = str(error)
                    continue
                timings[label].append(rate)
                if compile:
                    warm_ups[label] = max(warm_ups.get(label, 0.0), warm_up)
            references.append(matmul_flops_per_second(cpu))
        best = {label: max(values) for label, values in timings.items() if values}
        results[kind] = (flops_per_estimator_step(kind), best, warm_ups, failed)
    reference = max(references)
    print(f"plain 1024x1024 fp32 matmul: {reference / 1e9:.1f} GFLOP/s (the fastest of "
          f"{len(references)} measurements around the timings; slowest "
          f"{min(references) / 1e9:.1f})")
    floors = {}
    for kind, (flops, best, warm_ups, failed) in results.items():
        default = default_strategy(kind, cpu)
        print_header(kind, flops)
        for label, rate in best.items():
            print_row(label, rate, flops, reference, "matmul", best["sequential"],
                      notes_for(label, default, warm_ups))
        for label, reason in failed.items():
            print(f"  {label:<26} not measured: {reason}")
        floors[kind] = print_floor(kind, STRATEGIES[kind][default][0], flops, reference)
        if kind == "concat":
            width = max(GaussianBenchmarkConfig().hidden_dims)
            mebibytes = len(NAMES) * BATCH * BATCH * width * 4 / 2**20
            print(f"  the default loops on a CPU above {LOOP_ABOVE_BYTES / 2**20:.0f} MiB of pair "
                  f"activations; here {len(NAMES)} x {BATCH} x {BATCH} x {width} floats = "
                  f"{mebibytes:.0f} MiB")
            concat_batch_sweep(args.concat_batches, args.concat_steps, args.rounds)
    return {kind: (flops, best, reference, floors[kind])
            for kind, (flops, best, _, _) in results.items()}


def gpu_section(args) -> None:
    """Batched rates on the first CUDA GPU, eager, compiled, and captured in CUDA graphs."""
    if not torch.cuda.is_available():
        print("\nGPU: none on this machine (torch.cuda.is_available() is False): no GPU figures")
        return
    gpu = torch.device("cuda")
    references = {"fp32": [], "tf32": []}
    previous = torch.backends.cuda.matmul.allow_tf32
    for precision in references:
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        references[precision].append(matmul_flops_per_second(gpu, size=8192, repeats=10))
    torch.backends.cuda.matmul.allow_tf32 = previous
    fp32, tf32 = (max(values) for values in references.values())
    print(f"\nGPU: {torch.cuda.get_device_name(gpu)}; 8192x8192 matmul {fp32 / 1e12:.1f} TFLOP/s "
          f"fp32, {tf32 / 1e12:.1f} TFLOP/s TF32 (training runs in fp32, TF32 "
          f"{'on' if previous else 'off'})", flush=True)
    variants = {"eager": False, "compiled": "default", "CUDA graphs": "reduce-overhead"}
    for kind in ("separable", "concat"):
        flops = flops_per_estimator_step(kind)
        stack = StackedSeparableCritic if kind == "separable" else functools.partial(
            StackedConcatCritic, loop_estimators=False)
        print_header(kind, flops)
        fastest = 0.0
        for variant, compile in variants.items():
            label = f"batched, {variant}"
            try:
                timed = [batched_rate(kind, stack, compile, args.gpu_steps, gpu)
                         for _ in range(args.rounds)]
            except CompileFailed as error:
                print(f"  {label:<26} not measured: {error}", flush=True)
                continue
            rate = max(rate for rate, _ in timed)
            warm_ups = {label: max(warm_up for _, warm_up in timed)} if compile else {}
            print_row(label, rate, flops, fp32, "fp32 matmul",
                      notes=notes_for(label, "batched, eager", warm_ups))
            fastest = max(fastest, rate)
        if fastest:
            print(f"  fastest: {fastest * flops / tf32:.0%} of the TF32 matmul; the paper-size "
                  f"twelve ({PAPER_STEPS * len(NAMES) * flops / 1e12:.0f} TFLOP) in "
                  f"{PAPER_STEPS * len(NAMES) / fastest:.0f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--separable-steps", type=int, default=200)
    parser.add_argument("--concat-steps", type=int, default=10)
    parser.add_argument("--concat-batches", type=int, nargs="*", default=[8, 16, 32],
                        help="smaller batches at which the concat critic's default stacking is "
                             "timed against one critic after another")
    parser.add_argument("--gpu-steps", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2,
                        help="alternating timings of every strategy; the best counts")
    parser.add_argument("--torch-mist-python", default=os.environ.get("TORCH_MIST_PYTHON"))
    parser.add_argument("--gpu-only", action="store_true",
                        help="time the GPU only (scripts/gpu_check.sh): no CPU, no torch-mist")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    print(f"machine: {device_name(torch.device('cpu'))} ({platform.machine()}, "
          f"{torch.backends.cpu.get_cpu_capability()}), {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}")
    if args.gpu_only:
        gpu_section(args)
        return
    results = cpu_section(args)

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
        flops, best, reference, floor = results["separable"]
        ours = max(rate for label, rate in best.items() if label != "sequential")
        print(f"\ntorch-mist {mist['torch_mist']} (torch {mist['torch']}, numpy {mist['numpy']}), "
              f"separable critic, its six original estimators one after another: "
              f"{total:.1f} estimator-steps/s")
        print("  " + ", ".join(f"{name} {value['steps_per_second']:.1f}"
                               for name, value in mist_rates.items()))
        print(f"  ours, batched (fastest): {ours / total:.2f}x torch-mist; the separable floor "
              f"above is {floor / total:.1f}x torch-mist; every FLOP at the matmul's rate "
              f"would be {reference / flops:.0f} est-steps/s = {reference / flops / total:.1f}x")
    gpu_section(args)


if __name__ == "__main__":
    sys.exit(main())
