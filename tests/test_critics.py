import pytest
import torch

from remi_tutorial.critics import ConcatCritic, ImageCritic, SeparableCritic, mlp
from remi_tutorial.networks import SmallConvNet


def test_concat_critic_equals_its_mlp_on_explicitly_concatenated_pairs():
    critic = ConcatCritic(3, 2, hidden_dims=(8, 8)).double()
    x, y = torch.randn(4, 3, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    pairs = torch.cat([x[:, None, :].expand(4, 5, 3), y[None, :, :].expand(4, 5, 2)], dim=-1)
    assert torch.allclose(critic(x, y), critic.net(pairs).squeeze(-1))


def test_concat_critic_row_i_column_j_scores_x_i_with_y_j():
    critic = ConcatCritic(2, 2, hidden_dims=(4,))
    x, y = torch.randn(3, 2), torch.randn(3, 2)
    scores = critic(x, y)
    assert torch.allclose(scores[0, 2], critic(x[:1], y[2:]).squeeze())


def test_separable_critic_is_a_dot_product_of_embeddings():
    critic = SeparableCritic(3, 4, hidden_dims=(8,), embed_dim=5)
    x, y = torch.randn(6, 3), torch.randn(7, 4)
    scores = critic(x, y)
    assert scores.shape == (6, 7)
    assert torch.allclose(scores, critic.g(x) @ critic.h(y).T)


def test_mlp_has_the_requested_widths():
    network = mlp(3, (5, 7), 2)
    widths = [(layer.in_features, layer.out_features) for layer in network if isinstance(layer, torch.nn.Linear)]
    assert widths == [(3, 5), (5, 7), (7, 2)]


def test_concat_critic_without_hidden_layer_raises_value_error():
    with pytest.raises(ValueError, match="at least one hidden layer"):
        ConcatCritic(2, 2, hidden_dims=())


def test_dot_critic_scores_are_the_gram_matrix_of_the_embedding():
    critic = ImageCritic(SmallConvNet(None), "dot").eval()
    images = torch.randn(5, 1, 8, 8)
    embedding = critic.embed(images)
    assert torch.allclose(critic(images), embedding @ embedding.T)


def test_logit_critic_scores_are_the_networks_logits():
    network = SmallConvNet(10).eval()
    images = torch.randn(5, 1, 8, 8)
    assert torch.equal(ImageCritic(network, "logits")(images), network(images))


def test_mixed_precision_critic_returns_float32_scores_close_to_full_precision():
    torch.manual_seed(0)
    network = SmallConvNet(None).eval()
    images = torch.randn(6, 1, 8, 8)
    full = ImageCritic(network, "dot")(images)
    mixed = ImageCritic(network, "dot", amp=True)(images)
    assert mixed.dtype == torch.float32
    assert torch.allclose(mixed, full, rtol=0.05)
