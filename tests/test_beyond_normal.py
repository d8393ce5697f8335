"""The beyond-normal benchmark: estimate_mi and KSG on tasks with a known MI, one tidy table."""

import math

import pytest
import torch

from remi_tutorial.benchmarks.beyond_normal import TABLE_COLUMNS, run_beyond_normal
from remi_tutorial.estimate import estimate_mi
from remi_tutorial.ksg import ksg_mi
from remi_tutorial.tasks import mi_task

SMALL = dict(dims=(2,), pairs=(300,), mi=0.5, max_steps=40, eval_every=20, progress=False)


@pytest.fixture(scope="module")
def table():
    return run_beyond_normal(["gaussian", "student_t"], estimators=["remine", "infonce"],
                             seeds=(0, 1), **SMALL)


def test_one_row_per_task_seed_and_estimator(table):
    assert list(table.columns) == list(TABLE_COLUMNS)
    assert len(table) == 2 * 2 * 3
    assert set(table.estimator) == {"remine", "infonce", "ksg"}
    assert (table.bias == table.estimate - table.true_mi).all()
    ksg = table[table.estimator == "ksg"]
    assert ksg.ci_low.isna().all() and ksg.steps.isna().all()


def test_rows_are_the_estimates_of_estimate_mi_and_ksg_on_the_same_sample(table):
    x, y = mi_task("student_t").sample(300, 2, 0.5, generator=torch.Generator().manual_seed(10_001))
    result = estimate_mi(x, y, estimator=["remine", "infonce"], seed=1, max_steps=40,
                         eval_every=20, progress=False)
    rows = table[(table.task == "student_t") & (table.seed == 1)].set_index("estimator")
    for row in result.table.itertuples():
        assert rows.estimate[row.estimator] == row.estimate
        assert rows.ci_high[row.estimator] == row.ci_high
    assert math.isclose(rows.estimate["ksg"], ksg_mi(x, y), rel_tol=0, abs_tol=1e-12)


def test_an_unknown_task_raises():
    with pytest.raises(ValueError, match="unknown task 'cauchy'"):
        run_beyond_normal(["cauchy"], **SMALL)
