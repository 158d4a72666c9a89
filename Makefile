# kfpd: `make run` starts the server, `make test` runs lint, types and tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: install run test test-ray lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev,ray,kubernetes]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/kfpd server $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest -n 2 -q -p no:cacheprovider -m "not ray"

# A real two-node Ray cluster (started and stopped by the tests): one process, in order.
test-ray: $(STAMP)
	$(BIN)/pytest -q -p no:cacheprovider -p no:xdist -m ray

bench: $(STAMP)
	$(BIN)/python bench/metadata_write.py
	$(BIN)/python bench/list_runs.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
