"""Tests of remi_tutorial.explicit: the closed-form Gaussian MI and its series objective."""

import functools
import math

import pytest
import torch

from remi_tutorial.explicit import (
    PairedEmbeddings,
    canonical_correlation_mi,
    canonical_correlations,
    closed_form_mi,
    correlation_blocks,
    explicit_mi,
    gaussian_plugin_bias,
    joint_correlation_matrix,
    logdet_series,
    marginal_gaussianize,
    series_spectrum,
    transform_batches,
)
from remi_tutorial.tasks import gaussian_batches, gaussian_mi, sample_gaussian
from remi_tutorial.train import train

F64 = torch.float64


def _gaussian_pair(n, dim, rho, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return sample_gaussian(n, dim, rho, generator=generator, dtype=F64)


def _mixed_pair(n, dx, dy, seed=0):
    """Dependent, non-Gaussian, differently sized x and y."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dx, generator=generator, dtype=F64)
    mixing = torch.randn(dx, dy, generator=generator, dtype=F64)
    y = torch.tanh(x @ mixing) + 0.5 * torch.randn(n, dy, generator=generator, dtype=F64)
    return x ** 3, y


def _spd(eigenvalues, seed=0):
    """A symmetric matrix with the given eigenvalues and a random orthonormal basis."""
    generator = torch.Generator().manual_seed(seed)
    dim = len(eigenvalues)
    basis, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=F64))
    return basis @ torch.diag(torch.as_tensor(eigenvalues, dtype=F64)) @ basis.T


# --------------------------------------------------------------------------- the two forms


@pytest.mark.parametrize("ridge", [0.0, 1e-3, 0.1])
@pytest.mark.parametrize("dims", [(3, 3), (2, 5), (6, 1)])
def test_log_det_and_canonical_correlation_forms_agree(ridge, dims):
    x, y = _mixed_pair(500, *dims)
    log_det = closed_form_mi(x, y, ridge=ridge)
    cca = canonical_correlation_mi(x, y, ridge=ridge)
    assert log_det > 0.05
    torch.testing.assert_close(log_det, cca, rtol=1e-10, atol=1e-10)


def test_closed_form_matches_analytic_mi_at_large_n():
    # Three coordinate pairs at rho = 0.8: the plug-in estimate's standard error is about
    # rho * sqrt(dim / N) ~ 0.01 nats and its bias dim^2 / (2 N) ~ 2e-4 nats; the tolerance,
    # 0.04 nats, is four standard errors.
    dim, rho, n = 3, 0.8, 20_000
    x, y = _gaussian_pair(n, dim, rho)
    estimate = float(closed_form_mi(x, y, ridge=0.0))
    assert abs(estimate - gaussian_mi(rho, dim)) < 0.04


def test_canonical_correlations_recover_the_coordinate_correlations():
    dim, rho = 3, 0.6
    x, y = _gaussian_pair(20_000, dim, rho)
    torch.testing.assert_close(
        canonical_correlations(x, y, ridge=0.0), torch.full((dim,), rho, dtype=F64), atol=0.02,
        rtol=0,
    )


def test_closed_form_is_invariant_to_invertible_linear_maps_of_each_variable():
    x, y = _mixed_pair(400, 4, 3)
    generator = torch.Generator().manual_seed(1)
    map_x = torch.randn(4, 4, generator=generator, dtype=F64) + 3 * torch.eye(4, dtype=F64)
    map_y = torch.randn(3, 3, generator=generator, dtype=F64) * torch.tensor([100.0, 1.0, 1e-3],
                                                                           dtype=F64)
    assert abs(torch.linalg.det(map_x)) > 1e-3 and abs(torch.linalg.det(map_y)) > 1e-6
    shift = torch.randn(4, generator=generator, dtype=F64)
    before = closed_form_mi(x, y, ridge=0.0)
    after = closed_form_mi(x @ map_x + shift, y @ map_y - 7.0, ridge=0.0)
    torch.testing.assert_close(after, before, rtol=1e-9, atol=1e-9)


def test_closed_form_is_invariant_to_rescaling_coordinates_even_with_a_ridge():
    x, y = _mixed_pair(400, 4, 3)
    scales = torch.tensor([1e-3, 1.0, 50.0, 2.0], dtype=F64)
    torch.testing.assert_close(closed_form_mi(x * scales, y, ridge=0.05),
                               closed_form_mi(x, y, ridge=0.05))


def test_ridge_shrinks_the_estimate():
    x, y = _gaussian_pair(2000, 3, 0.9)
    estimates = [float(closed_form_mi(x, y, ridge=r)) for r in (0.0, 0.01, 0.1)]
    assert estimates[0] > estimates[1] > estimates[2] > 0


def test_independent_variables_give_near_zero_mi_at_large_n():
    x, _ = _gaussian_pair(20_000, 3, 0.0, seed=1)
    _, y = _gaussian_pair(20_000, 3, 0.0, seed=2)
    assert abs(float(closed_form_mi(x, y, ridge=0.0))) < 0.01


# --------------------------------------------------------------------------- plug-in bias


def test_gaussian_plugin_bias_matches_the_monte_carlo_excess_and_debias_removes_it():
    dim, rho, n, repeats = 8, 0.5, 40, 3000
    x, y = _gaussian_pair(n * repeats, dim, rho)
    x, y = x.view(repeats, n, dim), y.view(repeats, n, dim)
    truth = gaussian_mi(rho, dim)
    raw = closed_form_mi(x, y, ridge=0.0)
    standard_error = float(raw.std()) / math.sqrt(repeats)
    expected_bias = gaussian_plugin_bias(n, dim, dim)
    assert expected_bias > 10 * standard_error  # the bias is real, not noise
    assert abs(float(raw.mean()) - truth - expected_bias) < 4 * standard_error
    debiased = closed_form_mi(x, y, ridge=0.0, debias=True)
    assert abs(float(debiased.mean()) - truth) < 4 * standard_error


def test_gaussian_plugin_bias_grows_as_samples_shrink():
    biases = [gaussian_plugin_bias(n, 5, 5) for n in (1000, 100, 20)]
    assert 0 < biases[0] < biases[1] < biases[2]
    assert biases[0] == pytest.approx(25 / (2 * 999), rel=0.05)  # dx dy / (2 n)


def test_gaussian_plugin_bias_rejects_too_few_samples():
    with pytest.raises(ValueError, match="more samples"):
        gaussian_plugin_bias(10, 5, 5)


# --------------------------------------------------------------------------- the series


def test_series_equals_exact_log_det_well_inside_the_radius():
    matrix = _spd([0.7, 0.85, 1.0, 1.15, 1.3])  # beta = 1: spectrum of A in [-0.3, 0.3]
    exact = torch.logdet(matrix)
    assert abs(float(exact)) > 0.05
    torch.testing.assert_close(logdet_series(matrix, order=40, beta=1.0), exact,
                               rtol=0, atol=1e-12)
    # The truncation error after K terms is at most D * sum_{k > K} 0.3^k / k.
    remainder = 5 * sum(0.3 ** k / k for k in range(5, 200))
    assert abs(float(logdet_series(matrix, order=4, beta=1.0) - exact)) <= remainder


def test_series_error_shrinks_with_the_order_inside_the_radius():
    matrix = _spd([0.2, 0.6, 1.0, 1.4, 1.7])
    exact = torch.logdet(matrix)
    errors = [abs(float(logdet_series(matrix, order=k, beta=1.0) - exact)) for k in (2, 4, 8, 16)]
    assert errors == sorted(errors, reverse=True) and errors[-1] < 0.1 * errors[0]


def test_series_rescaling_beta_is_undone_exactly():
    matrix = _spd([0.9, 1.0, 1.1]) * 7.0  # beta = 1/7 brings it to the identity's neighbourhood
    torch.testing.assert_close(logdet_series(matrix, order=30, beta=1 / 7),
                               torch.logdet(matrix), rtol=0, atol=1e-10)


def test_default_beta_keeps_any_positive_definite_spectrum_inside_the_radius():
    matrix = _spd([0.5, 3.0, 20.0, 50.0])
    spectrum = series_spectrum(matrix)
    assert float(spectrum.min()) > -1 and float(spectrum.max()) <= 0
    torch.testing.assert_close(logdet_series(matrix, order=3000), torch.logdet(matrix),
                               rtol=0, atol=1e-6)


def test_fixed_beta_outside_the_radius_gives_a_wrong_series():
    matrix = _spd([0.5, 1.0, 3.0])  # beta = 1: the eigenvalue 3 maps to a = 2
    assert float(series_spectrum(matrix, 1.0).max()) == pytest.approx(2.0)
    exact = torch.logdet(matrix)
    errors = [abs(float(logdet_series(matrix, order=k, beta=1.0) - exact)) for k in (4, 8, 16)]
    assert errors == sorted(errors) and errors[0] > 1.0  # it diverges as the order grows


def test_explicit_mi_rejects_a_series_whose_spectrum_leaves_the_radius():
    x, y = _gaussian_pair(500, 4, 0.9)
    with pytest.raises(ValueError, match="series diverges"):
        explicit_mi((x, y), order=4, beta=1.5)
    unchecked = explicit_mi((x, y), order=4, beta=1.5, check=False)  # evaluated as is
    assert torch.isfinite(unchecked.objective) and abs(unchecked.objective - unchecked.mi) > 0.5


def test_series_objective_approaches_the_exact_one_as_the_order_grows():
    x, y = _gaussian_pair(500, 4, 0.6)
    exact = explicit_mi((x, y)).mi
    gaps = [abs(float(explicit_mi((x, y), order=k, beta=0.8).objective - exact))
            for k in (2, 4, 8, 32)]
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 0.01


def test_second_order_series_is_the_squared_cross_correlation():
    # Order 2 with one beta for every matrix: the within-variable terms cancel, leaving
    # (beta^2 / 2) ||R_xy||_F^2.
    x, y = _mixed_pair(300, 3, 4)
    beta = 0.4
    _, _, r_xy = correlation_blocks(x, y)
    objective = explicit_mi((x, y), order=2, beta=beta).objective
    torch.testing.assert_close(objective, 0.5 * beta ** 2 * r_xy.square().sum())


def test_series_order_must_be_a_positive_integer():
    with pytest.raises(ValueError, match="order"):
        logdet_series(torch.eye(3), order=0)
    with pytest.raises(ValueError, match="beta"):
        logdet_series(torch.eye(3), order=2, beta=-1.0)


# --------------------------------------------------------------------------- the objective


def test_explicit_mi_reports_the_closed_form_and_its_two_terms():
    x, y = _mixed_pair(300, 3, 2)
    result = explicit_mi((x, y))
    torch.testing.assert_close(result.mi, closed_form_mi(x, y))
    torch.testing.assert_close(result.mi, result.joint - result.marginal)
    torch.testing.assert_close(result.objective, result.mi)
    assert float(result.penalty) == 0.0
    assert float(result.joint) > float(result.mi)  # TC of the joint includes the marginals'


def test_explicit_mi_with_a_diagonal_mask_equals_paired_rows():
    x, y = _mixed_pair(50, 3, 2)
    diagonal = torch.eye(50, dtype=torch.bool)
    torch.testing.assert_close(explicit_mi((x, y), diagonal).mi, explicit_mi((x, y)).mi)


def test_explicit_mi_pairs_rows_as_the_positive_mask_says():
    x, y = _mixed_pair(50, 3, 2)
    order = torch.randperm(50, generator=torch.Generator().manual_seed(3))
    permuted = torch.zeros(50, 50, dtype=torch.bool)
    permuted[order, torch.arange(50)] = True  # y_j is paired with x_order[j]
    torch.testing.assert_close(explicit_mi((x, y), permuted).mi,
                               closed_form_mi(x[order], y))


def test_explicit_mi_is_symmetric_in_its_two_embeddings():
    x, y = _mixed_pair(40, 3, 2)
    generator = torch.Generator().manual_seed(4)
    positive = torch.rand(40, 40, generator=generator) < 0.1
    forward = explicit_mi((x, y), positive)
    backward = explicit_mi((y, x), positive.T)
    torch.testing.assert_close(forward.mi, backward.mi)


def test_explicit_mi_on_stacked_embeddings_equals_each_alone():
    x, y = _mixed_pair(3 * 60, 3, 2)
    x, y = x.view(3, 60, 3), y.view(3, 60, 2)
    stacked = explicit_mi((x, y), torch.eye(60, dtype=torch.bool), order=4)
    for index in range(3):
        alone = explicit_mi((x[index], y[index]), order=4)
        torch.testing.assert_close(stacked.mi[index], alone.mi)
        torch.testing.assert_close(stacked.objective[index], alone.objective)


def test_explicit_mi_debias_shifts_the_estimate_by_the_plugin_bias():
    x, y = _gaussian_pair(64, 4, 0.5)
    shift = explicit_mi((x, y)).mi - explicit_mi((x, y), debias=True).mi
    assert float(shift) == pytest.approx(gaussian_plugin_bias(64, 4, 4))


@pytest.mark.parametrize("order", [None, 4])
@pytest.mark.parametrize("case", ["fewer_rows_than_dims", "constant_coordinate",
                                  "identical_views", "collapsed"])
def test_gradients_are_finite_for_rank_deficient_batches(order, case):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(6 if case == "fewer_rows_than_dims" else 64, 16, generator=generator)
    y = x.clone() if case == "identical_views" else torch.randn(*x.shape, generator=generator)
    if case == "constant_coordinate":
        x[:, 3] = 1.5
    if case == "collapsed":
        x = torch.zeros_like(x) + 0.3
    x.requires_grad_(True)
    y.requires_grad_(True)
    result = explicit_mi((x, y), order=order)
    result.loss.backward()
    assert torch.isfinite(result.mi) and torch.isfinite(result.objective)
    assert torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all()


def test_a_singular_batch_without_ridge_is_rejected():
    x, _ = _gaussian_pair(64, 3, 0.0)
    with pytest.raises(ValueError, match="ridge > 0"):
        explicit_mi((x, x.clone()), ridge=0.0)


def test_explicit_mi_rejects_a_score_matrix():
    with pytest.raises(ValueError, match="pair"):
        explicit_mi(torch.zeros(4, 4), torch.eye(4, dtype=torch.bool))


def test_explicit_mi_rejects_a_mask_of_the_wrong_shape():
    x, y = _mixed_pair(10, 2, 2)
    with pytest.raises(ValueError, match="broadcast"):
        explicit_mi((x, y), torch.eye(9, dtype=torch.bool))


def test_explicit_mi_rejects_an_empty_positive_mask():
    x, y = _mixed_pair(10, 2, 2)
    with pytest.raises(ValueError, match="no pair"):
        explicit_mi((x, y), torch.zeros(10, 10, dtype=torch.bool))


def test_negative_ridge_is_rejected():
    x, y = _mixed_pair(10, 2, 2)
    with pytest.raises(ValueError, match="ridge"):
        closed_form_mi(x, y, ridge=-1.0)


# --------------------------------------------------------------------------- helpers


def test_paired_embeddings_without_encoders_is_a_parameter_free_identity():
    module = PairedEmbeddings()
    x, y = torch.randn(5, 2), torch.randn(5, 3)
    z, z_prime = module(x, y)
    assert z is x and z_prime is y and not list(module.parameters())


def test_paired_embeddings_of_one_batch_share_the_encoder():
    module = PairedEmbeddings(torch.nn.Linear(4, 2))
    z, z_prime = module(torch.randn(5, 4))
    assert z is z_prime and z.shape == (5, 2)
    with pytest.raises(ValueError, match="shared"):
        PairedEmbeddings(torch.nn.Linear(4, 2), torch.nn.Linear(4, 2))(torch.randn(5, 4))


def test_monotone_maps_break_the_raw_estimate_and_gaussianizing_restores_it():
    dim, rho = 2, 0.8
    x, y = _gaussian_pair(20_000, dim, rho)
    truth = gaussian_mi(rho, dim)
    warped_x, warped_y = x ** 3, torch.exp(y)
    raw = float(closed_form_mi(warped_x, warped_y, ridge=0.0))
    restored = float(closed_form_mi(marginal_gaussianize(warped_x),
                                    marginal_gaussianize(warped_y), ridge=0.0))
    assert truth - raw > 0.3
    assert abs(restored - truth) < 0.05


def test_marginal_gaussianize_is_a_monotone_map_to_normal_scores():
    x = torch.randn(1000, 2, dtype=F64) ** 3
    scores = marginal_gaussianize(x)
    assert torch.equal(scores.argsort(0), x.argsort(0))
    assert abs(float(scores.mean())) < 1e-10 and abs(float(scores.std()) - 1.0) < 0.02


def test_joint_correlation_matrix_has_the_marginal_blocks_on_its_diagonal():
    x, y = _mixed_pair(100, 3, 2)
    joint = joint_correlation_matrix(x, y, ridge=0.01)
    r_xx, r_yy, r_xy = correlation_blocks(x, y, ridge=0.01)
    torch.testing.assert_close(joint[:3, :3], r_xx)
    torch.testing.assert_close(joint[3:, 3:], r_yy)
    torch.testing.assert_close(joint[:3, 3:], r_xy)
    torch.testing.assert_close(joint.diagonal(), torch.full((5,), 1.01, dtype=F64))


def test_transform_batches_maps_each_variable_and_keeps_the_rest():
    stream = gaussian_batches(2, 8, 1.0, seed=0)
    original = gaussian_batches(2, 8, 1.0, seed=0)(0)
    warped = transform_batches(stream, lambda x: x ** 3, torch.exp)(0)
    torch.testing.assert_close(warped.inputs[0], original.inputs[0] ** 3)
    torch.testing.assert_close(warped.inputs[1], torch.exp(original.inputs[1]))
    assert warped.true_mi == original.true_mi and torch.equal(warped.positive, original.positive)


# --------------------------------------------------------------------------- in the training loop


def test_train_evaluates_a_parameter_free_estimator_on_every_batch():
    stream = gaussian_batches(3, 32, 1.0, seed=0, dtype=F64)
    result = train(PairedEmbeddings(), functools.partial(explicit_mi, debias=True), stream,
                   steps=5, check_every=2, progress=False)
    replay = gaussian_batches(3, 32, 1.0, seed=0, dtype=F64)
    expected = [float(explicit_mi(replay(step).inputs, debias=True).mi) for step in range(5)]
    assert result.diverged_at is None
    assert result.history.mi.tolist() == pytest.approx(expected, abs=1e-12)


def test_train_maximizes_the_explicit_mi_of_learned_embeddings():
    # One linear projection of each 2-d variable: the best pair of projections keeps one of
    # the two coordinate pairs, half of the 1 nat. The start projects x and y on different
    # coordinates, which are independent: zero MI.
    torch.manual_seed(0)
    stream = gaussian_batches(2, 256, 1.0, seed=0)
    encoders = PairedEmbeddings(torch.nn.Linear(2, 1), torch.nn.Linear(2, 1))
    with torch.no_grad():
        encoders.x_encoder.weight.copy_(torch.tensor([[1.0, 0.0]]))
        encoders.y_encoder.weight.copy_(torch.tensor([[0.0, 1.0]]))
    result = train(encoders, functools.partial(explicit_mi), stream, steps=300, lr=1e-2,
                   progress=False)
    first, last = result.history.mi.iloc[:5].mean(), result.history.mi.iloc[-50:].mean()
    assert first < 0.05
    assert abs(last - 0.5) < 0.05


def test_train_rejects_scores_fed_to_explicit_mi_on_the_first_batch():
    from remi_tutorial.critics import SeparableCritic

    stream = gaussian_batches(2, 16, 1.0, seed=0)
    with pytest.raises(ValueError, match="PairedEmbeddings"):
        train(SeparableCritic(2, 2, (8,), 4), functools.partial(explicit_mi), stream, steps=2,
              progress=False)
