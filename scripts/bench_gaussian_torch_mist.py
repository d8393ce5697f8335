"""torch-mist on the Gaussian benchmark's configuration: estimator-steps per second.

Run by ``scripts/bench_gaussian.py`` with the Python of torch-mist's own environment (see
``scripts/bench_gaussian.sh``); prints one JSON object. Each of torch-mist's six original
estimators (it has no regularized ones) is built with a separable critic
20 -> 256 -> 256 -> 32 on both sides, all in-batch negatives, and trained with Adam (lr 5e-4)
on fresh correlated-Gaussian batches of 64 (true MI 2 nats) for ``--steps`` steps, one
estimator after another, as its documentation trains them.
"""

import argparse
import json
import math
import time

import torch
import torch_mist
from torch_mist.estimators import infonce, js, mine, nwj, smile, tuba

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=200)
parser.add_argument("--threads", type=int, default=1)
args = parser.parse_args()
torch.set_num_threads(args.threads)

DIM, BATCH, MI = 20, 64, 2.0
rho = math.sqrt(1 - math.exp(-2 * MI / DIM))
factories = {"mine": mine, "smile": smile, "infonce": infonce, "nwj": nwj, "tuba": tuba, "js": js}
results = {}
for name, factory in factories.items():
    torch.manual_seed(0)
    estimator = factory(x_dim=DIM, y_dim=DIM, hidden_dims=[256, 256, 32],
                        critic_type="separable", neg_samples=0)
    optimizer = torch.optim.Adam(estimator.parameters(), lr=5e-4)

    def step():
        x = torch.randn(BATCH, DIM)
        y = rho * x + math.sqrt(1 - rho * rho) * torch.randn(BATCH, DIM)
        loss = estimator.loss(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    for _ in range(10):  # warm-up
        step()
    start = time.perf_counter()
    losses = [step() for _ in range(args.steps)]
    elapsed = time.perf_counter() - start
    results[name] = {"steps_per_second": args.steps / elapsed,
                     "final_loss": float(torch.stack(losses[-20:]).mean())}
print(json.dumps({"torch_mist": torch_mist.__version__, "torch": torch.__version__,
                  "numpy": __import__("numpy").__version__, "threads": args.threads,
                  "steps": args.steps, "estimators": results}))
