"""Write the shared setup cell into every chapter, and Colab's GPU setting into the benchmarks.

The repository URL lives in one place, ``_config.yml`` (``repository.url``, which Jupyter
Book's launch buttons read too). Every notebook's first code cell is this module's
:data:`SETUP_TEMPLATE` filled with that URL; the benchmark chapters (:data:`GPU_CHAPTERS`)
also carry Colab's metadata asking for a GPU runtime.

    python scripts/sync_notebooks.py          # rewrite the notebooks that drifted
    python scripts/sync_notebooks.py --check  # list them and exit 1 (what the tests run)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"

SETUP_TEMPLATE = '''\
# Setup: on Colab, install this course's package (Colab's own torch is kept);
# anywhere, stop here with a clear message if the package cannot be imported.
import sys

if "google.colab" in sys.modules:
    %pip install --quiet "remi-tutorial @ git+{url}"
try:
    import remi_tutorial
except ImportError as error:
    raise ImportError(
        "remi_tutorial cannot be imported in this kernel. On Colab, read pip's message "
        "above and run this cell again. Elsewhere, run `pip install -e .` in a clone of "
        "{url} (or `make book`) and restart the kernel."
    ) from error'''
"""The first code cell of every chapter; ``{url}`` is ``repository.url`` of ``_config.yml``."""

GPU_CHAPTERS: tuple[str, ...] = (
    "gaussian_benchmark", "supervised_benchmark", "contrastive_benchmark", "explicit_mi",
)
"""Chapters that open on Colab with a GPU runtime requested."""

COLAB_GPU_METADATA = {"accelerator": "GPU", "colab": {"gpuType": "T4", "provenance": []}}


def repository_url(config: Path = ROOT / "_config.yml") -> str:
    """``repository.url`` of the book's configuration: the one place the URL is written."""
    return yaml.safe_load(config.read_text())["repository"]["url"]


def setup_source(url: str) -> str:
    """The setup cell's source for the repository at ``url``."""
    return SETUP_TEMPLATE.format(url=url)


def synced(notebook: dict, name: str, url: str) -> dict:
    """``notebook`` (nbformat JSON) with the setup cell and, for a GPU chapter, Colab's GPU
    metadata; every other cell and field as it was."""
    cells = notebook["cells"]
    first = next((cell for cell in cells if cell["cell_type"] == "code"), None)
    if first is None:
        raise ValueError(f"{name} has no code cell to hold the setup")
    first["source"] = setup_source(url).splitlines(keepends=True)
    metadata = notebook["metadata"]
    if name in GPU_CHAPTERS:
        metadata.update(json.loads(json.dumps(COLAB_GPU_METADATA)))
    else:
        metadata.pop("accelerator", None)
        metadata.pop("colab", None)
    return notebook


def drifted(url: str) -> list[Path]:
    """The notebooks under ``book/`` whose setup cell or Colab metadata differ from the template."""
    stale = []
    for path in sorted(BOOK.glob("*.ipynb")):
        notebook = json.loads(path.read_text())
        expected = synced(json.loads(path.read_text()), path.stem, url)
        if expected != notebook:
            stale.append(path)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="only list the notebooks that drifted; exit 1 if any did")
    args = parser.parse_args(argv)
    url = repository_url()
    stale = drifted(url)
    for path in stale:
        if args.check:
            print(f"{path.relative_to(ROOT)}: setup cell or Colab metadata differ from the template")
            continue
        notebook = synced(json.loads(path.read_text()), path.stem, url)
        path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
        print(f"rewrote {path.relative_to(ROOT)}")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
