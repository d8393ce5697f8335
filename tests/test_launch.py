"""The launchers: cells as local processes or a SLURM job array, killed and resumed cells,
and one results table whatever ran the cells."""

import argparse
import os
import signal
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from remi_tutorial.benchmarks.__main__ import main as cli
from remi_tutorial.benchmarks.image_cells import CellJob, run_sweep
from remi_tutorial.benchmarks.image_config import image_configs
from remi_tutorial.benchmarks.image_results import collect, read_cell_result
from remi_tutorial.benchmarks.launch import ResumableCell, add_launcher_arguments, launch
from remi_tutorial.benchmarks.supervised import SUPERVISED
from remi_tutorial.benchmarks.tables import load_table
from remi_tutorial.datasets import load_digits
from helpers import InterruptingJob

submitit = pytest.importorskip("submitit")

# Four cells of two epochs on the whole of digits, with a tiny network and large batches.
CELLS = image_configs(SUPERVISED, "digits", losses=("mine", "remine", "nwj", "infonce"),
                      alphas=(0.1,), epochs=2, width=16, batch_size=50)
STEPS_PER_EPOCH = len(load_digits().train_labels) // 50  # the last, partial batch is dropped
PREEMPTED, KILLED = CELLS[2], CELLS[3]
# What differs between two runs of the same cell: its duration, and the note of a resume.
VOLATILE = ["train_seconds", "message"]


def launcher_args(results, *options):
    parser = argparse.ArgumentParser()
    add_launcher_arguments(parser)
    args = parser.parse_args(list(options))
    args.results = str(results)
    return args


def cell_job(results):
    return CellJob(str(results), device="cpu", amp="off")


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """The four cells run one after another, and through submitit-local with one cell
    preempted (SIGUSR2, submitit's preemption signal) and one killed (SIGKILL) in its second
    epoch, then launched again."""
    folder = tmp_path_factory.mktemp("sweeps")
    sequential, parallel = folder / "sequential", folder / "parallel"
    # On one thread, as the jobs train (CellJob's default): torch's CPU kernels round
    # differently on two threads, which would differ from the jobs in the last digits. (This
    # module-scoped fixture runs before conftest's function-scoped one-thread fixture.)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_sweep(CELLS, load_digits(), sequential, device="cpu", progress=False, log=lambda _: None)
    finally:
        torch.set_num_threads(threads)
    args = launcher_args(parallel, "--launcher", "submitit-local", "--gpus-per-cell", "0",
                         "--time-limit", "10")
    job = cell_job(parallel)
    interrupting = InterruptingJob(job, {PREEMPTED.key(): signal.SIGUSR2,
                                         KILLED.key(): signal.SIGKILL}, str(folder))
    lines = []
    with pytest.MonkeyPatch.context() as patch:
        # The jobs' processes import the test helpers.
        tests = str(Path(__file__).parent)
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")])))
        # submitit waits 15 s for the result of a dead job in case a network file system
        # lags; this one is local.
        patch.setattr(submitit.core.core.Job, "_results_timeout_s", 0)
        first = launch(CELLS, interrupting, args, log=lines.append)
        after_kill = collect(parallel)
        todo = [config for config in CELLS if read_cell_result(parallel, config.key()) is None]
        second = launch(todo, job, args, log=lines.append)
    return dict(sequential=collect(sequential), parallel=collect(parallel), after_kill=after_kill,
                first=first, second=second, todo=todo, lines=lines, folder=parallel)


def test_a_killed_cell_fails_its_launch_and_is_reported_running_from_its_checkpoint(sweeps):
    assert sweeps["first"] is False
    assert sweeps["after_kill"].running == (KILLED.key(),)
    assert len(sweeps["after_kill"].runs) == 3
    assert any(line.startswith("job ") and " failed: " in line for line in sweeps["lines"])


def test_a_preempted_cell_is_requeued_and_resumes_from_its_last_epoch(sweeps):
    runs = sweeps["after_kill"].runs.set_index("loss")
    assert f"resumed from step {STEPS_PER_EPOCH}" in runs.message[PREEMPTED.loss]


def test_launching_again_runs_only_the_killed_cell_and_resumes_it(sweeps):
    assert sweeps["todo"] == [KILLED] and sweeps["second"] is True
    parallel = sweeps["parallel"]
    assert (parallel.running, parallel.missing) == ((), ())
    assert f"resumed from step {STEPS_PER_EPOCH}" in parallel.runs.set_index("loss").message[KILLED.loss]


def test_the_collected_tables_equal_those_of_a_sequential_sweep(sweeps):
    sequential, parallel = sweeps["sequential"], sweeps["parallel"]
    assert len(parallel.runs) == len(CELLS)
    pd.testing.assert_frame_equal(parallel.runs.drop(columns=VOLATILE),
                                  sequential.runs.drop(columns=VOLATILE))
    pd.testing.assert_frame_equal(parallel.curves, sequential.curves)


def test_the_collect_command_writes_the_table_of_the_finished_cells(sweeps, tmp_path, capsys):
    cli(["collect", "--results", str(sweeps["folder"]), "--out", str(tmp_path / "runs.csv")])
    assert f"{len(CELLS)} finished cells (0 diverged), 0 running, 0 missing" in capsys.readouterr().out
    table = load_table(tmp_path / "runs.csv")
    assert table.loss.tolist() == sweeps["parallel"].runs.loss.tolist()


def test_a_requeued_job_is_the_same_job_on_the_same_cell():
    job = ResumableCell(str.upper)
    requeued = submitit.helpers.DelayedSubmission(job, "cell")._checkpoint_function()
    assert (requeued.function, requeued.args, requeued.kwargs) == (job, ("cell",), {})
    assert job("cell") == "CELL"


def test_slurm_dry_run_writes_a_job_array_script_with_the_requested_resources(tmp_path, capsys):
    cli(["supervised", "--dataset", "digits", "--loss", "mine", "remine", "--seeds", "0", "1",
         "--alpha", "0.1", "--results", str(tmp_path), "--launcher", "slurm", "--dry-run",
         "--partition", "gpu", "--gpus-per-cell", "2", "--time-limit", "90", "--mem", "24",
         "--array-parallelism", "3"])
    script = (tmp_path / "jobs" / "dry-run.sbatch").read_text()
    lines = set(script.splitlines())
    assert {"#SBATCH --array=0-3%3", "#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=2",
            "#SBATCH --time=90", "#SBATCH --mem=24GB", "#SBATCH --signal=USR2@90",
            "#SBATCH --job-name=supervised-digits"} <= lines
    assert script in capsys.readouterr().out
    assert sorted(path.name for path in tmp_path.rglob("*")) == ["dry-run.sbatch", "jobs"]


def test_a_missing_submitit_names_the_extra_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)
    args = launcher_args(tmp_path, "--launcher", "slurm")
    with pytest.raises(ImportError, match=r"pip install 'remi-tutorial\[cluster\]'"):
        launch(CELLS[:1], cell_job(tmp_path), args)


def test_the_local_launcher_needs_no_submitit(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)
    lines = []
    assert launch(["a", "b"], str.upper, launcher_args(tmp_path), log=lines.append) is True
    assert lines == ["A", "B"]


def test_a_dry_run_needs_the_slurm_launcher(tmp_path):
    with pytest.raises(ValueError, match="--dry-run shows a SLURM job array"):
        launch(CELLS, cell_job(tmp_path), launcher_args(tmp_path, "--dry-run"))


# A Gaussian benchmark small enough for a unit test; its cells are one critic and one seed.
GAUSSIAN = ["gaussian", "--estimators", "mine,remine", "--levels", "1", "--stage-steps", "3",
            "--dim", "2", "--batch-size", "8", "--hidden-dims", "4", "--embed-dim", "2",
            "--no-progress", "--seeds", "0", "1"]


def test_the_gaussian_command_keeps_each_seeds_table_and_skips_it_next_time(tmp_path, capsys):
    out = tmp_path / "gaussian.csv"
    cli([*GAUSSIAN, "--out", str(out)])
    first = load_table(out)
    cli([*GAUSSIAN, "--out", str(out)])
    assert "skip separable seed 1: already in" in capsys.readouterr().out
    assert len(list((tmp_path / "gaussian_cells").glob("*.parquet"))) == 2
    pd.testing.assert_frame_equal(load_table(out), first)


def test_the_gaussian_command_submits_a_job_per_critic_and_seed(tmp_path):
    cli([*GAUSSIAN, "--critic", "separable", "concat", "--out", str(tmp_path / "g.csv"),
         "--launcher", "slurm", "--dry-run", "--array-parallelism", "8"])
    script = (tmp_path / "g_cells" / "jobs" / "dry-run.sbatch").read_text()
    assert "#SBATCH --array=0-3%4" in script.splitlines()
    assert not (tmp_path / "g.csv").exists()
