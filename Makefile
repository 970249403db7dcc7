# make test: set up .venv (CPU torch from this machine's wheel, never a CUDA build) and run the tests.
# make demo: set up the same .venv (without the test tools) and run the main job on the bundled
#            CIFAR-10 demo set.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: test demo bench clean

test: $(TEST_STAMP)
	$(PY) -m pytest tests --doctest-modules src/selectivity/core -q

demo: $(STAMP)
	$(VENV)/bin/selectivity demo

bench: $(STAMP)
	$(PY) benchmarks/regularizer_overhead.py

# Torch first and pinned, so that `torch>=2.1` in pyproject.toml is already satisfied and pip
# never resolves it to a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e .
	# The frost corruption's photos (for `selectivity robustness`): only its image files are
	# used, so its own dependencies (OpenCV, numba) are not installed.
	$(PY) -m pip install -q --no-deps imagecorruptions==1.1.2
	touch $(STAMP)

$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install -q -e '.[test]'
	touch $(TEST_STAMP)

clean:
	rm -rf $(VENV) .pytest_cache
