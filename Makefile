# sakd — two set-up commands on a fresh machine: `make demo` and `make test`.
# Everything they need (system packages, the virtual environment, the package) is installed here.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
FASHION_MNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
RUN ?= runs/demo

.PHONY: demo test test-fast lint bench venv lava-env data-fashion-mnist clean help

help:
	@echo "make demo   - create .venv and run the main job (digits: teacher -> SAKD student -> eval)"
	@echo "make test   - create .venv and run the test suite"
	@echo "make lint   - ruff"
	@echo "make bench  - run the benchmarks under benchmarks/ (results in benchmarks/results/)"
	@echo "make lava-env - create .venv-lava (Python 3.10, lava-nc 0.10.0, lava-dl 0.6.0) for the Lava cross-checks"

venv: $(STAMP)

# torch and torchvision are pinned to the builds available as local wheels (pip takes them from
# disk); everything else comes from PyPI by name.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found; install Python >= 3.11 or pass PYTHON=..." >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.14.1 torchvision==0.29.1
	$(PIP) install --quiet -e '.[test,lint]'
	touch $(STAMP)

# Fashion-MNIST IDX files from Debian (only needed by the Fashion-MNIST study and its tests)
data-fashion-mnist:
	@test -f $(FASHION_MNIST) || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y dataset-fashion-mnist || (apt-get update && apt-get install -y dataset-fashion-mnist); \
	  else sudo apt-get install -y dataset-fashion-mnist; fi; }

demo: $(STAMP)
	rm -rf $(RUN)
	$(VENV)/bin/sakd pipeline -c configs/digits.yaml -o $(RUN)

# The Lava reference environment (Python 3.10). Status 3 from the script = no Python 3.10 on this
# machine: the Lava tests are then skipped with that reason (tests/lava/conftest.py).
lava-env:
	@bash scripts/make_lava_env.sh; status=$$?; \
	if [ $$status = 3 ]; then echo "lava-env: no Python 3.10 found; the Lava tests will be skipped"; \
	elif [ $$status != 0 ]; then exit $$status; fi

# The two environments build side by side (downloads and unpacking, mostly I/O); the tests run
# on two pytest-xdist workers (CI has 2 cores), one group per test module (tests/conftest.py), so
# that a module's fixtures, such as the lava-dl exporter files, are built once.
TEST_WORKERS ?= 2

test:
	@$(MAKE) --no-print-directory -j2 venv lava-env
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not ddp and not lava"

lint: $(STAMP)
	$(VENV)/bin/ruff check sakd export hardware tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/digits_sakd.py

clean:
	rm -rf $(VENV) .venv-lava runs .pytest_cache .hypothesis
