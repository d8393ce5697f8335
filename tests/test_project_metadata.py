"""The version and the repository address are written once; the copies are kept in step."""

from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

import remi_tutorial

ROOT = Path(__file__).resolve().parents[1]


def test_installed_version_is_the_package_version():
    assert version("remi-tutorial") == remi_tutorial.__version__


def test_citation_file_has_the_package_version_and_the_repository_of_the_book():
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert str(citation["version"]) == remi_tutorial.__version__
    assert citation["repository-code"] == config["repository"]["url"]


def test_pyproject_reads_the_version_from_the_package():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "remi_tutorial.__version__"}
