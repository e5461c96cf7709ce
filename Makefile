# acsdet: the two commands are `make setup` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
# Use the shared mmcv wheelhouse when one is given (see README); otherwise mmcv builds from source.
export ACSDET_WHEELHOUSE

.PHONY: setup test bench demo
setup:
	bash tools/setup_env.sh

test:
	$(PY) -m pytest tests

bench:
	$(PY) benchmarks/run_all.py
