from dataclasses import replace

import pytest
import torch

from remi_tutorial.benchmarks.gaussian import GaussianBenchmarkConfig
from remi_tutorial.datasets import load_digits


@pytest.fixture(autouse=True)
def _deterministic_torch():
    """Every test starts from the same global RNG state on one thread."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_digits():
    """200 training and 60 test digits: enough for a few quick epochs."""
    digits = load_digits()
    return replace(digits, train_images=digits.train_images[:200], train_labels=digits.train_labels[:200],
                   test_images=digits.test_images[:60], test_labels=digits.test_labels[:60])


@pytest.fixture
def tiny_gaussian():
    """A Gaussian benchmark small enough for a unit test: three stages of four steps in three
    dimensions, batches of 8, a critic of width 8 (vary it with ``dataclasses.replace``)."""
    return GaussianBenchmarkConfig(estimators="mine,remine,nwj", levels=(1.0, 2.0, 3.0),
                                   stage_steps=4, dim=3, batch_size=8, hidden_dims=(8,),
                                   embed_dim=4, lr=1e-2)
