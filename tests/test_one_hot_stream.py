"""The one-hot batch stream with independent marginal pairs, and the one-hot table critic."""

import math

import pytest
import torch

from remi_tutorial.bounds import mine
from remi_tutorial.critics import ConcatCritic, OneHotTableCritic
from remi_tutorial.tasks import independent_marginal_masks, one_hot_batches


def test_independent_masks_mark_column_i_as_joint_and_column_n_plus_i_as_marginal():
    positive, negative = independent_marginal_masks(3)
    assert positive.shape == negative.shape == (3, 6)
    assert positive.nonzero().tolist() == [[0, 0], [1, 1], [2, 2]]
    assert negative.nonzero().tolist() == [[0, 3], [1, 4], [2, 5]]


def test_independent_batch_pairs_x_with_itself_in_the_joint_columns():
    batch = one_hot_batches(5, 8, seed=0)(0)
    x, y = batch.inputs
    assert x.shape == (8, 5) and y.shape == (16, 5)
    assert torch.equal(y[:8], x)


def test_independent_marginal_pairs_match_at_the_rate_of_the_product_of_marginals():
    # Under Q, x and y' are independent uniform classes: they agree with probability 1/K.
    batches = one_hot_batches(4, 500, seed=1)
    agree = []
    for step in range(20):
        x, y = batches(step).inputs
        agree.append((x.argmax(-1) == y[500:].argmax(-1)).float().mean())
    assert float(torch.stack(agree).mean()) == pytest.approx(0.25, abs=0.01)


def test_one_hot_stream_reports_log_k_and_is_reproducible():
    first, second = one_hot_batches(7, 4, seed=3), one_hot_batches(7, 4, seed=3)
    a, b = first(0), second(0)
    assert a.true_mi == pytest.approx(math.log(7))
    assert all(torch.equal(u, v) for u, v in zip(a.inputs, b.inputs))


def test_off_diagonal_stream_uses_the_paired_masks():
    batch = one_hot_batches(5, 6, marginal="off_diagonal", seed=0)(0)
    assert batch.inputs[1].shape == (6, 5)
    assert torch.equal(batch.positive, torch.eye(6, dtype=torch.bool))
    assert torch.equal(batch.negative, ~torch.eye(6, dtype=torch.bool))


def test_unknown_marginal_raises_value_error():
    with pytest.raises(ValueError, match="marginal must be"):
        one_hot_batches(5, 6, marginal="shuffled")


def test_one_hot_task_with_one_class_raises_value_error():
    with pytest.raises(ValueError, match="at least 2 classes"):
        one_hot_batches(1, 6)


def test_table_critic_scores_equal_the_wrapped_critic_scores():
    torch.manual_seed(0)
    inner = ConcatCritic(6, 6, hidden_dims=(8,)).double()
    x, y = one_hot_batches(6, 10, seed=0, dtype=torch.float64)(0).inputs
    assert torch.allclose(OneHotTableCritic(inner, 6, 6)(x, y), inner(x, y))


def test_table_critic_gradients_equal_the_wrapped_critic_gradients():
    torch.manual_seed(0)
    inner = ConcatCritic(6, 6, hidden_dims=(8,)).double()
    batch = one_hot_batches(6, 10, seed=0, dtype=torch.float64)(0)

    def gradients(critic):
        critic.zero_grad()
        mine(critic(*batch.inputs), batch.positive, batch.negative).loss.backward()
        return [p.grad.clone() for p in inner.parameters()]

    direct, looked_up = gradients(inner), gradients(OneHotTableCritic(inner, 6, 6))
    assert all(torch.allclose(a, b) for a, b in zip(direct, looked_up))


def test_table_critic_rejects_inputs_with_the_wrong_number_of_classes():
    critic = OneHotTableCritic(ConcatCritic(6, 6, hidden_dims=(8,)), 6, 6)
    with pytest.raises(ValueError, match="expected one-hot"):
        critic(torch.eye(5), torch.eye(6))
