# acsdet: the two commands are `make demo` and `make test`; each sets the project up first
# (`make setup`: quick when it is done).
VENV ?= .venv
PY := $(VENV)/bin/python
# Use the shared mmcv wheelhouse when one is given (see docs/install.md); otherwise mmcv builds from source.
export ACSDET_WHEELHOUSE

.PHONY: setup test test-fast lint bench demo wheel-check
setup:
	bash tools/setup_env.sh

# Two pytest-xdist workers: one trains the end-to-end model and runs the tests on it (the
# `e2e` group, tests/conftest.py), the other runs the rest of the suite beside it.
PYTEST_PARALLEL ?= -n 2 --dist loadgroup
test: setup
	$(PY) -m pytest tests $(PYTEST_PARALLEL)

# Without the tests that train the end-to-end model or use it (marked slow; about 2 minutes).
test-fast: setup
	$(PY) -m pytest tests -m "not slow" $(PYTEST_PARALLEL)

# The tree is kept isort / yapf / flake8 clean (settings in pyproject.toml and setup.cfg; the
# versions are pinned in requirements/constraints.txt and installed by make setup).
LINTED := acsdet tools tests data_converters benchmarks setup.py
lint:
	$(PY) -m isort --check-only --diff $(LINTED)
	$(PY) -m yapf --diff --recursive $(LINTED)
	$(PY) -m flake8 $(LINTED)

# Benchmarks (not tests): see benchmarks/ and docs/benchmarks.md.
bench:
	$(PY) benchmarks/bench_acs_conv.py
	$(PY) benchmarks/bench_backbone.py
	$(PY) benchmarks/bench_froc.py
	$(PY) benchmarks/bench_pipeline.py
	$(PY) benchmarks/bench_weak_masks.py

# acsdet as a user installs it: the wheel in a new virtualenv, its command run end to end
# outside the clone (tools/check_wheel.sh; .ci/run runs it).
wheel-check: setup
	bash tools/check_wheel.sh

# The synthetic demo: generate a small DeepLesion-format set, convert it, train the CPU-sized
# ACS 7-slice model, test it and print the FROC table, then write a test series with a lung
# lesion as NIfTI and detect its lesions from the checkpoint alone (about 20 minutes on 2 CPU
# cores). Sets the project up first.
DEMO_DATA ?= data/synthetic_demo
DEMO_WORK ?= work_dirs/demo
DEMO_CONFIG ?= configs/demo/deeplesion_acs_7slice_demo.py
ACSDET := $(VENV)/bin/acsdet
demo: setup
	$(ACSDET) convert synthetic --out $(DEMO_DATA) --num-series 240 \
		--seed 0 --image-size 192 --context-mm 8 --lesion-mm 10 60
	$(ACSDET) convert coco --data-root $(DEMO_DATA) --out-dir $(DEMO_DATA)/annotations --workers 2
	$(ACSDET) train $(DEMO_CONFIG) --work-dir $(DEMO_WORK) --data-root $(DEMO_DATA)
	$(ACSDET) test $(DEMO_CONFIG) $$(ls -t $(DEMO_WORK)/best_froc_avg_*.pth | head -1) \
		--work-dir $(DEMO_WORK)/test --data-root $(DEMO_DATA) --show-dir $(DEMO_WORK)/test/show \
		--out $(DEMO_WORK)/test/results.pkl
	rm -rf $(DEMO_WORK)/ct
	$(ACSDET) convert nifti --dl-info $(DEMO_DATA)/DL_info.csv \
		--images-dir $(DEMO_DATA)/Images_png --split test --lesion-type 5 --limit 1 \
		--out-dir $(DEMO_WORK)/ct
	$(ACSDET) infer $$(ls -t $(DEMO_WORK)/best_froc_avg_*.pth | head -1) \
		$(DEMO_WORK)/ct/*.nii.gz --out-dir $(DEMO_WORK)/infer --save-masks --save-overlays
