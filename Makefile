# Two commands: `make book` and `make test`. Both create the environment in .venv if missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch 2.13.0 is the CPU build available on this kind of machine; see README.md.
TORCH_SPEC ?= torch==2.13.0

# One torch thread: the course's small models gain nothing from more, a shared CPU makes
# two threads much slower, and the notebooks' stored outputs stay reproducible.
export OMP_NUM_THREADS ?= 1

# Stored notebook outputs are written with this machine's default kernels (`make notebooks`)
# and validated by `make test` under another kernel selection, a stand-in for another
# machine: oneDNN and MKL pick kernels by instruction set, so an output that reproduces only
# on the CPU that wrote it fails here instead of on a reader's machine.
OTHER_KERNELS := ONEDNN_MAX_CPU_ISA=SSE41 MKL_CBWR=COMPATIBLE

.PHONY: book test notebooks env clean

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[book,test]"
	touch $@

# The book is built from the committed outputs (_config.yml: execute_notebooks "off");
# `make notebooks` re-executes the chapters, `make test` validates them.
book: env
	$(BIN)/jupyter-book build . -W -n --keep-going
	@echo "The book is in _build/html/index.html"

test: env
	$(BIN)/python -m pytest -p no:cacheprovider tests
	env $(OTHER_KERNELS) $(BIN)/python -m pytest -p no:cacheprovider book

# Re-execute chapters in place after changing them, before committing:
# `make notebooks` (all) or `make notebooks NOTEBOOKS=book/symptoms.ipynb`.
NOTEBOOKS ?= $(wildcard book/*.ipynb)
notebooks: env
	$(BIN)/python scripts/sync_notebooks.py
	for notebook in $(NOTEBOOKS); do \
		$(BIN)/jupyter-execute --inplace --timeout=1200 "$$notebook" || exit 1; \
	done

clean:
	rm -rf _build .venv
