# The two commands of the README: `make dev` runs the gateway locally, `make test` runs
# every test. Both set up what they need themselves (venv from requirements.lock).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# sha1sum on Linux, shasum (SHA-1 too) on macOS.
SHA1 := $(shell command -v sha1sum >/dev/null && echo sha1sum || echo shasum)
INSTALLED := $(VENV)/.installed-$(shell $(SHA1) < requirements.lock | cut -c1-12)
# On the venv's path, straight from the checkout: the gateway layer, the repo root and the client
# SDK, so `python -m usdt_gateway.admin` and `import usdt_gateway_client` just work, with no copy
# to go stale or vanish when the venv is rebuilt.
VENV_PATHS := $(CURDIR)/layers/gateway $(CURDIR) $(CURDIR)/sdk/python
STAMP := $(VENV)/.paths-$(shell echo '$(VENV_PATHS)' | $(SHA1) | cut -c1-12)
export AWS_ACCESS_KEY_ID ?= testing
export AWS_SECRET_ACCESS_KEY ?= testing
export AWS_DEFAULT_REGION ?= us-east-1
export AWS_ACCOUNT_ID_ENDPOINT_MODE := disabled

.PHONY: venv dev test lint typecheck openapi lock bench build validate clean

$(INSTALLED): requirements.lock
	@rm -rf $(VENV)
	"$$(scripts/find-python.sh)" -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --no-deps -r requirements.lock
	$(PY) -m pip check
	@touch $@

$(STAMP): $(INSTALLED)
	@printf '%s\n' $(VENV_PATHS) > "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/usdt-gateway.pth"
	@rm -f $(VENV)/.paths-*
	@touch $@

venv: $(STAMP)

# anvil (the local EVM chain of the dev stack and the tests), pinned in package-lock.json.
node_modules/.installed: package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

# The browser tests and screenshots drive Chromium headless (Playwright, executable_path).
# By default Debian's, with a CJK font for the payment page's Chinese (without one, empty boxes),
# both installed with apt (as root, or through sudo). Elsewhere, `CHROMIUM=/path/to/chrome make
# test` uses that browser as it is, with the system's fonts (devstack/browser.py reads it too).
CHROMIUM ?= /usr/bin/chromium
export CHROMIUM
CJK_FONT := /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc
ifeq ($(CHROMIUM),/usr/bin/chromium)
BROWSER := $(CHROMIUM) $(CJK_FONT)
else
BROWSER := $(CHROMIUM)
$(CHROMIUM):
	@echo "CHROMIUM=$(CHROMIUM) does not exist: point it at a Chromium or Chrome executable" >&2; exit 1
endif
SUDO = $$( [ "$$(id -u)" = 0 ] || echo sudo )
APT_INSTALL = $(SUDO) apt-get install -y -q --no-install-recommends $(1) \
  || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q --no-install-recommends $(1); }

/usr/bin/chromium:
	$(call APT_INSTALL,chromium)

$(CJK_FONT):
	$(call APT_INSTALL,fonts-noto-cjk)

dev: $(STAMP) node_modules/.installed
	$(PY) -m devstack

test: $(STAMP) .venv-sam/bin/sam node_modules/.installed $(BROWSER)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(STAMP)
	$(PY) -m mypy

openapi: $(STAMP)
	$(PY) -m usdt_gateway.api.openapi --write

bench: $(STAMP) node_modules/.installed
	$(PY) -m bench.cold_start
	$(PY) -m bench.latency
	$(PY) -m bench.rpc_calls
	$(PY) -m bench.list_filters
	$(PY) -m bench.matching
	$(PY) -m bench.detection_latency
	$(PY) -m bench.burst
	$(PY) -m bench.webhooks
	$(PY) -m bench.settlement_time
	$(PY) -m bench.cost

# Re-resolve the lock from requirements-dev.in (needs the package index).
lock:
	rm -rf .venv-lock && "$$(scripts/find-python.sh)" -m venv .venv-lock
	.venv-lock/bin/pip install -q --upgrade pip && .venv-lock/bin/pip install -q -r requirements-dev.in
	( echo '# Exact versions of the dev/test environment, resolved from requirements-dev.in on Python 3.12 (make lock).'; \
	  .venv-lock/bin/pip freeze ) > requirements.lock
	rm -rf .venv-lock

# SAM CLI lives in its own venv: installed into the app venv it would downgrade boto3 and pydantic.
.venv-sam/bin/sam: requirements-sam.lock
	rm -rf .venv-sam
	"$$(scripts/find-python.sh)" -m venv .venv-sam
	.venv-sam/bin/pip install -q --upgrade pip
	.venv-sam/bin/pip install -q --no-deps -r requirements-sam.lock
	.venv-sam/bin/pip check

# --language-extensions: the template's Fn::ForEach loops (AWS::LanguageExtensions), which
# `sam build` cannot read without it; CloudFormation still gets them as written.
build: .venv-sam/bin/sam
	PATH="$$(dirname "$$(scripts/find-python.sh)"):$$PATH" SAM_CLI_TELEMETRY=0 .venv-sam/bin/sam build --language-extensions

validate: .venv-sam/bin/sam
	SAM_CLI_TELEMETRY=0 .venv-sam/bin/sam validate --lint --region us-east-1

clean:
	rm -rf $(VENV) .venv-sam .aws-sam .local .pytest_cache .mypy_cache .ruff_cache node_modules \
	  sdk/python/build sdk/python/*.egg-info
