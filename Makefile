# Front door of the arm64 kdump lab.  See README.md.
#
#   make run     the demo: boot, report the linear map, kexec -p, crash, capture
#   make test    every scenario, TAP, ends with "N passed, N failed"
#   make test-record  make test, kept in bench/results/$(KERNEL)/test.txt
#   make check-record make check, kept in bench/results/$(KERNEL)/check.txt
#   make bench   base against series: linear-map shape and boot cost
#   make bench-crash  crash on the dumps of every layout: sizes, analysis time
#   make bench-stray  (KERNEL=6.12) a stray write into the loaded capture kernel
#   make tree    build/linux = Debian linux-source-6.1 + patches/6.1 (KERNEL=6.12: build/linux-6.12)
#   make patches regenerate patches/$(KERNEL) from its tree
#   make check   checkpatch --strict and a build of every patch in turn
#   make fresh-check  'make run' on a fresh Debian 12 root (debootstrap; root)
#
# Every target takes KERNEL=6.1 (the default), KERNEL=6.12 or KERNEL=7.3
# (mainline; lab/variants.py KERNELS says what differs).

SHELL := /bin/bash
# The kernel line: 6.1, 6.12 or 7.3 (patches/$(KERNEL)).
KERNEL ?= 6.1
export KERNEL
VARIANT ?= series
MEM ?= 8G
# Empty: crashkernel=512M with the rodata= that keeps blocks on KERNEL
# (lab/variants.py KERNELS: "on" until 6.12, "noalias" on 7.3).
CMDLINE ?=
export LAB_T0 := $(shell date +%s)
export _lab_t0 := $(LAB_T0)

.PHONY: run test test-record check-record test-full unit bench bench-crash bench-stray deps tree build guest patches check matrix fresh-check clean

deps:
	@lab/deps.sh

tree: deps
	@lab/tree.sh

build: tree
	@lab/build.sh base
	@lab/build.sh series

guest: build
	@lab/guest.sh base
	@lab/guest.sh series
	@lab/crashtool.sh

run: guest
	@python3 lab/demo.py --variant "$(VARIANT)" --mem "$(MEM)" --cmdline "$(CMDLINE)"

unit: tree
	@python3 tests/run_tests.py --unit-only

# The extra kernel variants (config/NAME.config) the scenarios boot.
test: guest
	@for v in $$(python3 tests/run_tests.py --print-variants); do \
		lab/build.sh $$v && lab/guest.sh $$v || exit 1; done
	@python3 tests/run_tests.py

test-full: guest
	@for v in $$(python3 tests/run_tests.py --print-variants --full); do \
		lab/build.sh $$v && lab/guest.sh $$v || exit 1; done
	@python3 tests/run_tests.py --full

# make test (make check), its whole output kept in
# bench/results/$(KERNEL)/test.txt (check.txt).
test-record: guest
	@bench/record-test.sh test

check-record: guest
	@bench/record-test.sh check

bench: guest
	@python3 bench/bench.py

# crash on the dumps of every layout, base against series: sizes and times.
bench-crash: guest
	@python3 bench/crash.py

# KERNEL=6.12: the stray write into the loaded capture kernel, 6.12 and series.
bench-stray: guest
	@python3 bench/stray.py

patches:
	@lab/patches.sh

check: guest
	@lab/check.sh

# Every patch on every configuration (page and VA sizes, MTE, no kexec,
# no DMA zones, defconfig): a table, configuration by patch.
matrix: tree
	@lab/matrix.sh

fresh-check:
	@lab/fresh-check.sh

clean:
	rm -rf build/runs build/runs-6.12 build/initramfs build/initramfs-6.12 build/guest build/guest-6.12 build/dtb
