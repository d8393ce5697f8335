"""The Gaussian benchmark: every estimator on the MI staircase (the paper's Figure 4).

``x ~ N(0, I_d)``, ``y = rho x + sqrt(1 - rho^2) eps``, so ``I(X; Y) = -(d/2) log(1 - rho^2)``;
the true MI steps through ``levels`` (2, 4, 6, 8, 10 nats), ``stage_steps`` optimizer steps
each, with a fresh batch every step (Poole et al., 2019; Song & Ermon, 2020; Choi & Lee,
2022). By default all twelve estimators, and every seed, train *at once*: one stacked critic
(:mod:`remi_tutorial.stacked`) scores one shared batch per seed, one stacked bound evaluates
the twelve losses, one fused Adam updates every weight. Every estimator of a seed starts
from the same critic weights and sees the same batches, so two panels of the figure differ
only in their loss.

Beside the bounds, the table can hold the closed-form Gaussian MI of each batch
(:func:`~remi_tutorial.explicit.explicit_mi` evaluated by the same training loop on
:class:`~remi_tutorial.explicit.PairedEmbeddings`, the identity: an estimator with no critic
and nothing to train), on the same batches, as rows of its own (``closed_form=...``).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..bounds import BOUND_NAMES, get_bound
from ..critics import ConcatCritic, SeparableCritic
from ..explicit import PairedEmbeddings, explicit_mi
from ..stacked import StackedConcatCritic, StackedSeparableCritic, stack_bounds
from ..tasks import Batch, gaussian_batches, mi_staircase
from ..train import default_device, train

__all__ = [
    "PAPER_LEVELS",
    "PAPER_STAGE_STEPS",
    "CRITICS",
    "CLOSED_FORMS",
    "gaussian_bound_params",
    "make_critic",
    "run_gaussian_benchmark",
    "stage_summary",
    "save_result",
    "load_result",
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


def gaussian_bound_params(
    *,
    alpha: float = 1.0,
    target: float = 0.0,
    distance: str = "squared",
    nwj_penalty: str = "paper",
    smile_tau: float = 5.0,
    smile_clip: str = "marginal",
    smile_gradient: str = "js",
    tuba_log_baseline: float = 0.0,
    js_report_shift: float = 0.0,
) -> dict[str, dict]:
    """The keyword parameters of the twelve bounds in the Gaussian benchmark.

    Defaults: the regularizer weight of the authors' Gaussian experiments (``alpha = 1``)
    with the DV target ``C = 0`` and the squared distance; the paper's D_ReNWJ penalty
    ``d(E_Q[e^(T-1)], 1)`` for the NWJ family; SMILE as Song & Ermon published it
    (``tau = 5``, only the marginal scores clipped, the critic trained on the JS bound);
    TUBA with the constant baseline ``a = 1``; JS reporting NWJ at the critic.

    Args:
        alpha: the penalty weight of every regularized bound.
        target: ``C``, the target of ``log E_Q[e^T]`` in ReMINE, ReSMILE and ReInfoNCE.
        distance: ``"squared"`` or ``"absolute"``.
        nwj_penalty: ``"paper"`` or ``"authors_code"``, see :func:`remi_tutorial.bounds.renwj`.
        smile_tau: SMILE's clipping threshold.
        smile_clip: ``"marginal"`` or ``"both"``, see :func:`remi_tutorial.bounds.smile`.
        smile_gradient: ``"js"`` or ``"dv"``.
        tuba_log_baseline: ``log a`` of TUBA's constant baseline.
        js_report_shift: the shift at which JS reports NWJ.

    Returns:
        bound name -> parameters, for :func:`remi_tutorial.stacked.stack_bounds` or
        :func:`remi_tutorial.bounds.get_bound`.
    """
    dv_penalty = dict(alpha=alpha, target=target, distance=distance)
    nwj_family_penalty = dict(alpha=alpha, distance=distance, variant=nwj_penalty)
    smile = dict(tau=smile_tau, clip=smile_clip, gradient=smile_gradient)
    return {
        "mine": {},
        "smile": smile,
        "infonce": {},
        "nwj": {},
        "tuba": dict(log_baseline=tuba_log_baseline),
        "js": dict(report_shift=js_report_shift),
        "remine": dv_penalty,
        "resmile": {**smile, **dv_penalty},
        "reinfonce": dv_penalty,
        "renwj": nwj_family_penalty,
        "retuba": dict(log_baseline=tuba_log_baseline, **nwj_family_penalty),
        "rejs": dict(report_shift=js_report_shift, **nwj_family_penalty),
    }


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


def _estimator_names(estimators: str | Sequence[str]) -> list[str]:
    if isinstance(estimators, str):
        estimators = BOUND_NAMES if estimators == "all" else estimators.split(",")
    names = [name.strip().lower() for name in estimators]
    unknown = [name for name in names if name not in BOUND_NAMES]
    if unknown or not names:
        raise ValueError(
            f"unknown estimators {unknown or names}; choose from {', '.join(BOUND_NAMES)} or 'all'"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"estimators must not repeat, got {names}")
    return names


def _seed_list(seeds: int | Sequence[int]) -> list[int]:
    seeds = list(range(seeds)) if isinstance(seeds, int) else [int(seed) for seed in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a positive count or distinct integers, got {seeds}")
    return seeds


def _stacked_batches(
    streams: Sequence, estimators_per_seed: int
) -> Callable[[int], Batch]:
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


def run_gaussian_benchmark(
    *,
    estimators: str | Sequence[str] = "all",
    critic: str = "separable",
    seeds: int | Sequence[int] = 1,
    levels: Sequence[float] = PAPER_LEVELS,
    stage_steps: int = PAPER_STAGE_STEPS,
    dim: int = 20,
    batch_size: int = 64,
    lr: float = 5e-4,
    hidden_dims: Sequence[int] = (256, 256),
    embed_dim: int = 32,
    bound_params: Mapping[str, Mapping] | None = None,
    batched: bool = True,
    closed_form: Sequence[str] = (),
    closed_form_ridge: float = 0.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    check_every: int = 100,
    progress: bool = True,
) -> pd.DataFrame:
    """Train every estimator on the MI staircase and return what each one reported.

    Seed ``s`` seeds both the critic's initial weights (``torch.manual_seed(s)``; every
    estimator of that seed starts from the same weights) and the stream of batches, so the
    batched and the sequential run of the same seeds compute the same thing.

    Args:
        estimators: ``"all"``, a comma-separated string, or bound names.
        critic: ``"separable"`` or ``"concat"``.
        seeds: a number of seeds (``0 .. seeds - 1``) or the seeds themselves.
        levels: the true MI of each stage, in nats.
        stage_steps: optimizer steps per stage.
        dim: the dimension of ``x`` and ``y``.
        batch_size: pairs per batch; the marginal term uses its ``B (B - 1)`` off-diagonal
            pairs, InfoNCE its rows (so InfoNCE is capped at ``log B``).
        lr: Adam's learning rate.
        hidden_dims: the critic's hidden widths.
        embed_dim: the separable critic's embedding dimension.
        bound_params: bound name -> parameters; default :func:`gaussian_bound_params`. A
            mapping given here replaces the defaults of the names it contains.
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
        device: default :func:`remi_tutorial.train.default_device`.
        dtype: the critic's and the data's dtype.
        check_every: steps between copies of the record to the host.
        progress: show a progress bar.

    Returns:
        A tidy table, one row per estimator, seed and step, with columns
        ``estimator, critic, seed, step, stage, true_mi, mi, objective, joint, marginal,
        penalty`` (``mi`` is the reported estimate), the closed-form rows after the bounds'.
        A run that diverges keeps its rows up to the last finite step and warns (see
        :func:`remi_tutorial.train.train`).
    """
    names = _estimator_names(estimators)
    closed_form = list(closed_form)
    unknown = [variant for variant in closed_form if variant not in CLOSED_FORMS]
    if unknown or len(set(closed_form)) != len(closed_form):
        raise ValueError(f"closed_form must list distinct variants of {', '.join(CLOSED_FORMS)}, "
                         f"got {closed_form}")
    if closed_form_ridge < 0:
        raise ValueError(f"closed_form_ridge must be non-negative, got {closed_form_ridge}")
    if closed_form and batch_size <= 2 * dim and ("debiased" in closed_form or closed_form_ridge == 0):
        raise ValueError(f"the closed form of {batch_size} pairs in 2 x {dim} dimensions has a "
                         f"singular covariance: it needs batch_size > {2 * dim}, or a "
                         f"closed_form_ridge > 0 and no debiasing")
    seed_list = _seed_list(seeds)
    if len(levels) == 0 or min(levels) < 0:
        raise ValueError(f"levels must be non-negative MI values, got {list(levels)}")
    if stage_steps < 1:
        raise ValueError(f"stage_steps must be positive, got {stage_steps}")
    make_critic(critic, dim, hidden_dims=hidden_dims, embed_dim=embed_dim)  # validates kind
    params = {**gaussian_bound_params(), **(bound_params or {})}
    device = torch.device(device) if device is not None else default_device()
    steps = stage_steps * len(levels)
    schedule = functools.partial(mi_staircase, stage_steps=stage_steps, levels=tuple(levels))

    def stream(seed: int):
        return gaussian_batches(dim, batch_size, schedule, seed=seed, device=device, dtype=dtype)

    def initial_critic(seed: int):
        torch.manual_seed(seed)
        return make_critic(critic, dim, hidden_dims=hidden_dims, embed_dim=embed_dim).to(
            device, dtype
        )

    def optimizer(module: torch.nn.Module) -> torch.optim.Optimizer:
        return torch.optim.Adam(module.parameters(), lr=lr, fused=True)

    histories = []
    if batched:
        stacked_class = StackedSeparableCritic if critic == "separable" else StackedConcatCritic
        originals = [initial_critic(seed) for seed in seed_list]
        stacked = stacked_class([original for original in originals for _ in names])
        bound = stack_bounds(names * len(seed_list), params)
        batches = _stacked_batches([stream(seed) for seed in seed_list], len(names))
        result = train(
            stacked, bound, batches, steps=steps, optimizer=optimizer(stacked),
            check_every=check_every, progress=progress,
            description=f"{len(names)} estimators x {len(seed_list)} seeds, {critic}",
        )
        history = result.history
        index = history.pop("estimator").to_numpy()
        history.insert(0, "seed", np.asarray(seed_list)[index // len(names)])
        history.insert(0, "estimator", np.asarray(names)[index % len(names)])
        histories.append(history)
    else:
        for seed in seed_list:
            for name in names:
                model = initial_critic(seed)
                result = train(
                    model, get_bound(name, **params.get(name, {})), stream(seed), steps=steps,
                    optimizer=optimizer(model), check_every=check_every, progress=progress,
                    description=f"{name}, seed {seed}, {critic}",
                )
                history = result.history
                history.insert(0, "seed", seed)
                history.insert(0, "estimator", name)
                histories.append(history)
    for history in histories:
        history.insert(1, "critic", critic)
    for variant in closed_form:
        # One evaluation of every seed at once: x [S, N, d] gives one estimate per seed.
        result = train(
            PairedEmbeddings(),
            functools.partial(explicit_mi, ridge=closed_form_ridge, debias=CLOSED_FORMS[variant]),
            _stacked_batches([stream(seed) for seed in seed_list], 1), steps=steps,
            check_every=check_every, progress=progress, description=f"closed form ({variant})",
        )
        history = result.history
        seeds = (np.asarray(seed_list)[history.pop("estimator").to_numpy()]
                 if "estimator" in history else seed_list[0])
        history.insert(0, "seed", seeds)
        history.insert(0, "estimator", f"closed_form_{variant}")
        history.insert(1, "critic", "none")
        histories.append(history)
    names = names + [f"closed_form_{variant}" for variant in closed_form]
    table = pd.concat(histories, ignore_index=True)
    table.insert(4, "stage", table.step // stage_steps)
    table = table[list(TABLE_COLUMNS)]
    order = {name: position for position, name in enumerate(names)}
    table = table.sort_values(
        ["seed", "estimator", "step"], key=lambda column: column.map(order)
        if column.name == "estimator" else column, kind="stable",
    ).reset_index(drop=True)
    table.attrs.update(
        levels=list(map(float, levels)), stage_steps=stage_steps, dim=dim,
        batch_size=batch_size, lr=lr, hidden_dims=list(hidden_dims), embed_dim=embed_dim,
        bound_params=params, batched=batched, closed_form=closed_form,
        closed_form_ridge=closed_form_ridge,
    )
    return table


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


# --------------------------------------------------------------------------- files


def save_result(table: pd.DataFrame, path: str | Path, *, record: Mapping | None = None) -> Path:
    """Write the table to ``path`` (Parquet) and, beside it, ``path.json``: the settings in
    ``table.attrs`` and ``record`` (the command, the environment, the wall time)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(path, index=False)
    sidecar = path.with_suffix(path.suffix + ".json")
    sidecar.write_text(json.dumps({"settings": table.attrs, **(record or {})}, indent=2,
                                  default=str))
    return path


def load_result(path: str | Path) -> pd.DataFrame:
    """Read a table written by :func:`save_result`, with its settings in ``attrs``."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"no result at {path}")
    table = pd.read_parquet(path)
    sidecar = path.with_suffix(path.suffix + ".json")
    if sidecar.exists():
        table.attrs.update(json.loads(sidecar.read_text()).get("settings", {}))
    return table


def _git_revision() -> str | None:
    """The checked-out commit of the package's repository (``+dirty`` with local edits)."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "remi_tutorial"],
                               cwd=root, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + ("+dirty" if dirty.strip() else "")


def environment() -> dict:
    """What produced a result: versions, commit, machine and torch's thread count."""
    return {
        "git_commit": _git_revision(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``python -m remi_tutorial.benchmarks gaussian``."""
    parser.add_argument("--critic", nargs="+", choices=CRITICS, default=["separable"])
    parser.add_argument("--estimators", default="all",
                        help="'all' or comma-separated bound names (default: all)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds 0 .. N-1 (default: 1)")
    parser.add_argument("--levels", type=float, nargs="+", default=list(PAPER_LEVELS))
    parser.add_argument("--stage-steps", type=int, default=PAPER_STAGE_STEPS)
    parser.add_argument("--dim", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--hidden-dims", type=int, nargs="+", default=[256, 256])
    parser.add_argument("--embed-dim", type=int, default=32)
    parser.add_argument("--alpha", type=float, default=1.0, help="regularizer weight")
    parser.add_argument("--target", type=float, default=0.0, help="DV-family target C")
    parser.add_argument("--distance", choices=("squared", "absolute"), default="squared")
    parser.add_argument("--nwj-penalty", choices=("paper", "authors_code"), default="paper")
    parser.add_argument("--smile-tau", type=float, default=5.0)
    parser.add_argument("--smile-clip", choices=("marginal", "both"), default="marginal")
    parser.add_argument("--smile-gradient", choices=("js", "dv"), default="js")
    parser.add_argument("--tuba-log-baseline", type=float, default=0.0)
    parser.add_argument("--js-report-shift", type=float, default=0.0)
    parser.add_argument("--closed-form", nargs="+", choices=tuple(CLOSED_FORMS), default=[],
                        help="also evaluate the closed-form Gaussian MI of every batch, raw "
                             "and/or debiased (critic 'none', computed once)")
    parser.add_argument("--closed-form-ridge", type=float, default=0.0,
                        help="the closed form's ridge (default 0: the plug-in estimate)")
    parser.add_argument("--sequential", action="store_true",
                        help="train the estimators one after another instead of at once "
                             "(faster for the concat critic on a CPU)")
    parser.add_argument("--device", default=None, help="default: the first GPU, else the CPU")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: small matmuls on a shared CPU)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--out", default="results/gaussian.parquet",
                        help="the table (Parquet); settings and environment go to OUT.json")


def main(args: argparse.Namespace) -> None:
    """Run the benchmark and save the table, with the command and environment beside it."""
    torch.set_num_threads(args.threads)
    params = gaussian_bound_params(
        alpha=args.alpha, target=args.target, distance=args.distance,
        nwj_penalty=args.nwj_penalty, smile_tau=args.smile_tau, smile_clip=args.smile_clip,
        smile_gradient=args.smile_gradient, tuba_log_baseline=args.tuba_log_baseline,
        js_report_shift=args.js_report_shift,
    )
    tables, wall_times = [], {}
    for position, critic in enumerate(args.critic):
        start = time.perf_counter()
        tables.append(run_gaussian_benchmark(
            estimators=args.estimators, critic=critic, seeds=args.seeds, levels=args.levels,
            stage_steps=args.stage_steps, dim=args.dim, batch_size=args.batch_size, lr=args.lr,
            hidden_dims=args.hidden_dims, embed_dim=args.embed_dim, bound_params=params,
            batched=not args.sequential,
            # The closed form uses no critic: its rows come with the first critic's run only.
            closed_form=args.closed_form if position == 0 else (),
            closed_form_ridge=args.closed_form_ridge,
            device=args.device, dtype=getattr(torch, args.dtype), progress=not args.no_progress,
        ))
        wall_times[critic] = time.perf_counter() - start
        print(f"{critic}: {wall_times[critic]:.1f} s", flush=True)
    table = pd.concat(tables, ignore_index=True)
    table.attrs = tables[0].attrs
    record = {
        "command": "python -m remi_tutorial.benchmarks " + shlex.join(sys.argv[1:]),
        "wall_seconds": wall_times,
        "environment": environment(),
    }
    path = save_result(table, args.out, record=record)
    print(f"wrote {path} ({len(table)} rows) and {path}.json")
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(stage_summary(table).round(3).to_string(index=False))
