# Two commands on a fresh machine:  make lab  |  make test
# Options:  PYTHON=python3.12 (an interpreter >= 3.11)
#           TORCH=cpu  install torch from PyPI's CPU-only wheel index of PyTorch
#                      (https://download.pytorch.org/whl/cpu): about 0.2 GB instead of the default
#                      Linux wheel with its CUDA libraries (several GB). Any other build name there
#                      works the same way (TORCH=cu126, ...). Default: plain `pip install torch==...`.
#                      To switch an existing .venv: make clean, then make lab TORCH=cpu.
PYTHON ?= python3
TORCH  ?=
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.companion-installed
TEST_STAMP := $(VENV)/.companion-test-installed
LAB_STAMP  := $(VENV)/.companion-lab-installed
BOOK_STAMP := $(VENV)/.companion-book-installed
TORCH_PIN   = $(shell grep -E '^torch==' requirements.txt)
TORCH_INDEX = https://download.pytorch.org/whl/$(TORCH)
PIP    := $(BIN)/python -m pip install --quiet --disable-pip-version-check
# One torch thread per notebook kernel and two kernels at a time (one per core): see README.
JOBS   ?= 2

.PHONY: lab test unit test-variants notebooks sync env clean handout book test-colab test-minimum gpu-wheels gpu-check

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "The pinned environment needs Python 3.11+ (numpy 2.4, scipy 1.17, ipykernel 7); found " + sys.version.split()[0] + ". Run: make $(MAKECMDGOALS) PYTHON=python3.11 (or newer)")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(if $(TORCH),$(PIP) "$(TORCH_PIN)" --index-url $(TORCH_INDEX))
	grep -v '^jupyterlab==' requirements.txt | $(PIP) -r /dev/stdin
	$(PIP) --no-deps --no-build-isolation -e .
	$(BIN)/python -m ipykernel install --user --name companion --display-name "Python 3 (companion)" >/dev/null
	touch $(STAMP)

# JupyterLab and its server for `make lab` only: no test, notebook run or book build imports them
# (`make test` installs 41 packages fewer, ~10 CPU-s less of ~83; babel, beautifulsoup4 and soupsieve,
# never pinned, still come with the book's theme).
$(LAB_STAMP): requirements.txt $(STAMP)
	$(PIP) -r requirements.txt
	touch $(LAB_STAMP)

# Test-only pins (diffusers: an outside reference for the DDPM step), on top of the course environment,
# and the book's (tests/test_book.py builds the online book).
$(TEST_STAMP): requirements-test.txt requirements-book.txt $(STAMP)
	$(PIP) -r requirements-test.txt -r requirements-book.txt
	touch $(TEST_STAMP)

# The online book's pins (Sphinx, MyST-NB, the book theme), on top of the course environment.
$(BOOK_STAMP): requirements-book.txt $(STAMP)
	$(PIP) -r requirements-book.txt
	touch $(BOOK_STAMP)

env: $(STAMP)

lab: $(LAB_STAMP)
	$(BIN)/jupyter lab chapters/ $$([ "$$(id -u)" = 0 ] && echo --allow-root)

# The whole suite: unit tests of companion_lib, then nbval over every notebook (quick mode), the
# notebooks under the no-float64 stand-in of Apple's MPS (COMPANION_NO_FLOAT64=1; the unit tests
# unset it, see tests/conftest.py). Whole files to a worker, the longest first (tests/durations.json;
# --no-loadscope-reorder keeps that order instead of xdist's by number of tests).
DIST := --dist loadfile --no-loadscope-reorder
test: $(TEST_STAMP)
	COMPANION_MODE=$${COMPANION_MODE:-quick} COMPANION_THREADS=1 COMPANION_NO_FLOAT64=1 \
	  $(BIN)/python -m pytest -n $(JOBS) $(DIST) --nbval-lax --nbval-current-env \
	  -p no:cacheprovider tests chapters solutions

unit: $(TEST_STAMP)
	$(BIN)/python -m pytest -n $(JOBS) $(DIST) -p no:cacheprovider tests

# The unit tests three more times, each under kernels that round differently (as another CPU would:
# BLAS without AVX-512, BLAS without AVX, ATen's portable kernels); all must pass. Not part of `test`
# (it triples the unit tests' time). See README, "What the tests tolerate".
VARIANTS := MKL_ENABLE_INSTRUCTIONS=AVX2 MKL_ENABLE_INSTRUCTIONS=SSE4_2 ATEN_CPU_CAPABILITY=default
test-variants: $(TEST_STAMP)
	set -e; for v in $(VARIANTS); do echo "== $$v"; \
	  env $$v $(BIN)/python -m pytest -n $(JOBS) -p no:cacheprovider -q tests; done

# The environments users have (README, "Versions"), each built from a pip constraints file with its
# provenance: `make test-colab` (constraints/colab.txt: Colab as it ships; Colab runs Python 3.13: give
# COLAB_PYTHON=python3.13 where you have it) and `make test-minimum` (constraints/minimum.txt: the lower
# bounds of pyproject.toml, on MINIMUM_PYTHON, 3.11 by default as requires-python says). Not part of CI
# (GBs of torch each). .venv-X/.base: the constraints list installed alone, as the user has it.
# .venv-X/.built: then the companion as README's route installs it (`pip install`, no constraints
# file), which must change no package already there (pip freeze before/after, constraints/unchanged.py);
# then its grade and test extras with `-c constraints/X.txt` (adds the test tools, changes no pin).
# The tests: the unit tests and every notebook of chapters/ and solutions/, quick mode.
COLAB_PYTHON   ?= $(PYTHON)
MINIMUM_PYTHON ?= $(PYTHON)
ENV_PIP = -m pip install --quiet --disable-pip-version-check

.venv-%/.base: constraints/%.txt
	rm -rf .venv-$*
	$(if $(filter colab,$*),$(COLAB_PYTHON),$(MINIMUM_PYTHON)) -m venv .venv-$*
	.venv-$*/bin/python $(ENV_PIP) -r constraints/$*.txt
	touch $@

.venv-%/.built: .venv-%/.base pyproject.toml constraints/unchanged.py
	.venv-$*/bin/python -m pip freeze --all --exclude-editable > .venv-$*/freeze-before.txt
	.venv-$*/bin/python $(ENV_PIP) -e .
	.venv-$*/bin/python -m pip freeze --all --exclude-editable > .venv-$*/freeze-route.txt
	.venv-$*/bin/python constraints/unchanged.py .venv-$*/freeze-before.txt .venv-$*/freeze-route.txt
	.venv-$*/bin/python $(ENV_PIP) -c constraints/$*.txt -e '.[test,grade]'
	.venv-$*/bin/python -m pip freeze --all --exclude-editable > .venv-$*/freeze-after.txt
	.venv-$*/bin/python constraints/unchanged.py .venv-$*/freeze-before.txt .venv-$*/freeze-after.txt
	touch $@

.PRECIOUS: .venv-%/.base .venv-%/.built
test-colab test-minimum: test-%: .venv-%/.built
	COMPANION_MODE=quick COMPANION_THREADS=1 \
	  .venv-$*/bin/python -m pytest -n $(JOBS) --dist loadfile --nbval-lax --nbval-current-env \
	  -p no:cacheprovider -rfEs tests chapters solutions

# Re-pair every notebook (.py is the source) and re-execute it in quick mode, saving outputs.
notebooks: $(STAMP)
	$(BIN)/jupytext --sync chapters/*.py solutions/*.py
	COMPANION_MODE=quick COMPANION_THREADS=1 $(BIN)/python tools/execute_notebooks.py chapters/*.ipynb solutions/*.ipynb

# The online book: the committed, executed lessons of chapters/ as a static site in _build/book/ (nothing
# is executed; solutions/ left out), then its links checked offline (external ones listed, not fetched).
# See README, "Read online".
book: $(BOOK_STAMP)
	$(BIN)/python book/build.py _build/book
	$(BIN)/python book/links.py _build/book

# The GPU run (README, "GPU run"): `make gpu-wheels` downloads what the lent GPU machine lacks
# (tools/gpu_requirements.txt, wheels for its Python 3.12 on x86-64 Linux) into .gpu-wheels/ and checks the
# set (every dependency carried or there, <= 64 MiB); `make gpu-check` is the script's dry run on this CPU.
GPU_PLATFORMS := --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
                 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64
gpu-wheels: $(STAMP)
	rm -rf .gpu-wheels
	$(BIN)/python -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
	  $(GPU_PLATFORMS) -d .gpu-wheels -r tools/gpu_requirements.txt
	$(BIN)/python tools/gpu_check.py wheels .gpu-wheels

gpu-check: $(TEST_STAMP)
	PYTHON=$(BIN)/python bash tools/gpu_check.sh --dry-run --out out/gpu-check

# The lessons for students, without solutions/ (see README, "For instructors").
handout:
	git archive --prefix=companion/ -o companion-lessons.tar.gz HEAD -- . ':(exclude)solutions'
	@echo "wrote companion-lessons.tar.gz (the committed HEAD, without solutions/)"

clean:
	rm -rf $(VENV) .pytest_cache
