"""Tidy tables on disk, each with a provenance sidecar: what every command writes with ``--out``.

A benchmark's result is a tidy table (one row per observation). :func:`save_table` writes it
as Parquet (``.parquet``) or CSV (``.csv``) and, beside it, ``<file>.json``: the settings
that produced it (``table.attrs``), the exact command, the wall time and the environment
(package commit, versions, machine, threads, GPU). :func:`load_table` reads both back, so a
saved result always says how to make it again.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch

__all__ = ["TABLE_SUFFIXES", "save_table", "load_table", "sidecar_path", "environment",
           "command_line"]

TABLE_SUFFIXES: tuple[str, ...] = (".parquet", ".csv")
"""The formats :func:`save_table` writes, by file suffix."""


def sidecar_path(path: str | os.PathLike) -> Path:
    """``results/x.parquet -> results/x.parquet.json``: where a table's provenance goes."""
    path = Path(path)
    return path.with_suffix(path.suffix + ".json")


def _check_suffix(path: Path) -> None:
    if path.suffix not in TABLE_SUFFIXES:
        raise ValueError(f"a table is written as {' or '.join(TABLE_SUFFIXES)}, got {path}")


def save_table(
    table: pd.DataFrame, path: str | os.PathLike, *, record: Mapping | None = None
) -> Path:
    """Write ``table`` to ``path`` and its provenance to :func:`sidecar_path` ``(path)``.

    Both files are written to a temporary name and then renamed, so a reader never sees a
    half-written result.

    Args:
        table: the tidy table; its ``attrs`` (the settings) go to the sidecar.
        path: ``*.parquet`` or ``*.csv``.
        record: more provenance, e.g. ``{"command": ..., "wall_seconds": ...}``; the
            :func:`environment` is added when the record has none.

    Returns:
        ``path``.
    """
    path = Path(path)
    _check_suffix(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"environment": environment(), **(record or {})}
    partial = path.with_name(path.name + ".partial")
    if path.suffix == ".parquet":
        table.to_parquet(partial, index=False)
    else:
        table.to_csv(partial, index=False)
    os.replace(partial, path)
    sidecar = sidecar_path(path)
    partial = sidecar.with_name(sidecar.name + ".partial")
    partial.write_text(json.dumps({"settings": table.attrs, **record}, indent=2, default=str))
    os.replace(partial, sidecar)
    return path


def load_table(path: str | os.PathLike) -> pd.DataFrame:
    """Read a table written by :func:`save_table`; its settings come back in ``attrs`` and the
    whole sidecar in ``attrs["provenance"]``.

    Raises:
        FileNotFoundError: no table at ``path``.
    """
    path = Path(path)
    _check_suffix(path)
    if not path.exists():
        raise FileNotFoundError(f"no result at {path}")
    table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    sidecar = sidecar_path(path)
    if sidecar.exists():
        provenance = json.loads(sidecar.read_text())
        table.attrs.update(provenance.get("settings", {}))
        table.attrs["provenance"] = provenance
    return table


def command_line(argv: list[str] | None = None) -> str:
    """The command that is running, as ``remi-tutorial`` would be typed again."""
    arguments = sys.argv[1:] if argv is None else argv
    return "python -m remi_tutorial.benchmarks " + shlex.join(arguments)


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
    """What produced a result: versions, commit, machine, torch's thread count and GPU."""
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
