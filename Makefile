# reinforge: `make demo` and `make test` work on a fresh machine with only Python 3.11.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch is pinned to the CPU build that lies on this machine's disk: any other spec can pull a multi-GB CUDA build.
TORCH := torch==2.13.0

.PHONY: install bwrap demo demo-rlhf test test-slow lint format bench bench-gpu clean typecheck

$(BIN)/python:
	@command -v $(PY) >/dev/null 2>&1 || { echo "python3.11 not found; set PY=/path/to/python3.11"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[dev]" -c constraints.txt  # the exact versions the tests were run with
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/reinforge demo

.PHONY: demo-addition
demo-addition: $(STAMP)  # the demo on 2-digit addition: its headline holds on some seeds only (README)
	$(BIN)/reinforge demo --task addition --output-dir runs/demo-addition

demo-rlhf: $(STAMP)
	$(BIN)/reinforge demo rlhf

.PHONY: demo-agent
demo-agent: $(STAMP)  # a tiny model learns to call a calculator: SFT on demonstrations, RFT against its HTTP endpoint
	$(BIN)/reinforge demo agent

.PHONY: agent-base
agent-base: $(STAMP)  # rebuild the agent demo's shipped base model (~8 min on 2 cores): reinforge/demo_data/agent-base
	$(BIN)/python -m reinforge.demo_agent_base

.PHONY: demo-tune-agent
demo-tune-agent: $(STAMP)  # tune a served calculator tool model's agent knobs; held-out accuracy, pareto.png
	$(BIN)/reinforge demo tune-agent $(if $(MODEL_DIR),--model-dir $(MODEL_DIR))

lint: $(STAMP)
	$(BIN)/ruff check reinforge tests benchmarks
	$(BIN)/ruff format --check reinforge tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format reinforge tests benchmarks
	$(BIN)/ruff check --fix reinforge tests benchmarks

# bubblewrap, the OS sandbox of python graders: installed (as root, with apt-get) only when missing;
# without it python graders run unsandboxed with a warning and the sandbox tests skip.
bwrap:
	@command -v bwrap >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1 \
	  || (export DEBIAN_FRONTEND=noninteractive; apt-get install -y -qq bubblewrap >/dev/null 2>&1 \
	      || (apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null)) \
	  || echo "make: bubblewrap could not be installed; python graders will run without the OS sandbox"

test: $(STAMP) bwrap
	$(BIN)/ruff check reinforge tests benchmarks
	$(BIN)/ruff format --check reinforge tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -x --durations=15 --doctest-modules reinforge tests

# mypy over the package (its config: [tool.mypy] in pyproject.toml)
typecheck: $(STAMP)
	$(BIN)/mypy

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow tests

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all

# the GPU benchmark alone, every side (skips without CUDA; `--smoke` runs it on a tiny model anywhere)
bench-gpu: $(STAMP)
	$(BIN)/python -m benchmarks.bench_grpo_gpu --steps 3 --sides reinforge,reinforge_packed,reinforge_keep_logits,trl

# multi-turn GRPO with a Python tool (calculator), reinforge vs TRL's tool-calling GRPOTrainer: completions/s
.PHONY: bench-agent
bench-agent: $(STAMP)
	$(BIN)/python -m benchmarks.bench_agent

# validation reward against training seconds, reinforge vs TRL at the same budget (plot: runs/bench-quality/)
.PHONY: bench-quality
bench-quality: $(STAMP)
	$(BIN)/python -m benchmarks.bench_quality

clean:
	rm -rf runs .pytest_cache
