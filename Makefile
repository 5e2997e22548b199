# The two commands a new user runs:  make demo   and   make test
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test test-fast bench clean

demo: $(VENV)/.installed  ## set up and run the whole gate loop offline on the embedded store
	$(BIN)/sluice demo

test: $(VENV)/.installed-test  ## set up and run every test (PostgreSQL tests need 127.0.0.1:5432)
	$(BIN)/pytest

bench: $(VENV)/.installed-test  ## run the benchmarks, results in bench/results/
	$(BIN)/python bench/gate_bench.py

.PHONY: bench-rollout-e2e
bench-rollout-e2e: $(VENV)/.installed-test  ## rollouts decided on live traffic through the real gateway, results in bench/results/rollout_e2e.*
	flock /tmp/sluice-cpu.lock nice $(BIN)/python bench/rollout_e2e.py

.PHONY: bench-drift
bench-drift: $(VENV)/.installed-test  ## drift detection: false alarms, each kind of shift, time per report (bench/results/drift.*)
	$(BIN)/python bench/drift_bench.py

.PHONY: bench-gate-sim
bench-gate-sim: $(VENV)/.installed-test  ## gate verdict rates by scenario (A/A, regressions), results in bench/results/gate_sim.*
	$(BIN)/python bench/gate_sim.py

.PHONY: bench-dashboard
bench-dashboard: $(VENV)/.installed-test  ## dashboard page times with 10M spans (store cached in ~/.cache/sluice-bench), results in bench/results/dashboard.*
	flock /tmp/sluice-cpu.lock nice $(BIN)/python bench/dashboard_bench.py

.PHONY: bench-attribution
bench-attribution: $(VENV)/.installed-test  ## span writer cost of trace attribution (inheritance), results in bench/results/attribution.*
	$(BIN)/python bench/attribution_bench.py --json bench/results/attribution.json

.PHONY: bench-gateway
LITELLM_VENV = bench/.venv-litellm
bench-gateway: $(VENV)/.installed-test $(LITELLM_VENV)/.installed  ## gateway vs LiteLLM on loopback, results in bench/results/gateway.*
	$(BIN)/python bench/gateway_bench.py

.PHONY: bench-rollout-sim
bench-rollout-sim: $(VENV)/.installed-test  ## rollout analysis on simulated canaries vs fixed-horizon and Kayenta-style judges, results in bench/results/rollout_sim.*
	flock /tmp/sluice-cpu.lock nice $(BIN)/python bench/rollout_sim.py

# LiteLLM (and py-spy, for --profile) live in their own venv, never in the project's
$(LITELLM_VENV)/.installed:
	test -x $(LITELLM_VENV)/bin/python || $(PYTHON) -m venv $(LITELLM_VENV)
	$(LITELLM_VENV)/bin/python -m pip install -q 'litellm[proxy]==1.108.7' 'py-spy==0.4.3' && touch $@ \
		|| echo "LiteLLM could not be installed: the gateway benchmark runs without it and says so"

# setup.py compiles src/sluice/telemetry/_otlpfast.c (the OTLP decoder); editing it reinstalls
$(VENV)/.installed: pyproject.toml setup.py src/sluice/telemetry/_otlpfast.c
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

clean:
	rm -rf $(VENV) .sluice sluice-demo .pytest_cache

.PHONY: bench-groundedness
bench-groundedness: $(VENV)/.installed-test  ## groundedness backends and baselines on labelled data, results in bench/results/groundedness.*
	$(BIN)/python bench/groundedness_bench.py
