# Tix: the commands a developer needs. `make up` runs the mesh, `make test` proves it.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml dev/pyproject.toml | sha1sum | cut -c1-12)
PROTOS := $(sort $(wildcard proto/tix/v1/*.proto))
GOOGLEAPIS = $(shell $(PY) -c 'import google.api, os; print(os.path.dirname(os.path.dirname(google.api.__path__[0])))')
GRPC_TOOLS = $(shell $(PY) -c 'import grpc_tools, os; print(os.path.join(grpc_tools.__path__[0], "_proto"))')

BUF := node_modules/.bin/buf

.PHONY: help install proto proto-check contracts up test test-unit test-integration test-e2e bench lint k8s-validate clean

help:
	@echo "make up      - install, migrate, seed and run the whole mesh (edge on http://127.0.0.1:8080)"
	@echo "make test    - run every test against real PostgreSQL, Redis, localstripe and Envoy"
	@echo "make bench   - run the benchmarks (prints ratios against baselines measured in the same run)"
	@echo "make proto   - regenerate gen/ from proto/"

# The runtime (tix, the services, tixpb) with its dev extra, and the development tooling (dev/: tix_dev).
$(STAMP): pyproject.toml dev/pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -U pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]' -e ./dev
	@rm -f $(VENV)/.installed-* && touch $@

# npm tools (buf), pinned in package.json + package-lock.json.
$(BUF): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

install: $(STAMP) $(BUF)

# Generated code (import root tixpb: `from tixpb.v1 import booking_pb2`) and the descriptor set that Envoy
# transcodes with. Committed; proto-check fails on drift. protoc writes tix/v1/ with absolute imports of the proto
# package (`from tix.v1 import common_pb2`); tix_dev.protogen moves it to gen/tixpb/v1 and makes those relative.
proto: $(STAMP)
	rm -rf gen/.protoc && mkdir -p gen/.protoc
	$(PY) -m grpc_tools.protoc -Iproto -I$(GOOGLEAPIS) -I$(GRPC_TOOLS) \
	  --python_out=gen/.protoc --pyi_out=gen/.protoc --grpc_python_out=gen/.protoc $(PROTOS)
	$(PY) -m tix_dev.protogen gen/.protoc gen/tixpb
	rm -rf gen/.protoc
	$(PY) -m grpc_tools.protoc -Iproto -I$(GOOGLEAPIS) -I$(GRPC_TOOLS) \
	  --include_imports --include_source_info --descriptor_set_out=gen/tix.pb \
	  $(PROTOS) google/rpc/status.proto google/rpc/error_details.proto google/rpc/code.proto
	$(PY) -m tix_dev.edge_descriptor gen/tix.pb k8s/base/edge/tix.pb  # kustomize reads only inside k8s/; without source info
	$(PY) -m tix_dev.openapi gen/openapi.json gen/openapi.html  # OpenAPI 3.1 and its reference page, served by the edge
	cp gen/openapi.json gen/openapi.html k8s/base/edge/

proto-check: proto
	@git diff --exit-code --stat -- gen || { echo "gen/ has drifted from proto/: run 'make proto' and commit gen/"; exit 1; }
	@test -z "$$(git status --porcelain -- gen)" || { echo "gen/ has untracked generated files: commit them"; git status --porcelain -- gen; exit 1; }

# The contracts: buf lint (buf.yaml) and buf breaking against main's committed descriptor set (see
# dev/tix_dev/contracts.py for how the baseline is chosen on a branch and on main).
contracts: $(STAMP) $(BUF) proto
	$(PY) -m tix_dev.contracts lint
	$(PY) -m tix_dev.contracts breaking

up: $(STAMP)
	$(VENV)/bin/tix up

test: $(STAMP) proto-check contracts lint
	$(PY) -m pytest -q tests

test-unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

test-integration: $(STAMP)
	$(PY) -m pytest -q tests/integration

test-e2e: $(STAMP)
	$(PY) -m pytest -q tests/e2e

bench: $(STAMP)
	$(PY) -m bench
	$(PY) -m bench search

# ruff (rules in pyproject.toml) over everything; mypy over the runtime, the services and tix_dev (files and
# settings in pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check tix dev event_svc search_svc booking_svc queue_svc admin_svc tests bench
	$(VENV)/bin/mypy

k8s-validate: $(STAMP)
	$(PY) -m pytest -q tests/integration/test_k8s_manifests.py

clean:
	rm -rf gen/tixpb gen/tix.pb var .pytest_cache
