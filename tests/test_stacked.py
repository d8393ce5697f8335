import functools

import pytest
import torch

from remi_tutorial.bounds import BOUND_NAMES, get_bound
from remi_tutorial.critics import ConcatCritic, SeparableCritic
from remi_tutorial.stacked import (
    LOOP_ABOVE_BYTES,
    StackedConcatCritic,
    StackedSeparableCritic,
    stack_bounds,
)
from remi_tutorial.tasks import contrastive_masks, paired_masks

CRITIC_PAIRS = [
    (lambda: SeparableCritic(3, 2, hidden_dims=(5, 4), embed_dim=3), StackedSeparableCritic),
    (lambda: ConcatCritic(3, 2, hidden_dims=(5, 4)),
     functools.partial(StackedConcatCritic, loop_estimators=False)),
    (lambda: ConcatCritic(3, 2, hidden_dims=(5, 4)),
     functools.partial(StackedConcatCritic, loop_estimators=True)),
]


def inputs(n=6, m=7):
    return torch.randn(n, 3, dtype=torch.float64), torch.randn(m, 2, dtype=torch.float64)


@pytest.mark.parametrize("make, stacked_class", CRITIC_PAIRS)
def test_stacked_critic_scores_equal_each_critics_scores(make, stacked_class):
    critics = [make().double() for _ in range(3)]
    x, y = inputs()
    scores = stacked_class(critics)(x, y)
    assert scores.shape == (3, 6, 7)
    for index, critic in enumerate(critics):
        torch.testing.assert_close(scores[index], critic(x, y), rtol=0, atol=1e-12)


@pytest.mark.parametrize("make, stacked_class", CRITIC_PAIRS)
def test_stacked_critic_takes_one_batch_per_estimator(make, stacked_class):
    critics = [make().double() for _ in range(2)]
    batches = [inputs() for _ in critics]
    x = torch.stack([batch[0] for batch in batches])
    y = torch.stack([batch[1] for batch in batches])
    scores = stacked_class(critics)(x, y)
    for index, critic in enumerate(critics):
        torch.testing.assert_close(scores[index], critic(*batches[index]), rtol=0, atol=1e-12)


@pytest.mark.parametrize("make, stacked_class", CRITIC_PAIRS)
def test_unstack_gives_back_each_critic(make, stacked_class):
    critics = [make().double() for _ in range(3)]
    stacked = stacked_class(critics)
    x, y = inputs()
    for index, critic in enumerate(critics):
        copy = stacked.unstack(index)
        assert type(copy) is type(critic)
        torch.testing.assert_close(copy(x, y), critic(x, y), rtol=0, atol=0)


def test_looped_and_batched_concat_critics_have_the_same_weight_gradients():
    critics = [ConcatCritic(3, 2, hidden_dims=(5, 4)).double() for _ in range(3)]
    x, y = inputs()
    gradients = []
    for loop in (False, True):
        stacked = StackedConcatCritic(critics, loop_estimators=loop)
        # Different weights per estimator in the loss, so a gradient sent to the wrong
        # estimator's slice would show.
        weights = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)[:, None, None]
        (weights * stacked(x, y).tanh()).sum().backward()
        gradients.append({name: parameter.grad for name, parameter in stacked.named_parameters()})
    batched, looped = gradients
    assert batched.keys() == looped.keys()
    for name in batched:
        torch.testing.assert_close(looped[name], batched[name], rtol=0, atol=1e-12)


def test_concat_critic_loops_on_a_cpu_exactly_when_its_pair_activations_outgrow_the_limit():
    stacked = StackedConcatCritic([ConcatCritic(3, 2, hidden_dims=(64, 64)) for _ in range(4)])
    cpu = torch.device("cpu")
    # 4 estimators x 64 x 64 pairs x 64 wide x 4 bytes = 4 MiB in float32, 2 MiB in float16
    pairs = LOOP_ABOVE_BYTES // (4 * 64 * 4)
    assert stacked.loops(64, 64, cpu, torch.float32)
    assert not stacked.loops(64, 64, cpu, torch.float16)  # exactly at the limit: batched
    assert stacked.loops(pairs + 1, 1, cpu, torch.float32)
    assert not stacked.loops(pairs, 1, cpu, torch.float32)
    assert not stacked.loops(64, 64, torch.device("meta"), torch.float32)  # not a CPU: batched


@pytest.mark.parametrize("loop", [False, True])
def test_concat_critic_strategy_can_be_forced(loop):
    stacked = StackedConcatCritic([ConcatCritic(3, 2, hidden_dims=(4,))], loop_estimators=loop)
    assert stacked.loops(1, 1, torch.device("cpu"), torch.float32) is loop
    assert stacked.loops(10**4, 10**4, torch.device("cpu"), torch.float32) is loop


def test_stacked_critic_copies_the_weights():
    critic = SeparableCritic(3, 2, hidden_dims=(5,), embed_dim=3)
    stacked = StackedSeparableCritic([critic])
    with torch.no_grad():
        stacked.g.weights[0].add_(1.0)
    assert not torch.equal(stacked.unstack(0).g[0].weight, critic.g[0].weight)


def test_stacking_critics_of_different_shapes_raises():
    with pytest.raises(ValueError, match="differ in shape"):
        StackedSeparableCritic([SeparableCritic(3, 2, (5,), 3), SeparableCritic(3, 2, (6,), 3)])


# --------------------------------------------------------------------------- the bound

PARAMETER_SETS = {
    "defaults": {},
    "benchmark": {
        "smile": dict(tau=2.0, clip="marginal", gradient="js"),
        "resmile": dict(tau=2.0, clip="marginal", gradient="js", alpha=1.0),
        "remine": dict(alpha=1.0, target=0.5),
        "reinfonce": dict(alpha=1.0, distance="absolute"),
        "renwj": dict(alpha=1.0),
        "retuba": dict(alpha=1.0, log_baseline=0.3),
        "rejs": dict(alpha=1.0, report_shift=1.0),
        "tuba": dict(log_baseline=-0.5),
        "js": dict(report_shift=1.0),
    },
    "authors_code_penalty": {
        "smile": dict(tau=1.0, clip="both", gradient="dv"),
        "resmile": dict(tau=1.5, clip="both", gradient="dv", alpha=0.3, distance="absolute"),
        "nwj": dict(tau=1.0),
        "renwj": dict(alpha=2.0, variant="authors_code", tau=1.5),
        "retuba": dict(alpha=0.5, variant="authors_code", tau=2.0),
        "rejs": dict(alpha=0.7, variant="authors_code", distance="absolute"),
    },
}


@pytest.mark.parametrize("params", PARAMETER_SETS.values(), ids=PARAMETER_SETS.keys())
@pytest.mark.parametrize("masks", ["paired", "contrastive"])
def test_stacked_bound_equals_each_bound_and_its_gradient(params, masks):
    n = 8
    if masks == "paired":
        positive, negative = paired_masks(n)
    else:
        positive, negative = contrastive_masks(torch.tensor([0, 0, 1, 1, 2, 2, 0, 1]))
    names = list(BOUND_NAMES)
    scores = (2.0 * torch.randn(len(names), n, n, dtype=torch.float64)).requires_grad_()
    stacked = stack_bounds(names, params)(scores, positive, negative)
    stacked.objective.sum().backward()
    for index, name in enumerate(names):
        single_scores = scores[index].detach().clone().requires_grad_()
        single = get_bound(name, **params.get(name, {}))(single_scores, positive, negative)
        single.objective.backward()
        for field, value in zip(single._fields, single):
            torch.testing.assert_close(
                getattr(stacked, field)[index], value, rtol=1e-12, atol=1e-12,
                msg=lambda text, field=field, name=name: f"{name}.{field}: {text}",
            )
        torch.testing.assert_close(scores.grad[index], single_scores.grad,
                                   rtol=1e-10, atol=1e-12)


def test_stacked_bound_handles_repeated_names():
    positive, negative = paired_masks(5)
    scores = torch.randn(4, 5, 5, dtype=torch.float64)
    result = stack_bounds(["mine", "nwj"] * 2)(scores, positive, negative)
    torch.testing.assert_close(result.mi[2], get_bound("mine")(scores[2], positive, negative).mi)
    torch.testing.assert_close(result.mi[3], get_bound("nwj")(scores[3], positive, negative).mi)


def test_stacked_bound_gradient_stays_finite_where_another_family_would_overflow():
    # exp(log E_Q[e^T]) overflows float32 at these scores; MINE never uses it.
    positive, negative = paired_masks(4)
    scores = torch.full((1, 4, 4), 200.0).requires_grad_()
    stack_bounds(["mine"])(scores, positive, negative).objective.sum().backward()
    assert torch.isfinite(scores.grad).all()


def test_stacked_bound_rejects_scores_with_another_number_of_estimators():
    positive, negative = paired_masks(4)
    with pytest.raises(ValueError, match="E = 2"):
        stack_bounds(["mine", "nwj"])(torch.randn(3, 4, 4), positive, negative)


def test_stack_bounds_rejects_an_unknown_name():
    with pytest.raises(ValueError, match="unknown bound"):
        stack_bounds(["mine", "mime"])


def test_stack_bounds_rejects_a_parameter_the_bound_does_not_take():
    with pytest.raises(ValueError, match="takes no parameter"):
        stack_bounds(["mine"], {"mine": {"alpha": 1.0}})


def test_stack_bounds_rejects_a_tensor_baseline():
    with pytest.raises(ValueError, match="log_baseline"):
        stack_bounds(["tuba"], {"tuba": {"log_baseline": torch.zeros(3)}})


def test_stack_bounds_rejects_a_negative_weight():
    with pytest.raises(ValueError, match="alpha"):
        stack_bounds(["remine"], {"remine": {"alpha": -1.0}})


def test_stacked_bound_takes_one_mask_per_estimator():
    names = list(BOUND_NAMES)
    labels = torch.randint(0, 3, (len(names), 8))
    labels[:, :2] = 0  # every batch has a positive pair
    masks = [contrastive_masks(row) for row in labels]
    positive = torch.stack([mask[0] for mask in masks])
    negative = torch.stack([mask[1] for mask in masks])
    scores = torch.randn(len(names), 8, 8, dtype=torch.float64)
    stacked = stack_bounds(names)(scores, positive, negative)
    for index, name in enumerate(names):
        single = get_bound(name)(scores[index], positive[index], negative[index])
        torch.testing.assert_close(stacked.mi[index], single.mi, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(stacked.objective[index], single.objective,
                                   rtol=1e-12, atol=1e-12)


def test_bounds_from_get_bound_keep_their_own_parameters():
    bounds = [get_bound("remine", alpha=a) for a in (0.0, 0.5, 2.0)]
    scores = torch.randn(3, 6, 6, dtype=torch.float64)
    positive, negative = paired_masks(6)
    stacked = stack_bounds(bounds)(scores, positive, negative)
    for e, bound in enumerate(bounds):
        alone = bound(scores[e], positive, negative)
        assert all(torch.allclose(s[e], a) for s, a in zip(stacked, alone))


def test_penalties_differ_with_alpha_on_the_same_scores():
    bounds = [get_bound("remine", alpha=a) for a in (0.0, 1.0)]
    scores = (torch.randn(6, 6, dtype=torch.float64) + 2.0).expand(2, 6, 6)
    result = stack_bounds(bounds)(scores, *paired_masks(6))
    assert result.penalty[0] == 0 and result.penalty[1] > 0


def test_stack_bounds_rejects_a_callable_that_is_not_a_registered_bound():
    with pytest.raises(ValueError, match="bound names or bounds from get_bound"):
        stack_bounds([lambda scores, positive, negative, check=True: None])


def test_stack_bounds_needs_at_least_one_bound():
    with pytest.raises(ValueError, match="at least one bound"):
        stack_bounds([])


def test_the_twelve_bounds_cost_five_base_calls_and_two_penalty_calls():
    stacked = stack_bounds(list(BOUND_NAMES) * 2)  # two seeds
    assert len(stacked._base_groups) == 5 and len(stacked._penalty_groups) == 2
    tuba_group = next(g for g in stacked._base_groups if g.function.__name__ == "tuba")
    assert sorted(stacked.names[e] for e in tuba_group.members) == sorted(
        ["nwj", "tuba", "renwj", "retuba"] * 2)


def test_estimators_that_differ_in_tensor_parameters_share_a_call_and_equal_each_bound():
    bounds = [
        *(get_bound("tuba", log_baseline=a) for a in (-0.5, 0.0, 0.7)),
        get_bound("nwj"),
        get_bound("retuba", log_baseline=0.3, alpha=0.5),
        get_bound("renwj", alpha=2.0),
        get_bound("rejs", alpha=1.0, report_shift=1.0),
        *(get_bound("remine", alpha=1.0, target=t) for t in (0.0, 0.5, -1.0)),
        get_bound("retuba", log_baseline=0.3, alpha=0.5, variant="authors_code"),
    ]
    stacked = stack_bounds(bounds)
    # tuba (nwj, tuba, retuba, renwj), js, mine; one NWJ-family penalty (paper), one
    # authors'-code one, one DV penalty whatever the target
    assert len(stacked._base_groups) == 3 and len(stacked._penalty_groups) == 3
    positive, negative = paired_masks(7)
    scores = (2.0 * torch.randn(len(bounds), 7, 7, dtype=torch.float64)).requires_grad_()
    result = stacked(scores, positive, negative)
    result.objective.sum().backward()
    for index, bound in enumerate(bounds):
        single_scores = scores[index].detach().clone().requires_grad_()
        single = bound(single_scores, positive, negative)
        single.objective.backward()
        for field, value in zip(single._fields, single):
            torch.testing.assert_close(getattr(result, field)[index], value, rtol=1e-12,
                                       atol=1e-12, msg=f"{index}.{field}")
        torch.testing.assert_close(scores.grad[index], single_scores.grad, rtol=1e-10, atol=1e-12)


def test_a_stacked_bound_first_called_in_inference_mode_still_trains():
    bound = stack_bounds(["mine", "remine", "nwj"])
    positive, negative = paired_masks(8)
    with torch.inference_mode():  # e.g. an evaluation before the first training step
        bound(torch.randn(3, 8, 8), positive, negative)
    scores = torch.randn(3, 8, 8, requires_grad=True)
    bound(scores, positive, negative).loss.sum().backward()
    assert scores.grad is not None and bool(scores.grad.abs().sum() > 0)


def test_concat_critic_sizes_its_pair_activations_by_its_widest_layer():
    narrow_then_wide = StackedConcatCritic([ConcatCritic(3, 2, hidden_dims=(4, 64))
                                            for _ in range(4)])
    # 4 x 64 x 64 pairs x 64 wide x 4 bytes = 4 MiB in the second layer, 0.25 MiB in the first
    assert narrow_then_wide.loops(64, 64, torch.device("cpu"), torch.float32)


def test_concat_critic_with_one_hidden_layer_sizes_its_pair_activations_by_it():
    one_layer = StackedConcatCritic([ConcatCritic(3, 2, hidden_dims=(64,)) for _ in range(4)])
    assert one_layer.loops(64, 64, torch.device("cpu"), torch.float32)  # 4 MiB
    assert not one_layer.loops(8, 8, torch.device("cpu"), torch.float32)
