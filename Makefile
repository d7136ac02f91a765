# Two commands on a fresh machine:  make lab  |  make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.companion-installed
# One torch thread per notebook kernel and two kernels at a time (one per core): see README.
JOBS   ?= 2

.PHONY: lab test unit notebooks sync env clean

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "The pinned environment needs Python 3.11+ (numpy 2.4, scipy 1.17, ipykernel 7); found " + sys.version.split()[0] + ". Run: make $(MAKECMDGOALS) PYTHON=python3.11 (or newer)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --user --name companion --display-name "Python 3 (companion)" >/dev/null
	touch $(STAMP)

env: $(STAMP)

lab: $(STAMP)
	$(BIN)/jupyter lab chapters/ $$([ "$$(id -u)" = 0 ] && echo --allow-root)

# The whole suite: unit tests of companion_lib, then nbval over every notebook (quick mode).
test: $(STAMP)
	COMPANION_MODE=$${COMPANION_MODE:-quick} COMPANION_THREADS=1 \
	  $(BIN)/python -m pytest -n $(JOBS) --dist loadfile --nbval-lax --nbval-current-env \
	  -p no:cacheprovider tests chapters solutions

unit: $(STAMP)
	$(BIN)/python -m pytest -n $(JOBS) -p no:cacheprovider tests

# Re-pair every notebook (.py is the source) and re-execute it in quick mode, saving outputs.
notebooks: $(STAMP)
	$(BIN)/jupytext --sync chapters/*.py solutions/*.py
	COMPANION_MODE=quick COMPANION_THREADS=1 $(BIN)/python tools/execute_notebooks.py chapters/*.ipynb solutions/*.ipynb

clean:
	rm -rf $(VENV) .pytest_cache
