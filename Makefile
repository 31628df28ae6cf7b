# Two entry points (see README Quickstart):  `make demo`  and  `make test`.
# Both create .venv on first use. On a machine without an NVIDIA GPU the set-up pins the CPU
# build of torch (and the torchvision that matches it) *before* anything else can pull a CUDA torch.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.raypath-installed

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml .ci/setup.sh
	bash .ci/setup.sh $(PYTHON) $(VENV)
	@touch $@

demo: $(STAMP)
	$(VENV)/bin/raypath demo --config jobs/configs/demo.yaml

test: $(STAMP)
	$(VENV)/bin/ruff check raypath jobs tests benchmarks
	$(PY) -m pytest -q --durations=25 tests

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) demo .pytest_cache .ruff_cache
