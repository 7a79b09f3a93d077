# The two commands a newcomer needs: `make run` and `make test`. Everything else supports them.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
DRB := $(BIN)/drb
NPM ?= npm
WEB_CSS := services/broker/web/static/build/app.css

.PHONY: run test lint typecheck pytest install assets lock clean help

help:
	@echo "make run    serve the broker with the demo on http://127.0.0.1:$${DRB_PORT:-8000}"
	@echo "make test   ruff, mypy and the whole pytest suite"
	@echo "make lock   re-pin every Python dependency (with hashes) into requirements.lock"

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"

# The lock is the single source of installed versions; the project itself goes in without deps.
$(VENV)/.installed: requirements.lock pyproject.toml | $(UV)
	$(UV) pip sync --quiet --python $(BIN)/python requirements.lock
	$(UV) pip install --quiet --python $(BIN)/python --no-deps -e .
	@touch $@

install: $(VENV)/.installed

# The pages' front end, from package-lock.json: nhsuk-frontend, chart.js, swagger-ui-dist and
# redoc (served by the app from node_modules), sass (compiles the stylesheet) and axe-core (browser
# tests). No install scripts run; nothing is fetched at run time.
node_modules/.installed: package.json package-lock.json
	$(NPM) ci --ignore-scripts --no-audit --no-fund
	@touch $@

$(WEB_CSS): services/broker/web/scss/app.scss node_modules/.installed
	node_modules/.bin/sass --no-source-map --style=compressed --load-path=node_modules $< $@

assets: $(WEB_CSS)

run: install assets
	$(DRB) migrate
	$(DRB) seed-demo
	$(DRB) serve

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

# In parallel (pytest-xdist): each test module on one worker, the modules that share a service's
# state or time recoveries grouped together (tests/conftest.py). PYTEST_WORKERS=0 runs serially.
PYTEST_WORKERS ?= 3
pytest: install assets
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

test: lint typecheck pytest

# mesh-sandbox (a local MESH for tests; infra/services/mesh-sandbox.sh) in its own venv: it pins
# its own FastAPI. Hash-checked from infra/mesh/requirements.txt, which is compiled with
# `.venv/bin/uv pip compile infra/mesh/requirements.in --generate-hashes --python-version 3.11 -o infra/mesh/requirements.txt`.
.venv-mesh/bin/uvicorn: infra/mesh/requirements.txt
	rm -rf .venv-mesh
	$(PYTHON) -m venv .venv-mesh
	.venv-mesh/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes \
		-r infra/mesh/requirements.txt
	@touch $@

lock: | $(UV)
	$(UV) pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 \
		--quiet -o requirements.lock

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache node_modules $(WEB_CSS)
