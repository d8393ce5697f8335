"""The command line's conventions: every command's help, ``--out`` and ``--seeds``."""

import json
import re
import shlex
import sys

import pandas as pd
import pytest

from remi_tutorial.benchmarks.__main__ import COMMANDS, main
from remi_tutorial.benchmarks.analytic_critic import (
    batch_size_summary,
    estimates_at_analytic_critic,
)
from remi_tutorial.benchmarks.tables import load_table, sidecar_path

PROG = "python -m remi_tutorial.benchmarks"


def help_text(command, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_shows_a_description_every_default_and_an_example(command, monkeypatch, capsys):
    text = help_text(command, monkeypatch, capsys)
    options = re.findall(r"^  --[a-z-]+", text, flags=re.MULTILINE)  # one line per option
    assert options and text.count("(default: ") == len(options)
    examples = text[text.index("examples:"):]
    assert f"{PROG} {command} " in examples
    assert text.split("\n\n")[1].strip()  # the description


# (command line, how many rows the table has) of a quick run of each command that writes a table
QUICK = {
    "gaussian": (["gaussian", "--estimators", "mine,remine", "--levels", "1", "--stage-steps", "3",
                  "--dim", "2", "--batch-size", "8", "--hidden-dims", "4", "--embed-dim", "2",
                  "--no-progress"], 2 * 3),
    "symptoms": (["symptoms", "--bounds", "mine", "--steps", "400", "--no-progress"], 1),
    "analytic-critic": (["analytic-critic", "--batch-sizes", "4", "8", "--repeats", "3",
                         "--dim", "2"], 2 * 2),
    "beyond-normal": (["beyond-normal", "--tasks", "gaussian", "uniform_noise", "--pairs", "200",
                       "--max-steps", "40", "--no-progress"], 2 * 2),
}


@pytest.mark.parametrize("command", list(QUICK))
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_out_writes_the_table_and_its_sidecar_with_the_command(command, suffix, tmp_path,
                                                               monkeypatch):
    argv, rows = QUICK[command]
    argv = [*argv, "--out", str(tmp_path / f"result{suffix}")]
    monkeypatch.setattr(sys, "argv", ["remi-tutorial", *argv])
    main(argv)
    table = load_table(tmp_path / f"result{suffix}")
    record = json.loads(sidecar_path(tmp_path / f"result{suffix}").read_text())
    assert len(table) == rows
    assert record["command"] == f"{PROG} {shlex.join(argv)}"
    assert record["wall_seconds"] > 0 and record["environment"]["python"]
    assert record["settings"] and table.attrs["provenance"] == record


def test_gaussian_report_writes_its_summary(tmp_path):
    result = tmp_path / "gaussian.parquet"
    main([*QUICK["gaussian"][0], "--out", str(result)])
    main(["gaussian-report", str(result), "--out", str(tmp_path / "summary.csv")])
    summary = load_table(tmp_path / "summary.csv")
    assert summary.estimator.tolist() == ["mine", "remine"]
    assert summary.attrs["result"] == str(result) and summary.attrs["stage_steps"] == 3
    assert (tmp_path / "gaussian_separable.png").exists()


def test_gaussian_takes_several_seeds(tmp_path):
    main([*QUICK["gaussian"][0], "--seeds", "0", "3", "--out", str(tmp_path / "g.csv")])
    table = load_table(tmp_path / "g.csv")
    assert sorted(table.seed.unique()) == [0, 3]
    assert table.attrs["seeds"] == [0, 3]


def test_symptoms_takes_several_seeds(tmp_path, capsys):
    main([*QUICK["symptoms"][0], "--seeds", "0", "1", "--out", str(tmp_path / "s.csv")])
    table = load_table(tmp_path / "s.csv")
    assert table.seed.tolist() == [0, 1]
    assert table.estimate.iloc[0] != table.estimate.iloc[1]
    assert "seed 1: finished 400 steps" in capsys.readouterr().out


def test_analytic_critic_summarizes_the_batches_of_every_seed(tmp_path):
    main([*QUICK["analytic-critic"][0], "--seeds", "0", "1", "--out", str(tmp_path / "a.csv")])
    table = load_table(tmp_path / "a.csv")
    expected = batch_size_summary(pd.concat([
        estimates_at_analytic_critic(("mine", "nwj"), (4, 8), dim=2, repeats=3, seed=seed)
        for seed in (0, 1)
    ], ignore_index=True))
    pd.testing.assert_frame_equal(table, expected, check_exact=False, rtol=1e-12)
    assert table.attrs["seeds"] == [0, 1]
