# lossd: one hand-written Makefile. `make` builds bin/lossd and bin/lossctl; `make test` runs
# the unit and integration tests, then the same suite under AddressSanitizer and UBSan.

PKGS      := libuv sqlite3 libcjson openblas libpq
DEB_PKGS  := build-essential pkg-config libuv1-dev libsqlite3-dev libcjson-dev libopenblas-dev \
             libcmocka-dev libpq-dev tzdata python3 python3-numpy
# The tests also check training and exported code against PyTorch (Debian's python3-torch), and
# the PostgreSQL queue against a throwaway cluster (Debian's postgresql: initdb, pg_ctl).
# jq: a documented lossctl example pipes into it (tests/docs_check.py runs it). python3-pandas:
# the Python client's leaderboard(as_frame=True) (tests/test_python_client.py; ~1 s of import).
TEST_PKGS := $(DEB_PKGS) python3-torch socat jq python3-pip python3-setuptools postgresql chromium \
             python3-pandas
# The benchmarks only (never the tests): the Optuna TPE peer of bench/vs_optuna.sh; postgresql
# for the queue benchmark (bench/pgqueue.sh).
BENCH_PKGS := $(DEB_PKGS) python3-optuna postgresql
# What `make demo` installs: the demo and the README's other commands (make bench's PyTorch
# reference, pip install ./api/python).
DEMO_PKGS := $(DEB_PKGS) python3-torch python3-pip python3-setuptools
CC        ?= cc
ARCH      ?= -march=native
OPT       ?= -O2
DATADIR   ?= $(CURDIR)/data
PREFIX    ?= /usr/local

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror \
           -Wno-unused-parameter
SAN     ?=
# -ffp-contract=off: GCC fuses a*b + c into one FMA at -O2 but not at -O1, so the -O2 build and
# the sanitizer -O1 build rounded differently (the generative family's runs ended at 0.919 vs
# 0.914); without contraction every build computes the same floats (tests/test_builds.c).
CFLAGS  := -std=gnu11 $(OPT) $(ARCH) -g -fno-math-errno -ffp-contract=off $(WARN) $(PKG_CFLAGS) $(SAN) \
           -DLOSSD_DATADIR='"$(DATADIR)"' -MMD -MP $(EXTRA_CFLAGS)
LDFLAGS := $(SAN) $(EXTRA_LDFLAGS)
LDLIBS  := $(PKG_LIBS) -lm -lpthread

# Every .c under the module folders goes into the library. The programs (their mains, the lossd
# subcommands and lossctl's command groups) live in cmd/, outside it: cmd/lossctl*.c and
# cmd/ctl_*.c make bin/lossctl, the rest of cmd/ makes bin/lossd.
MODULES  := common lang search evaluator storage api daemon
LIB_SRC  := $(wildcard $(addsuffix /*.c,$(MODULES)))
CTL_SRC  := cmd/lossctl.c $(wildcard cmd/ctl_*.c)
LOSSD_SRC := $(filter-out $(CTL_SRC),$(wildcard cmd/*.c))
TEST_SRC := $(wildcard tests/test_*.c)
BENCH_SRC := $(wildcard bench/bench_*.c)

# BUILD is build/ for the normal build and build/asan/ for the sanitizer build.
BUILD    ?= build
BIN      ?= bin
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CTL_OBJ  := $(CTL_SRC:%.c=$(BUILD)/%.o)
LOSSD_OBJ := $(LOSSD_SRC:%.c=$(BUILD)/%.o)
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCHES  := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
# Fuzz harnesses (tests/fuzz/fuzz_NAME.c, seed corpora in tests/fuzz/corpus/NAME/). `make unit`
# links each with tests/fuzz/driver.c (the regular compiler, the sanitizers of the build), and
# tests/test_fuzz_corpus.sh runs every corpus through them once; `make fuzz` links them with
# clang's libFuzzer and runs each for FUZZ_SECONDS (docs/reliability.md, "Fuzzing").
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_DRIVERS := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/tests/fuzz/%)
FUZZ_SECONDS ?= 60
FUZZ_VARS := BUILD=build/fuzz BIN=build/fuzz/bin CC=clang OPT=-O1 EXTRA_CFLAGS=-Wno-error \
  SAN="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"


.PHONY: fuzz fuzz-bins all deps test-deps bench-deps bench-optuna install-pkgs test unit asan bench demo install clean docs-check doc-figures
all: $(BIN)/lossd $(BIN)/lossctl

# The flags every object was compiled with, in $(BUILD)/.cflags: rewritten when they change (this
# Makefile's CFLAGS, a command line's OPT or SAN), so that every object is rebuilt with the new
# ones (a mix of objects with and without -ffp-contract=off computes other floats).
CFLAGS_FILE := $(BUILD)/.cflags
ifneq ($(file < $(CFLAGS_FILE)),$(CC) $(CFLAGS))
$(shell mkdir -p $(BUILD))
$(file > $(CFLAGS_FILE),$(CC) $(CFLAGS))
endif

$(BUILD)/%.o: %.c $(CFLAGS_FILE)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/liblossd.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# Both programs link the archive: nothing registers itself (the composition root in cmd/ names
# every table it uses), so on-demand linking keeps exactly what the program calls.
$(BIN)/lossd: $(LOSSD_OBJ) $(BUILD)/liblossd.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BIN)/lossctl: $(CTL_OBJ) $(BUILD)/liblossd.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/liblossd.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS) $(CMOCKA_LIBS)

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(BUILD)/liblossd.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BUILD)/tests/fuzz/%: $(BUILD)/tests/fuzz/%.o $(BUILD)/tests/fuzz/driver.o $(BUILD)/liblossd.a
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BUILD)/libfuzzer/%: $(BUILD)/tests/fuzz/%.o $(BUILD)/liblossd.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDFLAGS) $(LDLIBS)

fuzz-bins: $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/libfuzzer/%)

# Builds the harnesses with libFuzzer (clang, ASan, UBSan) and runs each for FUZZ_SECONDS on a
# copy of its seed corpus (build/fuzz/corpus/NAME); crashes land in build/fuzz/crash-NAME-*.
fuzz:
	@$(MAKE) --no-print-directory install-pkgs PKGLIST="$(DEB_PKGS) clang"
	$(MAKE) $(FUZZ_VARS) fuzz-bins
	tests/fuzz/run.sh build/fuzz/libfuzzer $(FUZZ_SECONDS)

# Installs Debian's packages when one is missing (a fresh Debian 12 machine needs root).
deps:
	@$(MAKE) --no-print-directory install-pkgs PKGLIST="$(DEB_PKGS)"

test-deps:
	@$(MAKE) --no-print-directory install-pkgs PKGLIST="$(TEST_PKGS)"

bench-deps:
	@$(MAKE) --no-print-directory install-pkgs PKGLIST="$(BENCH_PKGS)"

install-pkgs:
	@missing=""; for p in $(PKGLIST); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q $$missing; \
	fi

unit: all $(TESTS) $(BENCHES) $(BUILD)/tests/fuzz/driver.o $(FUZZ_DRIVERS)

# The test command: unit and integration tests, then the same suite built with sanitizers.
# Both builds compile at once on every core (the two sub-makes share one -j$(NPROC) job server);
# tests/run.sh runs the programs of both suites $(NPROC) at a time and prints "N passed, N
# failed" as its last line.
ASAN_VARS := BUILD=build/asan BIN=build/asan/bin OPT=-O1 \
  SAN="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
NPROC := $(shell nproc 2>/dev/null || echo 2)

test: test-deps
	$(MAKE) -j$(NPROC) unit-both
	tests/run.sh

.PHONY: unit-both unit-normal unit-asan
unit-both: unit-normal unit-asan
unit-normal:
	$(MAKE) unit
unit-asan:
	$(MAKE) unit $(ASAN_VARS)

asan: deps
	$(MAKE) -j$(NPROC) unit $(ASAN_VARS)
	tests/run.sh --asan-only

bench: bench-deps
	$(MAKE) all $(BENCHES)
	bench/run_bench.sh

# The measured figures of README.md and docs/ (<!--fig:KEY--> markers): rerun the measurements
# into bench/measured.json and write them into the docs (bench/doc_figures.py; a few minutes).
# `make test` checks the docs against the recorded file (tests/test_doc_figures.sh).
doc-figures:
	$(MAKE) all $(BENCHES)
	nice -n 2 bench/doc_figures.py record
	bench/doc_figures.py write

# lossd's search against Optuna TPE over a textbook mixture (docs/results.md, "Against a tuned
# mixture"); ROWS and SEARCH_SEEDS choose rows and seeds (bench/vs_optuna.py). Tens of minutes.
bench-optuna: bench-deps
	$(MAKE) all
	bench/vs_optuna.sh

demo:
	@$(MAKE) --no-print-directory install-pkgs PKGLIST="$(DEMO_PKGS)"
	$(MAKE) all
	tests/demo.sh

# Runs the command examples of README.md and docs/ (tests/docs_check.py): the lossctl ones and
# docs/protocol.md's requests against a daemon holding the documented jobs (about 20 s); `make
# test` runs the same through tests/test_docs.sh. `tests/docs_check.py --update` rewrites the
# documented output from the program's.
docs-check: all
	tests/docs_check.py -v

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/lossd
	install -m 755 bin/lossd bin/lossctl $(DESTDIR)$(PREFIX)/bin
	install -m 644 data/*.csv $(DESTDIR)$(PREFIX)/share/lossd

clean:
	rm -rf build bin

-include $(LIB_OBJ:.o=.d) $(CTL_OBJ:.o=.d) $(LOSSD_OBJ:.o=.d) $(TESTS:=.d) $(BENCHES:=.d) $(FUZZ_DRIVERS:=.d)
