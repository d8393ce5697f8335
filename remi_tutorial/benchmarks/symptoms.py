"""The two symptoms of instability, drifting and explosion, on the one-hot task.

``x = y = one_hot(c)`` with ``c`` uniform over ``K`` classes, so ``I(X; Y) = log K``; the
marginal pairs ``(x_i, y'_i)`` pair each ``x`` with an independent fresh ``y'`` (the
authors' design, :func:`~remi_tutorial.tasks.one_hot_batches`). Two settings show the
symptoms within seconds on a CPU:

* :data:`DRIFTING`: 16 classes, a concat critic with one hidden layer of 64 units, SGD with
  learning rate 0.1, batches of 100, 3,000 steps (the setting of the authors' notebook for
  the paper's Figure 1): MINE's two terms slide together while its estimate stays on
  ``log 16``;
* :data:`EXPLOSION`: 20 classes, a concat critic with two hidden layers of 256 units, Adam
  with learning rate 5e-4, batches of 4: MINE's estimate runs into the thousands.

:func:`train_one_hot` trains several bounds at once, each with its own copy of one initial
critic, on one shared stream of batches (so runs differ only by their bound);
:func:`symptom_summary` measures each run; :func:`pair_scores` scores joint and marginal
pairs with the trained critics. The command line trains the bounds in one setting, for each
seed, and prints (and with ``--out`` writes) the summaries.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd
import torch
from torch import nn

from ..bounds import BOUND_NAMES, Bound, bound_spec, get_bound
from ..critics import ConcatCritic, OneHotTableCritic
from ..stacked import StackedConcatCritic, stack_bounds
from ..tasks import one_hot_batches
from ..train import train
from . import cli

__all__ = [
    "OneHotSetting",
    "DRIFTING",
    "EXPLOSION",
    "SETTINGS",
    "OneHotRun",
    "train_one_hot",
    "symptom_summary",
    "pair_scores",
    "exact_bound_values",
]


@dataclass(frozen=True)
class OneHotSetting:
    """A training setting on the one-hot task.

    Attributes:
        num_classes: ``K``; the true MI is ``log K``.
        batch_size: joint pairs per batch (and as many independent marginal pairs).
        hidden_dims: the hidden widths of the concat critic.
        optimizer: ``"sgd"`` or ``"adam"``.
        lr: the learning rate.
        steps: optimizer steps.
        table_lookup: evaluate the critic once per pair of classes and look the batch's
            scores up (:class:`~remi_tutorial.critics.OneHotTableCritic`): the same function
            and gradients, cheaper when ``batch_size**2`` exceeds ``num_classes**2``.
    """

    num_classes: int
    batch_size: int
    hidden_dims: tuple[int, ...]
    optimizer: str
    lr: float
    steps: int
    table_lookup: bool

    @property
    def true_mi(self) -> float:
        """``log K``, in nats."""
        return math.log(self.num_classes)


DRIFTING = OneHotSetting(
    num_classes=16, batch_size=100, hidden_dims=(64,), optimizer="sgd", lr=0.1, steps=3000,
    table_lookup=True,
)
"""Drifting within seconds. MINE's terms slide together while its estimate holds. This is the
setting of the authors' notebook for the paper's Figure 1."""

EXPLOSION = OneHotSetting(
    num_classes=20, batch_size=4, hidden_dims=(256, 256), optimizer="adam", lr=5e-4,
    steps=1500, table_lookup=False,
)
"""Explosion within seconds. With 4 independent marginal pairs, a batch holds no matched
marginal pair with probability ``(19/20)^4 = 0.81``, and on such a batch the DV objective
is unbounded."""

SETTINGS: dict[str, OneHotSetting] = {"drifting": DRIFTING, "explosion": EXPLOSION}


@dataclass
class OneHotRun:
    """What :func:`train_one_hot` returns.

    Attributes:
        history: one row per step and estimator: ``step``, ``estimator`` (the name given to
            its bound), ``true_mi`` and the :class:`~remi_tutorial.bounds.Bound` fields.
        critic: the trained critics, stacked: ``critic(x [N, K], y [M, K]) -> [E, N, M]``.
        names: the ``E`` estimator names, in the critic's order.
        setting: the setting it was trained in (with the steps actually requested).
        diverged_at: the first non-finite step, or ``None``.
        message: how the run ended.
    """

    history: pd.DataFrame
    critic: nn.Module
    names: tuple[str, ...]
    setting: OneHotSetting
    diverged_at: int | None
    message: str


def train_one_hot(
    bounds: Mapping[str, Callable[..., Bound]],
    setting: OneHotSetting,
    *,
    seed: int = 0,
    steps: int | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> OneHotRun:
    """Train one concat critic per bound, all from the same initial weights, on shared batches.

    The critics are stacked (:class:`~remi_tutorial.stacked.StackedConcatCritic`) and trained
    by one optimizer; SGD and Adam update every weight on its own, so this is the same as
    training them one after another on the same batches, only cheaper.

    Args:
        bounds: estimator name -> a bound from :func:`~remi_tutorial.bounds.get_bound`, e.g.
            ``{"mine": get_bound("mine")}`` or
            ``{"alpha=1": get_bound("remine", alpha=1.0)}``.
        setting: :data:`DRIFTING`, :data:`EXPLOSION` or another :class:`OneHotSetting`.
        seed: seeds the initial critic weights and the batch stream.
        steps: overrides ``setting.steps``.
        device: where to train (default: the CPU).
        progress: show a progress bar.

    Returns:
        :class:`OneHotRun`.
    """
    if not bounds:
        raise ValueError("train_one_hot needs at least one bound")
    if setting.optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {setting.optimizer!r}")
    if steps is not None:
        setting = dataclasses.replace(setting, steps=steps)
    names = tuple(bounds)
    k = setting.num_classes
    critics = []
    for _ in names:
        torch.manual_seed(seed)
        critics.append(ConcatCritic(k, k, hidden_dims=setting.hidden_dims))
    critic: nn.Module = StackedConcatCritic(critics).to(device)
    if setting.table_lookup:
        critic = OneHotTableCritic(critic, k, k)
    optimizer_class = torch.optim.SGD if setting.optimizer == "sgd" else torch.optim.Adam
    optimizer = optimizer_class(critic.parameters(), lr=setting.lr)
    result = train(
        critic,
        stack_bounds([bounds[name] for name in names]),
        one_hot_batches(k, setting.batch_size, seed=seed, device=device),
        steps=setting.steps,
        optimizer=optimizer,
        progress=progress,
        description=", ".join(names),
    )
    history = result.history.copy()
    history["estimator"] = [names[index] for index in history["estimator"]]
    return OneHotRun(history, critic, names, setting, result.diverged_at, result.message)


def symptom_summary(history: pd.DataFrame, *, window: int = 200) -> pd.DataFrame:
    """How much each estimator drifted, how far its estimate is from the truth, how it varied.

    The *drift* of a term is its mean over the last ``window`` steps minus its mean over the
    ``window`` steps that end at mid-run: how far it moved over the second half of training.

    Args:
        history: ``OneHotRun.history`` (or any history with ``estimator, step, true_mi, mi,
            joint, marginal``).
        window: steps averaged at each end.

    Returns:
        A table with one row per estimator, in order of appearance, and the columns
        ``estimator``, ``true_mi``, ``estimate`` (mean estimate over the last ``window``
        steps), ``estimate_std`` (standard deviation of the per-step estimate over the second
        half), ``joint_drift``, ``marginal_drift``, ``marginal_std`` (over the second half)
        and ``max_abs_estimate``.
    """
    rows = []
    for name in history.estimator.unique():
        run = history[history.estimator == name].sort_values("step")
        steps = len(run)
        if steps < 2 * window:
            raise ValueError(f"{name!r} has {steps} steps, fewer than two windows of {window}")
        half = steps // 2
        middle, last = run.iloc[half - window:half], run.iloc[-window:]
        second_half = run.iloc[half:]
        rows.append(dict(
            estimator=name,
            true_mi=float(run.true_mi.iloc[0]),
            estimate=float(last.mi.mean()),
            estimate_std=float(second_half.mi.std()),
            joint_drift=float(last.joint.mean() - middle.joint.mean()),
            marginal_drift=float(last.marginal.mean() - middle.marginal.mean()),
            marginal_std=float(second_half.marginal.std()),
            max_abs_estimate=float(run.mi.abs().max()),
        ))
    return pd.DataFrame(rows)


def pair_scores(
    critic: nn.Module,
    names: tuple[str, ...] | list[str],
    num_classes: int,
    *,
    samples: int = 5000,
    seed: int = 0,
) -> pd.DataFrame:
    """Scores of fresh joint pairs ``(c, c)`` and marginal pairs ``(a, b)`` (independent).

    Args:
        critic: a (stacked) critic on one-hot inputs, ``(x [N, K], y [M, K]) -> [E, N, M]``,
            e.g. ``OneHotRun.critic``.
        names: the ``E`` estimator names.
        num_classes: ``K``.
        samples: pairs of each kind.
        seed: seeds the classes drawn.

    Returns:
        Columns ``estimator, pair ("joint" or "marginal"), score``: ``samples`` rows of each
        pair kind per estimator.
    """
    generator = torch.Generator().manual_seed(seed)
    classes = torch.randint(num_classes, (3, samples), generator=generator)
    parameter = next(critic.parameters())
    eye = torch.eye(num_classes, dtype=parameter.dtype, device=parameter.device)
    with torch.no_grad():
        table = critic(eye, eye).reshape(len(names), num_classes, num_classes).cpu()
    joint = table[:, classes[0], classes[0]]  # [E, samples]
    marginal = table[:, classes[1], classes[2]]
    frames = []
    for index, name in enumerate(names):
        for pair, values in (("joint", joint[index]), ("marginal", marginal[index])):
            frames.append(pd.DataFrame(
                {"estimator": name, "pair": pair, "score": values.double().numpy()}
            ))
    return pd.concat(frames, ignore_index=True)


def exact_bound_values(
    critic: nn.Module, names: tuple[str, ...] | list[str], num_classes: int
) -> pd.DataFrame:
    """The population DV and NWJ values of trained one-hot critics, computed exactly.

    On the one-hot task a critic is a ``K x K`` table ``T(a, b)``; under P the pair is
    ``(c, c)`` with ``c`` uniform, under Q it is ``(a, b)`` with ``a, b`` independent and
    uniform, so ``E_P[T] = mean_c T(c, c)`` and ``E_Q[e^T] = mean_{a, b} e^T(a, b)`` need no
    sampling. Comparing a batch estimate with these values separates the error of the batch
    from the error of the critic.

    Args:
        critic: a (stacked) critic on one-hot inputs, ``(x [N, K], y [M, K]) -> [E, N, M]``.
        names: the ``E`` estimator names.
        num_classes: ``K``.

    Returns:
        A table with one row per estimator and the columns ``estimator``, ``joint``
        (``E_P[T]``), ``log_partition`` (``log E_Q[e^T]``), ``dv`` (``joint -
        log_partition``) and ``nwj`` (``joint - E_Q[e^(T-1)]``).
    """
    parameter = next(critic.parameters())
    eye = torch.eye(num_classes, dtype=parameter.dtype, device=parameter.device)
    with torch.no_grad():
        table = critic(eye, eye).reshape(len(names), num_classes, num_classes).double().cpu()
    joint = table.diagonal(dim1=-2, dim2=-1).mean(-1)
    log_partition = torch.logsumexp(table.flatten(1), dim=-1) - 2 * math.log(num_classes)
    return pd.DataFrame(dict(
        estimator=list(names),
        joint=joint.numpy(),
        log_partition=log_partition.numpy(),
        dv=(joint - log_partition).numpy(),
        nwj=(joint - torch.exp(log_partition - 1.0)).numpy(),
    ))


# --------------------------------------------------------------------------- command line


EXAMPLES = """examples:
  %(prog)s --setting drifting --bounds mine remine nwj
  %(prog)s --setting explosion --seeds 0 1 2 --alpha 1 --out results/explosion.csv
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m remi_tutorial.benchmarks symptoms``."""
    parser.add_argument("--setting", choices=tuple(SETTINGS), default="drifting",
                        help="drifting: K = 16, batch 100, SGD; explosion: K = 20, batch 4, Adam")
    parser.add_argument("--bounds", nargs="+", default=["mine", "remine", "nwj", "renwj"],
                        choices=BOUND_NAMES, metavar="BOUND",
                        help=f"bound names, trained at once: {', '.join(BOUND_NAMES)}")
    parser.add_argument("--alpha", type=float, default=None,
                        help="penalty weight of the regularized bounds (None: each bound's own)")
    cli.add_seeds(parser)
    own_steps = ", ".join(f"{name} {setting.steps}" for name, setting in SETTINGS.items())
    parser.add_argument("--steps", type=int, default=None,
                        help=f"optimizer steps (None: the setting's, {own_steps})")
    cli.add_out(parser, default=None)
    cli.add_runtime(parser)


def main(args: argparse.Namespace) -> None:
    """Train the bounds for each seed; print, and with ``--out`` write, the summaries."""
    started = time.perf_counter()
    cli.apply_threads(args)
    device = cli.resolve_device(args.device)
    setting = SETTINGS[args.setting]
    params = {} if args.alpha is None else {"alpha": args.alpha}
    bounds = {
        name: get_bound(name, **(params if bound_spec(name).regularized else {}))
        for name in args.bounds
    }
    print(f"{args.setting}: {setting}")
    summaries = []
    with pd.option_context("display.width", 160, "display.max_columns", None):
        for seed in args.seeds:
            run = train_one_hot(bounds, setting, seed=seed, steps=args.steps, device=device,
                                progress=not args.no_progress)
            print(f"\nseed {seed}: {run.message}")
            summary = symptom_summary(run.history)
            print(summary.round(3).to_string(index=False))
            summary.insert(0, "seed", seed)
            summaries.append(summary.assign(diverged_at=run.diverged_at))
    if args.out:
        table = pd.concat(summaries, ignore_index=True)
        table.attrs = {"setting": args.setting, **dataclasses.asdict(run.setting),
                       "bounds": list(args.bounds), "alpha": args.alpha, "seeds": list(args.seeds)}
        cli.write_result(table, args.out, started=started)
