# Two commands on a fresh machine with only Python: `make run` and `make test`.
# Both bootstrap a virtualenv in .venv with the package and everything the tests need.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

# The oldest versions pyproject.toml declares (constraints/oldest.txt) on the oldest Python it
# declares, in a virtualenv of their own: `make test-oldest`.
PYTHON_OLDEST ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.10.*/bin/python3.10) python3.10)
OLDEST        := .venv-oldest
OLDEST_STAMP  := $(OLDEST)/.installed

.PHONY: run test test-oldest demo bench redis-server clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[test,infra]"
	touch $(STAMP)

# The tests run a real Redis server. Debian's package, installed when missing (as root, or with sudo).
redis-server:
	@command -v redis-server >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  echo "installing Debian's redis-server for the tests"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq redis-server >/dev/null; \
	  $$SUDO systemctl disable --now redis-server >/dev/null 2>&1 || true; }

run: $(STAMP)
	$(BIN)/python -m sample_app

test: $(STAMP) redis-server
	$(BIN)/python -m pytest

$(OLDEST_STAMP): pyproject.toml constraints/oldest.txt
	$(PYTHON_OLDEST) -m venv $(OLDEST)
	$(OLDEST)/bin/python -m pip install --quiet -c constraints/oldest.txt -e ".[test]"
	touch $(OLDEST_STAMP)

# The fast part of the suite and every fast-path contract test (marker fastpath), at the oldest
# versions. The infra extra (CDK) is not installed there: its test reports a skip.
test-oldest: $(OLDEST_STAMP) redis-server
	$(OLDEST)/bin/python -m pytest -m "not slow or fastpath"

demo: $(STAMP)
	$(BIN)/python -m sample_app demo

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
