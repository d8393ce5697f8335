"""The results folder of the image benchmarks: one set of files per cell, merged on reading.

Every cell (see :mod:`~remi_tutorial.benchmarks.image_config`) owns files named by its key,
so concurrent sweeps never write the same file and no lock is needed::

    RESULTS/cells/KEY.cell.json     the cell's settings: it was asked for (by a sweep)
    RESULTS/cells/KEY.curve.csv     its training curve, one row per tenth of an epoch
    RESULTS/cells/KEY.summary.csv   its result, one row: written last, it marks the cell finished
    RESULTS/checkpoints/KEY.pt      the checkpoint of a cell being trained (the default folder)

Each file is written to a temporary name and then renamed, so a reader sees a whole file or
none. :func:`collect` merges the results into two tidy tables (``runs``, one row per
finished cell, and ``curves``) and reports the cells that are missing (asked for, neither
result nor checkpoint), running (a checkpoint but no result: training, or interrupted) or
diverged (finished with a non-finite loss).
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .image_config import KEY_COLUMNS, cell_key

__all__ = [
    "CELLS_FOLDER",
    "CHECKPOINTS_FOLDER",
    "CollectedResults",
    "checkpoint_folder",
    "checkpoint_file",
    "request_cells",
    "write_cell_result",
    "read_cell_result",
    "collect",
    "format_number",
]

CELLS_FOLDER = "cells"
"""The folder of a results folder that holds the cells' settings and results."""
CHECKPOINTS_FOLDER = "checkpoints"
"""The default folder of the cells' checkpoints in a results folder."""

_SETTINGS, _CURVE, _SUMMARY, _CHECKPOINT = ".cell.json", ".curve.csv", ".summary.csv", ".pt"


def checkpoint_folder(results_dir: str | os.PathLike) -> Path:
    """The default checkpoint folder of ``results_dir``: ``results_dir/checkpoints``."""
    return Path(results_dir) / CHECKPOINTS_FOLDER


def checkpoint_file(checkpoint_dir: str | os.PathLike, key: str) -> Path:
    """Where the cell ``key`` keeps its checkpoint in ``checkpoint_dir``: ``KEY.pt``."""
    return Path(checkpoint_dir) / f"{key}{_CHECKPOINT}"


def _cell_path(results_dir: str | os.PathLike, key: str, suffix: str) -> Path:
    return Path(results_dir) / CELLS_FOLDER / f"{key}{suffix}"


def _keys(folder: Path, suffix: str) -> set[str]:
    """The keys of the files ``folder/KEY<suffix>`` (temporary files aside)."""
    if not folder.is_dir():
        return set()
    return {path.name[: -len(suffix)] for path in folder.glob(f"*{suffix}")}


def _replace(path: Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` atomically: ``write`` fills a temporary file, which then replaces it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # A name of its own: two processes writing the same file never share a temporary one.
    partial = path.with_name(f"{path.name}.{uuid.uuid4().hex}.partial")
    write(partial)
    with open(partial, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, path)


def request_cells(results_dir: str | os.PathLike, settings: Iterable[Mapping]) -> None:
    """Record that cells are asked for: ``cells/KEY.cell.json`` with each one's settings.

    Args:
        results_dir: the results folder.
        settings: ``{column: value}`` of each cell, with :data:`~remi_tutorial.benchmarks.image_config.KEY_COLUMNS`
            (:meth:`~remi_tutorial.benchmarks.image_config.ImageRunConfig.settings`).
    """
    for values in settings:
        path = _cell_path(results_dir, cell_key(values), _SETTINGS)
        if not path.exists():
            _replace(path, lambda partial: partial.write_text(json.dumps(dict(values), indent=1)))


def write_cell_result(
    results_dir: str | os.PathLike, summary: Mapping, curve: pd.DataFrame
) -> Path:
    """Write a finished cell's result: its curve, then its summary row (which marks it
    finished), each atomically.

    Args:
        results_dir: the results folder.
        summary: the cell's row of the ``runs`` table, with :data:`~remi_tutorial.benchmarks.image_config.KEY_COLUMNS` (its key).
        curve: the cell's rows of the ``curves`` table.

    Returns:
        The summary's path.
    """
    key = cell_key(summary)
    _replace(_cell_path(results_dir, key, _CURVE),
             lambda partial: curve.to_csv(partial, index=False))
    path = _cell_path(results_dir, key, _SUMMARY)
    _replace(path, lambda partial: pd.DataFrame([dict(summary)]).to_csv(partial, index=False))
    return path


def read_cell_result(
    results_dir: str | os.PathLike, key: str
) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The summary row and curve of the cell ``key``, or ``None`` if it has not finished."""
    summary = _cell_path(results_dir, key, _SUMMARY)
    if not summary.exists():
        return None
    return pd.read_csv(summary), pd.read_csv(_cell_path(results_dir, key, _CURVE))


@dataclass(frozen=True)
class CollectedResults:
    """The results of a folder (:func:`collect`).

    Attributes:
        runs: one row per finished cell (a diverged one included: it is a result), in the
            order of the keys: its settings (:data:`~remi_tutorial.benchmarks.image_config.KEY_COLUMNS`), ``base_loss``,
            ``regularized``, ``steps``, ``true_mi``, ``mi_estimate``, ``test_accuracy``,
            ``diverged_at``, ``repaired_batches``, ``train_seconds``, ``device``, ``amp``,
            ``message`` (see :func:`~remi_tutorial.benchmarks.image_cells.run_image_cell`).
        curves: the training curves of those cells: their settings, ``epoch`` and the means
            of ``mi, joint, marginal, penalty``.
        missing: the keys of the cells asked for that have neither a result nor a checkpoint.
        running: the keys of the cells with a checkpoint but no result (being trained, or
            interrupted: a sweep resumes them).
        diverged: the keys of the finished cells whose loss became non-finite.
    """

    runs: pd.DataFrame
    curves: pd.DataFrame
    missing: tuple[str, ...]
    running: tuple[str, ...]
    diverged: tuple[str, ...]

    def report(self, keys: int = 10) -> str:
        """A few lines: how many cells are finished, diverged, running and missing, and the
        keys of the last three, at most ``keys`` of each (a sweep on a cluster has hundreds)."""
        lines = [f"{len(self.runs)} finished cells ({len(self.diverged)} diverged), "
                 f"{len(self.running)} running, {len(self.missing)} missing"]
        for state in ("diverged", "running", "missing"):
            listed = getattr(self, state)
            lines += [f"  {state}: {key}" for key in listed[:keys]]
            if len(listed) > keys:
                lines.append(f"  {state}: ... and {len(listed) - keys} more")
        return "\n".join(lines)


def _concat(tables: list[pd.DataFrame]) -> pd.DataFrame:
    if not tables:
        return pd.DataFrame(columns=list(KEY_COLUMNS))
    return pd.concat(tables, ignore_index=True)


def collect(
    results_dir: str | os.PathLike, *, checkpoint_dir: str | os.PathLike | None = None
) -> CollectedResults:
    """Merge the cells' results in ``results_dir`` into tidy tables and report the others.

    Args:
        results_dir: the results folder (absent or empty: empty tables, nothing to report).
        checkpoint_dir: where the cells' checkpoints are (default
            :func:`checkpoint_folder` ``(results_dir)``).

    Returns:
        :class:`CollectedResults`.
    """
    cells = Path(results_dir) / CELLS_FOLDER
    checkpoints = Path(checkpoint_dir) if checkpoint_dir is not None else checkpoint_folder(results_dir)
    finished = sorted(_keys(cells, _SUMMARY))
    runs, curves, diverged = [], [], []
    for key in finished:
        summary, curve = read_cell_result(results_dir, key)
        runs.append(summary)
        curves.append(curve)
        if summary.diverged_at.notna().any():
            diverged.append(key)
    started = _keys(checkpoints, _CHECKPOINT) - set(finished)
    missing = _keys(cells, _SETTINGS) - set(finished) - started
    return CollectedResults(_concat(runs), _concat(curves), tuple(sorted(missing)),
                            tuple(sorted(started)), tuple(diverged))


def format_number(value: float, decimals: int = 3) -> str:
    """``value`` with ``decimals`` decimals, or in scientific notation beyond 10,000 in size
    (the estimates just before a divergence can be of order ``1e37``)."""
    if math.isnan(value) or abs(value) < 1e4:
        return f"{value:.{decimals}f}"
    return f"{value:.3g}"
