# yinian-pos — plain GNU Make build.  See README.md.
#
#   make                    daemon + tools for this machine      -> build/host/
#   make ARCH=aarch64       the same for an arm64 board           -> build/aarch64/
#   make ARCH=armhf         the same for a 32-bit ARM board       -> build/armhf/
#   make run                start a terminal on simulated devices
#   make screens            render every screen; copy the README's to firmware/screens/
#   make check              lint + unit tests + sanitizer tests + integration tests
#   make check-cross ARCH=aarch64   unit tests of the board build under qemu-user
#   make bench              benchmark figures as "BENCH name value unit"
#   make clean
#
# Feature switches (0 or 1), overridable on the command line, e.g. make WITH_SYSLOG=0
WITH_SYSLOG ?= 1
# the real card reader through libnfc (PN532 and others)
WITH_LIBNFC ?= 1
# WITH_SIM: the simulated backends (reader, scale, io, display, clock, scripted
# keypad) and the demo's card keys; on for the host build (tests, make run),
# off for a board's daemon. A build that differs from its ARCH's default goes
# to its own folder (build/aarch64-sim for the cross tests, build/host-nosim).

ARCH    ?= host
SAN     ?= 0
# FUZZ=1: clang + libFuzzer build of tests/fuzz/ into build/<arch>-fuzz/
FUZZ    ?= 0
VERSION := $(shell cat VERSION)
GITREV  := $(shell git describe --always --dirty 2>/dev/null || echo unknown)

ifeq ($(ARCH),host)
  CROSS_COMPILE ?=
  PKG_CONFIG ?= pkg-config
  RUN_TARGET :=
  DEPS_ARG :=
else ifeq ($(ARCH),aarch64)
  CROSS_COMPILE ?= aarch64-linux-gnu-
  TRIPLET := aarch64-linux-gnu
  # The loader and libc of the multiarch libc6:arm64 (which the target's libraries
  # pulled in), not /usr/$(TRIPLET)'s: the cross package's ld.so with the multiarch
  # libc.so.6 are two glibc builds, and the first pthread_create spins for ever.
  RUN_TARGET := qemu-aarch64 -L /
  DEPS_ARG := aarch64
else ifeq ($(ARCH),armhf)
  CROSS_COMPILE ?= arm-linux-gnueabihf-
  TRIPLET := arm-linux-gnueabihf
  RUN_TARGET := qemu-arm -L /
  DEPS_ARG := armhf
else
  $(error ARCH must be host, aarch64 or armhf, not '$(ARCH)')
endif
# PostgreSQL (libpq) as the district server's second storage backend. libpq-dev
# cannot be installed multiarch, so a board build's server has SQLite only.
ifeq ($(ARCH),host)
  WITH_POSTGRESQL ?= 1
else
  WITH_POSTGRESQL ?= 0
endif
SIM_DEFAULT := $(if $(filter host,$(ARCH)),1,0)
WITH_SIM    ?= $(SIM_DEFAULT)
SIM_SUFFIX  := $(if $(filter $(SIM_DEFAULT),$(WITH_SIM)),,$(if $(filter 1,$(WITH_SIM)),-sim,-nosim))
ifneq ($(ARCH),host)
  # target libraries are installed multiarch by tools/install-deps
  PKG_CONFIG := PKG_CONFIG_LIBDIR=/usr/lib/$(TRIPLET)/pkgconfig:/usr/share/pkgconfig pkg-config
endif

BUILD := build/$(ARCH)$(SIM_SUFFIX)$(if $(filter 1,$(SAN)),-san)$(if $(filter 1,$(FUZZ)),-fuzz)
CC    := $(if $(filter 1,$(FUZZ)),clang,$(CROSS_COMPILE)gcc)
AR    := $(CROSS_COMPILE)ar

PKGS      := sqlite3 inih jansson libcrypto zlib libmodbus libcurl libmicrohttpd freetype2 libpng alsa libsystemd
# headers only: the PKCS#11 header from p11-kit; the token's module is dlopen()ed (hal/keystore/KEYSTORE.md)
HDR_PKGS  := p11-kit-1
TEST_PKGS := cmocka libssl
# libfreefare: only the conformance test's client (tests/freefare), host only
FF_PKGS   := $(if $(filter host,$(ARCH)),libfreefare)
# programs the tests run (Debian packages softhsm2, opensc)
TEST_CMDS := softhsm2-util pkcs11-tool
# libraries of the district server only (the daemon never links them)
DISTRICT_PKGS := $(if $(filter 1,$(WITH_POSTGRESQL)),libpq)

# libnfc: from pkg-config on the host; for a board, from a sysroot of downloaded
# target packages (libnfc-dev cannot be installed multiarch: see README.md).
NFC_CFLAGS :=
NFC_LIBS   :=
ifeq ($(WITH_LIBNFC),1)
  ifeq ($(ARCH),host)
    PKGS += libnfc
  else
    SYSROOT    := build/sysroot-$(ARCH)
    NFC_CFLAGS := -I$(SYSROOT)/usr/include
    NFC_LIBS   := -L$(SYSROOT)/usr/lib/$(TRIPLET) -L$(SYSROOT)/lib/$(TRIPLET) \
                  -Wl,-rpath-link,$(SYSROOT)/usr/lib/$(TRIPLET) \
                  -Wl,-rpath-link,$(SYSROOT)/lib/$(TRIPLET) -lnfc
    RUN_TARGET += -E LD_LIBRARY_PATH=$(abspath $(SYSROOT))/usr/lib/$(TRIPLET):$(abspath $(SYSROOT))/lib/$(TRIPLET)
    SYSROOT_OK := $(wildcard $(SYSROOT)/usr/include/nfc/nfc.h)
  endif
endif

# On a fresh machine: install what pkg-config cannot find, then go on.
ifeq ($(filter clean,$(MAKECMDGOALS)),)
  # (the host's tests also need a PostgreSQL server for tests/with-postgres)
  ifneq ($(shell $(PKG_CONFIG) --exists $(PKGS) $(HDR_PKGS) $(TEST_PKGS) $(FF_PKGS) $(DISTRICT_PKGS) 2>/dev/null && $(foreach c,$(CC) $(TEST_CMDS),command -v $(c) >/dev/null &&) $(if $(filter host,$(ARCH)),ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 &&) echo ok)$(if $(SYSROOT),$(if $(SYSROOT_OK),,missing)),ok)
    $(info tools/install-deps: a library or tool is missing for ARCH=$(ARCH); installing it)
    ifneq ($(shell tools/install-deps $(DEPS_ARG) 1>&2; echo $$?),0)
      $(error tools/install-deps failed; see the message above)
    endif
  endif
endif

# The firmware's folders (one a layer, one a device class: README.md "Layers"),
# found rather than listed; each is an include folder (-I) of its own.
FW_SRCS     := $(sort $(shell find firmware hal sync -name '*.c'))
FW_DIRS     := $(patsubst %/,%,$(sort $(dir $(shell find firmware hal sync -name '*.h'))))
INC_FLAGS   := $(addprefix -I,$(FW_DIRS) tools/district tools/flash)
CFLAGS_BASE := -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wvla \
               -D_GNU_SOURCE $(INC_FLAGS) -MMD -MP \
               -DYN_VERSION='"$(VERSION)"' -DYN_GITREV='"$(GITREV)"' \
               -DWITH_SYSLOG=$(WITH_SYSLOG) -DWITH_LIBNFC=$(WITH_LIBNFC) -DWITH_SIM=$(WITH_SIM) \
               -DWITH_POSTGRESQL=$(WITH_POSTGRESQL)
# Time is 64-bit on every ARCH, armhf too (its glibc defaults to a 32-bit
# time_t that wraps in January 2038). firmware/base/time64.h, forced into every
# file, refuses to compile without it. README.md "Cross-compiling".
TIME64_H      := $(firstword $(shell find firmware -name time64.h))
TIME64_CFLAGS := -D_TIME_BITS=64 -D_FILE_OFFSET_BITS=64 -include $(TIME64_H)
ifeq ($(FUZZ),1)
  CFLAGS ?= -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined
  LDFLAGS ?= -fsanitize=address,undefined
else ifeq ($(SAN),1)
  CFLAGS ?= -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
  LDFLAGS ?= -fsanitize=address,undefined
else
  CFLAGS ?= -O2 -g
  LDFLAGS ?=
endif
Q := $(if $(V),,@)
ALL_CFLAGS = $(CFLAGS_BASE) $(TIME64_CFLAGS) $(shell $(PKG_CONFIG) --cflags $(PKGS) $(HDR_PKGS) $(DISTRICT_PKGS)) $(NFC_CFLAGS) $(CFLAGS)
LIBS       = $(shell $(PKG_CONFIG) --libs $(PKGS)) $(NFC_LIBS) -lpthread -lutil
DISTRICT_LIBS = $(if $(DISTRICT_PKGS),$(shell $(PKG_CONFIG) --libs $(DISTRICT_PKGS)))
# integration programs that act as TLS clients themselves (int_lockout)
INT_LIBS   = $(shell $(PKG_CONFIG) --libs libssl)
TEST_LIBS  = $(shell $(PKG_CONFIG) --libs $(TEST_PKGS)) -lm

# --- sources -------------------------------------------------------------
# The library: every .c under firmware/ hal/ sync/ but the daemon's main.c, as
# one static archive per layer (README.md "Layers"), linked highest first.
MAIN_SRC  := firmware/app/main.c
LIB_SRCS  := $(filter-out $(MAIN_SRC),$(FW_SRCS))
ifneq ($(WITH_LIBNFC),1)
  LIB_SRCS := $(filter-out %/nfc_libnfc.c %/nfc_libnfc_child.c,$(LIB_SRCS))
endif
# The simulated backends and the demo's card keys (WITH_SIM above).
SIM_SRCS  := $(filter $(addprefix %/,nfc_sim.c scale_sim.c io_sim.c display_sim.c clock_sim.c \
               input_script.c demo.c),$(FW_SRCS))
ifneq ($(WITH_SIM),1)
  LIB_SRCS := $(filter-out $(SIM_SRCS),$(LIB_SRCS))
endif
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
LAYERS    := app sync ledger core hal base
layer_dir  = $(if $(filter hal sync,$(1)),$(1),firmware/$(1))
LIB       := $(foreach l,$(LAYERS),$(BUILD)/lib$(l).a)
DAEMON    := $(BUILD)/yinian-pos
# Tools: each tools/<name>.c is a program build/<arch>/<name>.
TOOL_SRCS := $(wildcard tools/*.c)
TOOLS     := $(TOOL_SRCS:tools/%.c=$(BUILD)/%)
# The device emulators' own code (tools/emu/: PN532, ISO 14443, the DESFire and
# Classic card models, pty and control FIFO): a tools-only archive that the
# daemon never links — the emulated cards are a second, independent
# implementation of the card side (hal/nfc/READER.md).
EMU_SRCS  := $(wildcard tools/emu/*.c)
EMU_OBJS  := $(EMU_SRCS:%.c=$(BUILD)/obj/%.o)
EMU_LIB   := $(BUILD)/libynemu.a
# The district server's modules: their own archive, linked by yinian-district
# and the district's unit tests only.
DISTRICT_SRCS := $(wildcard tools/district/*.c)
ifneq ($(WITH_POSTGRESQL),1)
  DISTRICT_SRCS := $(filter-out tools/district/db_pg.c,$(DISTRICT_SRCS))
endif
DISTRICT_OBJS := $(DISTRICT_SRCS:%.c=$(BUILD)/obj/%.o)
DISTRICT_LIB  := $(BUILD)/libdistrict.a
# yinian-flash's modules (tools/flash/: the slot state machine, bundles, the
# root on disk, each subcommand): linked by yinian-flash and test_flash_*.
FLASH_SRCS := $(wildcard tools/flash/*.c)
FLASH_OBJS := $(FLASH_SRCS:%.c=$(BUILD)/obj/%.o)
FLASH_LIB  := $(BUILD)/libflash.a
# Unit tests: tests/unit/test_<module>.c, one program each.
TEST_SRCS := $(wildcard tests/unit/test_*.c)
TESTS     := $(TEST_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
# Fixtures shared by several unit programs: tests/unit/fix_<name>.c.
UFIX_SRCS := $(wildcard tests/unit/fix_*.c)
UFIX_OBJS := $(UFIX_SRCS:%.c=$(BUILD)/obj/%.o)
# Helpers shared by test programs and benchmarks.
TSUP_SRCS := $(wildcard tests/support/*.c)
TSUP_OBJS := $(TSUP_SRCS:%.c=$(BUILD)/obj/%.o)
FUZZ_SRCS  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZERS    := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/fuzz/%)
# seconds per target in make check; make fuzz FUZZ_TIME=600 for longer
FUZZ_TIME  ?= 5
BENCH_SRCS := $(wildcard tests/bench/bench_*.c)
BENCHES    := $(BENCH_SRCS:tests/bench/%.c=$(BUILD)/bench/%)
CRASH_SRCS := $(wildcard tests/crash/*.c)
CRASHES    := $(CRASH_SRCS:tests/crash/%.c=$(BUILD)/tests/%)
# The libfreefare client of the conformance test (tests only, host only).
FF_CLIENT  := $(if $(and $(filter host,$(ARCH)),$(filter 1,$(WITH_LIBNFC))),$(BUILD)/tests/ff-client)
# Integration programs: tests/integration/int_<name>.c, run by tests/run-integration.
INT_SRCS   := $(wildcard tests/integration/int_*.c)
INTS       := $(INT_SRCS:tests/integration/%.c=$(BUILD)/tests/%)

SOURCES := $(sort $(shell find firmware hal sync tools tests -name '*.[ch]'))

.SECONDARY:
.PHONY: fuzz fuzz-run all run screens check check-unit check-san check-integration check-cross \
        check-cross-tests check-daemon check-archives lint bench clean format
all: $(DAEMON) $(TOOLS)

# Objects are rebuilt when a feature switch or CFLAGS change.
FEATURES   := WITH_LIBNFC=$(WITH_LIBNFC) WITH_SYSLOG=$(WITH_SYSLOG) WITH_POSTGRESQL=$(WITH_POSTGRESQL) \
              WITH_SIM=$(WITH_SIM) \
              CFLAGS=$(CFLAGS) VERSION=$(VERSION) $(TIME64_CFLAGS)
FEATURES_F := $(BUILD)/.features
ifneq ($(filter clean,$(MAKECMDGOALS)),clean)
  $(shell mkdir -p $(BUILD); [ "$$(cat $(FEATURES_F) 2>/dev/null)" = "$(FEATURES)" ] || echo "$(FEATURES)" > $(FEATURES_F))
endif

$(BUILD)/obj/%.o: %.c $(FEATURES_F)
	@mkdir -p $(@D)
	@$(if $(Q),echo '  CC      $<')
	$(Q)$(CC) $(ALL_CFLAGS) -Itests/support -Itools -c $< -o $@

# lib<layer>.a from the objects of that layer's folder. Every archive is
# rebuilt whole: `ar r` never drops a member, so a file removed or moved would
# leave its old object behind (a stale tools/district/files.o clashed with
# fileio.c after the layering).
define layer_archive
$(BUILD)/lib$(1).a: $(filter $(BUILD)/obj/$(call layer_dir,$(1))/%,$(LIB_OBJS))
	@mkdir -p $$(@D)
	@rm -f $$@
	$$(Q)$$(AR) rcs $$@ $$^
endef
$(foreach l,$(LAYERS),$(eval $(call layer_archive,$(l))))

$(EMU_LIB): $(EMU_OBJS)
	@mkdir -p $(@D)
	@rm -f $@
	$(Q)$(AR) rcs $@ $^

$(DAEMON): $(MAIN_SRC:%.c=$(BUILD)/obj/%.o) $(LIB)
	@$(if $(Q),echo '  LD      $@')
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(DISTRICT_LIB): $(DISTRICT_OBJS)
	@mkdir -p $(@D)
	@rm -f $@
	$(Q)$(AR) rcs $@ $^

$(BUILD)/yinian-district: $(BUILD)/obj/tools/yinian-district.o $(DISTRICT_LIB) $(LIB)
	@$(if $(Q),echo '  LD      $@')
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(DISTRICT_LIBS) $(LIBS)

$(BUILD)/tests/test_district_%: $(BUILD)/obj/tests/unit/test_district_%.o $(TSUP_OBJS) $(DISTRICT_LIB) $(LIB)
	@mkdir -p $(@D)
	@$(if $(Q),echo '  LD      $@')
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(TEST_LIBS) $(DISTRICT_LIBS) $(LIBS)

$(FLASH_LIB): $(FLASH_OBJS)
	@mkdir -p $(@D)
	@rm -f $@
	$(Q)$(AR) rcs $@ $^

$(BUILD)/yinian-flash: $(BUILD)/obj/tools/yinian-flash.o $(FLASH_LIB) $(LIB)
	@$(if $(Q),echo '  LD      $@')
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/test_flash_%: $(BUILD)/obj/tests/unit/test_flash_%.o $(TSUP_OBJS) $(FLASH_LIB) $(LIB)
	@mkdir -p $(@D)
	@$(if $(Q),echo '  LD      $@')
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(TEST_LIBS) $(LIBS)

$(BUILD)/%: $(BUILD)/obj/tools/%.o $(EMU_LIB) $(LIB)
	@$(if $(Q),echo '  LD      $@')
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(UFIX_OBJS) $(TSUP_OBJS) $(EMU_LIB) $(LIB)
	@mkdir -p $(@D)
	@$(if $(Q),echo '  LD      $@')
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(TEST_LIBS) $(LIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/crash/%.o $(TSUP_OBJS) $(LIB)
	@mkdir -p $(@D)
	@$(if $(Q),echo '  LD      $@')
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/integration/%.o $(TSUP_OBJS) $(LIB)
	@mkdir -p $(@D)
	@$(if $(Q),echo '  LD      $@')
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) $(INT_LIBS)

$(BUILD)/tests/ff-client: tests/freefare/ff_client.c
	@mkdir -p $(@D)
	@$(if $(Q),echo '  CC      $@')
	$(Q)$(CC) $(CFLAGS) $(LDFLAGS) -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE -o $@ $< \
	  $$($(PKG_CONFIG) --cflags --libs libfreefare)

$(BUILD)/fuzz/%: $(BUILD)/obj/tests/fuzz/%.o $(LIB)
	@mkdir -p $(@D)
	@$(if $(Q),echo '  LD      $@')
	$(Q)$(CC) $(LDFLAGS) -fsanitize=fuzzer -o $@ $^ $(LIBS)

$(BUILD)/bench/%: $(BUILD)/obj/tests/bench/%.o $(TSUP_OBJS) $(LIB)
	@mkdir -p $(@D)
	@$(if $(Q),echo '  LD      $@')
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# --- running -------------------------------------------------------------
RUN_DIR := $(BUILD)/run
run: all
	tools/demo-run $(RUN_DIR) $(BUILD)

# The screen gallery (tests/unit/test_gallery.c renders every screen to
# $(BUILD)/gallery/), copied to firmware/screens/ for the README.
GALLERY_SHOTS := gallery idle kiosk_idle ok ok_cash ok_weighed refused_lost refused_weight_exception \
                 settlement balance reversed
screens: $(BUILD)/tests/test_gallery
	tests/run-unit "" $(BUILD)/tests/test_gallery
	for s in $(GALLERY_SHOTS); do cp $(BUILD)/gallery/$$s.png firmware/screens/; done

# --- tests ---------------------------------------------------------------
check: lint
	$(MAKE) --no-print-directory WITH_SIM=0 CFLAGS=-O0 check-daemon
	$(MAKE) --no-print-directory check-unit
	$(MAKE) --no-print-directory check-unit SAN=1
	$(MAKE) --no-print-directory check-integration
	$(MAKE) --no-print-directory fuzz
	@echo "make check: all suites passed"

# The tap tests a second time with the keys in a SoftHSM2 token (a throwaway
# token of each test, under $(BUILD)/tokens): hal/keystore/KEYSTORE.md.
KEYS_BOTH_UNIT := $(BUILD)/tests/test_tap $(BUILD)/tests/test_terminal
check-unit: $(TESTS) $(CRASHES) $(DAEMON) $(TOOLS) check-archives
	tests/daemon-symbols $(DAEMON) $(WITH_SIM)
	tests/run-unit "$(RUN_TARGET)" $(TESTS)
	@mkdir -p $(BUILD)/tokens
	YN_KEYS_BACKEND=pkcs11 TMPDIR=$(abspath $(BUILD))/tokens tests/run-unit "" $(KEYS_BOTH_UNIT)

# The district's suites run against SQLite and against a throwaway PostgreSQL
# cluster (under $(BUILD)/pg, stopped afterwards even when a test fails).
check-integration: all $(CRASHES) $(INTS) $(FF_CLIENT)
	YN_PG_FAST=1 tests/with-postgres $(BUILD)/pg env BUILD=$(BUILD) tests/run-integration

# Each layer's archive, whole, links with the layers below it alone: no call
# goes up (the hal archive links on its own, with base).
check-archives: $(LIB)
	@echo 'int main(void) { return 0; }' >$(BUILD)/link-probe.c
	@set -e; set -- $(LIB); while [ $$# -gt 0 ]; do a=$$1; shift; \
	  $(CC) $(LDFLAGS) -o $(BUILD)/link-probe $(BUILD)/link-probe.c -Wl,--whole-archive $$a \
	    -Wl,--no-whole-archive $$* $(LIBS) || { echo "check: $$a calls a higher layer"; exit 1; }; \
	done; rm -f $(BUILD)/link-probe $(BUILD)/link-probe.c
	@echo "archives: each of $(LAYERS) links with the layers below it only"

# A daemon without the simulated backends (a board's): no emulator, card-side
# or sim code in it (tests/daemon-symbols).
check-daemon: $(DAEMON)
	tests/daemon-symbols $(DAEMON) $(WITH_SIM)

# The unit tests need the simulated backends: built apart (build/<arch>-sim)
# from the board's daemon, which is checked to have none.
check-cross:
	@test "$(ARCH)" != host || { echo "check-cross needs ARCH=aarch64 or ARCH=armhf"; exit 2; }
	$(MAKE) --no-print-directory ARCH=$(ARCH) WITH_SIM=0 check-daemon
	$(MAKE) --no-print-directory ARCH=$(ARCH) WITH_SIM=1 check-cross-tests

check-cross-tests:
	$(MAKE) --no-print-directory ARCH=$(ARCH) $(TESTS) all
	tests/run-unit "$(RUN_TARGET)" $(TESTS)
	tests/time-abi $(BUILD) $(CC) "$(shell $(PKG_CONFIG) --cflags $(PKGS) $(HDR_PKGS) $(TEST_PKGS)) $(NFC_CFLAGS)" \
	  "$(LIBS) $(TEST_LIBS)"

# Fuzz targets (libFuzzer): built with clang, each run FUZZ_TIME seconds from
# its seed corpus tests/fuzz/corpus/<name>/ (when present).
fuzz:
	$(MAKE) --no-print-directory FUZZ=1 fuzz-run

fuzz-run: $(FUZZERS)
	@for f in $(FUZZERS); do \
	  n=$$(basename $$f); work=$$(mktemp -d); \
	  [ -d tests/fuzz/corpus/$$n ] && cp -r tests/fuzz/corpus/$$n/. $$work/; \
	  echo "fuzz $$n: $(FUZZ_TIME) s"; \
	  YN_SRCDIR=$$(pwd) $$f -max_total_time=$(FUZZ_TIME) -print_final_stats=0 $$work >$$work.log 2>&1 \
	    || { tail -40 $$work.log; exit 1; }; \
	  grep -E '^(#[0-9]+ *DONE|Done)' $$work.log | tail -1; rm -rf $$work $$work.log; \
	done

lint:
	@command -v cppcheck >/dev/null || tools/install-deps
	tests/lint-layers --self-test
	tests/lint-layers
	cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,performance,portability \
	  --inline-suppr --suppress=missingIncludeSystem -D__GNUC__ -D_GNU_SOURCE \
	  $(INC_FLAGS) -DWITH_POSTGRESQL=1 firmware hal sync tools tests
	clang-format --dry-run -Werror $(SOURCES)

format:
	clang-format -i $(SOURCES)

bench: $(BENCHES) all
	tests/with-postgres $(BUILD)/pg-bench env BUILD=$(BUILD) tests/run-bench $(BENCHES)

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
