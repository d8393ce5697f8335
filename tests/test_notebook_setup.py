"""Every chapter opens with the same setup cell, and the benchmark chapters ask Colab for a GPU."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("sync_notebooks", ROOT / "scripts" / "sync_notebooks.py")
sync_notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sync_notebooks)

NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))


def _first_code_cell(path: Path) -> dict:
    cells = json.loads(path.read_text())["cells"]
    return next(cell for cell in cells if cell["cell_type"] == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_first_code_cell_is_the_setup_template(path):
    source = "".join(_first_code_cell(path)["source"])
    assert source == sync_notebooks.setup_source(sync_notebooks.repository_url()), (
        f"{path.name}: run `python scripts/sync_notebooks.py`"
    )


def test_setup_cell_names_the_repository_of_the_book_configuration():
    url = sync_notebooks.repository_url()
    assert url.startswith("https://")
    assert f"git+{url}" in sync_notebooks.setup_source(url)


@pytest.mark.parametrize("chapter", sync_notebooks.GPU_CHAPTERS)
def test_benchmark_chapters_request_a_gpu_runtime_on_colab(chapter):
    metadata = json.loads((ROOT / "book" / f"{chapter}.ipynb").read_text())["metadata"]
    assert metadata["accelerator"] == "GPU"


def test_no_notebook_drifted_from_the_template():
    assert sync_notebooks.drifted(sync_notebooks.repository_url(), sync_notebooks.book_url()) == []


def test_online_book_is_the_repository_pages_address():
    assert sync_notebooks.book_url() == sync_notebooks.pages_url(sync_notebooks.repository_url())


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_first_markdown_cell_links_to_the_chapter_page_online(path):
    cells = json.loads(path.read_text())["cells"]
    heading = "".join(next(cell for cell in cells if cell["cell_type"] == "markdown")["source"])
    page = sync_notebooks.chapter_page(sync_notebooks.book_url(), path.stem)
    assert heading.startswith("# ")
    assert heading.endswith(f"]({page}), and run the code here.*")


def test_read_online_link_replaces_an_older_one_instead_of_adding_a_second():
    once = sync_notebooks.with_read_online("# Title\n\nText.\n", "https://a.io/book/x.html")
    twice = sync_notebooks.with_read_online(once, "https://b.io/book/x.html")
    assert twice.count(sync_notebooks.READ_ONLINE_PREFIX) == 1
    assert twice.startswith("# Title\n\nText.\n\n") and "https://b.io/book/x.html" in twice
