# Two commands: `make run` (install, then optimize on the embedded defaults) and `make test` (install, then
# lint, type-check and run the whole suite). Each creates .venv on first use. The install takes the optional
# extras the tests exercise (`local`: the embedded LLM; `ray`: the Ray sweep and embedding executors).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.visfeed-installed

.PHONY: run test install bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e ".[local,ray,dev]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/visfeed optimize

test: $(STAMP)
	@command -v chromium >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q chromium; } \
		|| if [ "$$CI" = "true" ] || [ "$$VISFEED_REQUIRE_ALL" = "1" ]; then \
			echo "error: could not install Debian's chromium, which CI requires for the HTML report test" >&2; exit 1; \
		else echo "warning: could not install Debian's chromium; the HTML report browser test will be skipped"; fi
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/pytest

bench: $(STAMP)
	mkdir -p benchmarks/results
	$(BIN)/python benchmarks/scoring.py --out benchmarks/results/scoring.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
