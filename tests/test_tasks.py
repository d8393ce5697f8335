import math

import pytest
import torch

from remi_tutorial.tasks import (
    gaussian_batches,
    gaussian_log_density_ratio,
    gaussian_mi,
    gaussian_rho,
    mi_staircase,
    one_hot_batches,
    sample_gaussian,
    sample_one_hot,
)


@pytest.mark.parametrize("mi", [0.1, 2.0, 10.0])
def test_gaussian_rho_inverts_gaussian_mi(mi):
    assert gaussian_mi(gaussian_rho(mi, 20), 20) == pytest.approx(mi)


def test_gaussian_mi_of_one_dimension_matches_the_closed_form():
    assert gaussian_mi(0.5, 1) == pytest.approx(-0.5 * math.log(0.75))


def test_gaussian_mi_accepts_tensors():
    rho = torch.tensor([0.0, 0.5])
    assert torch.allclose(gaussian_mi(rho, 2), torch.tensor([0.0, -math.log(0.75)]))


def test_gaussian_mi_rejects_rho_of_one():
    with pytest.raises(ValueError, match="rho must lie in"):
        gaussian_mi(1.0, 3)


def test_sampled_gaussian_has_the_requested_correlation():
    x, y = sample_gaussian(50_000, 3, 0.6, generator=torch.Generator().manual_seed(0))
    correlation = (x * y).mean(0) / (x.std(0) * y.std(0))
    assert torch.allclose(correlation, torch.full((3,), 0.6), atol=0.02)
    assert torch.allclose(y.var(0), torch.ones(3), atol=0.03)


def test_optimal_critic_is_the_log_density_ratio():
    rho, dim = 0.7, 3
    x, y = torch.randn(4, dim, dtype=torch.float64), torch.randn(5, dim, dtype=torch.float64)
    conditional = torch.distributions.Normal(rho * x[:, None, :], math.sqrt(1 - rho**2))
    marginal = torch.distributions.Normal(torch.zeros(()), torch.ones(()))
    expected = conditional.log_prob(y[None, :, :]).sum(-1) - marginal.log_prob(y).sum(-1)[None, :]
    assert torch.allclose(gaussian_log_density_ratio(x, y, rho), expected)


def test_staircase_steps_through_its_levels():
    levels = [mi_staircase(step) for step in (0, 3999, 4000, 12_000, 19_999)]
    assert levels == [2.0, 2.0, 4.0, 8.0, 10.0]


def test_staircase_rejects_steps_past_its_end():
    with pytest.raises(ValueError, match="outside the staircase"):
        mi_staircase(20_000)


def test_one_hot_pairs_are_identical_one_hot_rows():
    x, y = sample_one_hot(10, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, y)
    assert torch.equal(x.sum(1), torch.ones(10))


def test_gaussian_batches_follow_the_schedule_and_are_reproducible():
    first = gaussian_batches(2, 8, mi_staircase, seed=3)
    second = gaussian_batches(2, 8, mi_staircase, seed=3)
    batch = first(4000)
    assert batch.true_mi == 4.0
    assert torch.equal(batch.inputs[0], second(4000).inputs[0])
    assert batch.positive.shape == batch.negative.shape == (8, 8)


@pytest.mark.parametrize("make_stream", [
    lambda device: gaussian_batches(3, 8, 1.0, seed=5, device=device),
    lambda device: one_hot_batches(4, 8, seed=5, device=device),
    lambda device: one_hot_batches(4, 8, marginal="off_diagonal", seed=5, device=device),
], ids=["gaussian", "one_hot_independent", "one_hot_off_diagonal"])
def test_streams_draw_on_the_cpu_whatever_the_device(make_stream):
    # A generator on the target device would draw other numbers from the same seed; on the
    # meta device it cannot exist at all, so this stream only builds if it draws on the CPU.
    batch = make_stream("meta")(0)
    assert all(tensor.device.type == "meta" for tensor in (*batch.inputs, batch.positive))


def test_gaussian_stream_draws_from_a_cpu_generator_with_its_seed():
    dim, size, mi, seed = 3, 8, 1.0, 5
    rho = gaussian_rho(mi, dim)
    expected = sample_gaussian(size, dim, rho, generator=torch.Generator().manual_seed(seed))
    batch = gaussian_batches(dim, size, mi, seed=seed, device="cpu")(0)
    assert torch.equal(batch.inputs[0], expected[0])
    assert torch.equal(batch.inputs[1], expected[1])

