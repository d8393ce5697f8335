"""Run a sweep's cells one after another, as local processes, or as a SLURM job array.

Every sweep command (``supervised``, ``contrastive``, ``gaussian``) hands its cells and a
job that runs one cell to :func:`launch`, which runs them as ``--launcher`` says:

* ``local`` (the default): one after another, in this process;
* ``submitit-local``: each cell in a process of its own on this machine, all at once,
  through submitit's local executor (a machine with several GPUs, or a test); the command
  waits for them;
* ``slurm``: a SLURM job array, one task per cell, through submitit
  (``--partition``, ``--gpus-per-cell``, ``--time-limit``, ``--mem``,
  ``--array-parallelism``); the command returns once the array is submitted. ``--dry-run``
  writes the array's sbatch script and prints it instead of submitting it.

A job is idempotent: it skips a finished cell and resumes an interrupted one from its last
checkpoint, and it writes its result to a file of its own. So every launcher produces the
same results folder, a job that fails can simply be launched again, and a job that SLURM
preempts, or that reaches its time limit, is requeued (:class:`ResumableCell`) and carries
on from its last epoch.

submitit is an optional dependency (``pip install 'remi-tutorial[cluster]'``), imported
only by the launchers that use it.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "LAUNCHERS",
    "JOBS_FOLDER",
    "add_launcher_arguments",
    "import_submitit",
    "ResumableCell",
    "slurm_parameters",
    "make_executor",
    "sbatch_script",
    "launch",
]

LAUNCHERS: tuple[str, ...] = ("local", "submitit-local", "slurm")
"""The values of ``--launcher``."""

JOBS_FOLDER = "jobs"
"""The default folder of submitit's files (pickled jobs, logs) in a results folder."""

_CLUSTER_EXTRA = "pip install 'remi-tutorial[cluster]'"


def add_launcher_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of :func:`launch`: ``--launcher`` and its SLURM resources."""
    group = parser.add_argument_group(
        "launcher", "How the cells run: one after another here (local), each in a process of "
                    "its own here (submitit-local), or as a SLURM job array (slurm). The last "
                    f"two need submitit: {_CLUSTER_EXTRA}.")
    group.add_argument("--launcher", choices=LAUNCHERS, default="local",
                       help="where and how the cells run")
    group.add_argument("--jobs-dir", default=None,
                       help=f"submitit's folder (pickled jobs, logs), RESULTS/{JOBS_FOLDER} if None")
    group.add_argument("--partition", default=None,
                       help="slurm: the partition (the cluster's default if None)")
    group.add_argument("--gpus-per-cell", type=int, default=1,
                       help="slurm, submitit-local: GPUs of each cell's job")
    group.add_argument("--time-limit", type=int, default=720,
                       help="slurm, submitit-local: minutes of each job; a cell that reaches "
                            "it is requeued and resumes from its last epoch")
    group.add_argument("--mem", type=float, default=16,
                       help="slurm: memory of each job, in GB")
    group.add_argument("--array-parallelism", type=int, default=32,
                       help="slurm: how many cells of the array run at once")
    group.add_argument("--dry-run", action="store_true",
                       help="slurm: write the job array's sbatch script to the jobs folder and "
                            "print it, without submitting anything")


def import_submitit():
    """The ``submitit`` module.

    Raises:
        ImportError: naming the extra to install, when submitit is not installed.
    """
    try:
        return importlib.import_module("submitit")
    except ImportError as error:
        raise ImportError(
            f"--launcher submitit-local and slurm need submitit, which is not installed: "
            f"{_CLUSTER_EXTRA}") from error


@dataclass(frozen=True)
class ResumableCell:
    """``run_cell`` as a submitit job that is requeued, not lost, when it is interrupted.

    When SLURM preempts a job or its time limit nears, submitit signals it (``USR2`` by
    default, ``SUBMITIT_PREEMPT_SIGNAL`` changes it), calls the job's ``checkpoint`` and
    requeues what that returns. Here that is the same call again: the cell's own per-epoch
    checkpoint is what carries its progress, so the requeued job resumes from the last
    finished epoch and ends with the numbers of an uninterrupted run. (submitit only asks
    for a ``checkpoint`` method, which keeps this module free of a submitit import.)

    Attributes:
        run_cell: ``cell -> log line``; must be picklable (a module-level function or a
            dataclass instance such as :class:`~remi_tutorial.benchmarks.image_cells.CellJob`).
    """

    run_cell: Callable[[Any], str]

    def __call__(self, cell: Any) -> str:
        return self.run_cell(cell)

    def checkpoint(self, cell: Any):
        """The same job on the same cell, for submitit to requeue (a ``DelayedSubmission``)."""
        return import_submitit().helpers.DelayedSubmission(self, cell)


def _jobs_folder(args: argparse.Namespace) -> Path:
    return Path(args.jobs_dir) if args.jobs_dir is not None else Path(args.results) / JOBS_FOLDER


def slurm_parameters(args: argparse.Namespace, name: str) -> dict:
    """The sbatch options of each cell's job (submitit's names for them), from the options
    of :func:`add_launcher_arguments`: one task on one node, ``--gpus-per-cell`` GPUs,
    ``--time-limit`` minutes, ``--mem`` GB, ``--partition``, and at most
    ``--array-parallelism`` cells at once."""
    parameters = dict(job_name=name, nodes=1, ntasks_per_node=1, gpus_per_node=args.gpus_per_cell,
                      time=args.time_limit, mem=f"{args.mem:g}GB",
                      array_parallelism=args.array_parallelism)
    if args.partition is not None:
        parameters["partition"] = args.partition
    return parameters


def make_executor(args: argparse.Namespace, name: str):
    """submitit's executor for ``--launcher`` (``submitit-local`` or ``slurm``), with the
    resources of the command line and the job name ``name``."""
    submitit = import_submitit()
    folder = _jobs_folder(args) / "%j"
    if args.launcher == "submitit-local":
        executor = submitit.LocalExecutor(folder)
        executor.update_parameters(timeout_min=args.time_limit, gpus_per_node=args.gpus_per_cell)
        return executor
    executor = submitit.SlurmExecutor(folder)
    executor.update_parameters(**slurm_parameters(args, name))
    return executor


def sbatch_script(args: argparse.Namespace, name: str, cells: int) -> str:
    """The sbatch script of a job array of ``cells`` tasks, as submitit writes it when it
    submits one (``--launcher slurm``), rendered on any machine (no SLURM needed)."""
    slurm = import_submitit().slurm.slurm
    folder = _jobs_folder(args) / "%j"
    # What SlurmExecutor.map_array renders and runs; the function is submitit's own (private:
    # it offers no public way to see the script without submitting it).
    command = f"{shlex.quote(sys.executable)} -u -m submitit.core._submit {shlex.quote(str(folder))}"
    return slurm._make_sbatch_string(command=command, folder=folder, map_count=cells,
                                     **slurm_parameters(args, name))


def launch(
    cells: Sequence[Any],
    run_cell: Callable[[Any], str],
    args: argparse.Namespace,
    *,
    name: str = "remi-tutorial",
    log: Callable[[str], None] = print,
) -> bool:
    """Run ``run_cell`` on every cell as ``args.launcher`` says (see the module's docstring).

    Args:
        cells: the cells (picklable), in the order of the array's tasks.
        run_cell: ``cell -> log line``; idempotent (it skips a finished cell and resumes an
            interrupted one) and picklable for the submitit launchers.
        args: the options of :func:`add_launcher_arguments` and ``args.results`` (the
            results folder, where the jobs folder goes by default).
        name: the jobs' name.
        log: called with one line per cell, and per submitted array.

    Returns:
        ``True`` if every cell has finished on return (``local``, and ``submitit-local``
        when every job succeeded); ``False`` for ``slurm`` (the array runs on), a dry run,
        or a job that failed (its error is logged; launching again resumes the cell).

    Raises:
        ValueError: ``--dry-run`` without ``--launcher slurm``.
        ImportError: submitit is needed and not installed.
    """
    if args.dry_run and args.launcher != "slurm":
        raise ValueError(f"--dry-run shows a SLURM job array: use it with --launcher slurm, "
                         f"not {args.launcher}")
    if not cells:
        return True
    if args.launcher == "local":
        for cell in cells:
            log(run_cell(cell))
        return True
    if args.dry_run:
        script = sbatch_script(args, name, len(cells))
        path = _jobs_folder(args) / "dry-run.sbatch"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(script)
        log(f"dry run: the job array of {len(cells)} cells would be submitted with {path}:\n{script}")
        return False
    jobs = make_executor(args, name).map_array(ResumableCell(run_cell), cells)
    if args.launcher == "slurm":
        log(f"submitted job array {jobs[0].job_id.split('_')[0]}: {len(jobs)} cells, logs in "
            f"{_jobs_folder(args)}")
        return False
    failures = (import_submitit().core.utils.FailedJobError,
                import_submitit().core.utils.UncompletedJobError)
    finished = True
    for job in jobs:
        try:
            log(job.result())
        except failures as error:
            finished = False
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            log(f"job {job.job_id} failed: {first} (log: {job.paths.stderr})")
    return finished
