# ClearAIR mesh — the two commands a newcomer needs:
#   make run    install what is missing, build, start the mesh, restore the sample photos
#   make test   install what is missing, build, lint, run every test
#
# Everything installed lives in the project: .venv (torch for libtorch, the BRISQUE reference,
# gRPC tools), data/ (BRISQUE parameters, photos) and target/.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV := $(CURDIR)/.venv
PYTHON := $(VENV)/bin/python
# The venv is made by the system python3, so its version names the site-packages folder.
PY_VERSION := $(shell python3 -c 'import sys; print("python%d.%d" % sys.version_info[:2])')
TORCH_LIB := $(VENV)/lib/$(PY_VERSION)/site-packages/torch/lib

# tch builds against the virtualenv's torch (2.11.0); binaries find libtorch through the
# library path.
export LIBTORCH_USE_PYTORCH := 1
export PATH := $(VENV)/bin:$(HOME)/go/bin:$(PATH)
export LD_LIBRARY_PATH := $(TORCH_LIB)$(if $(LD_LIBRARY_PATH),:$(LD_LIBRARY_PATH))

CARGO ?= cargo
SETUP_STAMP := $(VENV)/.requirements-installed
# SAM2 for deploy/export/sam2_export.py and the segmentation parity test.
SAM2_PACKAGE := sam2==1.1.0

.PHONY: help setup build run test lint fmt unit-tests client-tests parity-checks bench clean-data \
	tools validate ghz-smoke go-client-tests grpcurl-tests browser-tests loadtest images \
	images-observability compose-tests

help:
	@echo "make run    - set up, build, start the mesh and restore the sample photos into out/"
	@echo "make test   - set up, build, lint and run every test"
	@echo "make bench  - clearair bench (latency, throughput, overhead and fan-out ratios)"
	@echo "make loadtest [PROFILE=steady|step-up|spike|smoke] [TARGETS=restore|all|quality,...] [MODE=reflection|proto]"
	@echo "             - ghz against a live mesh; HTML and JSON reports in deploy/loadtest/reports/"
	@echo "make tools  - ghz, grpcurl, helm, kubeconform, buf, docker compose into .tools/bin"
	@echo "make validate - helm lint, helm template | kubeconform -strict, docker compose config, buf lint/breaking"
	@echo "make images [IMAGE_PROFILE=debug|release] [IMAGE_CUDA=false|true]"
	@echo "             - the five service images from this build, no image registry needed"
	@echo "make images-observability - collector, Jaeger and Prometheus images without a registry"

## Setup ------------------------------------------------------------------------------------

$(SETUP_STAMP): deploy/python/requirements.txt
	@echo "==> Python environment (.venv: torch 2.11 for libtorch, BRISQUE reference, gRPC tools)"
	@test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-cache-dir -r deploy/python/requirements.txt
	SAM2_BUILD_CUDA=0 $(PYTHON) -m pip install --quiet --disable-pip-version-check --no-cache-dir \
		--no-build-isolation --no-deps $(SAM2_PACKAGE)
	@touch $@

data/brisque/brisque_svr.json: $(SETUP_STAMP) deploy/scripts/brisque_params.py
	@echo "==> BRISQUE parameters from the brisque package"
	$(PYTHON) deploy/scripts/brisque_params.py --out $@

data/photos/.complete: $(SETUP_STAMP) deploy/scripts/fetch_photos.sh deploy/scripts/photo_split.txt deploy/scripts/prepare_photos.py
	@echo "==> Photos (scikit-image data and Debian packages that ship photographs)"
	deploy/scripts/fetch_photos.sh
	@touch $@

setup: $(SETUP_STAMP) data/brisque/brisque_svr.json data/photos/.complete

## Build, run -------------------------------------------------------------------------------

build: setup
	$(CARGO) build --workspace --bins

run: build
	deploy/scripts/run.sh target/debug/clearair

bench: setup
	$(CARGO) build --release -p clearair-cli
	target/release/clearair bench

## Test -------------------------------------------------------------------------------------

fmt:
	$(CARGO) fmt --all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit-tests: setup
	$(CARGO) test --workspace

parity-checks: setup
	$(PYTHON) deploy/scripts/brisque_reference.py --check

client-tests: build
	tests/python/run.sh target/debug/clearair

## Deployment, contracts, load ------------------------------------------------------------

tools: $(SETUP_STAMP)
	deploy/tools/install.sh

validate: tools build
	deploy/scripts/validate.sh

ghz-smoke: build tools
	deploy/loadtest/smoke.sh target/debug/clearair

go-client-tests: build tools
	tests/go/run.sh target/debug/clearair

grpcurl-tests: build tools
	tests/grpcurl/run.sh target/debug/clearair

browser-tests: build
	tests/browser/run.sh target/debug/clearair

## Containers ----------------------------------------------------------------------------

# Built from what `make build` produced (debug; IMAGE_PROFILE=release after cargo build
# --release) on a Debian base made with debootstrap: no image registry involved.
IMAGE_PROFILE ?= debug
IMAGE_CUDA ?= false
images: build tools
	deploy/docker/images.sh --profile $(IMAGE_PROFILE) --cuda $(IMAGE_CUDA)

images-observability: tools
	deploy/docker/observability-images.sh

compose-tests: build tools
	tests/compose/run.sh

PROFILE ?= steady
TARGETS ?= restore
MODE ?= reflection
loadtest: setup tools
	$(CARGO) build --release -p clearair-cli
	deploy/scripts/loadtest.sh -p $(PROFILE) -t $(TARGETS) -m $(MODE) target/release/clearair

test: setup lint unit-tests parity-checks client-tests validate ghz-smoke go-client-tests grpcurl-tests \
	browser-tests compose-tests
	@echo "==> all tests passed"

clean-data:
	rm -rf data out
