"""Test doubles and procedures shared by several test files."""

import pytest
import torch

from remi_tutorial.benchmarks.image_runs import run_image_cell
from remi_tutorial.images import ImageBatches


class ExplodingCritic(torch.nn.Module):
    """``scale * x @ y.T``, multiplied by 1e6 (so that e^T overflows) after ``explode_after`` calls."""

    def __init__(self, explode_after: int):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.explode_after = explode_after
        self.calls = 0

    def forward(self, x, y):
        self.calls += 1
        factor = 1.0 if self.calls <= self.explode_after else 1e6
        return self.scale * factor * (x @ y.T)


class Killed(Exception):
    """Stands for a process killed in the middle of a run."""


def killed_and_resumed_cell(config, data, checkpoint_dir, monkeypatch, *, steps_into_second_epoch):
    """Run an image cell uninterrupted, then killed in its second epoch and resumed.

    The kill comes ``steps_into_second_epoch`` steps after the first epoch's checkpoint.

    Returns:
        ``(uninterrupted, resumed)``, the two ``ImageRun`` results.
    """
    uninterrupted = run_image_cell(config, data, progress=False)
    original_call = ImageBatches.__call__

    def dying(self, step):
        if step == self.steps_per_epoch + steps_into_second_epoch:
            raise Killed
        return original_call(self, step)

    monkeypatch.setattr(ImageBatches, "__call__", dying)
    with pytest.raises(Killed):
        run_image_cell(config, data, checkpoint_dir=checkpoint_dir, progress=False)
    monkeypatch.setattr(ImageBatches, "__call__", original_call)
    resumed = run_image_cell(config, data, checkpoint_dir=checkpoint_dir, progress=False)
    return uninterrupted, resumed
