# EvalStudio — `make run` to try it, `make test` for the whole suite, `make bench` for the figures.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
export PORT

.PHONY: run test lint format bench clean

# Reinstall only when a requirements file changes.
$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# The embedded default (SQLite + filesystem broker under var/) unless DATABASE_URL / REDIS_URL are set.
# honcho exits 130 after a clean Ctrl-C shutdown: that is success, not an error.
run: export DEBUG ?= 1
run: $(VENV)/.installed
	$(BIN)/python manage.py migrate --no-input
	$(BIN)/python manage.py load_demo --if-debug
	@echo ""
	@echo "  EvalStudio is starting on http://127.0.0.1:$(PORT)/  (log in as demo / demo)"
	@echo "  Ctrl-C stops the web server and the worker."
	@echo ""
	$(BIN)/honcho -f Procfile.dev start || [ $$? -eq 130 ]

test: export SECRET_KEY ?= insecure-test-only-key
test: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: export SECRET_KEY ?= insecure-bench-only-key
bench: $(VENV)/.installed-dev
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) var staticfiles .pytest_cache .ruff_cache
