import pkgutil
from pathlib import Path

import remi_tutorial

API_PAGE = Path(__file__).resolve().parents[1] / "book" / "api.md"


def package_modules():
    names = [remi_tutorial.__name__]
    for module in pkgutil.walk_packages(remi_tutorial.__path__, prefix="remi_tutorial."):
        if not module.name.endswith("__main__"):
            names.append(module.name)
    return names


def test_api_page_documents_every_module_of_the_package():
    page = API_PAGE.read_text()
    missing = [name for name in package_modules() if f".. automodule:: {name}\n" not in page]
    assert missing == []
