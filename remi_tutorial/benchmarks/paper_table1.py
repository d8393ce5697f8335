"""The paper's Table 1, transcribed: the published numbers, to be shown as the paper's.

Source: Choi & Lee, *Combating the Instability of Mutual Information-based Losses via
Regularization* (UAI 2022), Table 1, as printed in the authors' poster. Each row: MI
estimate (original, regularized) and test accuracy (original, regularized), each
``mean +- std`` over the authors' runs. The text extraction of the poster shifted the row
labels; the benchmark and dataset of each row here follow the MI values (at most
``log 10 = 2.303`` for CIFAR-10, ``log 100 = 4.605`` for CIFAR-100) and the chance
accuracies (0.100 and 0.010). The numbers are kept as data in this module (not a separate
file) so that they ship with the package however it is installed.
"""

from __future__ import annotations

import io

import pandas as pd

__all__ = ["PAPER_TABLE1_CSV", "paper_table1"]

PAPER_TABLE1_CSV = """\
benchmark,dataset,loss,mi_original,mi_original_std,mi_regularized,mi_regularized_std,accuracy_original,accuracy_original_std,accuracy_regularized,accuracy_regularized_std
supervised,cifar10,mine,2.300,0.003,2.298,0.005,0.850,0.009,0.856,0.004
supervised,cifar10,smile,2.297,0.009,2.300,0.003,0.854,0.008,0.853,0.009
supervised,cifar10,infonce,2.301,0.002,2.302,0.001,0.845,0.006,0.845,0.005
supervised,cifar10,nwj,2.297,0.009,2.294,0.013,0.859,0.003,0.862,0.004
supervised,cifar10,tuba,2.297,0.008,2.300,0.003,0.862,0.008,0.859,0.003
supervised,cifar10,js,1.944,0.039,2.000,0.049,0.838,0.012,0.842,0.004
supervised,cifar100,mine,4.597,0.011,4.603,0.001,0.610,0.007,0.610,0.006
supervised,cifar100,smile,4.595,0.015,4.602,0.002,0.601,0.015,0.606,0.007
supervised,cifar100,infonce,4.594,0.017,4.599,0.005,0.589,0.010,0.593,0.005
supervised,cifar100,nwj,4.572,0.055,4.586,0.034,0.558,0.042,0.599,0.009
supervised,cifar100,tuba,4.495,0.207,4.603,0.002,0.543,0.055,0.611,0.007
supervised,cifar100,js,4.088,0.430,4.240,0.116,0.591,0.026,0.598,0.010
contrastive,cifar10,mine,2.233,0.674,2.240,0.657,0.812,0.026,0.823,0.012
contrastive,cifar10,smile,0.000,0.000,2.065,0.842,0.100,0.001,0.830,0.008
contrastive,cifar10,infonce,1.705,0.462,1.739,0.431,0.830,0.008,0.826,0.006
contrastive,cifar10,nwj,0.000,0.000,1.910,0.662,0.100,0.000,0.831,0.005
contrastive,cifar10,tuba,0.000,0.000,1.358,0.590,0.100,0.000,0.830,0.009
contrastive,cifar10,js,1.552,0.485,1.556,0.546,0.837,0.003,0.832,0.009
contrastive,cifar100,mine,4.634,0.186,4.563,0.162,0.522,0.026,0.540,0.020
contrastive,cifar100,smile,0.000,0.000,4.677,0.162,0.012,0.003,0.585,0.007
contrastive,cifar100,infonce,4.112,0.147,4.115,0.145,0.576,0.019,0.585,0.014
contrastive,cifar100,nwj,0.000,0.000,4.065,0.255,0.010,0.000,0.521,0.025
contrastive,cifar100,tuba,0.000,0.000,2.731,0.786,0.010,0.000,0.490,0.023
contrastive,cifar100,js,3.253,0.368,3.393,0.124,0.451,0.020,0.463,0.031
"""
"""Table 1 as published, one line per row of the paper's table (24 rows)."""


def paper_table1() -> pd.DataFrame:
    """The paper's Table 1 as a tidy table: one row per (benchmark, dataset, loss, variant).

    Returns:
        48 rows with columns ``benchmark, dataset, loss`` (the original loss's name, e.g.
        ``"mine"``), ``variant`` (``"original"`` or ``"regularized"``), ``mi_mean, mi_std,
        accuracy_mean, accuracy_std``.
    """
    wide = pd.read_csv(io.StringIO(PAPER_TABLE1_CSV))
    parts = []
    for variant in ("original", "regularized"):
        parts.append(pd.DataFrame({
            "benchmark": wide.benchmark,
            "dataset": wide.dataset,
            "loss": wide.loss,
            "variant": variant,
            "mi_mean": wide[f"mi_{variant}"],
            "mi_std": wide[f"mi_{variant}_std"],
            "accuracy_mean": wide[f"accuracy_{variant}"],
            "accuracy_std": wide[f"accuracy_{variant}_std"],
        }))
    return pd.concat(parts, ignore_index=True)
