"""remi_tutorial: mutual-information bounds, their regularized versions, and benchmarks.

The course that goes with this package teaches why losses built on the Donsker-Varadhan
and NWJ representations of the KL divergence are unstable and how the regularizer of
Choi & Lee (UAI 2022) fixes them. Every function the course runs lives here.

Modules:
    bounds   the twelve bounds on a score matrix, the regularizer, the registry
    explicit closed-form Gaussian MI from second-order statistics, and its training objective
    critics  networks that score every pair of a batch
    tasks    problems with a known MI, and the masks of each benchmark
    train    one training loop for every critic, bound and task
    ksg      the Kraskov-Stoegbauer-Grassberger nearest-neighbour estimate, a reference
    diagnose read a training history and name its symptoms
    estimate MI between two arrays in one call: held-out estimate, interval, diagnosis
"""

from .bounds import BOUND_NAMES, Bound, get_bound
from .critics import ConcatCritic, SeparableCritic
from .diagnose import Diagnosis, diagnose
from .estimate import MIEstimate, estimate_mi
from .ksg import ksg_mi
from .tasks import (
    MI_TASKS,
    Batch,
    contrastive_masks,
    gaussian_batches,
    gaussian_mi,
    gaussian_rho,
    label_masks,
    mi_task,
    paired_masks,
)
from .train import TrainResult, train

__all__ = [
    "BOUND_NAMES",
    "Bound",
    "get_bound",
    "ConcatCritic",
    "SeparableCritic",
    "Diagnosis",
    "diagnose",
    "MIEstimate",
    "estimate_mi",
    "ksg_mi",
    "MI_TASKS",
    "mi_task",
    "Batch",
    "paired_masks",
    "label_masks",
    "contrastive_masks",
    "gaussian_batches",
    "gaussian_mi",
    "gaussian_rho",
    "TrainResult",
    "train",
]

# The one place the version is written: pyproject.toml reads it, a test keeps CITATION.cff in step.
__version__ = "0.1.0"
