# Two commands for a fresh clone (see README):
#   make demo   set everything up, then synth -> provision locally -> load data/ -> query, all offline
#   make test   set everything up, then run the whole test suite
# `make setup` alone installs the Python virtual environment (.venv) and the pinned CDK CLI (node_modules).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The CDK CLI and jsii run on the Node.js 22 that package.json pins (Node 20 is past end of life).
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
QUESTION ?= Can I bring my cat in the cabin?

.PHONY: setup demo test synth lint clean

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

synth: setup
	npx cdk synth --quiet

demo: synth
	$(PY) -m loader --local data
	$(PY) -m loader --local query "$(QUESTION)" --top-k 3

test: setup
	$(PY) -m pytest

lint: setup
	$(PY) -m ruff check .
	$(PY) -m mypy app.py stacks loader s3vectors_local

clean:
	-$(PY) -m s3vectors_local stop --data-dir .local-s3vectors 2>/dev/null
	rm -rf cdk.out .local-s3vectors
