# make test: venv + install (dev extras) + influxd + chromium + node/TypeScript + ruff + mypy + pytest  (what .ci/run calls)
# make demo: venv + install + influxd + a private InfluxDB loaded with the sample fills
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: test demo lint typecheck influxd chromium node venv bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

influxd:
	@bash scripts/ensure-influxd.sh

chromium:
	@bash scripts/ensure-chromium.sh

node:
	@bash scripts/ensure-node.sh

lint: $(STAMP)
	$(BIN)/ruff check collector tests benchmarks
	$(BIN)/ruff format --check collector tests benchmarks

typecheck: $(STAMP)
	$(BIN)/mypy collector tests benchmarks

test: $(STAMP) influxd chromium node lint typecheck
	$(BIN)/pytest -q -m "not slow"

demo: $(STAMP) influxd
	$(BIN)/python -m collector.demo

bench: $(STAMP) influxd
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/engine.py
	$(BIN)/python benchmarks/latency.py
	$(BIN)/python benchmarks/alerts.py
	$(BIN)/python benchmarks/optimizer.py

clean:
	rm -rf $(VENV) .stratmon .pytest_cache .mypy_cache .ruff_cache
