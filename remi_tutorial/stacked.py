"""Many estimators trained at once: stacked critics and a stacked bound.

``E`` estimators, each with its own critic weights and its own loss, train as one model:

* a stacked critic holds the ``E`` critics' weights in tensors with a leading dimension ``E``
  and scores one shared batch with batched matrix products (``torch.baddbmm``/``torch.bmm``),
  returning ``scores [E, N, M]``;
* :func:`stack_bounds` evaluates ``E`` bounds of :mod:`remi_tutorial.bounds` on those scores
  in one pass: the few quantities every bound is made of (``E_P[T]``, ``log E_Q[e^T]``, the
  clipped and row-wise variants, the Jensen-Shannon objective) are computed once for all
  ``E`` score matrices and combined with per-estimator coefficient tensors, so a training
  step has no Python loop over estimators.

:func:`remi_tutorial.train.train` trains such a pair like a single estimator (the loss is the
sum of the ``E`` losses; each estimator's parameters get their own gradient) and records a
history with an ``estimator`` column. The stacked versions compute exactly what the
one-estimator versions compute: ``tests/test_stacked.py`` checks them against
:mod:`remi_tutorial.critics` and :mod:`remi_tutorial.bounds` estimator by estimator.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from .bounds import (
    BOUND_NAMES,
    BOUNDS,
    Bound,
    _every_pair,
    _fgan_js,
    _masked_mean,
    _row_log_mean_exp,
    dv_marginal,
    get_bound,
    joint_term,
    validate_inputs,
)
from .critics import ConcatCritic, SeparableCritic, mlp

__all__ = [
    "StackedMLP",
    "StackedSeparableCritic",
    "StackedConcatCritic",
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


class StackedConcatCritic(nn.Module):
    """``E`` concat critics ``T_e(x, y) = MLP_e([x, y])`` on all ``N x M`` pairs at once.

    As in :class:`~remi_tutorial.critics.ConcatCritic`, the first (linear) layer is split
    into its ``x`` and ``y`` parts, ``[E, N, 1, H] + [E, 1, M, H]``, so the ``[N, M, dx + dy]``
    concatenation is never built; the other layers are batched matrix products over the
    ``E x (N M)`` pairs.

    Args:
        critics: ``E`` :class:`~remi_tutorial.critics.ConcatCritic` of the same shape; their
            current weights are copied.
    """

    def __init__(self, critics: Sequence[ConcatCritic]):
        super().__init__()
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
        hidden = (from_x[:, :, None, :] + from_y[:, None, :, :]).relu_()  # [E, N, M, H]
        estimators, rows, columns, width = hidden.shape
        scores = self.rest(hidden.reshape(estimators, rows * columns, width))  # [E, N M, 1]
        return scores.reshape(estimators, rows, columns)

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


# --------------------------------------------------------------------------- the bound

_DV_FAMILY = ("mine", "smile", "infonce", "remine", "resmile", "reinfonce")
_NWJ_BASE = {"nwj": "nwj", "tuba": "tuba", "js": "js", "renwj": "nwj", "retuba": "tuba",
             "rejs": "js"}


def _resolved_params(name: str, params: Mapping) -> dict:
    """The keyword parameters of bound ``name``: its defaults updated with ``params``."""
    get_bound(name, **params)  # raises ValueError for an unknown name or parameter
    signature = inspect.signature(BOUNDS[name])
    resolved = {
        p.name: p.default for p in signature.parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "check"
    }
    resolved.update(params)
    return resolved


def _coefficients(name: str, params: dict) -> dict[str, float]:
    """How estimator ``name`` combines the shared quantities (see :class:`StackedBound`)."""
    regularized = name.startswith("re")
    alpha = float(params.get("alpha", 0.0)) if regularized else 0.0
    if alpha < 0:
        raise ValueError(f"alpha must be non-negative, got {alpha} for {name!r}")
    distance = params.get("distance", "squared")
    if distance not in ("squared", "absolute"):
        raise ValueError(f"distance must be 'squared' or 'absolute', got {distance!r}")
    row = dict(
        nwj_family=0.0, shift=0.0, clip_joint=0.0, tau=math.inf, row_marginal=0.0,
        trains_js=0.0, regularized=float(regularized), alpha=alpha,
        absolute=float(distance == "absolute"), penalty_exp=0.0, penalty_shift=0.0,
        target=float(params.get("target", 0.0)),
    )
    if name in _DV_FAMILY:
        if name.endswith("smile"):
            if params["tau"] <= 0:
                raise ValueError(f"tau must be positive, got {params['tau']} for {name!r}")
            if params["clip"] not in ("both", "marginal"):
                raise ValueError(f"clip must be 'both' or 'marginal', got {params['clip']!r}")
            if params["gradient"] not in ("dv", "js"):
                raise ValueError(f"gradient must be 'dv' or 'js', got {params['gradient']!r}")
            row.update(tau=float(params["tau"]), clip_joint=float(params["clip"] == "both"),
                       trains_js=float(params["gradient"] == "js"))
        if name.endswith("infonce"):
            row.update(row_marginal=1.0)
        return row
    # The NWJ family: every member reports 1 + E_P[T] - shift - E_Q[e^(T - shift)].
    base = _NWJ_BASE[name]
    if base == "tuba":
        log_baseline = params["log_baseline"]
        if isinstance(log_baseline, Tensor):
            raise ValueError("stacked bounds take a number log_baseline, not a tensor")
        shift = float(log_baseline)
    elif base == "nwj":
        shift = 1.0
    else:
        shift = 1.0 - float(params["report_shift"])
    row.update(nwj_family=1.0, shift=shift, trains_js=float(base == "js"))
    if regularized:
        variant = params["variant"]
        if variant == "paper":
            # d(E_Q[e^(T' - 1)], 1) with T' the critic as NWJ sees it (see bounds.py).
            penalty_shift = {"nwj": 1.0, "tuba": shift, "js": 0.0}[base]
            row.update(penalty_exp=1.0, penalty_shift=penalty_shift, target=1.0)
        elif variant == "authors_code":
            row.update(target=0.0)
        else:
            raise ValueError(f"variant must be 'paper' or 'authors_code', got {variant!r}")
    return row


def _rows(mask: Tensor | None, index: Tensor) -> Tensor | None:
    """The rows ``index`` of a mask with one matrix per estimator; a shared mask as it is."""
    if mask is not None and mask.dim() == 3 and mask.shape[0] > 1:
        return mask.index_select(0, index)
    return mask


class StackedBound:
    """``E`` bounds evaluated on ``scores [E, N, M]`` in one pass; see :func:`stack_bounds`.

    With ``J = E_P[T]`` and ``D = log E_Q[e^T]`` (computed for all ``E``), ``J_c`` and
    ``D_c`` their values on the clipped scores, ``R`` InfoNCE's row-wise marginal and ``JS``
    the f-GAN objective (each computed only for the estimators that use it, selected by
    index tensors fixed at construction), estimator ``e`` reports

    * DV family: ``joint = J_c if clip_joint else J``, ``marginal = R`` for InfoNCE, ``D_c``
      for SMILE, ``D`` otherwise, ``mi = joint - marginal`` (for InfoNCE computed pair by
      pair, as :func:`~remi_tutorial.bounds.infonce` does);
    * NWJ family: ``joint = J``, ``marginal = exp(D - shift)``, ``mi = 1 + J - shift -
      marginal``;

    trains ``(JS if trains_js else mi) - penalty`` and penalises
    ``alpha * d(exp(D - penalty_shift) if penalty_exp else D, target)``.
    """

    _SUBSETS = ("clipped", "row_marginal", "trains_js")

    def __init__(self, names: Sequence[str], params: Sequence[Mapping]):
        self.names = tuple(names)
        rows = [_coefficients(name, _resolved_params(name, estimator_params))
                for name, estimator_params in zip(self.names, params, strict=True)]
        self._table = {key: torch.tensor([row[key] for row in rows], dtype=torch.float64)
                       for key in rows[0]}
        self._subsets = {
            "clipped": [e for e, row in enumerate(rows) if math.isfinite(row["tau"])],
            "row_marginal": [e for e, row in enumerate(rows) if row["row_marginal"]],
            "trains_js": [e for e, row in enumerate(rows) if row["trains_js"]],
        }
        self._cache: dict[tuple, dict[str, Tensor]] = {}

    def _on(self, like: Tensor) -> dict[str, Tensor]:
        key = (like.device, like.dtype)
        if key not in self._cache:
            coefficients = {name: values.to(like.device, like.dtype)
                            for name, values in self._table.items()}
            for flag in ("nwj_family", "clip_joint", "row_marginal", "trains_js",
                         "regularized", "absolute", "penalty_exp"):
                coefficients[flag] = coefficients[flag].bool()
            for subset, members in self._subsets.items():
                coefficients[subset] = torch.tensor(members, dtype=torch.long, device=like.device)
            self._cache[key] = coefficients
        return self._cache[key]

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
        c = self._on(scores)
        joint = joint_term(scores, positive)
        dv = dv_marginal(scores, negative)
        dv_joint, dv_marginal_term = joint, dv
        if self._subsets["clipped"]:  # SMILE: the same terms on clipped scores
            index = c["clipped"]
            tau = c["tau"].index_select(0, index)[:, None, None]
            clipped = torch.clamp(scores.index_select(0, index), -tau, tau)
            clipped_joint = joint.index_copy(
                0, index, joint_term(clipped, _rows(positive, index))
            )
            dv_joint = torch.where(c["clip_joint"], clipped_joint, joint)
            dv_marginal_term = dv.index_copy(
                0, index, dv_marginal(clipped, _rows(negative, index))
            )
        dv_mi = dv_joint - dv_marginal_term
        if self._subsets["row_marginal"]:  # InfoNCE: one log-mean-exp per row
            index = c["row_marginal"]
            rows = scores.index_select(0, index)
            rows_positive, rows_negative = _rows(positive, index), _rows(negative, index)
            candidates = _every_pair(rows, rows_negative) | rows_positive
            row_weights = rows_positive.expand_as(rows).sum(-1).to(scores.dtype)
            row_log_mean_exp = _row_log_mean_exp(rows, candidates)  # [k, N]
            row_marginal = (row_weights * row_log_mean_exp).sum(-1) / row_weights.sum(-1)
            dv_marginal_term = dv_marginal_term.index_copy(0, index, row_marginal)
            # As in bounds.infonce: each pair's own difference keeps the log N cap exact.
            dv_mi = dv_mi.index_copy(
                0, index, _masked_mean(rows - row_log_mean_exp[..., None], rows_positive)
            )

        zero = torch.zeros_like(dv)
        # exp() only where it is used, so an unused branch cannot overflow into a NaN gradient.
        nwj_marginal = torch.exp(torch.where(c["nwj_family"], dv - c["shift"], zero))
        reported_joint = torch.where(c["nwj_family"], joint, dv_joint)
        marginal = torch.where(c["nwj_family"], nwj_marginal, dv_marginal_term)
        mi = torch.where(c["nwj_family"], 1.0 + joint - c["shift"] - nwj_marginal, dv_mi)

        term = torch.where(
            c["penalty_exp"],
            torch.exp(torch.where(c["penalty_exp"], dv - c["penalty_shift"], zero)),
            dv,
        )
        gap = term - c["target"]
        distance = torch.where(c["absolute"], gap.abs(), gap.square())
        penalty = torch.where(c["regularized"], c["alpha"] * distance, zero)
        objective = mi
        if self._subsets["trains_js"]:  # JS, and SMILE as Song & Ermon train it
            index = c["trains_js"]
            objective = mi.index_copy(0, index, _fgan_js(
                scores.index_select(0, index), _rows(positive, index), _rows(negative, index)
            ))
        return Bound(mi, objective - penalty, reported_joint, marginal, penalty)

    def __repr__(self) -> str:
        return f"stack_bounds({list(self.names)!r})"


def stack_bounds(
    bounds: Sequence[str | functools.partial], params: Mapping[str, Mapping] | None = None
) -> StackedBound:
    """``E`` bounds of :mod:`remi_tutorial.bounds`, one per estimator, evaluated in one pass.

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
            TUBA's ``log_baseline`` must be a number.

    Returns:
        A callable ``(scores [E, N, M], positive, negative=None, *, check=True) -> Bound``
        whose fields have shape ``[E]`` and equal, estimator by estimator, what the
        single bound returns on ``scores[e]``.

    Raises:
        ValueError: for an unknown name, a parameter a bound does not take, or a bad value.
    """
    params = {key.lower(): value for key, value in (params or {}).items()}
    unknown = sorted(set(params) - set(BOUND_NAMES))
    if unknown:
        raise ValueError(f"parameters given for unknown bounds {', '.join(unknown)}")
    if not bounds:
        raise ValueError("stack_bounds needs at least one bound")
    names, estimator_params = [], []
    for bound in bounds:
        if isinstance(bound, str):
            names.append(bound.lower())
            estimator_params.append(params.get(bound.lower(), {}))
        elif isinstance(bound, functools.partial) and bound.func in BOUNDS.values():
            names.append(bound.func.__name__)
            estimator_params.append(dict(bound.keywords))
        else:
            raise ValueError(
                f"stack_bounds takes bound names or bounds from get_bound, got {bound!r}"
            )
    return StackedBound(names, estimator_params)
