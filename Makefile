# Two commands: `make run` (install, then optimize on the embedded defaults) and `make test` (install, then
# lint, type-check and run the whole suite). Each creates .venv on first use. The install takes the optional
# extras the tests exercise (`local`: the embedded LLM; `ray`: the Ray sweep and embedding executors).
# llama-cpp-python is built portably (AVX2 level, no AVX-512/AMX) by scripts/install-llama-cpp.sh before the
# rest, so a machine that advertises instructions it does not enable still runs it; `LLAMA_BUILD=native`
# opts into a build for this machine's own CPU (faster where it works): `make clean install LLAMA_BUILD=native`.
PYTHON ?= python3
LLAMA_BUILD ?= portable
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.visfeed-installed

.PHONY: run test install bench clean

$(STAMP): pyproject.toml Makefile scripts/install-llama-cpp.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	bash scripts/install-llama-cpp.sh $(VENV) $(LLAMA_BUILD)
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
