"""The Gaussian benchmark: every estimator on the MI staircase (the paper's Figure 4).

``x ~ N(0, I_d)``, ``y = rho x + sqrt(1 - rho^2) eps``, so ``I(X; Y) = -(d/2) log(1 - rho^2)``;
the true MI steps through ``levels`` (2, 4, 6, 8, 10 nats), ``stage_steps`` optimizer steps
each, with a fresh batch every step (Poole et al., 2019; Song & Ermon, 2020; Choi & Lee,
2022). By default all twelve estimators, and every seed, train *at once*: one stacked critic
(:mod:`remi_tutorial.stacked`) scores one shared batch per seed, one stacked bound evaluates
the twelve losses, one Adam updates every weight. Every estimator of a seed starts
from the same critic weights and sees the same batches, so two panels of the figure differ
only in their loss.

Beside the bounds, the table can hold the closed-form Gaussian MI of each batch
(:func:`~remi_tutorial.explicit.explicit_mi` evaluated by the same training loop on
:class:`~remi_tutorial.explicit.PairedEmbeddings`, the identity: an estimator with no critic
and nothing to train), on the same batches, as rows of its own (``closed_form=...``).

Every setting, the bounds' parameters included, is a field of one
:class:`GaussianBenchmarkConfig`; :func:`run_gaussian_benchmark` runs it.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import json
import time
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..bounds import BOUND_NAMES, bound_spec, get_bound
from ..critics import ConcatCritic, SeparableCritic
from ..explicit import PairedEmbeddings, explicit_mi
from ..stacked import stack_bounds, stacked_critic
from ..tasks import Batch, gaussian_batches, mi_staircase
from ..train import default_device, make_adam, train
from . import cli
from .launch import add_launcher_arguments, launch
from .tables import load_table, save_table

__all__ = [
    "PAPER_LEVELS",
    "PAPER_STAGE_STEPS",
    "CRITICS",
    "CLOSED_FORMS",
    "TABLE_COLUMNS",
    "GaussianBenchmarkConfig",
    "make_critic",
    "run_gaussian_benchmark",
    "GaussianCellJob",
    "stage_summary",
]

PAPER_LEVELS: tuple[float, ...] = (2.0, 4.0, 6.0, 8.0, 10.0)
"""The true MI of each stage of the staircase, in nats."""

PAPER_STAGE_STEPS = 4000
"""Optimizer steps per stage in the paper (20,000 in all)."""

CRITICS: tuple[str, ...] = ("separable", "concat")
"""The two critics of the paper's Gaussian experiments, by name (see :func:`make_critic`)."""

CLOSED_FORMS: dict[str, bool] = {"raw": False, "debiased": True}
"""The variants of the closed-form estimator, by name -> whether it subtracts the plug-in
bias (:func:`~remi_tutorial.explicit.gaussian_plugin_bias`). In the table, variant ``v`` is
the estimator ``closed_form_v`` with critic ``"none"``."""

TABLE_COLUMNS: tuple[str, ...] = (
    "estimator", "critic", "seed", "step", "stage", "true_mi",
    "mi", "objective", "joint", "marginal", "penalty",
)
"""The columns of :func:`run_gaussian_benchmark`'s table, in order."""


@dataclass(frozen=True)
class GaussianBenchmarkConfig:
    """One run of the Gaussian benchmark: the staircase, the critic, the estimators and the
    parameters of their bounds. The defaults are the authors' Gaussian setting.

    The bounds' parameters keep their names in :mod:`remi_tutorial.bounds`, and each field
    goes to every estimator whose bound takes a parameter of that name
    (:attr:`~remi_tutorial.bounds.BoundSpec.parameters`): ``alpha`` is the weight of all
    six regularized bounds, ``tau`` the clip of SMILE, ReSMILE and the NWJ family. A field
    set to ``None`` leaves each bound its own default. For the rare case where two
    estimators need different values of one parameter, ``overrides`` sets it per bound.

    Attributes:
        estimators: ``"all"``, a comma-separated string or bound names; stored as a tuple
            of names, in the order given.
        critic: ``"separable"`` or ``"concat"`` (:func:`make_critic`).
        seeds: the seeds to run. Seed ``s`` seeds both the critic's initial weights
            (``torch.manual_seed(s)``; every estimator of that seed starts from the same
            weights) and the stream of batches.
        levels: the true MI of each stage, in nats.
        stage_steps: optimizer steps per stage.
        dim: the dimension of ``x`` and ``y``.
        batch_size: pairs per batch; the marginal term uses its ``B (B - 1)`` off-diagonal
            pairs, InfoNCE its rows (so InfoNCE is capped at ``log B``).
        lr: Adam's learning rate (:func:`~remi_tutorial.train.make_adam`).
        hidden_dims: the critic's hidden widths.
        embed_dim: the separable critic's embedding dimension.
        batched: train every estimator and seed at once (default) or one after another
            with :func:`remi_tutorial.train.train` (the reference the batched run must agree
            with). On a CPU the concat critic trains faster one after another: its
            ``[E, N M, H]`` activations leave the caches (``scripts/bench_gaussian.py``).
        closed_form: variants of :data:`CLOSED_FORMS` (``"raw"``, ``"debiased"``) to add:
            the closed-form Gaussian MI of every batch of every seed, the same batches the
            bounds train on, as the estimator ``closed_form_<variant>`` with critic
            ``"none"`` (its ``objective`` is its ``mi``, ``joint`` and ``marginal`` the total
            correlations of :func:`~remi_tutorial.explicit.explicit_mi`, ``penalty`` 0).
            ``"debiased"`` needs ``batch_size > 2 dim``.
        closed_form_ridge: the ridge of the closed form's correlation matrices. The default
            0 gives the plug-in Gaussian MI of the sample covariances, whose bias the
            debiased variant removes exactly; ``batch_size <= 2 dim`` needs a ridge > 0.
        dtype: the critic's and the data's dtype.
        check_every: steps between copies of the record to the host.
        alpha: the penalty weight of the regularized bounds (the authors' Gaussian code: 1).
        target: ``C``, the target of ``log E_Q[e^T]`` in ReMINE, ReSMILE and ReInfoNCE.
        distance: the regularizer's distance, ``"squared"`` or ``"absolute"``.
        variant: the NWJ family's penalty: ``"paper"`` (``d(E_Q[e^(T-1)], 1)``, the paper's
            D_ReNWJ) or ``"authors_code"`` (see :func:`~remi_tutorial.bounds.renwj`).
        tau: the clipping threshold of SMILE, ReSMILE and the NWJ family; ``None`` (default):
            each bound's own, 5 for SMILE and no clipping for the NWJ family.
        clip: SMILE's clipped terms, ``"marginal"`` (default, as Song & Ermon) or ``"both"``.
        gradient: what SMILE trains on, ``"js"`` (default, as Song & Ermon) or ``"dv"``.
        log_baseline: ``log a`` of TUBA's constant baseline (0: ``a = 1``).
        report_shift: the shift at which JS reports NWJ.
        overrides: bound name -> parameters that replace the fields' values for that bound
            only, e.g. ``{"resmile": {"alpha": 0.1}}``.

    Raises:
        ValueError: for an unknown estimator, critic or closed-form variant, an override of a
            parameter its bound does not take, a value a bound rejects (checked by the bound
            itself), or settings that leave no run (no seeds, no levels, no steps).
    """

    estimators: str | Sequence[str] = "all"
    critic: str = "separable"
    seeds: Sequence[int] = (0,)
    levels: Sequence[float] = PAPER_LEVELS
    stage_steps: int = PAPER_STAGE_STEPS
    dim: int = 20
    batch_size: int = 64
    lr: float = 5e-4
    hidden_dims: Sequence[int] = (256, 256)
    embed_dim: int = 32
    batched: bool = True
    closed_form: Sequence[str] = ()
    closed_form_ridge: float = 0.0
    dtype: torch.dtype = torch.float32
    check_every: int = 100
    # the bounds' parameters
    alpha: float | None = 1.0
    target: float | None = 0.0
    distance: str | None = "squared"
    variant: str | None = "paper"
    tau: float | None = None
    clip: str | None = "marginal"
    gradient: str | None = "js"
    log_baseline: float | None = 0.0
    report_shift: float | None = 0.0
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self):
        normalized = dict(
            estimators=_estimator_names(self.estimators),
            seeds=_seed_list(self.seeds),
            levels=tuple(float(level) for level in self.levels),
            hidden_dims=tuple(int(width) for width in self.hidden_dims),
            closed_form=tuple(self.closed_form),
            overrides={name.lower(): dict(params) for name, params in self.overrides.items()},
        )
        for name, value in normalized.items():
            object.__setattr__(self, name, value)
        if self.critic not in CRITICS:
            raise ValueError(f"critic must be one of {', '.join(CRITICS)}, got {self.critic!r}")
        if not self.levels or min(self.levels) < 0:
            raise ValueError(f"levels must be non-negative MI values, got {list(self.levels)}")
        if self.stage_steps < 1:
            raise ValueError(f"stage_steps must be positive, got {self.stage_steps}")
        self._check_closed_form()
        self._check_overrides()
        stack_bounds(self.estimators, self.bound_params())  # the bounds check their values

    @property
    def steps(self) -> int:
        """The number of optimizer steps, ``stage_steps * len(levels)``."""
        return self.stage_steps * len(self.levels)

    def bound_params(self) -> dict[str, dict]:
        """Each estimator's keyword parameters, for :func:`~remi_tutorial.bounds.get_bound`
        or :func:`~remi_tutorial.stacked.stack_bounds`.

        Returns:
            ``{estimator name: {parameter: value}}`` with every parameter its bound takes:
            the field of that name (the bound's own default where the field is ``None``),
            then its ``overrides``.
        """
        params = {}
        for name in self.estimators:
            spec = bound_spec(name)
            defaults = spec.defaults()
            values = {key: getattr(self, key) for key in spec.parameters}
            params[name] = {
                **{key: defaults[key] if value is None else value for key, value in values.items()},
                **self.overrides.get(name, {}),
            }
        return params

    def _check_closed_form(self) -> None:
        variants = self.closed_form
        if any(v not in CLOSED_FORMS for v in variants) or len(set(variants)) != len(variants):
            raise ValueError(f"closed_form must list distinct variants of "
                             f"{', '.join(CLOSED_FORMS)}, got {list(variants)}")
        if self.closed_form_ridge < 0:
            raise ValueError(
                f"closed_form_ridge must be non-negative, got {self.closed_form_ridge}")
        singular = "debiased" in variants or self.closed_form_ridge == 0
        if variants and self.batch_size <= 2 * self.dim and singular:
            raise ValueError(
                f"the closed form of {self.batch_size} pairs in 2 x {self.dim} dimensions has a "
                f"singular covariance: it needs batch_size > {2 * self.dim}, or a "
                f"closed_form_ridge > 0 and no debiasing"
            )

    def _check_overrides(self) -> None:
        for name, params in self.overrides.items():
            taken = bound_spec(name).parameters  # raises ValueError for an unknown bound
            unknown = sorted(set(params) - set(taken))
            if unknown:
                raise ValueError(f"overrides: bound {name!r} takes no parameter "
                                 f"{', '.join(unknown)}; it takes {', '.join(taken) or 'none'}")


def _estimator_names(estimators: str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(estimators, str):
        estimators = BOUND_NAMES if estimators == "all" else estimators.split(",")
    names = tuple(name.strip().lower() for name in estimators)
    unknown = [name for name in names if name not in BOUND_NAMES]
    if unknown or not names:
        raise ValueError(
            f"unknown estimators {unknown or list(names)}; choose from "
            f"{', '.join(BOUND_NAMES)} or 'all'"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"estimators must not repeat, got {list(names)}")
    return names


def _seed_list(seeds: Sequence[int]) -> tuple[int, ...]:
    if isinstance(seeds, int) or not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must list distinct seeds, e.g. (0, 1, 2), got {seeds!r}")
    return tuple(int(seed) for seed in seeds)


def make_critic(
    kind: str, dim: int, *, hidden_dims: Sequence[int] = (256, 256), embed_dim: int = 32
) -> SeparableCritic | ConcatCritic:
    """The benchmark's critic: ``"separable"`` (two MLPs ``dim -> hidden -> embed_dim``, dot
    product) or ``"concat"`` (one MLP ``2 dim -> hidden -> 1`` on every pair)."""
    if kind == "separable":
        return SeparableCritic(dim, dim, hidden_dims, embed_dim)
    if kind == "concat":
        return ConcatCritic(dim, dim, hidden_dims)
    raise ValueError(f"critic must be one of {', '.join(CRITICS)}, got {kind!r}")


# --------------------------------------------------------------------------- the run


def run_gaussian_benchmark(
    config: GaussianBenchmarkConfig,
    *,
    device: torch.device | str | None = None,
    progress: bool = True,
    compile: bool | str = False,
) -> pd.DataFrame:
    """Train every estimator of ``config`` on the MI staircase and return what each reported.

    The batched and the sequential run of the same config compute the same thing (the
    tests check it), one much faster than the other.

    Args:
        config: the run.
        device: default :func:`remi_tutorial.train.default_device`.
        progress: show a progress bar.
        compile: compile each training step (``compile`` of :func:`remi_tutorial.train.train`):
            faster for the batched separable critic, after a compilation of up to a minute;
            slower for the concat critic on a CPU.

    Returns:
        A tidy table, one row per estimator, seed and step, with the columns
        :data:`TABLE_COLUMNS` (``mi`` is the reported estimate), the closed-form rows after
        the bounds', sorted by seed, estimator (in the config's order) and step; its
        ``attrs`` hold the config and every estimator's resolved bound parameters
        (``bound_params``). A run that diverges keeps its rows up to the last finite step
        and warns (see :func:`remi_tutorial.train.train`).
    """
    device = torch.device(device) if device is not None else default_device()
    train_estimators = _train_batched if config.batched else _train_sequential
    histories = train_estimators(config, device, progress, compile)
    histories += [_closed_form(config, variant, device, progress) for variant in config.closed_form]
    return _tidy_table(histories, config)


def _stream(config: GaussianBenchmarkConfig, seed: int, device: torch.device):
    """Seed ``seed``'s batches of the staircase: ``step -> Batch`` with ``x, y [N, dim]``."""
    schedule = functools.partial(mi_staircase, stage_steps=config.stage_steps, levels=config.levels)
    return gaussian_batches(config.dim, config.batch_size, schedule, seed=seed, device=device,
                            dtype=config.dtype)


def _initial_critic(config: GaussianBenchmarkConfig, seed: int, device: torch.device):
    """Seed ``seed``'s critic, with the initial weights every estimator of that seed gets."""
    torch.manual_seed(seed)
    critic = make_critic(config.critic, config.dim, hidden_dims=config.hidden_dims,
                         embed_dim=config.embed_dim)
    return critic.to(device, config.dtype)


def _stacked_batches(streams: Sequence, estimators_per_seed: int):
    """One batch per seed, each repeated for that seed's estimators: ``x [S E, N, d]``.

    With one seed the batch is passed as it is (``x [N, d]``), shared by every estimator.
    """
    if len(streams) == 1:
        return streams[0]

    def batches(step: int) -> Batch:
        parts = [stream(step) for stream in streams]
        x, y = (
            torch.stack([part.inputs[i] for part in parts]).repeat_interleave(
                estimators_per_seed, dim=0
            )
            for i in (0, 1)
        )
        first = parts[0]
        return Batch((x, y), first.positive, first.negative, first.true_mi)

    return batches


def _train_batched(
    config: GaussianBenchmarkConfig, device: torch.device, progress: bool, compile: bool | str
) -> list[pd.DataFrame]:
    """Every estimator of every seed at once: one stacked critic (estimator ``e`` of seed
    ``s`` at index ``s E + e``), one stacked bound, one Adam."""
    names, seeds = config.estimators, config.seeds
    originals = [_initial_critic(config, seed, device) for seed in seeds]
    critic = stacked_critic([original for original in originals for _ in names])
    result = train(
        critic, stack_bounds(list(names) * len(seeds), config.bound_params()),
        _stacked_batches([_stream(config, seed, device) for seed in seeds], len(names)),
        steps=config.steps, optimizer=make_adam(critic.parameters(), config.lr),
        check_every=config.check_every, progress=progress, compile=compile,
        description=f"{len(names)} estimators x {len(seeds)} seeds, {config.critic}",
    )
    history = result.history
    index = history.pop("estimator").to_numpy()
    history.insert(0, "seed", np.asarray(seeds)[index // len(names)])
    history.insert(0, "estimator", np.asarray(names)[index % len(names)])
    history.insert(1, "critic", config.critic)
    return [history]


def _train_sequential(
    config: GaussianBenchmarkConfig, device: torch.device, progress: bool, compile: bool | str
) -> list[pd.DataFrame]:
    """One estimator after another, each with its own critic and Adam."""
    params = config.bound_params()
    histories = []
    for seed in config.seeds:
        for name in config.estimators:
            critic = _initial_critic(config, seed, device)
            result = train(
                critic, get_bound(name, **params[name]), _stream(config, seed, device),
                steps=config.steps, optimizer=make_adam(critic.parameters(), config.lr),
                check_every=config.check_every, progress=progress, compile=compile,
                description=f"{name}, seed {seed}, {config.critic}",
            )
            history = result.history
            history.insert(0, "seed", seed)
            history.insert(0, "estimator", name)
            history.insert(1, "critic", config.critic)
            histories.append(history)
    return histories


def _closed_form(
    config: GaussianBenchmarkConfig, variant: str, device: torch.device, progress: bool
) -> pd.DataFrame:
    """The closed-form MI of every seed's batches: one evaluation of ``x [S, N, d]`` a step."""
    seeds = config.seeds
    objective = functools.partial(explicit_mi, ridge=config.closed_form_ridge,
                                  debias=CLOSED_FORMS[variant])
    result = train(
        PairedEmbeddings(), objective,
        _stacked_batches([_stream(config, seed, device) for seed in seeds], 1),
        steps=config.steps, check_every=config.check_every, progress=progress,
        description=f"closed form ({variant})",
    )
    history = result.history
    seed = (np.asarray(seeds)[history.pop("estimator").to_numpy()]
            if "estimator" in history else seeds[0])
    history.insert(0, "seed", seed)
    history.insert(0, "estimator", f"closed_form_{variant}")
    history.insert(1, "critic", "none")
    return history


def _tidy_table(histories: list[pd.DataFrame], config: GaussianBenchmarkConfig) -> pd.DataFrame:
    """The histories as one table: :data:`TABLE_COLUMNS`, sorted, with the settings in ``attrs``."""
    table = pd.concat(histories, ignore_index=True)
    table.insert(4, "stage", table.step // config.stage_steps)
    table = table[list(TABLE_COLUMNS)]
    names = list(config.estimators) + [f"closed_form_{variant}" for variant in config.closed_form]
    order = {name: position for position, name in enumerate(names)}
    table = table.sort_values(
        ["seed", "estimator", "step"], key=lambda column: column.map(order)
        if column.name == "estimator" else column, kind="stable",
    ).reset_index(drop=True)
    table.attrs.update(_settings(config))
    return table


def _settings(config: GaussianBenchmarkConfig) -> dict:
    """The config as plain data (the dtype by name) and every estimator's bound parameters."""
    return {**dataclasses.asdict(config), "dtype": str(config.dtype).removeprefix("torch."),
            "bound_params": config.bound_params()}


@dataclass(frozen=True)
class GaussianCellJob:
    """One cell of the command's sweep, a run of one critic and one seed, as a job of its own:
    ``job(config) -> log line``.

    The job skips a config whose table is already in ``folder``, and otherwise runs it
    (:func:`run_gaussian_benchmark`) and saves its table there
    (:func:`~remi_tutorial.benchmarks.tables.save_table`, atomically, with the environment it
    ran in). It holds only plain settings, so a launcher can pickle it
    (:mod:`~remi_tutorial.benchmarks.launch`). A cell keeps no checkpoint: a job that is
    interrupted runs its cell again from the start.

    Attributes:
        folder: the folder of the cells' tables.
        device: ``"auto"`` (:func:`~remi_tutorial.train.default_device` where the job runs),
            ``"cpu"``, ``"cuda"``, ...
        threads: torch's CPU threads.
        progress: show a progress bar.
        compile: compile each training step (see :func:`run_gaussian_benchmark`). It is not
            part of a cell's file name: a compiled run skips the cells an eager one finished,
            whose numbers differ only in the last digits.
    """

    folder: str
    device: str = "auto"
    threads: int = 1
    progress: bool = False
    compile: bool = False

    def path(self, config: GaussianBenchmarkConfig) -> Path:
        """``FOLDER/critic=C_seed=S_HASH.parquet``: the hash covers every setting of ``config``."""
        digest = hashlib.sha256(json.dumps(_settings(config), sort_keys=True).encode()).hexdigest()
        seeds = "-".join(str(seed) for seed in config.seeds)
        return Path(self.folder) / f"critic={config.critic}_seed={seeds}_{digest[:12]}.parquet"

    def __call__(self, config: GaussianBenchmarkConfig) -> str:
        path = self.path(config)
        name = f"{config.critic} seed {', '.join(str(seed) for seed in config.seeds)}"
        if path.exists():
            return f"skip {name}: already in {self.folder}"
        torch.set_num_threads(self.threads)
        start = time.perf_counter()
        table = run_gaussian_benchmark(config, device=cli.resolve_device(self.device),
                                       progress=self.progress, compile=self.compile)
        seconds = time.perf_counter() - start
        save_table(table, path, record={"wall_seconds": seconds})
        return f"{name}: {seconds:.1f} s"


def stage_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Bias, variance and MSE of the estimates in each stage of the staircase.

    For each critic, estimator and stage, over every step of the stage and every seed:
    ``bias = mean(mi - true_mi)``, ``variance = mean((mi - mean(mi))^2)`` and
    ``mse = mean((mi - true_mi)^2) = bias^2 + variance``.

    Args:
        table: the output of :func:`run_gaussian_benchmark` (columns ``critic, estimator,
            stage, true_mi, mi``).

    Returns:
        A table with one row per critic, estimator and stage, columns ``critic, estimator,
        stage, true_mi, mean, bias, variance, mse, samples``; estimators in the order they
        first appear.
    """
    missing = {"critic", "estimator", "stage", "true_mi", "mi"} - set(table.columns)
    if missing:
        raise ValueError(f"the table lacks the columns {sorted(missing)}")
    if table.groupby(["stage"]).true_mi.nunique().gt(1).any():
        raise ValueError("the true MI must be constant within each stage")
    frame = table[["critic", "estimator", "stage", "true_mi", "mi"]].assign(
        error=table.mi - table.true_mi, squared_error=(table.mi - table.true_mi) ** 2
    )
    grouped = frame.groupby(["critic", "estimator", "stage"], sort=False)
    summary = grouped.agg(
        true_mi=("true_mi", "first"),
        mean=("mi", "mean"),
        bias=("error", "mean"),
        variance=("mi", lambda values: float(np.var(values))),
        mse=("squared_error", "mean"),
        samples=("mi", "size"),
    ).reset_index()
    return summary


# --------------------------------------------------------------------------- command line

EXAMPLES = """examples:
  # Figure 4: the twelve estimators on the paper's staircase, one seed (about 8 min on a CPU core)
  %(prog)s --estimators all --seeds 0 --out results/gaussian.parquet
  # three seeds, the concat critic too, and the closed form of every batch (a GPU job)
  %(prog)s --critic separable concat --seeds 0 1 2 --closed-form raw debiased
  # a quick look: two estimators, three short stages, the regularizer at weight 0.1
  %(prog)s --estimators mine,remine --levels 2 4 6 --stage-steps 300 --alpha 0.1 \\
      --out results/quick.csv
"""


def _choices(parameter: str) -> tuple[str, ...]:
    """The values a bound's string parameter takes, read from its annotation (a ``Literal``)."""
    specs = [bound_spec(name) for name in BOUND_NAMES]
    spec = next(spec for spec in specs if parameter in spec.parameters)
    return typing.get_args(typing.get_type_hints(spec.function)[parameter])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m remi_tutorial.benchmarks gaussian``: the fields of
    :class:`GaussianBenchmarkConfig`, with its defaults."""
    defaults = GaussianBenchmarkConfig()
    parser.add_argument("--critic", nargs="+", choices=CRITICS, default=[defaults.critic],
                        help="the critic of each run; the closed form comes with the first")
    parser.add_argument("--estimators", default="all",
                        help=f"'all' or comma-separated bound names ({', '.join(BOUND_NAMES)})")
    cli.add_seeds(parser, default=defaults.seeds)
    parser.add_argument("--levels", type=float, nargs="+", default=list(defaults.levels),
                        help="the true MI of each stage, in nats")
    parser.add_argument("--stage-steps", type=int, default=defaults.stage_steps,
                        help="optimizer steps per stage")
    parser.add_argument("--dim", type=int, default=defaults.dim, help="the dimension of x and y")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size,
                        help="pairs per batch")
    parser.add_argument("--lr", type=float, default=defaults.lr, help="Adam's learning rate")
    parser.add_argument("--hidden-dims", type=int, nargs="+", default=list(defaults.hidden_dims),
                        help="the critic's hidden widths")
    parser.add_argument("--embed-dim", type=int, default=defaults.embed_dim,
                        help="the separable critic's embedding dimension")
    parser.add_argument("--batched", action=argparse.BooleanOptionalAction,
                        default=defaults.batched,
                        help="train every estimator and seed at once (--no-batched: one after "
                             "another; scripts/bench_gaussian.py compares their speed)")
    parser.add_argument("--closed-form", nargs="+", choices=tuple(CLOSED_FORMS), default=[],
                        help="also evaluate the closed-form Gaussian MI of every batch, raw "
                             "and/or debiased (critic 'none', computed once)")
    parser.add_argument("--closed-form-ridge", type=float, default=defaults.closed_form_ridge,
                        help="the closed form's ridge (0: the plug-in estimate)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        help="the critic's and the data's dtype")
    bounds = parser.add_argument_group(
        "the bounds' parameters", "Each goes to every estimator whose bound takes it.")
    bounds.add_argument("--alpha", type=float, default=defaults.alpha,
                        help="the penalty weight of the regularized bounds")
    bounds.add_argument("--target", type=float, default=defaults.target,
                        help="C, the target of log E_Q[e^T] (ReMINE, ReSMILE, ReInfoNCE)")
    bounds.add_argument("--distance", choices=_choices("distance"), default=defaults.distance,
                        help="the regularizer's distance")
    bounds.add_argument("--variant", choices=_choices("variant"), default=defaults.variant,
                        help="the NWJ family's penalty: the paper's, or the authors' code's")
    bounds.add_argument("--tau", type=float, default=defaults.tau,
                        help="the clip of SMILE's and the NWJ family's scores (None: each "
                             "bound's own, 5 for SMILE, no clip for the NWJ family)")
    bounds.add_argument("--clip", choices=_choices("clip"), default=defaults.clip,
                        help="SMILE: clip the marginal scores only, or both terms")
    bounds.add_argument("--gradient", choices=_choices("gradient"), default=defaults.gradient,
                        help="SMILE: train the critic on the JS bound, or on the clipped DV value")
    bounds.add_argument("--log-baseline", type=float, default=defaults.log_baseline,
                        help="log a, TUBA's constant baseline")
    bounds.add_argument("--report-shift", type=float, default=defaults.report_shift,
                        help="the shift at which JS reports NWJ")
    cli.add_out(parser, default="results/gaussian.parquet")
    parser.add_argument("--results", default=None,
                        help="the folder of the cells' tables, one per critic and seed (a later "
                             "call skips the finished ones); OUT without suffix + '_cells' if None")
    cli.add_runtime(parser)
    parser.add_argument("--compile", action="store_true",
                        help="compile each training step with torch.compile (CUDA graphs on a "
                             "GPU): faster for the batched separable critic after up to a "
                             "minute of compiling, slower for the concat critic on a CPU; the "
                             "floats differ in the last digits")
    add_launcher_arguments(parser)


def _config(args: argparse.Namespace, critic: str, seed: int, closed_form: Sequence[str]):
    """The :class:`GaussianBenchmarkConfig` of one cell: the options of the same names, one
    critic and one seed."""
    fields = {item.name for item in dataclasses.fields(GaussianBenchmarkConfig)}
    given = {name: value for name, value in vars(args).items() if name in fields}
    return GaussianBenchmarkConfig(**{**given, "critic": critic, "seeds": (seed,),
                                      "closed_form": closed_form,
                                      "dtype": getattr(torch, args.dtype)})


def main(args: argparse.Namespace) -> None:
    """Run the benchmark's cells, one per critic and seed (``--launcher`` says where), then
    save the table of all of them and print its per-stage summary."""
    started = time.perf_counter()
    cli.apply_threads(args)
    if args.results is None:
        out = Path(args.out)
        args.results = str(out.with_name(f"{out.stem}_cells"))
    # The closed form uses no critic: its rows come with the first critic's cells only.
    configs = [_config(args, critic, seed, args.closed_form if position == 0 else ())
               for position, critic in enumerate(args.critic) for seed in sorted(args.seeds)]
    local = args.launcher == "local"
    job = GaussianCellJob(args.results, args.device, args.threads,
                          progress=local and not args.no_progress, compile=args.compile)
    todo = []
    for config in configs:
        if job.path(config).exists():
            print(f"skip {config.critic} seed {config.seeds[0]}: already in {args.results}")
        else:
            todo.append(config)
    if not launch(todo, job, args, name="gaussian"):
        print("the table is written once every cell has finished: run this command again then")
        return
    table = pd.concat([load_table(job.path(config)) for config in configs], ignore_index=True)
    table.attrs = {**_settings(configs[0]), "seeds": sorted(args.seeds),
                   "critic": list(args.critic)}
    cli.write_result(table, args.out, started=started)
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(stage_summary(table).round(3).to_string(index=False))
