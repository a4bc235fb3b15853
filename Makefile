# Two commands on a fresh machine with only Python: `make run` and `make test`.
# `make run` bootstraps a virtualenv in .venv with the package and the sample app's extra (gunicorn,
# fakeredis); `make test` adds the test and infra extras (pytest, grpcio, the AWS CDK...) to the same
# virtualenv, and Debian's redis-server. Each stamp is one step, so `make run` then `make test` only
# adds what is missing.

PYTHON     ?= python3
VENV       := .venv
BIN        := $(VENV)/bin
RUN_STAMP  := $(VENV)/.installed-run
STAMP      := $(VENV)/.installed

# The oldest versions pyproject.toml declares (constraints/oldest.txt) on the oldest Python it
# declares, in a virtualenv of their own: `make test-oldest`.
PYTHON_OLDEST ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.10.*/bin/python3.10) python3.10)
OLDEST        := .venv-oldest
OLDEST_STAMP  := $(OLDEST)/.installed

.PHONY: run test test-oldest demo doctor bench redis-server clean

$(VENV)/pyvenv.cfg:
	$(PYTHON) -m venv $(VENV)

# What running needs: the package and the `app` extra.
$(RUN_STAMP): pyproject.toml | $(VENV)/pyvenv.cfg
	$(BIN)/python -m pip install --quiet -e ".[app]"
	touch $(RUN_STAMP)

# What the tests need besides: the `test` and `infra` extras (the `test` extra includes `app`).
$(STAMP): pyproject.toml | $(VENV)/pyvenv.cfg
	$(BIN)/python -m pip install --quiet -e ".[test,infra]"
	touch $(STAMP) $(RUN_STAMP)

# The tests run a real Redis server. Debian's package, installed when missing (as root, or with sudo).
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  echo "installing Debian's redis-server for the tests"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq redis-server >/dev/null; \
	  $$SUDO systemctl disable --now redis-server >/dev/null 2>&1 || true; }

# The collector the tests run and `make collector-run` starts: the OpenTelemetry Collector Builder
# v0.156.0 builds collector/builder-config.yaml (the components the two configs use, at ADOT v0.49's
# release) into .collector/ (git-ignored). Modules come only through the Go module proxy; with Go's
# module and build caches warm a rebuild takes seconds. Needs Go >= 1.25 (GO=/path/to/go).
GO          ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
GOPROXY     ?= https://proxy.golang.org
OCB_VERSION := v0.156.0
COLLECTOR   := .collector/otelcol-kyo

.PHONY: collector collector-run

$(COLLECTOR): collector/builder-config.yaml
	@test -x "$$(command -v $(GO))" || { echo "make collector needs Go >= 1.25 (https://go.dev/dl/); none at $(GO)"; exit 1; }
	GOPROXY=$(GOPROXY) GOFLAGS=-mod=mod $(GO) run go.opentelemetry.io/collector/cmd/builder@$(OCB_VERSION) \
	  --config collector/builder-config.yaml
	touch $@

collector: $(COLLECTOR)

# The local config (debug exporter, traces to an OTLP backend on :14317) for development.
collector-run: $(COLLECTOR)
	$(COLLECTOR) --config collector/otel-collector.local.yaml

run: $(RUN_STAMP)
	$(BIN)/python -m sample_app

test: $(STAMP) redis-server $(COLLECTOR)
	$(BIN)/python -m pytest

$(OLDEST_STAMP): pyproject.toml constraints/oldest.txt
	$(PYTHON_OLDEST) -m venv $(OLDEST)
	$(OLDEST)/bin/python -m pip install --quiet -c constraints/oldest.txt -e ".[test]"
	touch $(OLDEST_STAMP)

# The fast part of the suite and every fast-path contract test (marker fastpath), at the oldest
# versions. The infra extra (CDK) is not installed there: its test reports a skip.
test-oldest: $(OLDEST_STAMP) redis-server
	$(OLDEST)/bin/python -m pytest -m "not slow or fastpath"

demo: $(RUN_STAMP)
	$(BIN)/python -m sample_app demo

# The effective settings, where each came from, and the checks (the CLI is .venv/bin/kyo-otel).
doctor: $(RUN_STAMP)
	$(BIN)/kyo-otel doctor

# Telemetry overhead, side by side (bare / stock OpenTelemetry / kyo_otel; about 5 minutes); wrk drives the
# throughput part (Debian's package, installed when missing). Not part of `make test`.
bench: $(STAMP) redis-server
	@command -v wrk >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  echo "installing Debian's wrk for the throughput benchmark"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq wrk >/dev/null; }
	$(BIN)/python benchmarks/overhead.py

clean:
	rm -rf $(VENV) $(OLDEST) .pytest_cache .hypothesis cdk.out
