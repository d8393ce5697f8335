"""stack_bound_functions: any E bounds, one per estimator, on scores [E, N, M]."""

import pytest
import torch

from remi_tutorial.bounds import get_bound
from remi_tutorial.stacked import stack_bound_functions
from remi_tutorial.tasks import paired_masks


def test_each_estimator_gets_its_own_bound():
    bounds = [get_bound("remine", alpha=a) for a in (0.0, 0.5, 2.0)]
    scores = torch.randn(3, 6, 6, dtype=torch.float64)
    positive, negative = paired_masks(6)
    stacked = stack_bound_functions(bounds)(scores, positive, negative)
    for e, bound in enumerate(bounds):
        alone = bound(scores[e], positive, negative)
        assert all(torch.allclose(s[e], a) for s, a in zip(stacked, alone))


def test_penalties_differ_with_alpha_on_the_same_scores():
    bounds = [get_bound("remine", alpha=a) for a in (0.0, 1.0)]
    scores = (torch.randn(6, 6, dtype=torch.float64) + 2.0).expand(2, 6, 6)
    result = stack_bound_functions(bounds)(scores, *paired_masks(6))
    assert result.penalty[0] == 0 and result.penalty[1] > 0


def test_wrong_number_of_estimators_raises_value_error():
    bound = stack_bound_functions([get_bound("mine")] * 2)
    with pytest.raises(ValueError, match="E = 2 estimators"):
        bound(torch.randn(3, 4, 4), *paired_masks(4))


def test_no_bounds_raises_value_error():
    with pytest.raises(ValueError, match="at least one bound"):
        stack_bound_functions([])
