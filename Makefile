# Quick start (README): `make train` and `make test` on a fresh Debian machine.
# Both first make sure the Debian packages are there, then configure and build
# in ./build. The build itself is CMake's; this file only strings the steps
# together. Override on the command line: make test CUDA=OFF BUILD=build-x
BUILD    ?= build
CUDA     ?= AUTO
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)
# libopenblas-openmp-dev: OpenBLAS's OpenMP build, whose threads are the
# OpenMP pool the CPU kernels use (one pool; docs/cpu_backend.md).
# libcairo2-dev: `ctrain plot` draws its PNG and SVG figures with cairo.
# libdnnl-dev: oneDNN's int8 matrix products for quantized models
# (docs/compression.md).
PACKAGES := cmake gcc pkg-config libopenblas-dev libopenblas-openmp-dev libopenblas-pthread-dev libcriterion-dev \
            libcjson-dev zlib1g-dev libopenmpi-dev openmpi-bin libcairo2-dev libdnnl-dev libsleef-dev

.PHONY: all deps build train test clean

all: build

# Installs what is missing as root; otherwise says what to run and stops,
# since a build that fails later on a missing header explains less.
deps:
	@if ! command -v dpkg-query >/dev/null; then \
	  echo "not a Debian system: install the equivalents of: $(PACKAGES)"; exit 0; fi; \
	missing=""; \
	for p in $(PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" -eq 0 ]; then \
	  echo "installing:$$missing"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	else \
	  echo "missing packages:$$missing"; \
	  echo "install them with:  sudo apt-get install -y$$missing"; exit 1; \
	fi

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DCTRAIN_CUDA=$(CUDA)
	cmake --build $(BUILD) -j $(JOBS)

# No OMP_WAIT_POLICY any more: with OpenBLAS's OpenMP build there is one
# pool of threads, not two competing for the cores (docs/cpu_backend.md).
train: build
	./$(BUILD)/tools/ctrain train

test: build
	ctest --test-dir $(BUILD) --timeout 900 --output-on-failure

clean:
	rm -rf $(BUILD)
