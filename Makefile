# Entry points: `make run`, `make test`, and `make test-fast` (no servers). Each creates or refreshes .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test test-fast venv lint typecheck contracts pytest asyncapi bench clean

$(STAMP): pyproject.toml client/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ./client -e '.[embedded,dev]'
	@touch $(STAMP)

venv: $(STAMP)

run: venv
	$(BIN)/gxwf up --demo

test: venv lint typecheck contracts pytest

# The fast tier: the in-memory flow tests (tests/fast) and every other test that needs no server and spawns no
# CLI process; GXWF_FAST_TIER makes the `stack` fixture fail, so a test that would start servers says so.
test-fast: venv
	GXWF_FAST_TIER=1 $(BIN)/pytest -q -p no:cacheprovider -m "not servers and not slow" --ignore=tests/cli

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

contracts: venv
	$(BIN)/lint-imports

# Two workers, each taking whole test files (their module fixtures and servers stay in one process).
pytest: venv
	$(BIN)/pytest -n 2 --dist loadfile

asyncapi: venv
	$(BIN)/gxwf asyncapi --output asyncapi.yaml

bench: venv
	$(BIN)/gxwf bench backbone

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
