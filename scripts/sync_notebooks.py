"""Write the shared setup cell and the link to the online book into every chapter, and Colab's
GPU setting into the benchmarks.

The repository URL lives in one place, ``_config.yml`` (``repository.url``, which Jupyter
Book's launch buttons read too), and so does the online book's address (``html.baseurl``,
the repository's GitHub Pages address). Every notebook's first code cell is this module's
:data:`SETUP_TEMPLATE` filled with the repository URL; its first markdown cell ends with
:data:`READ_ONLINE_TEMPLATE`, a link to the chapter's page of the online book (theorems,
proofs and cross-references show as raw text on Colab and GitHub); the benchmark chapters
(:data:`GPU_CHAPTERS`) also carry Colab's metadata asking for a GPU runtime.

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

READ_ONLINE_TEMPLATE = (
    "*On Colab or GitHub the theorems, proofs and cross-references of this chapter show as raw "
    "text: read them in [this chapter of the online book]({page}), and run the code here.*"
)
"""The last paragraph of every chapter's first markdown cell; ``{page}`` is the chapter's page."""

READ_ONLINE_PREFIX = READ_ONLINE_TEMPLATE.split("[", 1)[0]

GPU_CHAPTERS: tuple[str, ...] = (
    "gaussian_benchmark", "supervised_benchmark", "contrastive_benchmark", "explicit_mi",
)
"""Chapters that open on Colab with a GPU runtime requested."""

COLAB_GPU_METADATA = {"accelerator": "GPU", "colab": {"gpuType": "T4", "provenance": []}}


def repository_url(config: Path = ROOT / "_config.yml") -> str:
    """``repository.url`` of the book's configuration: the one place the URL is written."""
    return yaml.safe_load(config.read_text())["repository"]["url"]


def book_url(config: Path = ROOT / "_config.yml") -> str:
    """``html.baseurl`` of the book's configuration: where the book is published."""
    return yaml.safe_load(config.read_text())["html"]["baseurl"]


def pages_url(repository: str) -> str:
    """GitHub Pages' address of ``https://github.com/OWNER/REPO``: ``https://OWNER.github.io/REPO/``."""
    owner, name = repository.rstrip("/").split("/")[-2:]
    return f"https://{owner.lower()}.github.io/{name}/"


def chapter_page(book: str, name: str) -> str:
    """The online page of the chapter ``book/NAME.ipynb``."""
    return f"{book.rstrip('/')}/book/{name}.html"


def with_read_online(markdown: str, page: str) -> str:
    """``markdown`` whose last paragraph is the link to ``page`` (replacing an older link)."""
    paragraphs = [part for part in markdown.rstrip("\n").split("\n\n")
                  if not part.startswith(READ_ONLINE_PREFIX)]
    return "\n\n".join(paragraphs + [READ_ONLINE_TEMPLATE.format(page=page)])


def setup_source(url: str) -> str:
    """The setup cell's source for the repository at ``url``."""
    return SETUP_TEMPLATE.format(url=url)


def synced(notebook: dict, name: str, url: str, book: str) -> dict:
    """``notebook`` (nbformat JSON) with the setup cell, the link to its page of the book at
    ``book`` and, for a GPU chapter, Colab's GPU metadata; every other cell and field as it was."""
    cells = notebook["cells"]
    first = next((cell for cell in cells if cell["cell_type"] == "code"), None)
    if first is None:
        raise ValueError(f"{name} has no code cell to hold the setup")
    first["source"] = setup_source(url).splitlines(keepends=True)
    heading = next((cell for cell in cells if cell["cell_type"] == "markdown"), None)
    if heading is None:
        raise ValueError(f"{name} has no markdown cell to hold the link to the online book")
    page = chapter_page(book, name)
    heading["source"] = with_read_online("".join(heading["source"]), page).splitlines(keepends=True)
    metadata = notebook["metadata"]
    if name in GPU_CHAPTERS:
        metadata.update(json.loads(json.dumps(COLAB_GPU_METADATA)))
    else:
        metadata.pop("accelerator", None)
        metadata.pop("colab", None)
    return notebook


def drifted(url: str, book: str) -> list[Path]:
    """The notebooks under ``book/`` whose setup cell, link to the online book or Colab
    metadata differ from the templates."""
    stale = []
    for path in sorted(BOOK.glob("*.ipynb")):
        notebook = json.loads(path.read_text())
        expected = synced(json.loads(path.read_text()), path.stem, url, book)
        if expected != notebook:
            stale.append(path)
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="only list the notebooks that drifted; exit 1 if any did")
    args = parser.parse_args(argv)
    url, book = repository_url(), book_url()
    stale = drifted(url, book)
    for path in stale:
        if args.check:
            print(f"{path.relative_to(ROOT)}: setup cell, online-book link or Colab metadata "
                  "differ from the templates")
            continue
        notebook = synced(json.loads(path.read_text()), path.stem, url, book)
        path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
        print(f"rewrote {path.relative_to(ROOT)}")
    return 1 if (args.check and stale) else 0


if __name__ == "__main__":
    sys.exit(main())
