"""bmi's estimators at their own defaults on one saved sample: prints one JSON object.

Run by ``scripts/compare_bmi.py`` with the Python of bmi's own environment (see
``scripts/compare_bmi.sh``), never the project's. Reads ``x`` and ``y`` from an ``.npz``
file, builds each estimator asked for with no arguments but ``verbose=False`` (which only
silences its progress output), calls ``estimate_with_info`` and reports the estimate, the wall
time, the training steps and bmi's warnings, with the installed versions and each estimator's
parameters as bmi reports them.

Usage: ``python scripts/compare_bmi_worker.py SAMPLE.npz [--estimators mine infonce ...]``.
"""

import argparse
import importlib.metadata
import json
import math
import sys
import time

try:
    import bmi
    import jax
    import numpy as np
except ImportError as error:  # the caller turns this into its message
    print(json.dumps({"error": f"cannot import bmi in {sys.executable}: {error}"}))
    sys.exit(2)

FACTORIES = {
    "mine": lambda: bmi.estimators.MINEEstimator(verbose=False),
    "infonce": lambda: bmi.estimators.InfoNCEEstimator(verbose=False),
    "nwj": lambda: bmi.estimators.NWJEstimator(verbose=False),
    "dv": lambda: bmi.estimators.DonskerVaradhanEstimator(verbose=False),
    "ksg": lambda: bmi.estimators.KSGEnsembleFirstEstimator(),
}


def _plain(value):
    """JSON-safe copy of bmi's parameters and additional information."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if hasattr(value, "dict"):  # a pydantic model
        return _plain(value.dict())
    if isinstance(value, (bool, int, str)) or value is None:
        return value
    try:
        value = float(value)
    except (TypeError, ValueError):
        return repr(value)
    return value if math.isfinite(value) else repr(value)


parser = argparse.ArgumentParser()
parser.add_argument("sample", help=".npz file with arrays x [n, d_x] and y [n, d_y]")
parser.add_argument("--estimators", nargs="+", default=list(FACTORIES), choices=list(FACTORIES))
args = parser.parse_args()

with np.load(args.sample) as data:
    x, y = data["x"], data["y"]
results = {}
for name in args.estimators:
    estimator = FACTORIES[name]()
    started = time.perf_counter()
    result = estimator.estimate_with_info(x, y)
    seconds = time.perf_counter() - started
    info = dict(result.additional_information or {})
    results[name] = {
        "estimate": float(result.mi_estimate),
        "seconds": seconds,
        "steps": info.pop("n_training_steps", None),
        "warnings": sorted(key for key, flag in info.items() if flag is True),
        "class": type(estimator).__name__,
        "parameters": _plain(estimator.parameters()),
    }
print(json.dumps({
    "bmi": importlib.metadata.version("benchmark-mi"),
    "jax": jax.__version__,
    "jaxlib": importlib.metadata.version("jaxlib"),
    "numpy": np.__version__,
    "jax_devices": [str(device) for device in jax.devices()],
    "estimators": results,
}))
