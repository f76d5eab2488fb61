# The two commands the README gives: `make demo` (the main job) and `make test`
# (lint, strict type check, the whole test suite). Both build .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck pytest diagrams architecture bench profile soak clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit("lifecycle needs Python >= 3.11, found " + sys.version.split()[0] if sys.version_info < (3, 11) else 0)'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test,lint,bench]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/lifecycle demo

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The package, its tests and the examples, all under mypy --strict (pyproject.toml).
typecheck: $(STAMP)
	$(BIN)/mypy lifecycle tests examples

pytest: $(STAMP)
	$(BIN)/pytest

# The benchmark suite (a few minutes; prints the table the README quotes).
bench: $(STAMP)
	$(BIN)/python benchmarks/suite.py
	$(BIN)/python benchmarks/containment.py
	$(BIN)/python benchmarks/journal.py
	$(BIN)/python benchmarks/oci.py
	$(BIN)/python benchmarks/api.py
	$(BIN)/python benchmarks/scale.py

# The long reliability profiles: 10,000 lifecycles, PID-wrapping churn, a long Hypothesis run.
soak: $(STAMP)
	LIFECYCLE_SOAK=1 HYPOTHESIS_PROFILE=soak $(BIN)/pytest tests/engine/test_soak.py tests/engine/test_faults.py tests/engine/test_model.py --timeout=0

profile: $(STAMP)
	$(BIN)/python benchmarks/profile_cycle.py trio

# Regenerate the committed diagrams from the transition table.
diagrams: $(STAMP)
	$(BIN)/lifecycle diagram

# Regenerate diagrams/architecture.{dot,svg} from the package's imports (fails on a layering break).
architecture: $(STAMP)
	$(BIN)/python -m tests.layering

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache .hypothesis
