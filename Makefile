# The only commands anyone needs: `make up` runs the platform, `make test` runs every test.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
# Two pytest-xdist workers, each with its own NATS; the tests of one session platform (stack, e2e, Label Studio,
# MLflow) on one worker; every test engine keeps one connection (peak 65 of PostgreSQL's 100). Measured on 2 cores
# (issue 19, same tree, one after the other): the whole suite 12.1 min with -n 2, 14.5 serial. PYTEST_ARGS= runs one
# test at a time.
PYTEST_ARGS ?= -n 2 --dist loadgroup
TYPED    := shared/mlife_shared mlife services/bam/bam services/dam/dam services/mtt/mtt services/msm/msm services/gateway/gateway \
            examples/plugins/mlife_example_plugins
PACKAGES := -e shared -e services/bam -e services/dam -e services/mtt -e services/msm -e services/gateway -e ".[test]"

.PHONY: up test lint bench demo venv clean dist

$(STAMP): pyproject.toml shared/pyproject.toml $(wildcard services/*/pyproject.toml)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check $(PACKAGES)
	touch $(STAMP)

venv: $(STAMP)

## make up: NATS, the four services and the gateway on http://127.0.0.1:8000 (data in ./.mlife); installs
## bubblewrap (the sandbox of task code) when missing
up: $(STAMP)
	sh scripts/system-packages.sh
	sh services/mtt/scripts/mlflow-venv.sh >/dev/null
	$(VENV)/bin/mlife up

## make demo: the closed loop on the digits against a running MLife (MLIFE_URL, MLIFE_TOKEN)
demo: $(STAMP)
	$(VENV)/bin/python -m mlife.demo

## make lint: ruff (rules in pyproject.toml), mypy --strict on shared/, the services and the CLI/SDK, the import
## contracts (.importlinter) and the duplicate-code budget (scripts/duplicate_budget.py); make test runs it first
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy $(TYPED)
	$(VENV)/bin/lint-imports
	$(PY) scripts/duplicate_budget.py

## make test: the lint step, then PostgreSQL, NATS and an S3 server (started if not running) and every test
## (bubblewrap installed if missing)
test: lint
	sh scripts/system-packages.sh
	$(PY) scripts/testenv.py -- $(PY) -m pytest $(PYTEST_ARGS)

## make bench: every bench against its same-run peer (python -m bench), one JSON of all figures in
## bench/results/latest.json and the README's table printed; QUICK=1 for a smoke run (bench/results/quick.json).
## Prints ratios, never a pass/fail on a missed goal
bench: $(STAMP)
	sh services/mtt/scripts/mlflow-venv.sh >/dev/null
	$(PY) scripts/testenv.py -- $(PY) -m bench $(if $(QUICK),--quick)

## make dist: the sdist and wheel of every package (shared, the services, the gateway, the mlife CLI/SDK) into dist/
dist: $(STAMP)
	PY=$(PY) sh scripts/dist.sh dist

clean:
	rm -rf $(VENV) .mlife test-artifacts
