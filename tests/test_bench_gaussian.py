"""scripts/bench_gaussian.py: the step floor sees every matrix product the FLOP counter counts."""

import importlib.util
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from remi_tutorial.benchmarks.gaussian import make_critic
from remi_tutorial.stacked import StackedConcatCritic, StackedSeparableCritic, stack_bounds
from remi_tutorial.tasks import paired_masks

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))  # as when the script runs: its folder holds machine.py
_spec = importlib.util.spec_from_file_location("bench_gaussian", SCRIPTS / "bench_gaussian.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

NAMES = ["mine", "nwj", "infonce"]


def one_step(stacked) -> None:
    positive, negative = paired_masks(8)
    bound = stack_bounds(NAMES, bench.PARAMS)
    x, y = torch.randn(8, bench.DIM), torch.randn(8, bench.DIM)
    bound(stacked(x, y), positive, negative).loss.sum().backward()


def recorded_and_counted_flops(stacked) -> tuple[int, int]:
    """FLOPs of the recorded products replayed, and of the whole step, both as counted by
    ``FlopCounterMode``."""
    with bench.RecordMatrixProducts() as recorded:
        one_step(stacked)
    with FlopCounterMode(display=False) as replayed, torch.no_grad():
        for func, args, kwargs in recorded.calls:
            func(*args, **kwargs)
    with FlopCounterMode(display=False) as counter:
        one_step(stacked)
    return replayed.get_total_flops(), counter.get_total_flops()


def test_the_floor_records_every_product_of_a_separable_step():
    stacked = StackedSeparableCritic([make_critic("separable", bench.DIM) for _ in NAMES])
    recorded, counted = recorded_and_counted_flops(stacked)
    assert recorded == counted > 0


def test_the_floor_records_every_product_of_a_looped_concat_step():
    stacked = StackedConcatCritic([make_critic("concat", bench.DIM) for _ in NAMES],
                                  loop_estimators=True)
    recorded, counted = recorded_and_counted_flops(stacked)
    assert recorded == counted > 0
