# Two entry points (see README): `make run` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
INPUT  ?= data/raw
OUT    ?= data/clean

.PHONY: setup run test lint models clean-venv

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test,bench]"
	touch $@

# The main job: every sample scan in data/raw -> records in data/clean, with overlay PNGs.
run: setup
	$(BIN)/scanforms run $(INPUT) --out $(OUT) --overlays

lint: setup
	$(BIN)/ruff check pipeline flows tests bench

test: setup lint
	$(BIN)/pytest

# Rebuild the spaCy label pipeline under models/ from models/schema.yaml.
models: setup
	$(BIN)/python -m pipeline.lexicon build

clean-venv:
	rm -rf $(VENV)
