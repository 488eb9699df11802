# Hounsfield: `make run` starts the archive on embedded defaults, `make test` runs every test.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench reliability system-deps ui-assets browser-deps viewer clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP) ui-assets viewer
	$(BIN)/hounsfield db upgrade
	exec $(BIN)/hounsfield serve

# DCMTK's command-line tools and Orthanc (with its DICOMweb plugin) are the real peers the
# tests talk to.
system-deps:
	@command -v storescu >/dev/null && dpkg -s orthanc orthanc-dicomweb haproxy >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dcmtk orthanc orthanc-dicomweb haproxy; }

# The admin pages' one script, htmx, from the npm registry (no CDN at run time).
HTMX_VERSION := 2.0.11
HTMX := hounsfield/web/ui/static/vendor/htmx.min.js
ui-assets: $(HTMX)

$(HTMX):
	@mkdir -p $(@D) && tmp=$$(mktemp -d) && cd $$tmp \
	  && npm pack --silent htmx.org@$(HTMX_VERSION) >/dev/null \
	  && tar xzf htmx.org-$(HTMX_VERSION).tgz \
	  && cp package/dist/htmx.min.js package/LICENSE $(abspath $(@D))/ && rm -rf $$tmp

# OHIF, the viewer the node serves at its root: the prebuilt static viewer of @ohif/app from the
# npm registry (no build), without `ort/` (the onnxruntime files, ~140 MB, unused for viewing),
# with gzip copies of its scripts that the node sends to browsers that take them.
OHIF_VERSION := 3.13.2
VIEWER_DIR := hounsfield/web/viewer/dist
VIEWER := $(VIEWER_DIR)/.ohif-$(OHIF_VERSION)
viewer: $(VIEWER)

$(VIEWER):
	@rm -rf $(VIEWER_DIR) && mkdir -p $(VIEWER_DIR) && tmp=$$(mktemp -d) && cd $$tmp \
	  && npm pack --silent @ohif/app@$(OHIF_VERSION) >/dev/null \
	  && tar xzf ohif-app-$(OHIF_VERSION).tgz --exclude=package/dist/ort \
	  && cp -R package/dist/. package/LICENSE $(CURDIR)/$(VIEWER_DIR)/ && rm -rf $$tmp \
	  && cd $(CURDIR) && find $(VIEWER_DIR) -type f -size +1k \( -name '*.js' -o -name '*.css' \
	    -o -name '*.wasm' -o -name '*.json' -o -name '*.svg' \) -exec gzip -k -6 {} + \
	  && touch $@

# Debian's Chromium, the real browser the admin page tests drive through Playwright.
browser-deps:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

test: $(STAMP) system-deps ui-assets browser-deps viewer
	@. scripts/test-postgres.sh && $(BIN)/pytest -q -p no:cacheprovider -n 2 --dist loadfile --durations=15

lint: $(STAMP)
	$(BIN)/ruff check hounsfield tests bench
	$(BIN)/ruff format --check hounsfield tests bench
	$(BIN)/mypy hounsfield bench
	$(BIN)/lint-imports

bench: $(STAMP) system-deps
	@dpkg -s orthanc orthanc-dicomweb orthanc-gdcm orthanc-postgresql >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq orthanc orthanc-dicomweb orthanc-gdcm orthanc-postgresql; }
	$(BIN)/python -m bench.run

# Fuzzing, kill -9 during ingest, floods and slow clients, soak; writes bench/RELIABILITY.md
# (RELIABILITY_PARTS=kill,flood for some parts, RELIABILITY_QUICK=1 for the short forms).
reliability: $(STAMP) system-deps
	@$(BIN)/python -c "import atheris" 2>/dev/null || $(BIN)/pip install --quiet 'atheris>=3'
	$(BIN)/python -m bench.reliability.run

clean:
	rm -rf $(VENV) var bench/work $(VIEWER_DIR) $(dir $(HTMX))
