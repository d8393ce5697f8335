"""Non-Gaussian tasks with a known MI: each closed form against Monte Carlo with the exact
densities, the transforms against their inverses, the registry against its own closed forms."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from remi_tutorial.tasks import (
    MI_TASKS,
    TRANSFORMS,
    gaussian_mi,
    mi_staircase,
    mi_task,
    sample_gaussian,
    sample_student_t,
    sample_transformed_gaussian,
    sample_uniform_noise,
    student_t_correction,
    student_t_mi,
    task_batches,
    uniform_noise_epsilon,
    uniform_noise_mi,
)


def _generator(seed=0):
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------- transforms


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_transform_is_inverted_by_its_inverse(name):
    forward, inverse = TRANSFORMS[name]
    x = 3.0 * torch.randn(1000, 4, dtype=torch.float64, generator=_generator())
    assert torch.allclose(inverse(forward(x)), x, atol=1e-10)
    assert torch.allclose(forward(inverse(x)), x, atol=1e-10)


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_transformed_gaussian_is_the_transform_of_the_gaussian_pair(name):
    rho, dim = 0.7, 3
    x, y = sample_transformed_gaussian(
        500, dim, rho, name, generator=_generator(1), dtype=torch.float64
    )
    u, v = sample_gaussian(500, dim, rho, generator=_generator(1), dtype=torch.float64)
    forward = TRANSFORMS[name][0]
    assert torch.allclose(x, forward(u)) and torch.allclose(y, forward(v))
    assert not torch.allclose(x, u)  # it did transform


def test_spiral_keeps_the_norm_and_only_turns_the_first_two_coordinates():
    forward = TRANSFORMS["spiral"][0]
    x = torch.randn(200, 5, dtype=torch.float64, generator=_generator())
    turned = forward(x)
    assert torch.allclose(turned.norm(dim=-1), x.norm(dim=-1))
    assert torch.equal(turned[:, 2:], x[:, 2:])


def test_spiral_needs_two_coordinates():
    with pytest.raises(ValueError, match="dim >= 2"):
        sample_transformed_gaussian(10, 1, 0.5, "spiral")
    with pytest.raises(ValueError, match="needs dim >= 2"):
        task_batches("spiral", 1, 8, 1.0)


@pytest.mark.parametrize("name", ["half_cube", "asinh", "spiral"])
def test_transformed_tasks_have_the_gaussian_mi(name):
    task = mi_task(name)
    for dim, mi in [(2, 0.5), (5, 2.0), (20, 10.0)]:
        params = task.parameters(mi, dim, **task.options)
        assert task.true_mi(dim, **params) == pytest.approx(gaussian_mi(params["rho"], dim))
        assert task.true_mi(dim, **params) == pytest.approx(mi)


# --------------------------------------------------------------------------- Student-t


def _student_t_monte_carlo(rho, dim, nu, n=100_000, seed=0):
    """Mean and standard error of log p(x, y) - log p(x) - log p(y) over our own samples,
    with scipy's multivariate-t densities (the marginals of a t are t with the same nu)."""
    x, y = sample_student_t(n, dim, rho, nu, generator=_generator(seed), dtype=torch.float64)
    dispersion = np.block([[np.eye(dim), rho * np.eye(dim)], [rho * np.eye(dim), np.eye(dim)]])
    xy = np.concatenate([x.numpy(), y.numpy()], axis=1)
    log_ratio = (
        stats.multivariate_t.logpdf(xy, shape=dispersion, df=nu)
        - stats.multivariate_t.logpdf(x.numpy(), shape=np.eye(dim), df=nu)
        - stats.multivariate_t.logpdf(y.numpy(), shape=np.eye(dim), df=nu)
    )
    return log_ratio.mean(), log_ratio.std() / math.sqrt(n)


@pytest.mark.parametrize("rho, dim, nu", [(0.0, 1, 1.0), (0.5, 1, 3.0), (0.6, 2, 5.0), (0.3, 3, 2.5)])
def test_student_t_mi_matches_monte_carlo_with_the_exact_densities(rho, dim, nu):
    estimate, error = _student_t_monte_carlo(rho, dim, nu)
    assert student_t_mi(rho, dim, nu) == pytest.approx(estimate, abs=5 * error + 1e-3)


def test_student_t_correction_is_positive_and_vanishes_as_nu_grows():
    corrections = [student_t_correction(nu, 2, 3) for nu in (1.0, 3.0, 10.0, 100.0, 1e5)]
    assert all(c > 0 for c in corrections)
    assert corrections == sorted(corrections, reverse=True)
    assert corrections[-1] < 1e-6
    # Bivariate Cauchy (nu = 1, 1 + 1 dimensions) by hand: with Gamma(1/2) = sqrt(pi),
    # digamma(1/2) = -gamma - 2 log 2, digamma(1) = -gamma, digamma(3/2) = digamma(1/2) + 2,
    # k(1) + k(3) - 2 k(2) = log(8 pi) - 3.
    assert student_t_correction(1.0, 1, 1) == pytest.approx(math.log(8 * math.pi) - 3, abs=1e-12)


def test_student_t_has_the_variance_of_a_t():
    nu = 5.0
    x, y = sample_student_t(200_000, 2, 0.0, nu, generator=_generator(), dtype=torch.float64)
    assert torch.allclose(x.var(0), torch.full((2,), nu / (nu - 2), dtype=torch.float64), rtol=0.03)


def test_student_t_rejects_an_mi_below_its_shared_scale_part():
    task = mi_task("student_t")
    floor = student_t_correction(3.0, 5, 5)
    with pytest.raises(ValueError, match="at least"):
        task_batches("student_t", 5, 8, floor / 2)
    params = task.parameters(floor, 5, nu=3.0)
    assert params["rho"] == 0.0 and task.true_mi(5, **params) == pytest.approx(floor)


# --------------------------------------------------------------------------- uniform noise


def _uniform_noise_monte_carlo(epsilon, dim, n=200_000, seed=0):
    """Mean and standard error of log p(y | x) - log p(y), with p(y | x) = 1 / (2 epsilon)
    on [x - epsilon, x + epsilon] and p(y) the trapezoid: the mass of [y - epsilon,
    y + epsilon] in [0, 1], over 2 epsilon; summed over coordinates."""
    x, y = sample_uniform_noise(n, dim, epsilon, generator=_generator(seed), dtype=torch.float64)
    width = 2.0 * epsilon
    density_y = ((y + epsilon).clamp(max=1.0) - (y - epsilon).clamp(min=0.0)) / width
    log_ratio = (-math.log(width) - density_y.log()).sum(-1).numpy()
    return log_ratio.mean(), log_ratio.std() / math.sqrt(n)


@pytest.mark.parametrize("epsilon, dim", [(0.05, 1), (0.3, 2), (0.5, 1), (1.7, 3)])
def test_uniform_noise_mi_matches_monte_carlo_with_the_exact_densities(epsilon, dim):
    estimate, error = _uniform_noise_monte_carlo(epsilon, dim)
    assert uniform_noise_mi(epsilon, dim) == pytest.approx(estimate, abs=5 * error + 1e-3)


def test_uniform_noise_closed_form_is_continuous_at_one_half():
    assert uniform_noise_mi(0.5) == pytest.approx(0.5)
    assert uniform_noise_mi(0.5 - 1e-9) == pytest.approx(uniform_noise_mi(0.5 + 1e-9))


@pytest.mark.parametrize("mi", [0.01, 0.3, 0.5, 1.0, 4.0, 12.0])
@pytest.mark.parametrize("dim", [1, 5])
def test_uniform_noise_epsilon_inverts_the_closed_form(mi, dim):
    assert uniform_noise_mi(uniform_noise_epsilon(mi, dim), dim) == pytest.approx(mi, rel=1e-9)


# --------------------------------------------------------------------------- the registry


@pytest.mark.parametrize("name", sorted(MI_TASKS))
def test_registry_parameters_give_the_requested_mi(name):
    task = mi_task(name)
    for dim, mi in [(2, 1.0), (5, 2.0), (20, 10.0)]:
        params = task.parameters(mi, dim, **task.options)
        assert task.true_mi(dim, **params) == pytest.approx(mi, rel=1e-9)


@pytest.mark.parametrize("name", sorted(MI_TASKS))
def test_registry_streams_are_seeded_batches_with_paired_masks(name):
    batches = task_batches(name, 3, 16, lambda step: mi_staircase(step, stage_steps=2), seed=4)
    first, third = batches(0), batches(2)
    x, y = first.inputs
    assert x.shape == (16, 3) and y.shape == (16, 3) and x.dtype == torch.float32
    assert torch.equal(first.positive, torch.eye(16, dtype=torch.bool))
    assert torch.equal(first.negative, ~first.positive)
    assert (first.true_mi, third.true_mi) == (2.0, 4.0)
    again = task_batches(name, 3, 16, lambda step: mi_staircase(step, stage_steps=2), seed=4)(0)
    assert torch.equal(again.inputs[0], x) and torch.equal(again.inputs[1], y)
    assert not torch.equal(batches(1).inputs[0], x)


def test_registry_options_override_the_defaults():
    task = mi_task("student_t")
    assert task.options == {"nu": 3.0}
    x, _ = task.sample(4, 2, 1.0, generator=_generator(), nu=50.0)
    expected, _ = sample_student_t(
        4, 2, task.parameters(1.0, 2, nu=50.0)["rho"], 50.0, generator=_generator()
    )
    assert torch.equal(x, expected)


def test_unknown_task_is_a_value_error():
    with pytest.raises(ValueError, match="unknown task"):
        mi_task("cauchy")
