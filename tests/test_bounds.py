import math

import pytest
import torch

from remi_tutorial import bounds
from remi_tutorial.bounds import (
    BOUND_NAMES,
    ORIGINAL_NAMES,
    REGISTRY,
    bound_spec,
    get_bound,
    regularized_name,
)
from remi_tutorial.tasks import (
    contrastive_masks,
    gaussian_log_density_ratio,
    gaussian_rho,
    label_masks,
    paired_masks,
    sample_gaussian,
)

ORIGINALS = ORIGINAL_NAMES
REGULARIZED = tuple(regularized_name(name) for name in ORIGINALS)


def random_problem(n=6, m=6, seed=0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randn(n, m, generator=generator, dtype=dtype)
    positive, negative = paired_masks(n)
    return scores, positive, negative


@pytest.fixture(scope="module")
def optimal_gaussian_scores():
    """The analytic optimal critic on 3,000 pairs of a 5-d Gaussian with I = 2 nats."""
    true_mi, dim = 2.0, 5
    rho = gaussian_rho(true_mi, dim)
    x, y = sample_gaussian(3000, dim, rho, generator=torch.Generator().manual_seed(1),
                           dtype=torch.float64)
    return gaussian_log_density_ratio(x, y, rho), true_mi


# --------------------------------------------------------------------------- shift behaviour


def test_dv_is_invariant_to_adding_a_constant_to_the_critic():
    scores, positive, negative = random_problem()
    shifted = bounds.mine(scores + 3.7, positive, negative)
    assert torch.allclose(shifted.mi, bounds.mine(scores, positive, negative).mi, atol=1e-5)


def test_dv_terms_both_move_by_the_constant():
    scores, positive, negative = random_problem()
    base, shifted = bounds.mine(scores, positive, negative), bounds.mine(scores + 2.0, positive, negative)
    assert torch.allclose(shifted.joint - base.joint, torch.tensor(2.0), atol=1e-5)
    assert torch.allclose(shifted.marginal - base.marginal, torch.tensor(2.0), atol=1e-5)


def test_nwj_is_not_invariant_to_adding_a_constant_to_the_critic():
    scores, positive, negative = random_problem()
    base = bounds.nwj(scores, positive, negative).mi
    assert not torch.allclose(bounds.nwj(scores + 1.0, positive, negative).mi, base, atol=1e-2)


def test_tuba_with_unit_baseline_equals_nwj_of_critic_plus_one():
    scores, positive, negative = random_problem()
    assert torch.allclose(
        bounds.tuba(scores, positive, negative).mi, bounds.nwj(scores + 1.0, positive, negative).mi
    )


def test_nwj_is_tuba_with_baseline_e():
    scores, positive, negative = random_problem()
    assert torch.allclose(
        bounds.nwj(scores, positive, negative).mi,
        bounds.tuba(scores, positive, negative, log_baseline=1.0).mi,
    )


def test_tuba_accepts_one_log_baseline_per_column():
    scores, positive, negative = random_problem()
    constant = bounds.tuba(scores, positive, negative, log_baseline=0.5).mi
    per_column = bounds.tuba(scores, positive, negative, log_baseline=torch.full((6,), 0.5)).mi
    assert torch.allclose(constant, per_column)


def test_dv_is_never_below_nwj_at_the_same_critic():
    for seed in range(5):
        scores, positive, negative = random_problem(seed=seed)
        for shift in (-2.0, 0.0, 1.0, 3.0):
            dv = bounds.mine(scores + shift, positive, negative).mi
            assert dv >= bounds.nwj(scores + shift, positive, negative).mi - 1e-6


# --------------------------------------------------------------------------- the optimal critic


def test_dv_at_the_optimal_critic_is_close_to_the_true_mi(optimal_gaussian_scores):
    scores, true_mi = optimal_gaussian_scores
    positive, negative = paired_masks(scores.shape[0])
    assert abs(float(bounds.mine(scores, positive, negative).mi) - true_mi) < 0.05


def test_nwj_at_the_optimal_critic_plus_one_is_close_to_the_true_mi(optimal_gaussian_scores):
    scores, true_mi = optimal_gaussian_scores
    positive, negative = paired_masks(scores.shape[0])
    assert abs(float(bounds.nwj(scores + 1.0, positive, negative).mi) - true_mi) < 0.05


def test_nwj_marginal_is_one_at_its_optimal_critic(optimal_gaussian_scores):
    scores, _ = optimal_gaussian_scores
    _, negative = paired_masks(scores.shape[0])
    assert abs(float(bounds.nwj_marginal(scores + 1.0, negative)) - 1.0) < 0.05


def test_js_at_its_optimal_critic_reports_the_true_mi_minus_one_over_e(optimal_gaussian_scores):
    scores, true_mi = optimal_gaussian_scores
    positive, negative = paired_masks(scores.shape[0])
    reported = float(bounds.js(scores, positive, negative).mi)
    assert abs(reported - (true_mi - 1.0 / math.e)) < 0.05


def test_js_with_report_shift_one_reports_the_true_mi_at_its_optimum(optimal_gaussian_scores):
    scores, true_mi = optimal_gaussian_scores
    positive, negative = paired_masks(scores.shape[0])
    reported = float(bounds.js(scores, positive, negative, report_shift=1.0).mi)
    assert abs(reported - true_mi) < 0.05


# --------------------------------------------------------------------------- InfoNCE


@pytest.mark.parametrize("scale", [1.0, 10.0, 1000.0])
def test_infonce_never_exceeds_log_batch_size(scale):
    # float64: at scores of order 1e3, float32 rounding alone is about 1e-4
    scores, positive, negative = random_problem(n=8, m=8, dtype=torch.float64)
    scores = scores * scale
    scores.diagonal().add_(5 * scale)  # positives far above every negative
    assert float(bounds.infonce(scores, positive, negative).mi) <= math.log(8) + 1e-5


def test_infonce_reaches_log_batch_size_when_positives_dominate():
    scores, positive, negative = random_problem(n=8, m=8)
    scores.diagonal().add_(100.0)
    assert float(bounds.infonce(scores, positive, negative).mi) == pytest.approx(math.log(8), abs=1e-4)


def test_infonce_on_logits_is_log_classes_minus_cross_entropy():
    logits = torch.randn(7, 5)
    labels = torch.tensor([0, 1, 2, 3, 4, 0, 1])
    positive, negative = label_masks(labels, 5)
    expected = math.log(5) - torch.nn.functional.cross_entropy(logits, labels)
    assert torch.allclose(bounds.infonce(logits, positive, negative).mi, expected, atol=1e-5)


# --------------------------------------------------------------------------- hand-computed masks


def test_supervised_masks_give_hand_computed_dv_value():
    logits = torch.tensor([[2.0, 0.0], [1.0, 3.0]])
    labels = torch.tensor([0, 1])
    positive, negative = label_masks(labels, 2)
    joint = (2.0 + 3.0) / 2
    marginal = math.log((math.exp(2) + math.exp(0) + math.exp(1) + math.exp(3)) / 4)
    result = bounds.mine(logits, positive, negative)
    assert float(result.joint) == pytest.approx(joint)
    assert float(result.marginal) == pytest.approx(marginal, rel=1e-6)
    assert float(result.mi) == pytest.approx(joint - marginal, rel=1e-6)


def test_contrastive_masks_select_same_label_pairs_of_different_images():
    positive, negative = contrastive_masks(torch.tensor([0, 1, 0]))
    assert positive.tolist() == [[False, False, True], [False, False, False], [True, False, False]]
    assert negative.tolist() == [[False, True, True], [True, False, True], [True, True, False]]


def test_contrastive_masks_give_hand_computed_values():
    embeddings = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    scores = embeddings @ embeddings.T  # [[1,0,1],[0,1,1],[1,1,2]]
    positive, negative = contrastive_masks(torch.tensor([0, 1, 0]))
    # positives: (0,2) and (2,0), both score 1; negatives: the six off-diagonal scores
    off_diagonal = [0.0, 1.0, 0.0, 1.0, 1.0, 1.0]
    dv_marginal = math.log(sum(math.exp(s) for s in off_diagonal) / 6)
    assert float(bounds.mine(scores, positive, negative).mi) == pytest.approx(1.0 - dv_marginal, rel=1e-6)
    # InfoNCE: rows 0 and 2 each have one positive; row 0 contrasts {0, 1}, row 2 {1, 1}
    row0 = 1.0 - math.log((math.exp(0.0) + math.exp(1.0)) / 2)
    row2 = 1.0 - math.log((math.exp(1.0) + math.exp(1.0)) / 2)
    assert float(bounds.infonce(scores, positive, negative).mi) == pytest.approx((row0 + row2) / 2, rel=1e-6)


def test_paired_masks_use_the_off_diagonal_as_marginal():
    positive, negative = paired_masks(3)
    assert positive.sum() == 3 and negative.sum() == 6
    assert not (positive & negative).any()


def test_marginal_term_ignores_the_pairs_outside_the_negative_mask():
    scores, positive, negative = random_problem()
    changed = scores.clone()
    changed.diagonal().add_(50.0)  # only positive pairs change
    assert torch.allclose(bounds.dv_marginal(changed, negative), bounds.dv_marginal(scores, negative))


# --------------------------------------------------------------------------- SMILE


def test_smile_with_large_tau_equals_mine():
    scores, positive, negative = random_problem()
    assert torch.allclose(
        bounds.smile(scores, positive, negative, tau=100.0).mi, bounds.mine(scores, positive, negative).mi
    )


def test_smile_clipping_both_terms_is_bounded_by_twice_tau():
    scores, positive, negative = random_problem()
    scores = scores * 100
    assert float(bounds.smile(scores, positive, negative, tau=2.0).mi) <= 4.0 + 1e-6


def test_smile_is_zero_when_every_score_lies_beyond_the_clip():
    scores = torch.full((5, 5), 40.0) + torch.rand(5, 5)
    positive, negative = paired_masks(5)
    result = bounds.smile(scores.requires_grad_(), positive, negative, tau=5.0)
    assert float(result.mi.detach()) == pytest.approx(0.0, abs=1e-6)
    (gradient,) = torch.autograd.grad(result.objective, scores)
    assert torch.count_nonzero(gradient) == 0


def test_smile_clipping_only_the_marginal_leaves_the_joint_unclipped():
    scores, positive, negative = random_problem()
    scores.diagonal().add_(20.0)
    result = bounds.smile(scores, positive, negative, tau=1.0, clip="marginal")
    assert float(result.joint) == pytest.approx(float(bounds.joint_term(scores, positive)))


def test_smile_with_js_gradient_trains_on_the_js_bound():
    scores, positive, negative = random_problem()
    smile_js = bounds.smile(scores, positive, negative, gradient="js")
    assert torch.allclose(smile_js.objective, bounds.js(scores, positive, negative).objective)
    assert torch.allclose(smile_js.mi, bounds.smile(scores, positive, negative).mi)


# --------------------------------------------------------------------------- JS


def test_js_reports_the_nwj_value():
    scores, positive, negative = random_problem()
    assert torch.allclose(bounds.js(scores, positive, negative).mi, bounds.nwj(scores, positive, negative).mi)


def test_js_gradient_is_the_gradient_of_the_js_bound():
    scores, positive, negative = random_problem()
    scores.requires_grad_()
    (js_gradient,) = torch.autograd.grad(bounds.js(scores, positive, negative).objective, scores)
    # f-GAN JS by hand: mean over P of log sigmoid(T) + mean over Q of log(1 - sigmoid(T))
    by_hand = torch.nn.functional.logsigmoid(scores.diagonal()).mean() + torch.nn.functional.logsigmoid(
        -scores[negative]
    ).mean()
    (expected,) = torch.autograd.grad(by_hand, scores)
    (nwj_gradient,) = torch.autograd.grad(bounds.nwj(scores, positive, negative).mi, scores)
    assert torch.allclose(js_gradient, expected, atol=1e-6)
    assert not torch.allclose(js_gradient, nwj_gradient, atol=1e-3)


# --------------------------------------------------------------------------- the regularized bounds


@pytest.mark.parametrize("name", ORIGINALS)
def test_regularized_bound_reports_its_base_bounds_mi(name):
    scores, positive, negative = random_problem()
    base = get_bound(name)(scores, positive, negative)
    regularized = get_bound(regularized_name(name), alpha=0.5)(scores, positive, negative)
    assert torch.allclose(regularized.mi, base.mi)
    assert torch.allclose(regularized.objective, base.objective - regularized.penalty)


def _on_target_scores(name, n=6):
    """Scores at which the default penalty of ``name``'s regularized bound is zero."""
    scores, positive, negative = random_problem(n=n, m=n, dtype=torch.float64)
    log_mean_exp = bounds.dv_marginal(scores, negative)
    if name in ("mine", "smile", "infonce", "tuba", "js"):  # target: log E_Q[e^T] = 0
        return scores - log_mean_exp, positive, negative
    return scores - log_mean_exp + 1.0, positive, negative  # nwj: E_Q[e^(T-1)] = 1


@pytest.mark.parametrize("name", ORIGINALS)
def test_regularized_bound_has_zero_penalty_on_target(name):
    scores, positive, negative = _on_target_scores(name)
    result = get_bound(regularized_name(name), alpha=1.0)(scores, positive, negative)
    assert float(result.penalty) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("name", ORIGINALS)
def test_regularized_bound_has_nonzero_penalty_gradient_off_target(name):
    scores, positive, negative = _on_target_scores(name)
    scores = (scores + 0.7).requires_grad_()
    penalty = get_bound(regularized_name(name), alpha=1.0)(scores, positive, negative).penalty
    (gradient,) = torch.autograd.grad(penalty, scores)
    assert float(penalty.detach()) > 0
    assert gradient[negative].abs().sum() > 1e-3
    # the penalty pushes the marginal scores down, towards the target
    assert (gradient[negative] > 0).all()


def test_remine_penalty_is_alpha_times_squared_distance_to_target():
    scores, positive, negative = random_problem()
    result = bounds.remine(scores, positive, negative, alpha=0.3, target=1.5)
    expected = 0.3 * (bounds.dv_marginal(scores, negative) - 1.5) ** 2
    assert torch.allclose(result.penalty, expected)


def test_absolute_distance_penalty_is_alpha_times_absolute_gap():
    scores, positive, negative = random_problem()
    result = bounds.remine(scores, positive, negative, alpha=0.3, distance="absolute")
    assert torch.allclose(result.penalty, 0.3 * bounds.dv_marginal(scores, negative).abs())


def test_renwj_paper_penalty_targets_nwj_marginal_one():
    scores, positive, negative = random_problem()
    result = bounds.renwj(scores, positive, negative, alpha=0.2)
    assert torch.allclose(result.penalty, 0.2 * (bounds.nwj_marginal(scores, negative) - 1.0) ** 2)


def test_renwj_authors_code_penalty_targets_log_mean_exp_zero():
    scores, positive, negative = random_problem()
    result = bounds.renwj(scores, positive, negative, alpha=0.2, variant="authors_code")
    assert torch.allclose(result.penalty, 0.2 * bounds.dv_marginal(scores, negative) ** 2)


def test_resmile_penalty_sees_unclipped_scores():
    scores = torch.full((5, 5), 40.0).requires_grad_()
    positive, negative = paired_masks(5)
    result = bounds.resmile(scores, positive, negative, tau=5.0, alpha=0.1)
    (gradient,) = torch.autograd.grad(result.objective, scores)
    assert float(result.penalty.detach()) == pytest.approx(0.1 * 40.0**2, rel=1e-5)
    assert (gradient[negative] < 0).all()


# --------------------------------------------------------------------------- shapes, dtypes


@pytest.mark.parametrize("name", BOUND_NAMES)
def test_bound_over_stacked_scores_equals_bound_of_each_slice(name):
    stacked = torch.randn(3, 6, 6)
    positive, negative = paired_masks(6)
    bound = get_bound(name)
    together = bound(stacked, positive, negative)
    for index in range(3):
        alone = bound(stacked[index], positive, negative)
        for field_together, field_alone in zip(together, alone):
            assert torch.allclose(field_together[index], field_alone, atol=1e-5)


@pytest.mark.parametrize("name", BOUND_NAMES)
def test_bound_preserves_dtype(name):
    scores, positive, negative = random_problem(dtype=torch.float64)
    result = get_bound(name)(scores, positive, negative)
    assert all(field.dtype == torch.float64 and field.shape == () for field in result)


def test_bound_loss_is_minus_objective():
    scores, positive, negative = random_problem()
    result = bounds.js(scores, positive, negative)
    assert torch.equal(result.loss, -result.objective)


def test_bound_works_under_vmap_without_checks():
    stacked = torch.randn(4, 6, 6)
    positive, negative = paired_masks(6)
    mapped = torch.func.vmap(lambda s: bounds.remine(s, positive, negative, check=False).mi)(stacked)
    assert torch.allclose(mapped, bounds.remine(stacked, positive, negative).mi)


# --------------------------------------------------------------------------- bad input


def test_unknown_bound_name_raises_value_error_listing_the_names():
    with pytest.raises(ValueError, match="unknown bound 'minee'.*remine"):
        get_bound("minee")


def test_bound_names_are_case_insensitive():
    assert get_bound("ReMINE", alpha=0.2).func is bounds.remine


def test_unknown_bound_parameter_raises_value_error():
    with pytest.raises(ValueError, match="takes no parameter tau"):
        get_bound("mine", tau=3.0)


def test_there_are_twelve_bounds_six_of_them_regularized():
    assert len(BOUND_NAMES) == 12
    assert sorted(BOUND_NAMES) == sorted([*ORIGINALS, *REGULARIZED])
    assert [bound_spec(name).regularized for name in BOUND_NAMES] == [False] * 6 + [True] * 6


def test_mask_shape_mismatch_raises_value_error():
    scores = torch.randn(4, 5)
    positive, negative = paired_masks(4)
    with pytest.raises(ValueError, match=r"positive mask of shape \(4, 4\) does not broadcast"):
        bounds.mine(scores, positive, negative)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("name", BOUND_NAMES)
def test_non_finite_scores_raise_value_error(name, bad):
    scores, positive, negative = random_problem()
    scores[1, 2] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        get_bound(name)(scores, positive, negative)


@pytest.mark.parametrize("name", BOUND_NAMES)
def test_no_positive_pair_raises_value_error(name):
    positive, negative = contrastive_masks(torch.tensor([0, 1, 2, 3]))  # all labels differ
    with pytest.raises(ValueError, match="positive mask selects no pair"):
        get_bound(name)(torch.randn(4, 4), positive, negative)


@pytest.mark.parametrize("name", BOUND_NAMES)
def test_empty_negative_set_raises_value_error(name):
    scores, positive, _ = random_problem()
    with pytest.raises(ValueError, match="negative mask selects no pair"):
        get_bound(name)(scores, positive, torch.zeros(6, 6, dtype=torch.bool))


def test_float_mask_raises_value_error_naming_the_dtype():
    scores, positive, negative = random_problem()
    with pytest.raises(ValueError, match="positive must be a bool tensor"):
        bounds.mine(scores, positive.float(), negative)


def test_integer_scores_raise_value_error():
    _, positive, negative = random_problem()
    with pytest.raises(ValueError, match="floating-point"):
        bounds.mine(torch.ones(6, 6, dtype=torch.long), positive, negative)


def test_negative_alpha_raises_value_error():
    scores, positive, negative = random_problem()
    with pytest.raises(ValueError, match="alpha must be non-negative"):
        bounds.remine(scores, positive, negative, alpha=-1.0)


def test_unknown_smile_clip_raises_value_error():
    scores, positive, negative = random_problem()
    with pytest.raises(ValueError, match="clip must be"):
        bounds.smile(scores, positive, negative, clip="joint")


# --------------------------------------------------------------------------- the registry


@pytest.mark.parametrize("name", REGULARIZED)
def test_regularized_bound_takes_its_base_and_penalty_parameters_and_the_weight(name):
    spec = bound_spec(name)
    base = bound_spec(spec.base)
    expected = {*base.parameters, *spec.penalty_parameters, "alpha", "distance"}
    assert set(spec.parameters) == expected


@pytest.mark.parametrize("name", REGULARIZED)
def test_regularized_bound_is_its_base_bound_minus_the_registered_penalty(name):
    spec = bound_spec(name)
    scores, positive, negative = random_problem(dtype=torch.float64)
    params = dict(alpha=0.7, distance="squared")
    result = spec.function(scores, positive, negative, **params)
    base = bound_spec(spec.base).function(scores, positive, negative)
    term, target = spec.penalty(scores, negative)
    torch.testing.assert_close(result.mi, base.mi)
    torch.testing.assert_close(result.penalty, 0.7 * (term - target) ** 2)
    torch.testing.assert_close(result.objective, base.objective - result.penalty)


@pytest.mark.parametrize("name", BOUND_NAMES)
def test_registered_optimal_shift_is_a_stationary_point_of_the_objective(name, optimal_gaussian_scores):
    # At log dP/dQ + optimal_shift the objective's derivative along a constant shift of the
    # critic is zero (up to sampling noise): the registry states where each optimum sits.
    scores, _ = optimal_gaussian_scores
    positive, negative = paired_masks(scores.shape[0])
    shift = torch.tensor(bound_spec(name).optimal_shift, dtype=scores.dtype, requires_grad=True)
    objective = get_bound(name)(scores + shift, positive, negative).objective
    (slope,) = torch.autograd.grad(objective, shift)
    assert abs(float(slope)) < 0.03


@pytest.mark.parametrize("name", ["nwj", "tuba", "js", *REGULARIZED])
def test_objective_that_pins_the_constant_is_not_stationary_one_nat_from_its_optimum(
    name, optimal_gaussian_scores
):
    scores, _ = optimal_gaussian_scores
    positive, negative = paired_masks(scores.shape[0])
    shift = torch.tensor(bound_spec(name).optimal_shift + 1.0, dtype=scores.dtype,
                         requires_grad=True)
    objective = get_bound(name)(scores + shift, positive, negative).objective
    (slope,) = torch.autograd.grad(objective, shift)
    assert abs(float(slope)) > 0.1


def test_labels_are_the_papers_names():
    assert [REGISTRY[name].label for name in BOUND_NAMES] == [
        "MINE", "SMILE", "InfoNCE", "NWJ", "TUBA", "JS",
        "ReMINE", "ReSMILE", "ReInfoNCE", "ReNWJ", "ReTUBA", "ReJS",
    ]


@pytest.mark.parametrize("name", BOUND_NAMES)
def test_families_follow_the_representation_each_bound_is_built_on(name):
    expected = "dv" if bound_spec(name).base in ("mine", "smile", "infonce") else "nwj"
    assert bound_spec(name).family == expected


def test_regularized_name_pairs_each_original_with_its_counterpart():
    assert [regularized_name(name) for name in ORIGINALS] == [
        "remine", "resmile", "reinfonce", "renwj", "retuba", "rejs"]


def test_regularized_name_of_a_regularized_bound_raises():
    with pytest.raises(ValueError, match="already a regularized bound"):
        regularized_name("remine")


def test_bound_spec_of_an_unknown_name_raises_value_error_listing_the_names():
    with pytest.raises(ValueError, match="unknown bound 'mime'; choose one of mine"):
        bound_spec("mime")


# --------------------------------------------------------------------------- the authors' forms


def test_nwj_with_tau_clips_the_scores_of_both_terms():
    scores = torch.tensor([[12.0, -15.0], [3.0, 11.0]])
    positive, negative = paired_masks(2)
    clipped = bounds.nwj(scores, positive, negative, tau=10.0)
    # by hand: joint = (10 + 10) / 2 = 10; marginal = (e^(-10 - 1) + e^(3 - 1)) / 2
    marginal = (math.exp(-11.0) + math.exp(2.0)) / 2
    assert float(clipped.joint) == pytest.approx(10.0)
    assert float(clipped.marginal) == pytest.approx(marginal, rel=1e-6)
    assert float(clipped.mi) == pytest.approx(10.0 - marginal, rel=1e-6)


def test_tuba_with_tau_equals_tuba_of_the_clipped_scores():
    scores, positive, negative = random_problem()
    scores = 8.0 * scores
    clipped = bounds.tuba(scores, positive, negative, tau=2.0, log_baseline=0.3)
    reference = bounds.tuba(scores.clamp(-2.0, 2.0), positive, negative, log_baseline=0.3)
    assert all(torch.allclose(a, b) for a, b in zip(clipped, reference))


def test_renwj_clips_its_terms_but_penalizes_the_raw_scores():
    scores = torch.tensor([[12.0, 20.0], [14.0, 11.0]])
    positive, negative = paired_masks(2)
    result = bounds.renwj(scores, positive, negative, tau=10.0, alpha=0.5,
                          variant="authors_code")
    log_mean_exp = math.log((math.exp(20.0) + math.exp(14.0)) / 2)  # raw marginal scores
    assert float(result.penalty) == pytest.approx(0.5 * log_mean_exp**2, rel=1e-6)
    assert float(result.mi) == pytest.approx(10.0 - math.exp(9.0), rel=1e-6)


def test_rejs_authors_code_penalty_is_softplus_mean_minus_one_squared():
    scores = torch.tensor([[0.0, 2.0], [-1.0, 0.0]])
    positive, negative = paired_masks(2)
    result = bounds.rejs(scores, positive, negative, alpha=0.3, variant="authors_code")
    softplus_mean = (math.log1p(math.exp(2.0)) + math.log1p(math.exp(-1.0))) / 2
    assert float(result.penalty) == pytest.approx(0.3 * (softplus_mean - 1.0) ** 2, rel=1e-6)


def test_rejs_authors_code_penalty_is_finite_where_the_paper_form_overflows():
    scores = torch.full((4, 4), 200.0)
    positive, negative = paired_masks(4)
    paper = bounds.rejs(scores, positive, negative, alpha=0.1)
    authors = bounds.rejs(scores, positive, negative, alpha=0.1, variant="authors_code")
    assert not torch.isfinite(paper.objective)
    assert float(authors.penalty) == pytest.approx(0.1 * 199.0**2, rel=1e-5)


def test_retuba_authors_code_penalty_targets_log_mean_exp_zero():
    scores, positive, negative = random_problem()
    result = bounds.retuba(scores, positive, negative, alpha=0.4, variant="authors_code")
    assert torch.allclose(result.penalty, 0.4 * bounds.dv_marginal(scores, negative) ** 2)


def test_non_positive_tau_of_the_nwj_family_raises_value_error():
    scores, positive, negative = random_problem()
    with pytest.raises(ValueError, match="tau must be positive"):
        bounds.nwj(scores, positive, negative, tau=0.0)


# --------------------------------------------------------------------------- the registry's "same as"

SAME_AS_CASES = [
    ("nwj", "same_as", [dict(tau=None), dict(tau=1.5)]),
    ("renwj", "penalty_same_as", [dict(variant="paper"), dict(variant="authors_code")]),
    ("retuba", "penalty_same_as", [dict(log_baseline=0.0, variant="paper"),
                                   dict(log_baseline=-0.7, variant="paper"),
                                   dict(log_baseline=0.3, variant="authors_code")]),
    ("rejs", "penalty_same_as", [dict(variant="paper"), dict(variant="authors_code")]),
]


@pytest.mark.parametrize("name, field, cases", SAME_AS_CASES, ids=[c[0] for c in SAME_AS_CASES])
def test_registered_same_as_statements_hold_exactly(name, field, cases):
    spec = bound_spec(name)
    assert getattr(spec, field) is not None
    scores, positive, negative = random_problem(dtype=torch.float64)
    for params in cases:
        if field == "same_as":
            function, general = spec.as_general(params)
            expected = spec.function(scores, positive, negative, **params)
            got = function(scores, positive, negative, **general)
        else:
            function, general = spec.penalty_as_general(params)
            expected = spec.penalty(scores, negative, **params)
            got = function(scores, negative, **general)
        for value, reference in zip(got, expected):
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(reference)), (name, params)


def test_bounds_without_a_same_as_statement_are_their_own_general_form():
    spec = bound_spec("mine")
    assert spec.as_general({}) == (bounds.mine, {})
    with pytest.raises(ValueError, match="no penalty"):
        spec.penalty_as_general({})


def test_tensor_parameters_take_one_value_per_score_matrix():
    scores = torch.randn(3, 6, 6, dtype=torch.float64)
    positive, negative = paired_masks(6)
    values = torch.tensor([-0.5, 0.0, 1.0], dtype=torch.float64)
    for name, function, shape in [("log_baseline", bounds.tuba, (3, 1, 1)),
                                  ("nwj_shift", bounds._nwj_family_penalty, (3, 1, 1)),
                                  ("target", bounds.dv_penalty, (3,))]:
        assert name in bounds.TENSOR_PARAMETERS
        extra = {"variant": "paper"} if name == "nwj_shift" else {}
        masks = (positive, negative) if function is bounds.tuba else (negative,)
        together = function(scores, *masks, **{name: values.reshape(shape)}, **extra)
        for e in range(3):
            alone = function(scores[e], *masks, **{name: float(values[e])}, **extra)
            for value, reference in zip(together, alone):
                value = torch.as_tensor(value, dtype=torch.float64)
                torch.testing.assert_close(value[e] if value.dim() else value,
                                           torch.as_tensor(reference, dtype=torch.float64),
                                           rtol=0, atol=0)


# --------------------------------------------------------------------------- primitives


def test_an_infinite_score_outside_a_mask_does_not_reach_its_term():
    scores, positive, negative = random_problem(dtype=torch.float64)
    scores = scores.clone()
    scores[0, 1] = math.inf  # a negative pair
    scores[2, 2] = math.inf  # a positive pair
    scores.requires_grad_()
    joint = bounds.joint_term(scores.masked_fill(positive, 0.0), positive)
    marginal = bounds.dv_marginal(scores.masked_fill(negative, 0.0), negative)
    (gradient,) = torch.autograd.grad(joint + marginal, scores)
    assert torch.isfinite(joint) and torch.isfinite(marginal)
    assert torch.isfinite(gradient).all()
