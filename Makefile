# The two commands: `make run` (set up and start on SQLite with a demo company) and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: all venv run test bench fuzz lint clean

all: venv

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "need $(PYTHON)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/pip install -q -e examples/plugins/erp_connector
	touch $(STAMP)

run: venv
	@test -f metacrm.db || $(BIN)/metacrm init --demo
	$(BIN)/metacrm serve --host $${METACRM_HOST:-127.0.0.1} --port $${METACRM_PORT:-5000}

test: venv
	$(BIN)/python -m tests.setup_browser
	$(BIN)/python -m pytest -q

# API fuzzing, longer than the bounded run in `make test`: a random seed (printed; replay with
# METACRM_FUZZ_SEED=<seed>) and METACRM_FUZZ_EXAMPLES generated cases per operation (default 100).
fuzz: venv
	METACRM_FUZZ_EXAMPLES=$${METACRM_FUZZ_EXAMPLES:-100} METACRM_FUZZ_SEED=$${METACRM_FUZZ_SEED:-random} \
		METACRM_FUZZ_MIN_CASES=0 $(BIN)/python -m pytest -q -s tests/test_fuzz_api.py

bench: venv
	$(BIN)/python -m bench.run

lint: venv
	$(BIN)/ruff check metacrm tests bench examples

clean:
	rm -rf $(VENV) *.egg-info
