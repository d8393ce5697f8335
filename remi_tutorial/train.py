"""One training loop for every critic, bound and task.

``train`` maximizes ``bound(critic(*batch.inputs), batch.positive, batch.negative).objective``
and records every field of the :class:`~remi_tutorial.bounds.Bound` at every step. The
record lives on the critic's device and is copied to the host every ``check_every`` steps,
so a step never waits for the device. At each copy the loop checks that the recorded
objectives are finite; a run whose loss turns NaN or infinite stops there with a warning,
keeps the history up to its last finite step and restores the critic's last good weights.
In a stack of estimators whose weights are slices of one stacked critic (the critics of
:mod:`~remi_tutorial.stacked`), only the estimator that diverged stops: its slices of the
weights and of the optimizer's state return to the last check and stay there, and the
others train on.

Given a ``checkpoint`` file, the loop writes its whole state there every so many steps
(atomically: a temporary file, then a rename) and resumes from it when it exists, so a run
that is killed and started again ends exactly as an uninterrupted one.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.torch_version import TorchVersion
from tqdm import TqdmWarning

with warnings.catch_warnings():
    # Without ipywidgets, tqdm.auto falls back to a text bar and warns about it; the text
    # bar is what we want there (Colab has ipywidgets and gets the widget).
    warnings.simplefilter("ignore", TqdmWarning)
    from tqdm.auto import tqdm

from .bounds import Bound
from .tasks import Batch

__all__ = ["TrainResult", "HISTORY_FIELDS", "train", "make_adam", "default_device",
           "CompileFailedWarning"]

HISTORY_FIELDS: tuple[str, ...] = Bound._fields
"""The per-step columns ``train`` records besides ``step`` and ``true_mi``."""


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        history: one row per completed step (and estimator, for stacked estimators):
            ``step``, (``estimator``,) ``true_mi`` and the :class:`~remi_tutorial.bounds.Bound` fields
            ``mi, objective, joint, marginal, penalty``.
        diverged_at: the step at which training stopped because its objective (every
            estimator's still training, for a stack) was not finite, or ``None`` if it ran
            to the end.
        message: a one-line summary of how the run ended.
        diverged: estimator index -> the first step whose objective was not finite, for
            every estimator that diverged (index 0 for a single estimator). The history of
            an estimator that diverged ends the step before.
    """

    history: pd.DataFrame
    diverged_at: int | None
    message: str
    diverged: dict[int, int] = field(default_factory=dict)


def _tidy(records: torch.Tensor, true_mis: list[float]) -> pd.DataFrame:
    """``records [steps, 5, *estimators]`` -> one row per step (and estimator)."""
    steps = records.shape[0]
    estimators = int(np.prod(records.shape[2:]))  # 1 for a single estimator
    values = records.double().reshape(steps, len(HISTORY_FIELDS), estimators)  # [steps, 5, E]
    table = pd.DataFrame(
        values.permute(0, 2, 1).reshape(-1, len(HISTORY_FIELDS)).numpy(),
        columns=list(HISTORY_FIELDS),
    )
    table.insert(0, "true_mi", np.repeat(np.asarray(true_mis[:steps], dtype=float), estimators))
    if records.dim() > 2:
        table.insert(0, "estimator", np.tile(np.arange(estimators), steps))
    table.insert(0, "step", np.repeat(np.arange(steps), estimators))
    return table


class _Records:
    """What a run has recorded: the checked chunks on the host, the current chunk on the device.

    A step writes its :class:`~remi_tutorial.bounds.Bound` as one tensor ``[5, *estimators]``
    into a device buffer of ``check_every`` rows (allocated at the first step, when its shape
    is known), so it never waits for the device; :meth:`copy_chunk` brings a chunk to the host.
    """

    def __init__(self, check_every: int, rows: list[torch.Tensor], true_mis: list[float]):
        self.check_every = check_every
        self.rows = rows  # the kept chunks, on the host: [steps_i, 5, *estimators] each
        self.true_mis = true_mis  # one per step trained, kept or not
        self._buffer: torch.Tensor | None = None  # [check_every, 5, *estimators]

    def write(self, offset: int, result: Bound, true_mi: float) -> None:
        """Record step ``offset`` of the current chunk."""
        record = torch.stack(result).detach()
        if self._buffer is None:
            self._buffer = record.new_empty(self.check_every, *record.shape)
        self._buffer[offset] = record
        self.true_mis.append(true_mi)

    def copy_chunk(self, chunk: int) -> torch.Tensor:
        """The current chunk's first ``chunk`` records, on the host: ``[chunk, 5, *estimators]``."""
        return self._buffer[:chunk].to("cpu", copy=True)

    def history(self, diverged: dict[int, int]) -> pd.DataFrame:
        """The tidy history, without the rows of an estimator from the step it diverged."""
        table = _tidy(torch.cat(self.rows), self.true_mis)
        if "estimator" in table and diverged:
            stops = table.estimator.map(diverged).fillna(np.inf)
            table = table[table.step < stops].reset_index(drop=True)
        return table


class _Frozen:
    """The estimators of a stacked critic that diverged, held at their last good state.

    It applies to a critic with ``num_estimators = E`` whose every parameter is ``[E, ...]``
    (the stacked critics of :mod:`~remi_tutorial.stacked`): estimator ``e`` owns slice ``e`` of
    each parameter and of each optimizer state tensor of the parameter's shape (Adam's two
    moments). After every optimizer step, :meth:`hold` writes the frozen estimators' slices
    back: masking their gradient would not do, as Adam moves a weight with a zero gradient.
    Optimizer state shared by the whole tensor (Adam's step count) cannot be held per slice.
    """

    def __init__(self, critic: nn.Module, optimizer: torch.optim.Optimizer | None):
        self.parameters = list(critic.parameters())
        self.optimizer = optimizer
        self.index: torch.Tensor | None = None  # the frozen estimators
        self.values: list[torch.Tensor] = []  # their slices, in the order of _tensors()

    @staticmethod
    def applies(critic: nn.Module, estimators: int) -> bool:
        """Whether ``critic``'s weights split into ``estimators`` slices."""
        parameters = list(critic.parameters())
        return (
            estimators > 1
            and getattr(critic, "num_estimators", None) == estimators
            and bool(parameters)
            and all(p.dim() > 0 and p.shape[0] == estimators for p in parameters)
        )

    def _tensors(self) -> list[torch.Tensor | None]:
        """Each parameter, then its optimizer state tensors of its shape (``None`` where the
        optimizer has not made them yet)."""
        tensors: list[torch.Tensor | None] = []
        for parameter in self.parameters:
            tensors.append(parameter)
            state = self.optimizer.state.get(parameter, {}) if self.optimizer else {}
            for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "momentum_buffer"):
                value = state.get(key)
                tensors.append(value if isinstance(value, torch.Tensor)
                               and value.shape == parameter.shape else None)
        return tensors

    def snapshot(self) -> list[torch.Tensor | None]:
        """A copy of every tensor of :meth:`_tensors`."""
        return [None if t is None else t.detach().clone() for t in self._tensors()]

    def freeze(self, estimators: list[int], snapshot: list[torch.Tensor | None]) -> None:
        """Return ``estimators`` to ``snapshot`` (optimizer state it lacks: zeros, the state
        of a fresh optimizer) and hold them, with those frozen before, from now on."""
        new = torch.tensor(estimators, device=self.parameters[0].device)
        with torch.no_grad():
            for tensor, saved in zip(self._tensors(), snapshot):
                if tensor is not None:
                    tensor.index_copy_(0, new, torch.zeros_like(tensor[new]) if saved is None
                                       else saved[new])
        self.index = new if self.index is None else torch.cat([self.index, new])
        self.values = [None if t is None else t.detach()[self.index].clone()
                       for t in self._tensors()]

    def hold(self) -> None:
        """Write the frozen estimators' slices back (after an optimizer step)."""
        if self.index is None:
            return
        with torch.no_grad():
            for tensor, value in zip(self._tensors(), self.values):
                if tensor is not None and value is not None:
                    tensor.index_copy_(0, self.index, value)


class CompileFailedWarning(RuntimeWarning):
    """:func:`train` was asked to compile, compiling failed, and the run went on eagerly."""


# torch.compile keeps at most ``recompile_limit`` (8) compiled versions of one function and
# quietly runs the others eagerly; every run's compiled function is ``_Evaluation._evaluate``,
# and each bound, critic shape or batch shape needs a version of its own (the twelve bounds
# trained one after another need twelve), so a compiled run raises the limit to this.
RECOMPILE_LIMIT = 256


class _Evaluation:
    """``batch -> bound(critic(*batch.inputs), batch.positive, batch.negative)``, eager or
    compiled with ``torch.compile``.

    A batch evaluated with ``check=True`` (the first of a run) always runs eagerly, so the
    bound's value checks see it. The compiled function starts from the second batch; if
    compiling fails (no C++ compiler for the CPU, no Triton for a GPU), it warns once and
    the run goes on eagerly (:meth:`fall_back`).
    """

    def __init__(self, critic: nn.Module, bound: Callable[..., Bound], compile: bool | str):
        self.critic, self.bound = critic, bound
        self.compiled = None
        self.cuda_graphs = False
        if compile:
            device = next(critic.parameters(), torch.empty(0)).device
            # True: CUDA graphs on a GPU (launch overhead gone), inductor's kernels elsewhere
            mode = compile if isinstance(compile, str) else (
                "reduce-overhead" if device.type == "cuda" else "default")
            self.cuda_graphs = device.type == "cuda" and mode in ("reduce-overhead",
                                                                  "max-autotune")
            config = torch._dynamo.config
            config.recompile_limit = max(config.recompile_limit, RECOMPILE_LIMIT)
            self.compiled = torch.compile(self._evaluate, mode=mode, dynamic=False)

    def _evaluate(self, inputs: tuple, positive, negative, check: bool = False) -> Bound:
        return self.bound(self.critic(*inputs), positive, negative, check=check)

    def __call__(self, batch: Batch, *, check: bool) -> Bound:
        if check or self.compiled is None:
            return self._evaluate(batch.inputs, batch.positive, batch.negative, check)
        try:
            if self.cuda_graphs:
                # the previous step's outputs have been copied out: the graph may reuse them
                torch.compiler.cudagraph_mark_step_begin()
            return self.compiled(batch.inputs, batch.positive, batch.negative)
        except torch._dynamo.exc.TorchDynamoException as error:
            self.fall_back(error, stacklevel=5)
            return self(batch, check=False)

    def fall_back(self, error: Exception, *, stacklevel: int) -> None:
        """Warn that compiling failed with ``error`` and evaluate eagerly from now on;
        ``stacklevel`` points the warning at the caller of :func:`train`."""
        reason = (str(error).strip().splitlines() or ["no message"])[0]
        warnings.warn(f"torch.compile failed ({type(error).__name__}: {reason}); "
                      "training eagerly", CompileFailedWarning, stacklevel=stacklevel)
        self.compiled = None


def _training_step(
    evaluate: _Evaluation,
    batch: Batch,
    optimizer: torch.optim.Optimizer | None,
    *,
    check: bool,
) -> Bound:
    """Score ``batch``, evaluate the bound and, with an optimizer, take one step on its loss."""
    result = evaluate(batch, check=check)
    if optimizer is not None:
        optimizer.zero_grad(set_to_none=True)
        try:
            # Estimators stacked along leading dimensions have separate parameters, so the
            # gradient of the sum is each one's own gradient.
            result.loss.sum().backward()
        except torch._dynamo.exc.TorchDynamoException as error:
            if evaluate.compiled is None:
                raise
            # torch.compile compiles the backward at its first call, outside _Evaluation
            evaluate.fall_back(error, stacklevel=4)
            return _training_step(evaluate, batch, optimizer, check=check)
        optimizer.step()
    return result


def _first_non_finite(recorded: torch.Tensor, frozen: Iterable[int]) -> dict[int, int]:
    """Estimator -> the first step of a chunk ``[chunk, 5, *estimators]`` whose objective is
    not finite, for the estimators not in ``frozen`` that have one.

    Divergence is a non-finite loss. Other fields may be infinite while training is sound: JS
    reports NWJ, which is -inf once e^T overflows, while it trains on the finite JS objective.
    """
    objectives = recorded[:, HISTORY_FIELDS.index("objective")].reshape(len(recorded), -1)
    bad = ~torch.isfinite(objectives)  # [chunk, E]
    bad[:, list(frozen)] = False
    if not bool(bad.any()):
        return {}
    return {int(e): int(bad[:, e].nonzero()[0]) for e in bad.any(dim=0).nonzero()[:, 0]}


def _names(bound: Callable[..., Bound], estimators: Iterable[int]) -> str:
    """``estimator 2 (remine)`` for each index, with the bound's names where it has them."""
    names = getattr(bound, "names", None)
    return ", ".join(f"estimator {e}" + (f" ({names[e]})" if names else "")
                     for e in sorted(estimators))


def train(
    critic: nn.Module,
    bound: Callable[..., Bound],
    batches: Callable[[int], Batch],
    *,
    steps: int,
    optimizer: torch.optim.Optimizer | None = None,
    lr: float = 5e-4,
    check_every: int = 100,
    progress: bool = True,
    description: str | None = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    compile: bool | str = False,
) -> TrainResult:
    """Train ``critic`` to maximize ``bound`` on the batches of a task.

    Estimators stacked along leading dimensions train together: a critic that returns
    ``scores [E, N, M]`` and a bound whose fields have shape ``[E]`` give a history with an
    ``estimator`` column; the loss minimized is the sum of the ``E`` losses.

    The loop passes the critic's output to the bound untouched, so an objective on other
    outputs fits too: :func:`~remi_tutorial.explicit.explicit_mi` takes the embeddings that
    :class:`~remi_tutorial.explicit.PairedEmbeddings` returns. A critic without trainable
    parameters (``PairedEmbeddings()``, the identity: a closed-form estimator) is evaluated
    on every batch and not trained.

    Args:
        critic: maps ``*batch.inputs`` to ``scores [N, M]`` (or ``[E, N, M]``), or to
            whatever ``bound`` takes in their place.
        bound: ``(scores, positive, negative, *, check) -> Bound``, e.g. from
            :func:`~remi_tutorial.bounds.get_bound`. It is called with ``check=True`` on
            the first batch (its value checks validate the inputs) and ``check=False`` after.
        batches: ``step -> Batch``, e.g. from :func:`~remi_tutorial.tasks.gaussian_batches`.
        steps: the number of optimizer steps.
        optimizer: defaults to ``Adam(critic.parameters(), lr=lr)``, or none for a critic
            without trainable parameters.
        lr: the learning rate of the default optimizer.
        check_every: steps between copies of the record to the host and finiteness checks.
        progress: show a tqdm progress bar.
        description: the progress bar's label.
        checkpoint: a file for the run's state: the critic's and the optimizer's state
            dicts, the history so far, the step and torch's random states. If it exists the
            run resumes from it; it is rewritten every ``checkpoint_every`` steps and at the
            end. A run that diverges leaves it at its last good state. Resuming gives
            exactly the uninterrupted run when ``batches(step)`` depends only on ``step``
            (as :class:`~remi_tutorial.datasets.ImageBatches` does; a stream with hidden
            state, such as :func:`~remi_tutorial.tasks.gaussian_batches`, continues with
            other samples).
        checkpoint_every: steps between checkpoints; defaults to ``check_every``.
        compile: evaluate the critic and the bound (forward and backward) with
            ``torch.compile`` from the second step on: ``True`` for the fastest known mode on
            the critic's device (CUDA graphs, ``"reduce-overhead"``, on a GPU; inductor's
            default elsewhere), or a ``torch.compile`` mode. Compiling takes from seconds to
            a minute, once per process and shape; it pays off for critics of many small
            operations, such as the stacked separable critic, and not for one whose time is
            in large matrix products, such as the concat critic on a CPU
            (``scripts/bench_gaussian.py`` measures both). The floats differ from an eager
            run's in the last digits. If compiling fails, the run warns
            (:class:`CompileFailedWarning`) and goes on eagerly.

    Returns:
        :class:`TrainResult`. The critic is trained in place; after a divergence it holds
        the weights of the last check at which every recorded objective was finite.

    Raises:
        ValueError: if the bound's value checks reject the first batch (for the bounds of
            :mod:`~remi_tutorial.bounds`, :func:`~remi_tutorial.bounds.validate_inputs`),
            ``steps < 1``, or the checkpoint holds more steps than ``steps``.
    """
    checkpoint_every = checkpoint_every or check_every
    if steps < 1 or check_every < 1 or checkpoint_every < 1:
        raise ValueError(
            "steps, check_every and checkpoint_every must be positive, got "
            f"{steps}, {check_every}, {checkpoint_every}"
        )
    if optimizer is None and any(p.requires_grad for p in critic.parameters()):
        optimizer = torch.optim.Adam(critic.parameters(), lr=lr)
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    start, rows, true_mis, diverged = 0, [], [], {}
    if checkpoint is not None and checkpoint.exists():
        start, rows, true_mis, diverged = _load_checkpoint(checkpoint, critic, optimizer)
        if start > steps:
            raise ValueError(f"{checkpoint} holds {start} steps, more than steps={steps}")
    records = _Records(check_every, rows, true_mis)
    last_good = copy.deepcopy(critic.state_dict())
    frozen = (_Frozen(critic, optimizer)
              if _Frozen.applies(critic, getattr(critic, "num_estimators", 0)) else None)
    if frozen is not None:
        if diverged:
            frozen.freeze(sorted(diverged), frozen.snapshot())  # as saved: hold them there
        last_good_slices = frozen.snapshot()
    diverged_at = None
    evaluate = _Evaluation(critic, bound, compile)
    bar = tqdm(total=steps, initial=start, desc=description, disable=not progress, leave=False)

    critic.train()
    step = start
    while step < steps and diverged_at is None:
        until_checkpoint = checkpoint_every - step % checkpoint_every
        chunk = min(check_every, steps - step, until_checkpoint)
        for offset in range(chunk):
            batch = batches(step + offset)
            result = _training_step(evaluate, batch, optimizer, check=step + offset == start)
            if frozen is not None:
                frozen.hold()
            records.write(offset, result, batch.true_mi)
        recorded = records.copy_chunk(chunk)
        newly = _first_non_finite(recorded, diverged)
        diverged.update({e: step + offset for e, offset in newly.items()})
        estimators = int(np.prod(recorded.shape[2:]))
        if newly and frozen is not None and len(diverged) < estimators:
            frozen.freeze(sorted(newly), last_good_slices)  # the others train on
            records.rows.append(recorded)
        elif newly:
            finite = min(newly.values())
            diverged_at = step + finite
            records.rows.append(recorded[:finite])
            critic.load_state_dict(last_good)
        else:
            records.rows.append(recorded)
        if diverged_at is None:
            last_good = copy.deepcopy(critic.state_dict())
            if frozen is not None:
                last_good_slices = frozen.snapshot()
        step += chunk
        if checkpoint is not None and diverged_at is None and (
            step % checkpoint_every == 0 or step == steps
        ):
            _save_checkpoint(checkpoint, critic, optimizer, records, step, diverged)
        bar.update(chunk)
        training = [e for e in range(estimators) if e not in diverged]
        last = records.rows[-1]
        if len(last) and training:
            mi = last[-1, 0].reshape(-1)[training].mean()
            bar.set_postfix(mi=f"{float(mi):.3f}")
    bar.close()

    if diverged_at is None:
        message = f"finished {steps} steps" + (f" (resumed from step {start})" if start else "")
        if diverged:
            message += "; " + "; ".join(
                f"{_names(bound, [e])} diverged at step {at} and was frozen at its last good "
                "check" for e, at in sorted(diverged.items()))
            warnings.warn(message, RuntimeWarning, stacklevel=2)
    else:
        message = (
            f"stopped at step {diverged_at}: the bound became non-finite; kept {diverged_at} "
            "steps of history and the weights of the last finite check"
        )
        if estimators > 1:
            message += f" ({_names(bound, [e for e, at in diverged.items() if at == diverged_at])})"
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    return TrainResult(records.history(diverged), diverged_at, message, diverged)


def _save_checkpoint(
    path: Path,
    critic: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    records: _Records,
    step: int,
    diverged: dict[int, int],
) -> None:
    """Write the run's state to ``path`` atomically: a kill leaves the old file or the new one."""
    state = {
        "step": step,
        "critic": critic.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "records": torch.cat(records.rows),
        "true_mis": list(records.true_mis),
        "diverged": dict(diverged),
        "cpu_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


def _load_checkpoint(
    path: Path, critic: nn.Module, optimizer: torch.optim.Optimizer | None
) -> tuple[int, list[torch.Tensor], list[float], dict[int, int]]:
    """Restore the critic, the optimizer and torch's random states from ``path``.

    Returns:
        The step to continue from, the records so far (one tensor), their true MIs and the
        estimators that diverged (estimator -> step).
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    critic.load_state_dict(state["critic"])
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["cpu_rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    diverged = {int(e): int(at) for e, at in state.get("diverged", {}).items()}
    return state["step"], [state["records"]], list(state["true_mis"]), diverged


def make_adam(parameters: Iterable[nn.Parameter], lr: float) -> torch.optim.Adam:
    """Adam with its fused kernel (one kernel updates every weight) where the installed torch
    has one for the parameters' device: on CUDA, and on the CPU from torch 2.4 on; elsewhere
    Adam's default implementation.

    The fused and the default update are the same formula but round differently, so a run's
    last digits depend on which one it got (:func:`train`'s default optimizer is the default one).

    Args:
        parameters: the weights to update, e.g. ``critic.parameters()``.
        lr: the learning rate.
    """
    parameters = list(parameters)
    devices = {parameter.device.type for parameter in parameters}
    fused_on_cpu = TorchVersion(torch.__version__) >= (2, 4)
    fused = bool(devices) and devices <= ({"cuda", "cpu"} if fused_on_cpu else {"cuda"})
    return torch.optim.Adam(parameters, lr=lr, fused=fused or None)


def default_device() -> torch.device:
    """The first CUDA GPU if there is one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
