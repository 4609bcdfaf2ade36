# Quick start (README): `make train` and `make test` on a fresh Debian machine.
# Both first make sure the Debian packages are there, then configure and build
# in ./build. The build itself is CMake's; this file only strings the steps
# together. Override on the command line: make test CUDA=OFF BUILD=build-x
BUILD    ?= build
CUDA     ?= AUTO
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)
PACKAGES := cmake gcc pkg-config libopenblas-dev libcriterion-dev libcjson-dev zlib1g-dev libdnnl-dev \
            libopenmpi-dev openmpi-bin

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

# Passive OpenMP waiting: libgomp's spinning threads otherwise compete with
# OpenBLAS's own threads for the cores (twice as fast on 2 cores; same
# results, see benchmarks/results/mnist_mlp_cpu.md).
train: build
	OMP_WAIT_POLICY=passive ./$(BUILD)/tools/ctrain train

test: build
	ctest --test-dir $(BUILD) --output-on-failure

clean:
	rm -rf $(BUILD)
