"""Test doubles and procedures shared by several test files."""

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from remi_tutorial.benchmarks.image_cells import run_image_cell
from remi_tutorial.datasets import ImageBatches


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


class ExplodingStack(torch.nn.Module):
    """A stacked critic whose estimator ``explode`` (an index or a list) has its scores
    multiplied by 1e6 (so that e^T overflows, even in float64) from training call
    ``after + 1`` on; calls in eval mode are not counted nor changed. Its weights are the
    stack's own."""

    def __init__(self, stack, explode, after):
        super().__init__()
        self.stack, self.explode, self.after, self.calls = stack, explode, after, 0

    @property
    def num_estimators(self):
        return self.stack.num_estimators

    def forward(self, x, y):
        scores = self.stack(x, y)
        if not self.training:
            return scores
        self.calls += 1
        if self.calls > self.after:
            factor = torch.ones(len(scores), 1, 1, dtype=scores.dtype, device=scores.device)
            factor[self.explode] = 1e6
            scores = scores * factor
        return scores


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


def counted_accuracy(critic, dataset):
    """The test accuracy of an image critic, counted by hand on the whole (small) dataset in
    eval mode: the argmax of the logits, or the label of the training image with the largest
    dot product (1-nearest neighbour)."""
    was_training = critic.training
    critic.eval()
    with torch.no_grad():
        if critic.kind == "logits":
            predicted = critic(dataset.test_images).argmax(1)
        else:
            reference = critic.embed(dataset.train_images)
            predicted = dataset.train_labels[(critic.embed(dataset.test_images) @ reference.T).argmax(1)]
    critic.train(was_training)
    return int((predicted == dataset.test_labels).sum()) / len(dataset.test_labels)


def unpaired_batches(batches, epochs):
    """How many batches of the first ``epochs`` epochs of ``batches``' data order, before any
    repair, hold no two images with the same label: counted one batch at a time."""
    count = 0
    for epoch in range(epochs):
        order, _ = ImageBatches(batches.images, batches.labels, batches.num_classes,
                                masks=batches.masks, batch_size=batches.batch_size,
                                seed=batches.seed).epoch_order(epoch)
        for row in order:
            labels = batches.labels[row].tolist()
            count += len(set(labels)) == len(labels)
    return count


@dataclass(frozen=True)
class InterruptingJob:
    """A cell job whose process sends itself a signal a few steps into a cell's second epoch
    (after the first epoch's checkpoint), once: ``interrupt`` maps a cell's key to the
    signal. A marker file ``FOLDER/KEY.interrupted`` records that it happened, so the cell
    runs through when it is started again (requeued by submitit, or launched again)."""

    job: Callable
    interrupt: dict
    folder: str

    def __call__(self, config):
        key = config.key()
        if key in self.interrupt:
            marker = Path(self.folder) / f"{key}.interrupted"
            original_call = ImageBatches.__call__

            def interrupted(batches, step):
                if step == batches.steps_per_epoch + 3 and not marker.exists():
                    marker.write_text(str(os.getpid()))
                    os.kill(os.getpid(), self.interrupt[key])
                return original_call(batches, step)

            ImageBatches.__call__ = interrupted
        return self.job(config)
