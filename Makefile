UV = $(shell command -v uv 2>/dev/null || echo python3 -m uv)
PYTEST_ARGS ?=

.PHONY: run test lint provision

provision:
	@bash scripts/provision.sh

run: provision
	$(UV) run chatty dev

test: provision
	$(UV) run pytest -q -p no:cacheprovider -ra $(PYTEST_ARGS)

lint: provision
	$(UV) run ruff check src tests
	$(UV) run mypy src
	$(UV) run lint-imports
