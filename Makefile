# Everything a developer or CI runs. `make run` and `make test` set themselves up on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
SAM_VENV := .venv-sam
PY := $(VENV)/bin/python
SAM := $(SAM_VENV)/bin/sam
NODE_DEPS := local/dynamodb/node_modules/.installed
export PYTHONPATH := $(CURDIR)/layers/common:$(CURDIR)
# Offline-safe defaults for tools that look for AWS settings (nothing here talks to real AWS).
export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0

FUNCTION ?=
FUZZ_EXAMPLES ?= 300
EVENT ?=
STACK ?=
DASHBOARD_PORT ?= 8765
# The dashboard's chart library, vendored into the layer (make vendor-uplot): npm view uplot@<v> dist.integrity
UPLOT_VERSION := 1.6.32
UPLOT_INTEGRITY := sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw==
UPLOT_DEST := layers/common/xengage/http_api/static

.PHONY: help venv sam-venv node-deps browser vendor-uplot dashboard test lint format typecheck cfn-lint validate pytest build run emulator invoke bench cost fuzz openapi migrate-series migrate-rollups migrate-statuses export-demo clean

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | sort

$(VENV)/.installed: requirements/dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements/dev.txt
	touch $@

# The SAM CLI pins its own boto3 and cfn-lint, so it lives in a venv of its own.
$(SAM_VENV)/.installed: requirements/sam.txt
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install -q --upgrade pip
	$(SAM_VENV)/bin/python -m pip install -q -r requirements/sam.txt
	touch $@

# dynalite (npm) is the local stack's DynamoDB; without Node.js the stack falls back to moto's (slower queries).
$(NODE_DEPS): local/dynamodb/package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
		npm ci --prefix local/dynamodb --ignore-scripts --no-audit --no-fund --loglevel=error && touch $@; \
	else echo "npm not found: the local stack's DynamoDB falls back to moto"; fi

# The browser test drives Debian's chromium (playwright cannot download its own browser here). Installed when missing;
# when it cannot be (no apt, no root or sudo), the test skips and says why.
browser: ## install Debian's chromium for the dashboard's browser test, when missing
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif ! command -v apt-get >/dev/null 2>&1; then echo "no chromium and no apt-get: the dashboard browser test will skip"; \
	else \
		if [ "$$(id -u)" = 0 ]; then sudo=; elif command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; \
		else echo "no chromium, not root and no sudo: the dashboard browser test will skip"; exit 0; fi; \
		echo "installing chromium (apt-get) for the dashboard browser test ..."; \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 \
			|| { $$sudo apt-get update -q >/dev/null 2>&1 && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; } \
			|| echo "chromium could not be installed: the dashboard browser test will skip"; \
	fi

vendor-uplot: ## fetch the pinned uPlot from the npm registry, check its integrity, vendor its built files into the layer
	UPLOT_VERSION=$(UPLOT_VERSION) UPLOT_INTEGRITY=$(UPLOT_INTEGRITY) UPLOT_DEST=$(UPLOT_DEST) PYTHON=$(PYTHON) \
		bash tools/vendor_uplot.sh

venv: $(VENV)/.installed ## create .venv with the pinned dependencies
node-deps: $(NODE_DEPS) ## install dynalite (the local stack's DynamoDB) from local/dynamodb/package-lock.json
sam-venv: $(SAM_VENV)/.installed ## create .venv-sam with the pinned SAM CLI

lint: venv ## ruff lint + format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv ## apply ruff fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

typecheck: venv ## mypy
	$(VENV)/bin/mypy layers/common/xengage functions local bench tools

# The serverless best-practice rules and the project's design rules (tools/cfn_rules/), besides cfn-lint's own.
CFN_LINT_RULES := --append-rules cfn_lint_serverless.rules --append-rules tools/cfn_rules

cfn-lint: venv ## cfn-lint template.yaml, with the serverless and the project's rules
	$(VENV)/bin/cfn-lint $(CFN_LINT_RULES) -- template.yaml

validate: sam-venv ## sam validate --lint (offline)
	$(SAM) validate --lint --template template.yaml --region $(AWS_DEFAULT_REGION)

# Two workers, a test file each at a time (module-scoped stacks stay in one process): the fault matrix, which mostly
# waits on its shortened minutes, runs beside the rest instead of after it (pytest-xdist).
pytest: venv sam-venv node-deps browser ## the test suite
	$(VENV)/bin/pytest -n 2 --dist loadfile

test: lint typecheck cfn-lint validate pytest ## everything CI runs

build: sam-venv ## sam build (makefile build methods: works without a local python3.13)
	$(SAM) build --template template.yaml

run: venv node-deps ## run the whole system locally on its embedded default (Ctrl-C to stop)
	$(PY) -m local.run

dashboard: venv ## open a deployed stack's dashboard through a local signing proxy: make dashboard STACK=<name> [DASHBOARD_PORT=8765]
	$(PY) -m local.dashboard_proxy --stack "$(STACK)" --port $(DASHBOARD_PORT)

emulator: venv ## run the Engagement API emulator alone
	$(PY) -m local.emulator

migrate-statuses: venv ## before upgrading a stack: copy its StatusTable onto the due markers: make migrate-statuses STATUS_TABLE=<name> REGISTRY_TABLE=<name>
	$(PY) -m tools.migrate_statuses --status-table "$(STATUS_TABLE)" --registry-table "$(REGISTRY_TABLE)" $(if $(DRY_RUN),--dry-run,)

migrate-series: venv ## fold a deployed MetricsTable's hour items into day items: make migrate-series TABLE=<name> ROLLUPS_TABLE=<name> [DRY_RUN=1]
	$(PY) -m tools.migrate_series --table "$(TABLE)" --rollups-table "$(ROLLUPS_TABLE)" $(if $(DRY_RUN),--dry-run,)

migrate-rollups: venv ## add a deployed MetricsTable's day items to RollupsTable: make migrate-rollups TABLE=<name> ROLLUPS_TABLE=<name> [DRY_RUN=1]
	$(PY) -m tools.migrate_rollups --table "$(TABLE)" --rollups-table "$(ROLLUPS_TABLE)" $(if $(DRY_RUN),--dry-run,)

invoke: venv ## run one function once against the running local stack: make invoke FUNCTION=<LogicalId> EVENT=<file>
	$(PY) -m local.stack.invoke --function "$(FUNCTION)" --event "$(EVENT)"

bench: venv node-deps ## benchmarks that print figures
	$(PY) -m bench.run

export-demo: venv node-deps ## the analytics export of make run's demo data: its Parquet files and rows, checked against the API
	$(PY) -m bench.export_demo

cost: venv ## $/month for 10k, 100k and 1M tracked Posts, from the cadence, template.yaml and measured writes
	$(PY) -m bench.cost

fuzz: venv node-deps ## fuzz the API over HTTP on a fresh local stack (schemathesis + hostile table): FUZZ_EXAMPLES=300
	$(PY) -m tests.integration.api_fuzz --max-examples $(FUZZ_EXAMPLES)

openapi: venv ## regenerate openapi.json from the API's routes
	$(PY) -m local.openapi --write

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache .local-state local/dynamodb/node_modules
