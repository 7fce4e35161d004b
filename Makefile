# vmdrain — build, test, lint.
#
#   make            bin/vmdrain and bin/kubectl-vmdrain (the kubectl plugin)
#   make install    both binaries into $(DESTDIR)$(PREFIX)/bin
#   make krew       the plugin's archive and krew/vmdrain.yaml (docs/plugin.md)
#   make unit       unit tests under ASan and UBSan (Criterion)
#   make valgrind-unit  the same tests under valgrind
#   make lint       clang-format check and cppcheck
#   make e2e        end-to-end tests on a real kube-apiserver (e2e/bed.sh)
#   make valgrind-e2e  twelve of them with vmdrain under valgrind
#   make bench      benchmarks: pacing, decoding, webhook; the scale benchmark
#                   against a client-go peer when the test bed is built
#   make bench-scale  that scale benchmark alone (SCALE_FLAGS, docs/performance.md)
#   make image      the container image vmdrain:$(VERSION) (Docker)
#   make release    dist/: the chart package, the image archive, the binaries
#   make test       everything CI runs
#   make deps       system packages (other targets call it when needed)

.DEFAULT_GOAL := all
VERSION := $(shell cat VERSION)
# The git revision vmdrain_build_info reports: the checkout's short commit,
# "unknown" outside a git checkout; `make VMDRAIN_REVISION=...` sets it
# (the image build, which has no .git, gets it as a build argument).
VMDRAIN_REVISION ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
override VMDRAIN_REVISION := $(or $(shell printf '%s' '$(VMDRAIN_REVISION)' | tr -cd 'A-Za-z0-9._-'),unknown)
# The build date `vmdrain version` prints: the commit's date, so that a
# rebuild of one commit gives the same binary ("unknown" outside git).
VMDRAIN_BUILD_DATE ?= $(shell git log -1 --format=%cI 2>/dev/null || echo unknown)
override VMDRAIN_BUILD_DATE := $(or $(shell printf '%s' '$(VMDRAIN_BUILD_DATE)' | tr -cd 'A-Za-z0-9:+.-'),unknown)
PKGS    := libcurl yajl yaml-0.1 openssl
CC      ?= cc

CSTD     := -std=c11 -D_GNU_SOURCE
WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wpointer-arith -Wformat=2
DEPFLAGS  = $(shell pkg-config --cflags $(PKGS))
DEPLIBS   = $(shell pkg-config --libs $(PKGS)) -lev -lhttp_parser -lm
CFLAGS_COMMON = $(CSTD) $(WARN) -Ioperator $(DEPFLAGS) -DVMDRAIN_VERSION='"$(VERSION)"' -MMD -MP

REL_CFLAGS   := -O2 -g
ASAN_CFLAGS  := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
PLAIN_CFLAGS := -O0 -g

LIB_SRCS  := $(sort $(wildcard operator/*/*.c))
MAIN_SRC  := operator/main.c
PLUGIN_SRC := operator/plugin_main.c
UNIT_SRCS := $(sort $(wildcard unit/*/*.c unit/*.c))
C_FILES   := $(shell find operator unit fuzz bench -name '*.[ch]' 2>/dev/null)

DEPS_STAMP := build/.deps-ok

# Rewritten only when the set of sources changes, so that removing a file
# relinks the binaries that held it.
SRCLIST := build/.srclist
$(shell mkdir -p build && echo '$(LIB_SRCS) $(UNIT_SRCS)' | cmp -s - $(SRCLIST) || \
	echo '$(LIB_SRCS) $(UNIT_SRCS)' > $(SRCLIST))

# The sources that name VMDRAIN_REVISION get it defined; the stamp is
# rewritten when the revision changes, and only their objects are rebuilt.
REVISION_STAMP := build/.revision
$(shell mkdir -p build && echo '$(VMDRAIN_REVISION) $(VMDRAIN_BUILD_DATE)' | cmp -s - $(REVISION_STAMP) || \
	echo '$(VMDRAIN_REVISION) $(VMDRAIN_BUILD_DATE)' > $(REVISION_STAMP))
REVISION_SRCS := $(shell grep -l VMDRAIN_REVISION $(LIB_SRCS) $(MAIN_SRC) $(PLUGIN_SRC) 2>/dev/null)
REVISION_OBJS := $(foreach f,rel asan plain,$(patsubst %.c,build/$(f)/%.o,$(REVISION_SRCS)))
$(REVISION_OBJS): $(REVISION_STAMP)
$(REVISION_OBJS): CFLAGS_COMMON += -DVMDRAIN_REVISION='"$(VMDRAIN_REVISION)"' \
	-DVMDRAIN_BUILD_DATE='"$(VMDRAIN_BUILD_DATE)"'

.PHONY: all deps unit valgrind-unit lint format test clean install krew
.SECONDARY:
all: bin/vmdrain bin/kubectl-vmdrain

PREFIX ?= /usr/local
install: bin/vmdrain bin/kubectl-vmdrain
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 bin/vmdrain bin/kubectl-vmdrain $(DESTDIR)$(PREFIX)/bin/

# KREW_URL: the release URL the archive will be downloaded from
krew: bin/kubectl-vmdrain
	@test -n "$(KREW_URL)" || { echo "usage: make krew KREW_URL=https://HOST/.../v$(VERSION)"; exit 2; }
	bash scripts/krew-manifest.sh '$(KREW_URL)'

# --- system packages -------------------------------------------------------
deps: $(DEPS_STAMP)
$(DEPS_STAMP): scripts/deps.sh
	@bash scripts/deps.sh
	@mkdir -p $(@D) && touch $@

# --- object flavours: rel (the binary), asan (unit tests), plain (valgrind) -
build/rel/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) $(REL_CFLAGS) -c $< -o $@
build/asan/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) $(ASAN_CFLAGS) -c $< -o $@
build/plain/%.o: %.c | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_COMMON) $(PLAIN_CFLAGS) -c $< -o $@

bin/vmdrain: $(patsubst %.c,build/rel/%.o,$(LIB_SRCS) $(MAIN_SRC)) $(SRCLIST)
	@mkdir -p $(@D)
	$(CC) $(REL_CFLAGS) -o $@ $(filter %.o,$^) $(DEPLIBS)

bin/kubectl-vmdrain: $(patsubst %.c,build/rel/%.o,$(LIB_SRCS) $(PLUGIN_SRC)) $(SRCLIST)
	@mkdir -p $(@D)
	$(CC) $(REL_CFLAGS) -o $@ $(filter %.o,$^) $(DEPLIBS)

UNIT_LIBS = $(DEPLIBS) $(shell pkg-config --libs criterion)
build/asan/vmdrain-unit: $(patsubst %.c,build/asan/%.o,$(LIB_SRCS) $(UNIT_SRCS)) $(SRCLIST)
	$(CC) $(ASAN_CFLAGS) -o $@ $(filter %.o,$^) $(UNIT_LIBS)
build/plain/vmdrain-unit: $(patsubst %.c,build/plain/%.o,$(LIB_SRCS) $(UNIT_SRCS)) $(SRCLIST)
	$(CC) $(PLAIN_CFLAGS) -o $@ $(filter %.o,$^) $(UNIT_LIBS)

# --- tests -------------------------------------------------------------------
# Criterion forks one process per test; --jobs keeps the 2-core machine calm.
UNIT_FLAGS ?= --jobs 2
# A sanitizer or valgrind report from any worker fails the target.
unit: build/asan/vmdrain-unit
	@bash scripts/run-unit.sh asan ./build/asan/vmdrain-unit $(UNIT_FLAGS)

valgrind-unit: build/plain/vmdrain-unit
	@bash scripts/run-unit.sh valgrind ./build/plain/vmdrain-unit --jobs 1

# --- fuzz drivers ------------------------------------------------------------
# Each fuzz/fuzz_NAME.c is linked with fuzz/replay.c (ASan, UBSan) and run over
# fuzz/corpus/NAME/ by `make fuzz-replay`; `make fuzz` runs a libFuzzer
# campaign per driver when clang is installed (scripts/fuzz.sh).
FUZZ_NAMES := $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_SECONDS ?= 900
build/fuzz/replay-%: build/asan/fuzz/fuzz_%.o build/asan/fuzz/replay.o \
		$(patsubst %.c,build/asan/%.o,$(LIB_SRCS))
	@mkdir -p $(@D)
	$(CC) $(ASAN_CFLAGS) -o $@ $^ $(DEPLIBS)

.PHONY: fuzz-replay fuzz
fuzz-replay: $(addprefix build/fuzz/replay-,$(FUZZ_NAMES))
	@set -e; for n in $(FUZZ_NAMES); do \
	    printf 'fuzz-replay %-12s ' $$n; \
	    ASAN_OPTIONS=detect_leaks=1 ./build/fuzz/replay-$$n fuzz/corpus/$$n; \
	done

# libFuzzer builds, one per driver (clang)
build/fuzz/lf/%: fuzz/fuzz_%.c $(wildcard fuzz/*.h) $(LIB_SRCS) | $(DEPS_STAMP)
	@command -v clang >/dev/null || { echo "make fuzz needs clang (apt-get install clang)"; exit 1; }
	@mkdir -p $(@D)
	clang -g -O1 -fsanitize=fuzzer,address,undefined $(CSTD) -Ioperator $(DEPFLAGS) \
	    -o $@ $< $(LIB_SRCS) $(DEPLIBS)

# make fuzz [FUZZ=NAME...] [FUZZ_SECONDS=900] [FUZZ_RUNS=10000000] [FUZZ_JOBS=2]
FUZZ ?= $(FUZZ_NAMES)
fuzz: $(addprefix build/fuzz/lf/,$(FUZZ))
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash scripts/fuzz.sh $(FUZZ)

lint: | $(DEPS_STAMP)
	bash scripts/check-crds.sh
	bash scripts/chart-readme.sh --check
	clang-format --dry-run --Werror $(C_FILES)
	cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,style,performance,portability \
	    --inline-suppr --suppress=missingIncludeSystem --suppress=unusedFunction \
	    -I operator -D__GNUC__ operator fuzz bench

format: | $(DEPS_STAMP)
	clang-format -i $(C_FILES)

# --- end-to-end: a real control plane built from Go modules (e2e/bed.sh) -------
.PHONY: e2e testbed testbed-up testbed-down
e2e: bin/vmdrain bin/kubectl-vmdrain
	bash scripts/e2e.sh

# vmdrain under valgrind in the end-to-end tests that cover the most of the
# controller and the webhook, in the fast mode (the simulator plays KubeVirt);
# a leak or memory error fails the test
VALGRIND_E2E := TestTaintDrainMixedStrategies|TestNodeDrainDrainsTheNode|TestNodeDrainRecordsTaintDrain|TestTaintRemovedMidDrainCancels|TestConfigEditTakesEffect|TestWebhookKubectlDrain|TestRetryAlwaysFailingVMIEndsFailed|TestChartInstallAndRBAC|TestAdoptsKubeVirtsEvacuationMigration|TestTimeoutStuckTargetIsAbortedAndRetried|TestKubeVirtCRIsASource|TestMetricsAuth
.PHONY: valgrind-e2e
valgrind-e2e: bin/vmdrain
	VMDRAIN_KUBEVIRT=sim VMDRAIN_VALGRIND=1 VMDRAIN_E2E_RUN='$(VALGRIND_E2E)' bash scripts/e2e.sh

# make soak [SOAK=20m]: drains and undrains in a loop with kills, review
# load and configuration edits (TestSoak); not part of make test.
SOAK ?= 20m
.PHONY: soak
soak: bin/vmdrain
	VMDRAIN_SOAK=$(SOAK) VMDRAIN_E2E_TIMEOUT=3h VMDRAIN_E2E_RUN='^TestSoak$$' bash scripts/e2e.sh

testbed:
	bash e2e/bed.sh build

testbed-up: testbed
	bash e2e/bed.sh up

testbed-down:
	bash e2e/bed.sh down

# --- the container image (Containerfile) ----------------------------------------
.PHONY: image release
image:
	bash scripts/image.sh

# make release: dist/ gets the chart package, the image (tagged with the
# version) as a docker archive, and the binaries with their checksums
release: bin/vmdrain bin/kubectl-vmdrain
	bash scripts/release.sh

# --- the demo: a local control plane, vmdrain, a live drain -------------------------
.PHONY: demo demo-down
demo: bin/vmdrain
	bash scripts/demo.sh up

demo-down:
	bash scripts/demo.sh down

# --- benchmarks: figures, never thresholds ------------------------------------
.PHONY: bench
BENCH_NAMES := $(patsubst bench/%.c,%,$(wildcard bench/*.c))
build/bench/%: build/rel/bench/%.o $(patsubst %.c,build/rel/%.o,$(LIB_SRCS))
	@mkdir -p $(@D)
	$(CC) $(REL_CFLAGS) -o $@ $^ $(DEPLIBS) -lpthread
# the webhook benchmark makes its certificate with the unit tests' helper
build/rel/bench/webhook_bench.o: CFLAGS_COMMON += -Iunit/web
build/bench/webhook_bench: build/rel/unit/web/testcert.o
bench: $(addprefix build/bench/,$(BENCH_NAMES))
	@set -e; for b in $(filter-out decode_bench,$(BENCH_NAMES)); do echo "== $$b"; ./build/bench/$$b; done
	@echo "== decode_bench, and client-go on the same JSON"; bash scripts/bench-decode.sh
	@if [ -d "$${XDG_CACHE_HOME:-$$HOME/.cache}/vmdrain/testbed" ]; then $(MAKE) --no-print-directory bench-scale; \
	else echo "== scale: skipped, no test bed built (make testbed, then make bench-scale)"; fi

# make bench-scale [SCALE_FLAGS="--nodes 500 --pods 10000 --vmis 5000 --reps 3" | SCALE_FLAGS=--large]:
# vmdrain's sync of a large cluster against a client-go peer on a bed of its own
.PHONY: bench-scale
bench-scale: bin/vmdrain
	@echo "== scale"
	SCALE_FLAGS='$(SCALE_FLAGS)' bash scripts/bench-scale.sh

test: lint unit fuzz-replay e2e valgrind-e2e

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
