# metafix — `make help` lists the targets. `make demo` and `make test` set up
# everything they need on a fresh machine (virtualenv, Kafka jars, Prism, model).

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STATE := .state
KAFKA_PORT ?= 9092
REGISTRY_PORT ?= 18181
BEAM_VERSION := 2.77.0
PRISM := $(STATE)/bin/prism
MODEL_DIR ?= model/export
PYTEST_ARGS ?=
GCP_PROJECT ?=
GCP_REGION ?= us-central1
TEMPLATE_IMAGE ?= $(GCP_REGION)-docker.pkg.dev/$(GCP_PROJECT)/metafix/metafix-stream-launcher:latest
TEMPLATE_PATH ?= gs://$(GCP_PROJECT)-metafix/templates/metafix-stream.json

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

$(VENV)/.installed: requirements.txt constraints.txt setup.py
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip wheel setuptools
	$(VENV)/bin/pip install -q -r requirements.txt -c constraints.txt
	$(VENV)/bin/pip install -q --no-deps -e .
	touch $@

venv: $(VENV)/.installed ## Create the virtualenv with the pinned packages and the `metafix` command

$(PRISM):
	mkdir -p $(STATE)/bin
	GOBIN=$(abspath $(STATE)/bin) GOFLAGS=-mod=mod go install github.com/apache/beam/sdks/v2/go/cmd/prism@v$(BEAM_VERSION)

# transforms/ compiled with Cython; transforms/native.py imports the build only while it is current.
COMPILED := .compiled/transforms/SOURCES.json
$(COMPILED): $(VENV)/.installed harness/compiled.py $(wildcard transforms/*.py)
	$(PY) -m harness.compiled

compiled: $(COMPILED) ## Compile transforms/ with Cython into .compiled/ (the targets that run the job do this first)

prism: $(PRISM) ## Build Beam's Prism runner (the local streaming runner) from the Go module proxy

kafka-jars: venv ## Fetch the pinned Apache Kafka jars from Maven Central (cached in ~/.m2)
	$(PY) -m harness.local_kafka jars

kafka-up: kafka-jars ## Start a local KRaft broker on 127.0.0.1:KAFKA_PORT (default 9092) and wait until it is ready
	$(PY) -m harness.local_kafka up --port $(KAFKA_PORT)

kafka-down: venv ## Stop the local broker on KAFKA_PORT
	$(PY) -m harness.local_kafka down --port $(KAFKA_PORT)

registry-app: venv ## Fetch Apicurio Registry 3.3.3 from Maven Central (cached in ~/.m2) and unpack it into .state/apicurio
	$(PY) -m harness.local_registry fetch

registry-up: registry-app ## Start a schema registry (Apicurio, Confluent API, in memory) on 127.0.0.1:REGISTRY_PORT (18181); needs Java 21+
	$(PY) -m harness.local_registry up --port $(REGISTRY_PORT)

registry-down: venv ## Stop the schema registry on REGISTRY_PORT
	$(PY) -m harness.local_registry down --port $(REGISTRY_PORT)

$(MODEL_DIR)/LATEST: | venv
	$(VENV)/bin/metafix train --output-dir $(MODEL_DIR) --config full

model: venv ## Train, evaluate-on-validation and export the default model into model/export/<version>
	$(VENV)/bin/metafix train --output-dir $(MODEL_DIR) --config full

evaluate: $(MODEL_DIR)/LATEST $(COMPILED) ## Evaluate the default model against the rules-only baseline (JSON + report)
	$(VENV)/bin/metafix evaluate --model-dir $(MODEL_DIR) --json $(MODEL_DIR)/evaluation.json

# --durations: the suite is over its 25-minute budget on a slow day; each run says where the time goes.
test: venv $(COMPILED) prism kafka-jars registry-app flink-job-server ## Run the whole suite, Flink included (starts its own Kafka broker)
	$(VENV)/bin/pytest --durations=25 $(PYTEST_ARGS)

test-unit: venv $(COMPILED) ## The fast loop (under 2 minutes): no broker, no Prism, no Flink, nothing marked slow
	$(VENV)/bin/pytest -m "not kafka and not prism and not flink and not slow" $(PYTEST_ARGS)

flink-job-server: venv ## Resolve Beam's Flink job server (embedded Flink 1.19) from Maven Central into .state/flink
	$(PY) -m harness.flink jar

test-flink: venv $(COMPILED) prism kafka-jars flink-job-server ## Only the Flink tests: replay and streaming job on Flink (parallelism 2), compared with Prism
	$(VENV)/bin/pytest -m flink

dataflow-template: ## Build the Dataflow Flex Template image and spec (needs docker, gcloud, GCP_PROJECT; see README, Deploying)
	@command -v gcloud >/dev/null || { echo "dataflow-template: gcloud is not installed (Google Cloud SDK); nothing was built" >&2; exit 1; }
	@docker info >/dev/null 2>&1 || { echo "dataflow-template: no Docker engine to build the launcher image with; nothing was built" >&2; exit 1; }
	@test -n "$(GCP_PROJECT)" || { echo "dataflow-template: set GCP_PROJECT=<project> (TEMPLATE_PATH and TEMPLATE_IMAGE default to ones in that project)" >&2; exit 1; }
	docker build -f dataflow/Dockerfile -t $(TEMPLATE_IMAGE) .
	docker push $(TEMPLATE_IMAGE)
	gcloud dataflow flex-template build $(TEMPLATE_PATH) --project $(GCP_PROJECT) \
		--image $(TEMPLATE_IMAGE) --sdk-language PYTHON --metadata-file dataflow/metadata.json

demo: venv $(COMPILED) prism kafka-jars $(MODEL_DIR)/LATEST ## Run the streaming job on a local broker with a realistic event stream
	$(PY) -m harness.demo --model-dir $(MODEL_DIR)

bench: venv $(COMPILED) prism kafka-jars $(MODEL_DIR)/LATEST ## Measure throughput, latency, replay and memory, each repeated (min, median); BENCH_QUICK=1 for a short run; writes bench/results/latest.json
	$(PY) -m bench.run --model-dir $(MODEL_DIR)

SOAK_MINUTES ?= 30
SOAK_RATE ?= 1000
soak: venv $(COMPILED) prism kafka-jars $(MODEL_DIR)/LATEST ## Run the job for SOAK_MINUTES (30) at SOAK_RATE (1000) events/s; memory, lag, every event accounted; writes bench/results/soak.json
	$(PY) -m bench.soak --minutes $(SOAK_MINUTES) --rate $(SOAK_RATE) --model-dir $(MODEL_DIR)

chaos: venv $(COMPILED) prism kafka-jars $(MODEL_DIR)/LATEST ## Fault scenarios (crash, broker restart, output loss, hostile input, model, SASL); writes bench/results/chaos.json
	$(PY) -m harness.chaos --model-dir $(MODEL_DIR)

ARCHIVE_DIR ?= archive
compact: venv ## Compact the closed hours of the stream archive in ARCHIVE_DIR (one file per partition and hour)
	$(VENV)/bin/metafix archive compact --archive-dir $(ARCHIVE_DIR)

lint: venv ## ruff
	$(VENV)/bin/ruff check .

clean: ## Remove broker state and caches (keeps the virtualenv and the model)
	rm -rf $(STATE)/kafka-* .pytest_cache

.PHONY: help venv compiled prism kafka-jars kafka-up kafka-down registry-app registry-up registry-down model evaluate test test-unit flink-job-server test-flink dataflow-template demo bench soak chaos compact lint clean
