# Hounsfield: `make run` starts the archive on embedded defaults, `make test` runs every test.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/hounsfield db upgrade
	exec $(BIN)/hounsfield serve

# DCMTK's command-line tools and Orthanc (with its DICOMweb plugin) are the real peers the
# tests talk to.
system-deps:
	@command -v storescu >/dev/null && dpkg -s orthanc orthanc-dicomweb haproxy >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dcmtk orthanc orthanc-dicomweb haproxy; }

test: $(STAMP) system-deps
	@. scripts/test-postgres.sh && $(BIN)/pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check hounsfield tests bench
	$(BIN)/ruff format --check hounsfield tests bench
	$(BIN)/mypy hounsfield
	$(BIN)/lint-imports

bench: $(STAMP) system-deps
	@dpkg -s orthanc orthanc-dicomweb orthanc-gdcm >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq orthanc orthanc-dicomweb orthanc-gdcm; }
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) var bench/work
