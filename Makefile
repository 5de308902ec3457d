# CellTrail. The README's two commands: `make demo` (run the system and show it working)
# and `make test` (the whole suite). Both set everything up on a fresh machine with only
# Python 3.11+: a virtualenv, the packages, embedded PostgreSQL and the embedded broker.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-unit up bench soak schemas lint clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "CellTrail needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/celltrail demo

up: $(STAMP)
	$(BIN)/celltrail up

lint: $(STAMP)
	$(BIN)/lint-imports
	$(BIN)/python -m contracts.export --check

test: lint
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit

# Every measurement at the sizes issue 7 requires (>= 20,000 saturation commands, 100/s for
# 30 s, >= 1,000,000 rebuild events): about 15 minutes. BENCH_ARGS=--quick for a short run.
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/celltrail bench $(BENCH_ARGS)

# Issue 12 item 6: generated inputs against a running system (tests/fuzz, docs/fuzzing.md):
# FUZZ_EXAMPLES per HTTP operation, topic and load strategy; 150 sends more than 10,000 inputs
# (about 7 minutes on two cores). `make test` runs a sample of 3 each.
FUZZ_EXAMPLES ?= 150
.PHONY: fuzz
fuzz: $(STAMP)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_REPORT=$${FUZZ_REPORT:-fuzz-report.json} \
		$(BIN)/python -m pytest -q -p no:cacheprovider tests/fuzz

# Issue 12 item 7: a mixed load for 10 minutes while a random service, the broker or PostgreSQL is
# killed (SIGKILL) every 5 s (about 120 kills), then the checks; about 15 minutes in all. Never
# part of `make test`. SOAK_ARGS to override, e.g. SOAK_ARGS="--duration 60 --kill-every 3 --min-kills 10".
SOAK_ARGS ?= --duration 600 --kill-every 5 --seed 1
soak: $(STAMP)
	$(BIN)/celltrail soak $(SOAK_ARGS)

schemas: $(STAMP)
	$(BIN)/python -m contracts.export
	$(BIN)/python -m infra.tooling.asyncapi > docs/asyncapi.json
	$(BIN)/python -m infra.tooling.asyncapi --topics-md

clean:
	rm -rf $(VENV) build *.egg-info
