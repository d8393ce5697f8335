"""estimate_mi's defaults against bmi's estimators at theirs, on the same samples: bias per task.

bmi (the "Beyond Normal" benchmark library, PyPI ``benchmark-mi``, JAX) runs in its own
virtual environment (``scripts/compare_bmi.sh`` sets one up); this script runs in the
project's. For each task of :data:`remi_tutorial.tasks.MI_TASKS` and each number of pairs,
dimension and seed asked for, it draws the pairs as
:func:`remi_tutorial.benchmarks.beyond_normal.run_beyond_normal` does (``draw_pairs``, generator seeded
``10_000 + seed``), writes them to a temporary ``.npz`` and has
``scripts/compare_bmi_worker.py``, run by bmi's Python, estimate their MI with bmi's neural
estimators (MINE, InfoNCE, NWJ, Donsker-Varadhan) and its KSG ensemble, each built with
bmi's defaults. On the same pairs it runs
``remi_tutorial.estimate_mi(x, y, estimator="remine", seed=seed, device="cpu")`` with the
project's current defaults and ``remi_tutorial.ksg.ksg_mi(x, y)``.

It prints, as each sample finishes, one line per estimator (estimate, bias, seconds, steps,
bmi's warnings), then one table: task x estimator -> bias (estimate - true MI) in nats, one
of seconds per estimator, and the versions and default settings of bmi's estimators as the
installed package reports them.

Usage: ``python scripts/compare_bmi.py --bmi-python /tmp/bmi-venv/bin/python
[--pairs 10000] [--dim 5] [--mi 1.0] [--seeds 0] [--threads 1] [--tasks ...]
[--bmi-estimators mine infonce nwj dv ksg]``, or ``scripts/compare_bmi.sh [options]``.
Seconds depend on the machine and on what else runs on it: report them with both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import remi_tutorial
from remi_tutorial import estimate_mi
from remi_tutorial.benchmarks.beyond_normal import draw_pairs
from remi_tutorial.ksg import ksg_mi
from remi_tutorial.tasks import MI_TASKS

WORKER = Path(__file__).with_name("compare_bmi_worker.py")
BMI_ESTIMATORS = ["mine", "infonce", "nwj", "dv", "ksg"]

parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
parser.add_argument("--bmi-python", required=True, help="the Python of bmi's environment")
parser.add_argument("--tasks", nargs="+", default=list(MI_TASKS), choices=list(MI_TASKS))
parser.add_argument("--pairs", type=int, nargs="+", default=[10_000])
parser.add_argument("--dim", type=int, nargs="+", default=[5], help="dimension of x and of y")
parser.add_argument("--mi", type=float, default=1.0, help="the true MI, in nats")
parser.add_argument("--seeds", type=int, nargs="+", default=[0])
parser.add_argument("--threads", type=int, default=1, help="CPU threads of torch and of JAX")
parser.add_argument("--bmi-estimators", nargs="+", default=BMI_ESTIMATORS,
                    choices=BMI_ESTIMATORS, help="bmi's estimators to run (dv: Donsker-Varadhan)")
args = parser.parse_args()

torch.set_num_threads(args.threads)
worker_env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
                  JAX_PLATFORMS="cpu",
                  XLA_FLAGS=(f"--xla_cpu_multi_thread_eigen={str(args.threads > 1).lower()} "
                             f"intra_op_parallelism_threads={args.threads}"))


def run_worker(path: str, estimators: list[str]) -> dict:
    """bmi's estimates of the sample in ``path``, or exit with the reason it gave none."""
    command = [args.bmi_python, str(WORKER), path, "--estimators", *estimators]
    done = subprocess.run(command, capture_output=True, text=True, env=worker_env)
    lines = done.stdout.strip().splitlines()
    reply = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else {}
    if done.returncode != 0 or "estimators" not in reply:
        reason = reply.get("error") or done.stderr.strip()[-2000:] or f"exit {done.returncode}"
        sys.exit(f"bmi's worker gave no estimates ({' '.join(command)}):\n{reason}\n"
                 "Set its environment up with scripts/compare_bmi.sh.")
    return reply


def check_bmi() -> None:
    """Fail early, with a clear message, when the given Python cannot import bmi."""
    probe = subprocess.run([args.bmi_python, "-c", "import bmi.estimators"],
                           capture_output=True, text=True, env=worker_env)
    if probe.returncode != 0:
        sys.exit(f"{args.bmi_python} cannot import bmi:\n{probe.stderr.strip()[-2000:]}\n"
                 "Set its environment up with scripts/compare_bmi.sh (or point --bmi-python "
                 "at a Python that has benchmark-mi).")


check_bmi()
rows = []
versions = None
parameters = {}
with tempfile.TemporaryDirectory() as tmp:
    for name in args.tasks:
        for dim in args.dim:
            for pairs in args.pairs:
                for seed in args.seeds:
                    x, y = draw_pairs(name, pairs, dim, args.mi, seed)
                    labels = {"task": name, "dim": dim, "pairs": pairs, "seed": seed}
                    estimates = []

                    started = time.perf_counter()
                    result = estimate_mi(x, y, estimator="remine", seed=seed, device="cpu",
                                         progress=False)
                    estimates.append({"estimator": "remine (ours)", "estimate": result.estimate,
                                      "seconds": time.perf_counter() - started,
                                      "steps": result.steps, "warnings": ""})
                    started = time.perf_counter()
                    value = ksg_mi(x, y)
                    estimates.append({"estimator": "ksg k=3 (ours)", "estimate": value,
                                      "seconds": time.perf_counter() - started,
                                      "steps": None, "warnings": ""})

                    path = os.path.join(tmp, f"{name}_{dim}_{pairs}_{seed}.npz")
                    np.savez(path, x=x.numpy(), y=y.numpy())
                    reply = run_worker(path, args.bmi_estimators)
                    versions = {key: value for key, value in reply.items() if key != "estimators"}
                    for key, item in reply["estimators"].items():
                        parameters[key] = (item["class"], item["parameters"])
                        estimates.append({"estimator": f"bmi {key}", "estimate": item["estimate"],
                                          "seconds": item["seconds"], "steps": item["steps"],
                                          "warnings": ",".join(item["warnings"])})
                    for estimate in estimates:
                        row = {**labels, **estimate, "bias": estimate["estimate"] - args.mi}
                        rows.append(row)
                        steps = "" if row["steps"] is None else f" steps {row['steps']}"
                        warn = f" [{row['warnings']}]" if row["warnings"] else ""
                        print(f"{name} dim {dim} pairs {pairs} seed {seed}: {row['estimator']}: "
                              f"{row['estimate']:.3f} (bias {row['bias']:+.3f}) "
                              f"{row['seconds']:.1f} s{steps}{warn}", flush=True)

table = pd.DataFrame(rows)
order = list(dict.fromkeys(table.estimator))
index = ["task", "dim", "pairs"]
with pd.option_context("display.width", 200, "display.max_columns", 20):
    print(f"\nbias (estimate - true MI {args.mi:g}) in nats, mean over seeds {args.seeds}:")
    bias = table.pivot_table(index=index, columns="estimator", values="bias", sort=False)
    print(bias[order].round(3).to_string())
    print("\nmean |bias| over tasks:")
    print(table.groupby(["dim", "pairs", "estimator"], sort=False).bias.apply(
        lambda b: b.abs().mean()).unstack()[order].round(3).to_string())
    print("\nseconds per estimate:")
    seconds = table.pivot_table(index=index, columns="estimator", values="seconds", sort=False)
    print(seconds[order].round(1).to_string())
    steps = table.dropna(subset=["steps"])
    print("\ntraining steps:")
    print(steps.pivot_table(index=index, columns="estimator", values="steps", sort=False)
          [[name for name in order if name in set(steps.estimator)]].astype(int).to_string())
    flagged = table[table.warnings != ""]
    if len(flagged):
        print("\nbmi's warnings:")
        print(flagged[index + ["seed", "estimator", "warnings"]].to_string(index=False))

print(f"\nbmi: {json.dumps(versions)}")
print("bmi's defaults (as its installed estimators report their parameters):")
for key, (cls, params) in parameters.items():
    print(f"  {key}: {cls} {json.dumps(params)}")
print(f"ours: remi_tutorial {getattr(remi_tutorial, '__version__', '?')} "
      f"({Path(remi_tutorial.__file__).parent}), torch {torch.__version__}, "
      f"numpy {np.__version__}; estimate_mi defaults, estimator='remine'; ksg_mi k=3")
print(f"threads {args.threads}; {platform.processor() or platform.machine()}, "
      f"python {platform.python_version()}; command: {' '.join(sys.argv)}")
