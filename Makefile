# The two commands a newcomer needs: `make serve` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install serve test lint format bench clean postgres


$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Local defaults for `make serve` (documented in the README); set them in the environment to change.
serve: $(STAMP)
	PGWIRE_PASSWORD="$${PGWIRE_PASSWORD:-postgres}" TIMEFUSION_PGWIRE_HOST="$${TIMEFUSION_PGWIRE_HOST:-127.0.0.1}" \
	  GRPC_TOKEN="$${GRPC_TOKEN:-timefusion}" TIMEFUSION_GRPC_HOST="$${TIMEFUSION_GRPC_HOST:-127.0.0.1}" \
	  TIMEFUSION_OTLP_HOST="$${TIMEFUSION_OTLP_HOST:-127.0.0.1}" $(BIN)/timefusion serve

# The client tests compare our wire output with a real PostgreSQL and drive psql: install
# Debian's server package when its binaries are missing (CI machines start without it).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v psql >/dev/null || \
	  { echo "installing PostgreSQL (server binaries and psql) for the tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }

test: $(STAMP) postgres
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/ingest.py && $(BIN)/python bench/queries.py

clean:
	rm -rf $(VENV) data
