"""Many estimators trained at once: stacked critics and a stacked bound.

``E`` estimators, each with its own critic weights and its own loss, train as one model:

* a stacked critic (:func:`stacked_critic`) holds the ``E`` critics' weights in tensors
  with a leading dimension ``E`` and scores one shared batch with batched matrix products
  (``torch.baddbmm``/``torch.bmm``), returning ``scores [E, N, M]``;
* :func:`stack_bounds` evaluates ``E`` bounds of :mod:`remi_tutorial.bounds` on those scores
  with the bounds' own functions, grouped: one call per base bound and one per penalty,
  however many estimators and seeds (see :class:`StackedBound`).

:func:`remi_tutorial.train.train` trains such a pair like a single estimator (the loss is the
sum of the ``E`` losses; each estimator's parameters get their own gradient) and records a
history with an ``estimator`` column. The stacked versions compute exactly what the
one-estimator versions compute: ``tests/test_stacked.py`` checks them against
:mod:`remi_tutorial.critics` and :mod:`remi_tutorial.bounds` estimator by estimator.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .bounds import (
    BOUND_NAMES,
    REGISTRY,
    TENSOR_PARAMETERS,
    Bound,
    bound_spec,
    get_bound,
    penalized,
    regularizer,
    validate_inputs,
)
from .critics import ConcatCritic, SeparableCritic, mlp

__all__ = [
    "StackedMLP",
    "StackedSeparableCritic",
    "StackedConcatCritic",
    "stacked_critic",
    "LOOP_ABOVE_BYTES",
    "StackedBound",
    "stack_bounds",
]


# --------------------------------------------------------------------------- critics


def _linears(net: nn.Sequential) -> list[nn.Linear]:
    return [layer for layer in net if isinstance(layer, nn.Linear)]


class StackedMLP(nn.Module):
    """``E`` ReLU MLPs of the same shape, applied with batched matrix products.

    Layer ``l`` of estimator ``e`` computes ``h @ weights[l][e] + biases[l][e]``; weights are
    stored ``[E, in, out]`` (the transpose of ``nn.Linear.weight``) and biases ``[E, 1, out]``.

    Args:
        nets: ``E`` MLPs built by :func:`remi_tutorial.critics.mlp` with the same widths;
            their current weights are copied.
    """

    def __init__(self, nets: Sequence[nn.Sequential]):
        super().__init__()
        if len(nets) == 0:
            raise ValueError("StackedMLP needs at least one network")
        layers = [_linears(net) for net in nets]
        shapes = {tuple(tuple(layer.weight.shape) for layer in net) for net in layers}
        if len(shapes) != 1:
            raise ValueError(f"the networks to stack differ in shape: {sorted(shapes)}")
        self.weights = nn.ParameterList(
            nn.Parameter(torch.stack([net[i].weight.detach().T for net in layers]).contiguous())
            for i in range(len(layers[0]))
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.stack([net[i].bias.detach() for net in layers])[:, None, :].clone())
            for i in range(len(layers[0]))
        )

    @property
    def num_estimators(self) -> int:
        return self.weights[0].shape[0]

    def forward(self, inputs: Tensor) -> Tensor:
        """Apply every MLP to its rows.

        Args:
            inputs: ``[R, in]`` (one batch shared by all ``E`` networks) or ``[E, R, in]``.

        Returns:
            ``[E, R, out]``.
        """
        hidden = inputs
        if hidden.dim() == 2:
            hidden = hidden.expand(self.num_estimators, *hidden.shape)
        last = len(self.weights) - 1
        for index, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            hidden = torch.baddbmm(bias, hidden, weight)
            if index < last:
                hidden = hidden.relu_()  # in place: baddbmm's backward does not need its output
        return hidden

    @property
    def widths(self) -> list[int]:
        """``[in, hidden..., out]``: the widths of every network's layers."""
        return [self.weights[0].shape[1], *(weight.shape[2] for weight in self.weights)]

    def unstack(self, index: int) -> nn.Sequential:
        """A copy of network ``index`` as built by :func:`remi_tutorial.critics.mlp`."""
        widths = self.widths
        weight = self.weights[0]
        net = mlp(widths[0], widths[1:-1], widths[-1]).to(weight.device, weight.dtype)
        with torch.no_grad():
            for linear, weight, bias in zip(_linears(net), self.weights, self.biases):
                linear.weight.copy_(weight[index].T)
                linear.bias.copy_(bias[index, 0])
        return net


class StackedSeparableCritic(nn.Module):
    """``E`` separable critics ``T_e(x, y) = g_e(x)^T h_e(y)`` scoring one batch at once.

    Args:
        critics: ``E`` :class:`~remi_tutorial.critics.SeparableCritic` of the same shape;
            their current weights are copied (so stacking copies of one critic gives ``E``
            estimators that start from the same weights).
    """

    def __init__(self, critics: Sequence[SeparableCritic]):
        super().__init__()
        self.g = StackedMLP([critic.g for critic in critics])
        self.h = StackedMLP([critic.h for critic in critics])

    @property
    def num_estimators(self) -> int:
        return self.g.num_estimators

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """Scores of every pair, for every estimator.

        Args:
            x: ``[N, x_dim]`` shared by all estimators, or ``[E, N, x_dim]``.
            y: ``[M, y_dim]`` or ``[E, M, y_dim]``.

        Returns:
            ``[E, N, M]``.
        """
        return torch.bmm(self.g(x), self.h(y).transpose(1, 2))

    def unstack(self, index: int) -> SeparableCritic:
        """A :class:`~remi_tutorial.critics.SeparableCritic` holding a copy of critic ``index``."""
        widths, weight = self.g.widths, self.g.weights[0]
        critic = SeparableCritic(widths[0], self.h.widths[0], widths[1:-1], widths[-1])
        critic.to(weight.device, weight.dtype)
        critic.g.load_state_dict(self.g.unstack(index).state_dict())
        critic.h.load_state_dict(self.h.unstack(index).state_dict())
        return critic


LOOP_ABOVE_BYTES = 2 * 2**20
"""On a CPU, :class:`StackedConcatCritic` runs its pair layers one estimator at a time when
the activations of its widest pair layer for all estimators, ``E x N x M x H`` numbers,
exceed this many bytes, and batched below. The limit lies between the largest size measured
faster batched and the smallest measured faster looped on the machine that wrote this (AMD
EPYC, 1 MiB of L2 cache per core, one thread; twelve critics, two hidden layers of width
``H``): batched was 1.1-1.7x faster up to 1.7 MiB of activations (``N = M <= 24`` at
``H = 64``, ``N = M <= 8`` at ``H = 256``) and looped 1.2-1.9x faster from 3 MiB on
(``N = M >= 16`` at ``H = 256``, the paper's ``N = M = 64`` included).
``scripts/bench_gaussian.py`` measures both at the paper's size and the default at smaller
batches."""


class StackedConcatCritic(nn.Module):
    """``E`` concat critics ``T_e(x, y) = MLP_e([x, y])`` on all ``N x M`` pairs at once.

    As in :class:`~remi_tutorial.critics.ConcatCritic`, the first (linear) layer is split
    into its ``x`` and ``y`` parts, ``[E, N, 1, H] + [E, 1, M, H]``, so the ``[N, M, dx + dy]``
    concatenation is never built. The other layers run in one of two ways, which compute the
    same scores:

    * batched: batched matrix products over all ``E x (N M)`` pairs at once, the fewest
      kernel launches (what a GPU wants, and a CPU for small batches);
    * looped: the pair layers of one estimator after another, each on its own ``[N M, H]``
      activations. On a CPU, once the ``E`` activation blocks outgrow the cache, ``E``
      matrix products that each stay in cache beat the batched products over all of them.

    Either way there is one model, one loss and one optimizer step for the ``E`` estimators.

    Args:
        critics: ``E`` :class:`~remi_tutorial.critics.ConcatCritic` of the same shape; their
            current weights are copied.
        loop_estimators: ``True`` or ``False`` to always loop or always batch; ``None`` (the
            default) decides at each call: looped on a CPU when the pair activations exceed
            :data:`LOOP_ABOVE_BYTES`, batched otherwise (:meth:`loops` says which).
    """

    def __init__(self, critics: Sequence[ConcatCritic], *, loop_estimators: bool | None = None):
        super().__init__()
        self.loop_estimators = loop_estimators
        if len(critics) == 0:
            raise ValueError("StackedConcatCritic needs at least one critic")
        self.x_dim = critics[0].x_dim
        firsts = [critic.net[0] for critic in critics]
        weight = torch.stack([first.weight.detach().T for first in firsts])  # [E, dx+dy, H]
        self.first_x = nn.Parameter(weight[:, : self.x_dim].contiguous())
        self.first_y = nn.Parameter(weight[:, self.x_dim :].contiguous())
        self.first_bias = nn.Parameter(
            torch.stack([first.bias.detach() for first in firsts])[:, None, :].clone()
        )
        self.rest = StackedMLP([critic.net[2:] for critic in critics])

    @property
    def num_estimators(self) -> int:
        return self.first_x.shape[0]

    def loops(self, rows: int, columns: int, device: torch.device, dtype: torch.dtype) -> bool:
        """Whether scoring ``rows x columns`` pairs on ``device`` runs the looped way."""
        if self.loop_estimators is not None:
            return self.loop_estimators
        width = max([self.first_x.shape[2], *self.rest.widths[1:-1]])  # the widest pair layer
        activation_bytes = self.num_estimators * rows * columns * width * dtype.itemsize
        return torch.device(device).type == "cpu" and activation_bytes > LOOP_ABOVE_BYTES

    def _first_layer(self, inputs: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        if inputs.dim() == 2:
            inputs = inputs.expand(self.num_estimators, *inputs.shape)
        if bias is None:
            return torch.bmm(inputs, weight)
        return torch.baddbmm(bias, inputs, weight)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        """Scores of every pair, for every estimator.

        Args:
            x: ``[N, x_dim]`` shared by all estimators, or ``[E, N, x_dim]``.
            y: ``[M, y_dim]`` or ``[E, M, y_dim]``.

        Returns:
            ``[E, N, M]``.
        """
        from_x = self._first_layer(x, self.first_x, None)  # [E, N, H]
        from_y = self._first_layer(y, self.first_y, self.first_bias)  # [E, M, H]
        estimators, rows, width = from_x.shape
        columns = from_y.shape[1]
        if not self.loops(rows, columns, from_x.device, from_x.dtype):
            hidden = (from_x[:, :, None, :] + from_y[:, None, :, :]).relu_()  # [E, N, M, H]
            scores = self.rest(hidden.reshape(estimators, rows * columns, width))  # [E, N M, 1]
            return scores.reshape(estimators, rows, columns)
        # unbind, not indexing: its backward stacks the E gradients once instead of
        # scattering each into a zero tensor of the full [E, ...] shape.
        weights = [weight.unbind(0) for weight in self.rest.weights]
        biases = [bias.unbind(0) for bias in self.rest.biases]
        last = len(weights) - 1
        scores = []
        for e in range(estimators):
            hidden = (from_x[e, :, None, :] + from_y[e, None, :, :]).relu_()  # [N, M, H]
            hidden = hidden.reshape(rows * columns, width)
            for index in range(last + 1):
                hidden = torch.addmm(biases[index][e], hidden, weights[index][e])
                if index < last:
                    hidden = hidden.relu_()
            scores.append(hidden)  # [N M, 1]
        return torch.stack(scores).reshape(estimators, rows, columns)

    def unstack(self, index: int) -> ConcatCritic:
        """A :class:`~remi_tutorial.critics.ConcatCritic` holding a copy of critic ``index``."""
        rest = self.rest.unstack(index)
        y_dim, hidden = self.first_y.shape[1], self.rest.widths[:-1]
        critic = ConcatCritic(self.x_dim, y_dim, hidden).to(rest[0].weight.device,
                                                             rest[0].weight.dtype)
        with torch.no_grad():
            critic.net[0].weight.copy_(torch.cat([self.first_x[index], self.first_y[index]]).T)
            critic.net[0].bias.copy_(self.first_bias[index, 0])
            for target, source in zip(_linears(critic.net)[1:], _linears(rest)):
                target.load_state_dict(source.state_dict())
        return critic


def stacked_critic(
    critics: Sequence[SeparableCritic | ConcatCritic],
) -> StackedSeparableCritic | StackedConcatCritic:
    """``critics`` (all separable or all concat, of one shape) as one stacked critic."""
    if isinstance(critics[0], ConcatCritic):
        return StackedConcatCritic(critics)
    return StackedSeparableCritic(critics)


# --------------------------------------------------------------------------- the bound


@dataclass(frozen=True)
class _Group:
    """Estimators evaluated by one call of one function of :mod:`remi_tutorial.bounds`.

    ``params`` are the same for every member; ``varying`` holds, for each parameter of
    :data:`~remi_tutorial.bounds.TENSOR_PARAMETERS` the function takes, one value per member
    (passed as a tensor).
    """

    function: Callable
    params: tuple[tuple[str, object], ...]
    members: tuple[int, ...]
    varying: tuple[tuple[str, tuple[float, ...]], ...] = ()
    alphas: tuple[float, ...] = ()
    distance: str = "squared"


def _frozen(params: Mapping) -> tuple[tuple[str, object], ...]:
    return tuple(sorted(params.items()))


def _select(params: Mapping, names: Sequence[str]) -> dict:
    return {name: params[name] for name in names if name in params}


def _add_call(groups: dict, estimator: int, function: Callable, params: Mapping, *key) -> None:
    """Put ``estimator``'s call ``function(..., **params)`` in the group of the calls that
    differ from it at most in :data:`~remi_tutorial.bounds.TENSOR_PARAMETERS`."""
    shared = {name: value for name, value in params.items() if name not in TENSOR_PARAMETERS}
    varying = {name: float(value) for name, value in params.items() if name in TENSOR_PARAMETERS}
    groups.setdefault((function, _frozen(shared), *key), []).append((estimator, varying))


def _group(function: Callable, shared: tuple, calls: list[tuple[int, dict]], **extra) -> _Group:
    names = calls[0][1].keys()
    return _Group(function, shared, tuple(estimator for estimator, _ in calls),
                  tuple((name, tuple(varying[name] for _, varying in calls)) for name in names),
                  **extra)


def _resolved(name: str, params: Mapping) -> dict:
    """Bound ``name``'s keyword parameters: its defaults updated with ``params``, checked by
    the bound itself on a tiny score matrix (so a bad value fails here, not mid-training)."""
    bound = get_bound(name, **params)  # raises ValueError for an unknown name or parameter
    for key, value in params.items():
        if isinstance(value, Tensor):
            raise ValueError(f"stacked bounds take numbers as parameters; {name!r} got a tensor "
                             f"{key} (e.g. a per-column log_baseline): call the bound per estimator")
    eye = torch.eye(2, dtype=torch.bool)
    bound(torch.zeros(2, 2), eye, ~eye)
    return {**bound_spec(name).defaults(), **params}


class StackedBound:
    """``E`` bounds evaluated on ``scores [E, N, M]`` by the functions of
    :mod:`remi_tutorial.bounds`, grouped; see :func:`stack_bounds`.

    A regularized bound is its base bound plus a penalty (the registry,
    :data:`~remi_tutorial.bounds.REGISTRY`, says which, and which bound or penalty is
    another function with some parameters fixed: NWJ is TUBA with ``log a = 1``). The
    estimators whose base bound, so read, and parameters agree (MINE and ReMINE; NWJ, TUBA,
    ReNWJ and ReTUBA) form one group: one call of the base bound on their ``[k, N, M]``
    scores, with the parameters of :data:`~remi_tutorial.bounds.TENSOR_PARAMETERS`
    (``log_baseline`` here) passed as one value per estimator. The regularized estimators
    whose penalty function and other parameters agree (ReMINE, ReSMILE and ReInfoNCE share
    ``dv_penalty``; ReNWJ, ReTUBA and ReJS one NWJ-family penalty with a shift per
    estimator) form one penalty group: one call of the penalty function and one
    :func:`~remi_tutorial.bounds.regularizer` with a weight per estimator. So the twelve
    bounds cost five base calls and two penalty calls, whatever the number of seeds, and
    there is no second implementation of any bound.
    """

    def __init__(self, names: Sequence[str], params: Sequence[Mapping]):
        specs = [bound_spec(name) for name in names]
        self.names = tuple(spec.name for spec in specs)
        resolved = [_resolved(spec.name, p) for spec, p in zip(specs, params, strict=True)]
        base_calls: dict[tuple, list] = {}
        penalty_calls: dict[tuple, list] = {}
        for index, (spec, values) in enumerate(zip(specs, resolved)):
            base = REGISTRY[spec.base]
            _add_call(base_calls, index, *base.as_general(_select(values, base.parameters)))
            if spec.regularized:
                function, params = spec.penalty_as_general(
                    _select(values, spec.penalty_parameters))
                _add_call(penalty_calls, index, function, params, values["distance"])
        self._base_groups = [
            _group(function, shared, calls) for (function, shared), calls in base_calls.items()
        ]
        self._penalty_groups = [
            _group(function, shared, calls, distance=distance,
                   alphas=tuple(float(resolved[e]["alpha"]) for e, _ in calls))
            for (function, shared, distance), calls in penalty_calls.items()
        ]
        self._base_order = [e for group in self._base_groups for e in group.members]
        self._penalty_order = [e for group in self._penalty_groups for e in group.members]
        self._cache: dict[tuple, dict] = {}

    def _indices(self, like: Tensor) -> dict:
        """Index and weight tensors on the device and dtype of ``like`` (made once, outside
        inference mode: an evaluation under ``torch.inference_mode`` may come first, and
        inference tensors cannot take part in a later training step's autograd)."""
        key = (like.device, like.dtype)
        if key not in self._cache:
            with torch.inference_mode(False):
                self._cache[key] = self._make_indices(like)
        return self._cache[key]

    def _make_indices(self, like: Tensor) -> dict:
        def tensor(values, dtype=torch.long):
            return torch.tensor(values, dtype=dtype, device=like.device)

        in_order = self._base_order == sorted(self._base_order)
        order = self._base_order + self._penalty_order
        return {
            "order": None if order == list(range(len(self.names))) else tensor(order),
            "inverse": None if in_order else tensor(
                [self._base_order.index(e) for e in range(len(self.names))]),
            "penalty_order": tensor(self._penalty_order),
            "alphas": [tensor(group.alphas, like.dtype) for group in self._penalty_groups],
            "base_params": [self._params(group, like) for group in self._base_groups],
            "penalty_params": [self._params(group, like) for group in self._penalty_groups],
        }

    @staticmethod
    def _params(group: _Group, like: Tensor) -> dict:
        """``group``'s keyword parameters, those that vary as tensors shaped as
        :data:`~remi_tutorial.bounds.TENSOR_PARAMETERS` says."""
        params = dict(group.params)
        for name, values in group.varying:
            value = torch.tensor(values, dtype=like.dtype, device=like.device)
            params[name] = value[:, None, None] if TENSOR_PARAMETERS[name] == "scores" else value
        return params

    @staticmethod
    def _split(tensor: Tensor | None, order: Tensor | None, groups: list[_Group]) -> list:
        """``tensor``'s estimators rearranged by ``order`` and split into ``groups`` (the base
        groups, then the penalty groups, which take the regularized estimators again).

        One ``index_select`` and one ``split``: their backward is one ``cat`` and one
        ``index_add``, however many groups (indexing each group separately would add a
        full-size zero gradient per group). A mask shared by every estimator is passed as it is.
        """
        sizes = [len(group.members) for group in groups]
        if tensor is None or (tensor.dim() < 3 or tensor.shape[0] == 1):
            return [tensor] * len(groups)
        if order is not None:
            tensor = tensor.index_select(0, order)
        return list(tensor.split(sizes))

    def __call__(
        self, scores: Tensor, positive: Tensor, negative: Tensor | None = None, *,
        check: bool = True,
    ) -> Bound:
        validate_inputs(scores, positive, negative, check_values=check)
        if scores.dim() != 3 or scores.shape[0] != len(self.names):
            raise ValueError(
                f"scores must have shape [E, N, M] with E = {len(self.names)} estimators, "
                f"got {tuple(scores.shape)}"
            )
        indices = self._indices(scores)
        groups = self._base_groups + self._penalty_groups
        scores_, positive_, negative_ = (
            self._split(tensor, indices["order"], groups) for tensor in (scores, positive, negative))
        bases = len(self._base_groups)
        results = [
            group.function(group_scores, group_positive, group_negative, check=False, **params)
            for group, params, group_scores, group_positive, group_negative in zip(
                self._base_groups, indices["base_params"], scores_, positive_, negative_)
        ]
        fields = [torch.cat([getattr(result, field) for result in results])
                  for field in ("mi", "objective", "joint", "marginal")]
        if indices["inverse"] is not None:
            fields = [value.index_select(0, indices["inverse"]) for value in fields]
        mi, objective, joint, marginal = fields
        penalty = torch.zeros_like(mi)
        if self._penalty_groups:
            weighted = []
            for group, params, alpha, group_scores, group_negative in zip(
                self._penalty_groups, indices["penalty_params"], indices["alphas"],
                scores_[bases:], negative_[bases:],
            ):
                term, target = group.function(group_scores, group_negative, **params)
                weighted.append(regularizer(term, target, alpha=alpha, distance=group.distance))
            penalty = penalty.index_copy(0, indices["penalty_order"], torch.cat(weighted))
        return penalized(Bound(mi, objective, joint, marginal, penalty), penalty)

    def __repr__(self) -> str:
        return f"stack_bounds({list(self.names)!r})"


def stack_bounds(
    bounds: Sequence[str | functools.partial], params: Mapping[str, Mapping] | None = None
) -> StackedBound:
    """``E`` bounds of :mod:`remi_tutorial.bounds`, one per estimator, evaluated together.

    Example::

        bound = stack_bounds(["mine", "remine"], {"remine": {"alpha": 1.0}})
        result = bound(scores, positive, negative)  # scores [2, N, M]; result.mi [2]

        # estimators that share a name but not its parameters, e.g. a sweep of alpha:
        sweep = stack_bounds([get_bound("remine", alpha=a) for a in (0.01, 0.1, 1.0)])

    Args:
        bounds: the bound of each estimator: ``E`` names from
            :data:`~remi_tutorial.bounds.BOUND_NAMES` (repeats allowed, e.g. one block of
            names per seed), or bounds returned by :func:`~remi_tutorial.bounds.get_bound`,
            which carry their own parameters.
        params: bound name -> its keyword parameters (as for
            :func:`~remi_tutorial.bounds.get_bound`), for the estimators given by name.
            Parameters must be numbers or strings (TUBA's ``log_baseline`` too).

    Returns:
        A callable ``(scores [E, N, M], positive, negative=None, *, check=True) -> Bound``
        whose fields have shape ``[E]`` and equal, estimator by estimator, what the
        single bound returns on ``scores[e]`` (:class:`StackedBound` says how).

    Raises:
        ValueError: for an unknown name, a parameter a bound does not take, or a bad value.
    """
    params = {key.lower(): value for key, value in (params or {}).items()}
    unknown = sorted(set(params) - set(BOUND_NAMES))
    if unknown:
        raise ValueError(f"parameters given for unknown bounds {', '.join(unknown)}")
    if not bounds:
        raise ValueError("stack_bounds needs at least one bound")
    functions = {spec.function: spec.name for spec in REGISTRY.values()}
    names, estimator_params = [], []
    for bound in bounds:
        if isinstance(bound, str):
            names.append(bound.lower())
            estimator_params.append(params.get(bound.lower(), {}))
        elif isinstance(bound, functools.partial) and bound.func in functions:
            names.append(functions[bound.func])
            estimator_params.append(dict(bound.keywords))
        else:
            raise ValueError(
                f"stack_bounds takes bound names or bounds from get_bound, got {bound!r}"
            )
    return StackedBound(names, estimator_params)
