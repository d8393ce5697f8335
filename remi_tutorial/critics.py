"""Critics: networks that score every pair of a batch, ``(x [N, dx], y [M, dy]) -> [N, M]``.

``scores[i, j] = T(x_i, y_j)`` is the input of every bound in :mod:`remi_tutorial.bounds`.
The image benchmarks' critic, :class:`ImageCritic`, scores the pairs of one batch of images
``[B, C, H, W]``: (image, class) pairs from a network's logits, or (image, image) pairs from
the dot products of its embeddings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

__all__ = ["mlp", "SeparableCritic", "ConcatCritic", "OneHotTableCritic", "ImageCritic"]


def mlp(in_dim: int, hidden_dims: Sequence[int], out_dim: int) -> nn.Sequential:
    """A ReLU multilayer perceptron ``in_dim -> hidden_dims... -> out_dim``.

    Args:
        in_dim: input features.
        hidden_dims: the width of each hidden layer (may be empty: a linear map).
        out_dim: output features.

    Returns:
        ``nn.Sequential`` mapping ``[..., in_dim]`` to ``[..., out_dim]``.
    """
    layers: list[nn.Module] = []
    widths = [in_dim, *hidden_dims]
    for width_in, width_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(width_in, width_out), nn.ReLU()]
    layers.append(nn.Linear(widths[-1], out_dim))
    return nn.Sequential(*layers)


class SeparableCritic(nn.Module):
    """``T(x, y) = g(x)^T h(y)``: two encoders and a dot product.

    Cost is linear in the batch size per encoder plus one ``[N, M]`` matrix product.

    Args:
        x_dim: features of ``x``.
        y_dim: features of ``y``.
        hidden_dims: hidden widths of both encoders (the paper: ``(256, 256)``).
        embed_dim: the dimension of ``g(x)`` and ``h(y)`` (the paper: 32).
    """

    def __init__(
        self, x_dim: int, y_dim: int, hidden_dims: Sequence[int] = (256, 256), embed_dim: int = 32
    ):
        super().__init__()
        self.g = mlp(x_dim, hidden_dims, embed_dim)
        self.h = mlp(y_dim, hidden_dims, embed_dim)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """Scores of every pair.

        Args:
            x: ``[N, x_dim]``.
            y: ``[M, y_dim]``.

        Returns:
            ``[N, M]``.
        """
        return self.g(x) @ self.h(y).T


class ConcatCritic(nn.Module):
    """``T(x, y) = MLP([x, y])`` evaluated on all ``N x M`` pairs at once.

    The first layer is linear, so ``W [x_i, y_j] + b = W_x x_i + (W_y y_j + b)``: it is
    computed as an ``[N, 1, H] + [1, M, H]`` broadcast instead of materialising the
    ``[N, M, dx + dy]`` concatenation. The parameters are exactly those of
    ``mlp(x_dim + y_dim, hidden_dims, 1)``, stored in ``net``.

    Args:
        x_dim: features of ``x``.
        y_dim: features of ``y``.
        hidden_dims: hidden widths, at least one (the paper: ``(256, 256)``).
    """

    def __init__(self, x_dim: int, y_dim: int, hidden_dims: Sequence[int] = (256, 256)):
        super().__init__()
        if len(hidden_dims) == 0:
            raise ValueError("ConcatCritic needs at least one hidden layer")
        self.x_dim = x_dim
        self.net = mlp(x_dim + y_dim, hidden_dims, 1)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """Scores of every pair.

        Args:
            x: ``[N, x_dim]``.
            y: ``[M, y_dim]``.

        Returns:
            ``[N, M]``.
        """
        first = self.net[0]
        weight_x, weight_y = first.weight[:, : self.x_dim], first.weight[:, self.x_dim :]
        from_x = x @ weight_x.T  # [N, H]
        from_y = torch.addmm(first.bias, y, weight_y.T)  # [M, H]
        hidden = from_x[:, None, :] + from_y[None, :, :]  # [N, M, H]
        return self.net[1:](hidden).squeeze(-1)


class OneHotTableCritic(nn.Module):
    """A critic for one-hot inputs, evaluated once per pair of classes and then looked up.

    When ``x`` and ``y`` are one-hot over ``Kx`` and ``Ky`` classes, a batch's ``N x M``
    scores take at most ``Kx * Ky`` distinct values. This wrapper scores the identity
    matrices, ``table = critic(I_Kx, I_Ky)`` of shape ``[Kx, Ky]``, and gathers
    ``scores[i, j] = table[class(x_i), class(y_j)]``. Scores and gradients are those of the
    wrapped critic; only the cost changes, from ``N * M`` pair evaluations to ``Kx * Ky``
    (for a concat critic on a ``[100, 200]`` batch over 16 classes, 80 times fewer).

    Args:
        critic: any critic ``(x [N, Kx], y [M, Ky]) -> [..., N, M]``, stacked critics
            (leading dimensions ``...``) included; its parameters are this module's.
        x_classes: ``Kx``.
        y_classes: ``Ky``.
    """

    def __init__(self, critic: nn.Module, x_classes: int, y_classes: int):
        super().__init__()
        self.critic = critic
        self.x_classes = x_classes
        self.y_classes = y_classes

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """Scores of every pair.

        Args:
            x: ``[N, Kx]``, one-hot rows.
            y: ``[M, Ky]``, one-hot rows.

        Returns:
            ``[..., N, M]``, with the wrapped critic's leading dimensions.
        """
        if x.shape[-1] != self.x_classes or y.shape[-1] != self.y_classes:
            raise ValueError(
                f"expected one-hot x [N, {self.x_classes}] and y [M, {self.y_classes}], got "
                f"{tuple(x.shape)} and {tuple(y.shape)}"
            )
        eye_x = torch.eye(self.x_classes, dtype=x.dtype, device=x.device)
        eye_y = torch.eye(self.y_classes, dtype=y.dtype, device=y.device)
        table = self.critic(eye_x, eye_y)  # [..., Kx, Ky]
        # One index_select on the flattened table: its backward is a single index_add.
        pair = x.argmax(-1)[:, None] * self.y_classes + y.argmax(-1)[None, :]  # [N, M]
        scores = table.flatten(-2).index_select(-1, pair.flatten())
        return scores.unflatten(-1, pair.shape)


class ImageCritic(nn.Module):
    """The critic of an image benchmark: a network's logits, or its embeddings' dot products.

    * ``kind="logits"`` (supervised benchmark): ``scores [B, K] = network(images)``, the
      score of each (image, class) pair.
    * ``kind="dot"`` (contrastive benchmark): ``scores [B, B] = z z^T`` with
      ``z = network(images)``, the score of each pair of images.

    With ``amp=True`` the network's ``features`` run under bfloat16 autocast (on the device
    of the images); the final layer and the dot products run in float32, so the scores that
    enter ``exp`` in a bound are float32. bfloat16 has float32's range, so no loss scaling
    is needed.

    Args:
        network: a module with ``features`` and ``head``
            (:class:`~remi_tutorial.networks.ResNet18`,
            :class:`~remi_tutorial.networks.SmallConvNet`).
        kind: ``"logits"`` or ``"dot"``.
        amp: use mixed precision for the features.
    """

    def __init__(self, network: nn.Module, kind: Literal["logits", "dot"], *, amp: bool = False):
        super().__init__()
        if kind not in ("logits", "dot"):
            raise ValueError(f"kind must be 'logits' or 'dot', got {kind!r}")
        self.network = network
        self.kind = kind
        self.amp = amp

    def embed(self, images: Tensor) -> Tensor:
        """``[B, C, H, W] -> [B, D]``: the network's float32 output."""
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=self.amp):
            features = self.network.features(images)
        return self.network.head(features.float())

    def forward(self, images: Tensor) -> Tensor:
        """``[B, C, H, W] -> scores [B, K]`` (logits) or ``[B, B]`` (dot)."""
        outputs = self.embed(images)
        return outputs if self.kind == "logits" else outputs @ outputs.T
