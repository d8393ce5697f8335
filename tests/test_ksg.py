"""KSG estimator 1: against an obvious O(n^2) implementation, on Gaussians of known MI, under
monotone maps, on independent variables, and its input checks.

Tolerances come from 30 seeds at n = 2,000, k = 3 (float64): in 1 + 1 dimensions at
I = 0.223 nats the estimates had mean error +0.0003 and standard deviation 0.019; in 5 + 5
dimensions at I = 0.5 nats, mean error -0.116 (KSG's known downward bias in more
dimensions) and standard deviation 0.028; for independent 5 + 5 variables, mean -0.003 and
standard deviation 0.017. Mapping x by half_cube and y by asinh changed the 1 + 1 estimate by
at most 0.024 (standard deviation 0.011). Each bound below is about 3 standard deviations
or more; the tests use fixed seeds, so they are deterministic.
"""

import math

import numpy as np
import pytest
import torch
from scipy.special import digamma

from remi_tutorial.ksg import ksg_mi
from remi_tutorial.tasks import gaussian_mi, gaussian_rho, half_cube, sample_gaussian


def _pairs(n, dim, mi, seed=0):
    rho = gaussian_rho(mi, dim) if mi > 0 else 0.0
    return sample_gaussian(
        n, dim, rho, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )


def _obvious_ksg(x, y, k):
    """KSG estimator 1 written out point by point with numpy."""
    x, y = np.asarray(x), np.asarray(y)
    n = len(x)
    total = 0.0
    for i in range(n):
        dx = np.abs(x - x[i]).max(axis=1)
        dy = np.abs(y - y[i]).max(axis=1)
        dz = np.maximum(dx, dy)
        others = np.delete(np.arange(n), i)
        eps = np.sort(dz[others])[k - 1]
        nx = int((dx[others] < eps).sum())
        ny = int((dy[others] < eps).sum())
        total += digamma(nx + 1) + digamma(ny + 1)
    return digamma(k) + digamma(n) - total / n


@pytest.mark.parametrize("k", [1, 3, 5])
def test_ksg_equals_the_obvious_implementation_in_any_chunking(k):
    x, y = _pairs(300, 2, 0.7, seed=3)
    expected = _obvious_ksg(x.numpy(), y.numpy(), k)
    for chunk_elements in (1, 7 * 300, 10**9):  # one row at a time, 7 rows, everything
        assert ksg_mi(x, y, k=k, chunk_elements=chunk_elements) == pytest.approx(expected, abs=1e-12)


def test_ksg_on_a_one_dimensional_gaussian_pair():
    mi = gaussian_mi(0.6, 1)  # 0.223 nats
    x, y = _pairs(2000, 1, mi)
    assert ksg_mi(x, y) == pytest.approx(mi, abs=0.06)


def test_ksg_on_a_five_dimensional_gaussian_pair_is_close_and_biased_low():
    x, y = _pairs(2000, 5, 0.5)
    estimate = ksg_mi(x, y)
    assert 0.5 - 0.25 < estimate < 0.5 + 0.05


def test_ksg_is_nearly_invariant_under_monotone_maps_of_each_coordinate():
    x, y = _pairs(2000, 1, gaussian_mi(0.6, 1), seed=1)
    assert ksg_mi(half_cube(x), torch.asinh(y)) == pytest.approx(ksg_mi(x, y), abs=0.05)
    # A shift changes no distance, so nothing at all.
    assert ksg_mi(x + 5.0, y - 2.0) == pytest.approx(ksg_mi(x, y), abs=1e-12)


@pytest.mark.parametrize("dim", [1, 5])
def test_ksg_of_independent_variables_is_near_zero(dim):
    x, y = _pairs(2000, dim, 0.0, seed=2)
    assert abs(ksg_mi(x, y)) < 0.06


def test_ksg_accepts_vectors_float32_and_numpy():
    x, y = _pairs(200, 1, 0.5)
    expected = ksg_mi(x, y)
    assert ksg_mi(x[:, 0], y[:, 0]) == pytest.approx(expected)
    assert ksg_mi(x.numpy(), y.numpy()) == pytest.approx(expected)
    assert ksg_mi(x.float(), y.float()) == pytest.approx(expected, abs=1e-4)


def test_ksg_rejects_bad_inputs():
    x, y = _pairs(50, 2, 0.5)
    with pytest.raises(ValueError, match="same number of rows"):
        ksg_mi(x, y[:-1])
    bad = x.clone()
    bad[3, 1] = math.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        ksg_mi(bad, y)
    with pytest.raises(ValueError, match="smaller than the number of samples"):
        ksg_mi(x, y, k=50)
    with pytest.raises(ValueError, match="positive integer"):
        ksg_mi(x, y, k=0)
    with pytest.raises(ValueError, match=r"shape \[n, d\]"):
        ksg_mi(x[None], y[None])
    with pytest.raises(ValueError, match="duplicates"):
        ksg_mi(torch.zeros(10, 1), torch.zeros(10, 1))
