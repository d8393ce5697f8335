# Two commands: `make book` and `make test`. Both create the environment in .venv if missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch 2.13.0 is the CPU build available on this kind of machine; see README.md.
TORCH_SPEC ?= torch==2.13.0

# One torch thread: the course's small models gain nothing from more, a shared CPU makes
# two threads much slower, and the notebooks' stored outputs stay reproducible.
export OMP_NUM_THREADS ?= 1

.PHONY: book test env clean

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[book,test]"
	touch $@

book: env
	$(BIN)/jupyter-book build . -W -n --keep-going
	@echo "The book is in _build/html/index.html"

test: env
	$(BIN)/python -m pytest -p no:cacheprovider

clean:
	rm -rf _build .venv
