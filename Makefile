# Every target sets up its own virtual environment in .venv, so each works on a fresh machine with
# Python 3.11+ and a Rust toolchain (packages come from PyPI and crates.io; nothing else is fetched).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test test-rust test-python lint-rust bench build-dev clean

$(PY):
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

## demo: install the package, explain how the bundled example conversation packs, and write its HTML report
demo: $(PY)
	$(PY) -m pip install -q .
	$(VENV)/bin/ctxsched count examples/agent_session.json --budget 4000
	$(VENV)/bin/ctxsched explain examples/agent_session.json --budget 4000 --policy examples/policy.toml \
		--html examples/agent_session.html

## test: install with test dependencies and run every test, Rust and Python (what CI runs)
test: $(PY)
	$(PY) -m pip install -q '.[test]'
	$(MAKE) lint-rust test-rust test-python

lint-rust:
	cargo fmt --check
	cargo clippy --all-targets --features python --locked -- -D warnings

test-rust:
	cargo test --locked

test-python:
	$(PY) -m pytest

## bench: benchmarks against tiktoken in the same run (release build); figures go to the README
bench: $(PY)
	$(PY) -m pip install -q '.[test,bench]'
	$(PY) -m pytest benches --benchmark-enable --benchmark-json=.benchmarks/latest.json -p no:cacheprovider
	$(PY) benches/summarize.py .benchmarks/latest.json

## build-dev: a quick debug build into the virtual environment, for development
build-dev: $(PY)
	$(PY) -m pip install -q maturin
	$(VENV)/bin/maturin develop

clean:
	rm -rf $(VENV) target .benchmarks
