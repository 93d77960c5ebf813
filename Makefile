# Meridian build.
#
#   make            build/meridian (optimised)
#   make test       install missing packages, unit + integration tests (ASan+UBSan build)
#   make test-unit  fast unit suite only
#   make test-integration
#   make test-browser  the browser tests only (installs chromium, playwright-core)
#   make demo       three local regions, a short mixed workload, a table of figures
#   make bench      benchmarks (see docs/benchmarks.md)
#   make fuzz       every libFuzzer target for FUZZ_SECONDS each (docs/security.md)
#   V=1             show full commands
#
# Switches: CC, CFLAGS_EXTRA, MR_TEST_TIMEOUT_MULTIPLIER (tests).

CC      ?= gcc
WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
CSTD    := -std=gnu11 -D_GNU_SOURCE
LIBS    := -luv -lsqlite3 -lhttp_parser -ljansson -linih -lssl -lcrypto -lnghttp2 -lm -lpthread
OPT     := -O2 -g
# The optimised binary allocates through jemalloc (decision 052); the
# sanitizer builds keep glibc's malloc, which ASan replaces.
LIBS_OPT := -ljemalloc
SAN     := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

Q := @
ifeq ($(V),1)
Q :=
endif

MODULES := common tls http etcd sql gtab node up bench wan edge shop gameday
SRC_common := $(wildcard src/common/*.c)
SRC_tls    := $(wildcard src/tls/*.c)
SRC_http   := $(wildcard src/http/*.c)
SRC_etcd   := $(wildcard src/etcd/*.c)
SRC_sql    := $(wildcard src/sql/*.c)
SRC_node   := $(wildcard src/node/*.c)
SRC_up     := $(wildcard src/up/*.c)
SRC_bench  := $(wildcard src/bench/*.c)
SRC_wan    := $(wildcard src/wan/*.c)
SRC_gtab   := $(wildcard src/gtab/*.c)
SRC_edge   := $(wildcard src/edge/*.c)
SRC_shop   := $(wildcard src/shop/*.c)
SRC_gameday := $(wildcard src/gameday/*.c)
SRC_cmd    := $(wildcard src/cmd/*.c)
ALL_SRC    := $(foreach m,$(MODULES),$(SRC_$(m))) $(SRC_cmd)
HDRS       := $(wildcard src/*/*.h)

# What each unit-test directory may link: its module and what it depends on.
UNIT_DEPS_common := $(SRC_common)
UNIT_DEPS_tls    := $(SRC_tls) $(SRC_http) $(SRC_common)
UNIT_DEPS_http   := $(SRC_http) $(SRC_tls) $(SRC_common)
UNIT_DEPS_etcd   := $(SRC_etcd) $(SRC_http) $(SRC_tls) $(SRC_common)
UNIT_DEPS_sql    := $(SRC_sql) $(SRC_common)
UNIT_DEPS_node   := $(SRC_node) $(SRC_gtab) $(SRC_etcd) $(SRC_sql) $(SRC_http) $(SRC_tls) $(SRC_common)
UNIT_DEPS_up     := $(SRC_up) $(SRC_http) $(SRC_tls) $(SRC_common)
UNIT_DEPS_bench  := $(SRC_bench) $(SRC_gtab) $(SRC_up) $(SRC_http) $(SRC_tls) $(SRC_common)
UNIT_DEPS_wan    := $(SRC_wan) $(SRC_http) $(SRC_tls) $(SRC_common)
UNIT_DEPS_gtab   := $(SRC_gtab) $(SRC_common)
UNIT_DEPS_edge   := $(SRC_edge) $(SRC_http) $(SRC_tls) $(SRC_common)
UNIT_DEPS_shop   := $(SRC_shop) $(SRC_http) $(SRC_tls) $(SRC_common)
UNIT_DEPS_gameday := $(SRC_gameday) $(SRC_bench) $(SRC_gtab) $(SRC_up) $(SRC_http) $(SRC_tls) $(SRC_common)

UNIT_TESTS  := $(patsubst tests/%.c,build/tests/%,$(wildcard tests/unit/*/test_*.c))
INTEG_TESTS := $(patsubst tests/%.c,build/tests/%,$(wildcard tests/integration/test_*.c))
TESTLIB_SRC := $(wildcard tests/lib/*.c)
# Browser tests: headless Debian chromium + playwright-core; the script installs
# what it needs and runs like a test binary (docs/shop.md, "Browser tests").
BROWSER_TESTS := tests/browser/run.sh

# Fuzz targets: tests/fuzz/fuzz_NAME.c.  `make fuzz` builds each with
# libFuzzer (clang); `make test` replays every committed corpus and
# regression input through one gcc ASan+UBSan binary (tests/fuzz/replay.c).
FUZZ_NAMES   := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_SECONDS ?= 60
FUZZ_REPLAY  := build/tests/fuzz/replay
FUZZ_CFLAGS  := -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
LIB_SRC      := $(filter-out src/cmd/main.c,$(ALL_SRC))

.PHONY: all deps test test-unit test-integration test-browser check demo bench fuzz clean fmt

all: build/meridian

deps:
	$(Q)./scripts/deps.sh

build/meridian: $(ALL_SRC) $(HDRS)
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(CSTD) $(WARN) $(OPT) $(CFLAGS_EXTRA) -o $@ $(ALL_SRC) $(LIBS) $(LIBS_OPT)

# The binary the tests run: sanitizers on.
# The sanitizer build: every source compiled once into build/asan/obj/, then
# linked into the binary and into each test (a test names the sources it
# may use; their objects are linked).
ASAN_OBJ = $(patsubst %.c,build/asan/obj/%.o,$(1))

build/asan/obj/%.o: %.c $(HDRS)
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(CSTD) $(WARN) $(SAN) $(CFLAGS_EXTRA) -c -o $@ $<

build/asan/meridian: $(call ASAN_OBJ,$(ALL_SRC))
	@mkdir -p $(@D)
	@echo "  LINK    $@ (asan+ubsan)"
	$(Q)$(CC) $(SAN) -o $@ $^ $(LIBS)

.SECONDEXPANSION:
build/tests/unit/%: tests/unit/%.c $$(call ASAN_OBJ,$$(UNIT_DEPS_$$(firstword $$(subst /, ,$$*)))) $(TESTLIB_SRC) $(HDRS) $(wildcard tests/lib/*.h) $(wildcard tests/unit/*/*.h)
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(CSTD) $(WARN) $(SAN) -Isrc -Itests -o $@ $< $(call ASAN_OBJ,$(UNIT_DEPS_$(firstword $(subst /, ,$*)))) $(TESTLIB_SRC) $(LIBS) -lcmocka

build/tests/integration/%: tests/integration/%.c $(call ASAN_OBJ,$(LIB_SRC)) $(TESTLIB_SRC) $(HDRS) $(wildcard tests/lib/*.h)
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(CSTD) $(WARN) $(SAN) -Isrc -Itests -o $@ $< $(call ASAN_OBJ,$(LIB_SRC)) $(TESTLIB_SRC) $(LIBS) -lcmocka

# LD_PRELOAD libraries that tests put in front of the daemons (fault injection).
build/tests/preload/%.so: tests/preload/%.c
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(CSTD) $(WARN) -shared -fPIC -o $@ $< -ldl

build/tests/integration/test_sql_failures: build/tests/preload/failwrite.so

build/tests/fuzz/obj/%.o: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(HDRS)
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(CSTD) $(WARN) $(SAN) -Isrc -Itests/fuzz -DLLVMFuzzerTestOneInput=fuzz_target_$* -c -o $@ $<

$(FUZZ_REPLAY): tests/fuzz/replay.c tests/fuzz/util.c $(FUZZ_NAMES:%=build/tests/fuzz/obj/%.o) $(call ASAN_OBJ,$(LIB_SRC)) $(HDRS)
	@mkdir -p $(@D)
	@echo "  CC      $@"
	$(Q)$(CC) $(CSTD) $(WARN) $(SAN) -Isrc -Itests/fuzz '-DFUZZ_TARGETS=$(foreach n,$(FUZZ_NAMES),X($(n)))' -o $@ tests/fuzz/replay.c tests/fuzz/util.c $(FUZZ_NAMES:%=build/tests/fuzz/obj/%.o) $(call ASAN_OBJ,$(LIB_SRC)) $(LIBS)

# libFuzzer builds: the sources once as objects (kept), then one binary per target.
.PRECIOUS: build/fuzz/obj/%.o build/tests/fuzz/obj/%.o build/asan/obj/%.o
build/fuzz/obj/%.o: %.c $(HDRS) tests/fuzz/fuzz.h
	@mkdir -p $(@D)
	@echo "  CLANG   $@"
	$(Q)clang $(CSTD) $(WARN) $(FUZZ_CFLAGS) -Isrc -Itests/fuzz -c -o $@ $<

build/fuzz/%: build/fuzz/obj/tests/fuzz/fuzz_%.o build/fuzz/obj/tests/fuzz/util.o $(LIB_SRC:%.c=build/fuzz/obj/%.o)
	@echo "  LINK    $@"
	$(Q)clang -fsanitize=fuzzer,address,undefined -o $@ $^ $(LIBS)

fuzz:
	$(Q)./scripts/deps.sh --fuzz
	$(Q)$(MAKE) --no-print-directory $(FUZZ_NAMES:%=build/fuzz/%)
	$(Q)./tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_NAMES)

check: build/asan/meridian $(UNIT_TESTS) $(INTEG_TESTS) $(FUZZ_REPLAY)

test-unit: deps $(UNIT_TESTS) $(FUZZ_REPLAY)
	$(Q)./tests/run.sh unit $(UNIT_TESTS) $(FUZZ_REPLAY)

test-integration: deps build/asan/meridian $(INTEG_TESTS)
	$(Q)MERIDIAN_BIN=$(CURDIR)/build/asan/meridian ./tests/run.sh integration $(INTEG_TESTS)

test: deps
	$(Q)$(MAKE) --no-print-directory build/asan/meridian $(UNIT_TESTS) $(FUZZ_REPLAY) $(INTEG_TESTS)
	$(Q)MERIDIAN_BIN=$(CURDIR)/build/asan/meridian ./tests/run.sh all $(UNIT_TESTS) $(FUZZ_REPLAY) $(INTEG_TESTS) $(BROWSER_TESTS)

test-browser: deps build/asan/meridian
	$(Q)MERIDIAN_BIN=$(CURDIR)/build/asan/meridian ./tests/run.sh browser $(BROWSER_TESTS)

demo: deps build/meridian
	$(Q)./build/meridian demo

bench: build/meridian
	$(Q)./scripts/deps.sh --bench
	$(Q)./bench/run.sh

fmt:
	clang-format -i $(ALL_SRC) $(HDRS)

clean:
	rm -rf build
