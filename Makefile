# SPDX-License-Identifier: BSD-2-Clause
# tollgate: one non-recursive Makefile. Everything generated goes under $(O) (default build/).
# `make help` lists the targets.

O ?= build
CC ?= cc
SAN ?=

CFLAGS_BASE := -std=gnu11 -O2 -g -D_GNU_SOURCE -pthread \
	-Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Werror \
	-Iinclude -Iuserspace -Imigrations
CFLAGS += $(CFLAGS_BASE) $(SAN)
LDFLAGS += $(SAN) -pthread
LIBS_DAEMON := -llmdb -largon2 -lmicrohttpd -lcjson -lcurl -lbpf -lxdp -lelf -lz -lm
LIBS_CTL := -lcurl -lcjson

DAEMON_SRCS := $(wildcard userspace/*.c) $(wildcard migrations/*.c)
LIB_SRCS := $(filter-out userspace/main.c,$(DAEMON_SRCS))
LIB_OBJS := $(LIB_SRCS:%.c=$(O)/obj/%.o)
CTL_SRCS := $(wildcard tools/tollctl/*.c)
CTL_OBJS := $(CTL_SRCS:%.c=$(O)/obj/%.o)
MOCK_SRCS := $(wildcard tools/mock-llm/*.c)
MOCK_OBJS := $(MOCK_SRCS:%.c=$(O)/obj/%.o)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(O)/tests/%)
BENCH_BPF_SRCS := tools/bench/bench_bpf.c tools/bench/bench_bpf_tc.c
BENCH_SRCS := $(filter-out $(BENCH_BPF_SRCS),$(wildcard tools/bench/*.c))
BENCH_BINS := $(BENCH_SRCS:tools/bench/%.c=$(O)/bench/%)
BENCH_BPF_BINS := $(patsubst tools/bench/%.c,$(O)/bench/%,$(wildcard $(BENCH_BPF_SRCS)))

# Kernel programs (bpf/*.bpf.c) against the running kernel's BTF (vmlinux.h), each with a
# libbpf skeleton. include/tollgate/abi.h includes <linux/types.h>, whose UAPI chain would clash
# with vmlinux.h: BPF builds see bpf/shim/ first, where linux/types.h is empty and insists that
# vmlinux.h came first. bpf/test/*.bpf.c are test-only probes, built for tests/bpf only.
BPF_CLANG ?= clang
BPFTOOL ?= bpftool
BPF_ARCH ?= x86
BPF_CFLAGS := -O2 -g -target bpf -D__TARGET_ARCH_$(BPF_ARCH) -Wall -Wextra -Werror \
	-Ibpf/shim -Iinclude -Ibpf -I$(O)/bpf
BPF_SRCS := $(wildcard bpf/*.bpf.c)
BPF_OBJS := $(BPF_SRCS:bpf/%.bpf.c=$(O)/bpf/%.bpf.o)
BPF_SKELS := $(BPF_OBJS:.bpf.o=.skel.h)
BPF_TEST_SRCS := $(wildcard bpf/test/*.bpf.c)
BPF_TEST_OBJS := $(BPF_TEST_SRCS:bpf/test/%.bpf.c=$(O)/bpf/test/%.bpf.o)
BPF_TEST_SRCS_C := $(wildcard tests/bpf/test_*.c)
BPF_TEST_BINS := $(BPF_TEST_SRCS_C:tests/bpf/%.c=$(O)/tests/bpf/%)
LIBS_BPF := -lbpf -lelf -lz

.PHONY: all deps test unit integration bpf bpf-test asan bench run clean help format check-format
.DEFAULT_GOAL := all

all: $(O)/tollgated $(O)/tollctl $(O)/mock-llm $(UNIT_BINS) $(BENCH_BINS) bpf $(BPF_TEST_BINS) \
	$(BENCH_BPF_BINS) ## build everything (-Werror)

bpf: $(BPF_OBJS) $(BPF_SKELS) ## kernel programs: $(O)/bpf/*.bpf.o and their *.skel.h

# Keep the test probes' objects too (for bpftool/llvm-objdump), not only their skeletons.
.SECONDARY: $(BPF_TEST_OBJS)

$(O)/bpf/vmlinux.h:
	@mkdir -p $(@D)
	$(BPFTOOL) btf dump file /sys/kernel/btf/vmlinux format c > $@.tmp
	@mv $@.tmp $@

$(O)/bpf/%.bpf.o: bpf/%.bpf.c $(O)/bpf/vmlinux.h
	@mkdir -p $(@D)
	$(BPF_CLANG) $(BPF_CFLAGS) -MMD -MP -MF $@.d -c $< -o $@

$(O)/bpf/%.skel.h: $(O)/bpf/%.bpf.o
	$(BPFTOOL) gen skeleton $< name $(notdir $*) > $@.tmp
	@mv $@.tmp $@

# A BPF test binary needs its skeleton before its first compile (before a .d file exists).
$(O)/obj/tests/bpf/test_xdp.o: $(O)/bpf/tollgate_xdp.skel.h
$(O)/obj/tests/bpf/test_xdp_attach.o: $(O)/bpf/tollgate_xdp.skel.h
$(O)/obj/tests/bpf/test_tc.o: $(O)/bpf/tollgate_tc.skel.h
$(O)/obj/tests/bpf/test_penalty.o: $(O)/bpf/test/penalty_probe.skel.h $(O)/bpf/tollgate_xdp.skel.h
$(O)/obj/tools/bench/bench_bpf.o: $(O)/bpf/tollgate_xdp.skel.h
$(O)/obj/tools/bench/bench_bpf_tc.o: $(O)/bpf/tollgate_tc.skel.h

$(O)/obj/tests/bpf/%.o $(O)/obj/tools/bench/bench_bpf.o $(O)/obj/tools/bench/bench_bpf_tc.o: \
	CFLAGS += -I$(O)/bpf -Itests/unit -Itests/bpf

$(O)/tests/bpf/%: $(O)/obj/tests/bpf/%.o
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_BPF)

# The one BPF test that attaches for real, through libxdp's dispatcher.
$(O)/tests/bpf/test_xdp_attach: $(O)/obj/tests/bpf/test_xdp_attach.o
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ -lxdp $(LIBS_BPF)

$(O)/bench/bench_bpf: $(O)/obj/tools/bench/bench_bpf.o
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_BPF)

$(O)/bench/bench_bpf_tc: $(O)/obj/tools/bench/bench_bpf_tc.o
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_BPF)

$(O)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# The loader embeds the programs: their skeletons' ELF bytes (kernel.c the TC program,
# kernel_attach.c the XDP one).
$(O)/obj/userspace/kernel.o: $(O)/bpf/tollgate_tc.skel.h
$(O)/obj/userspace/kernel_attach.o: $(O)/bpf/tollgate_xdp.skel.h
$(O)/obj/userspace/kernel.o $(O)/obj/userspace/kernel_attach.o: CFLAGS += -I$(O)/bpf

$(O)/libtollgate.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(O)/tollgated: $(O)/obj/userspace/main.o $(O)/libtollgate.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_DAEMON)

$(O)/tollctl: $(CTL_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_CTL)

$(O)/mock-llm: $(MOCK_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ -lmicrohttpd -lcjson

$(O)/tests/%: $(O)/obj/tests/unit/%.o $(O)/libtollgate.a
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_DAEMON)

$(O)/bench/%: $(O)/obj/tools/bench/%.o $(O)/libtollgate.a
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS_DAEMON)

deps: ## install missing Debian packages (idempotent, non-interactive)
	@tools/deps.sh

test: ## install deps, build, run every test suite (unit, integration, bpf); last line "N passed, N failed"
	@tools/deps.sh
	@$(MAKE) --no-print-directory all
	@tests/run $(O)

unit: all ## unit tests only
	@tests/run $(O) unit

integration: all ## integration tests only (real daemon over HTTP)
	@tests/run $(O) integration

bpf-test: all ## BPF program tests only (tests/bpf through bpf_prog_test_run; needs root)
	@tests/run $(O) bpf

asan: ## unit tests under AddressSanitizer + UndefinedBehaviorSanitizer
	@tools/deps.sh
	@$(MAKE) --no-print-directory O=$(O)/asan CC=clang \
		SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
		$(O)/asan/tollgated $(patsubst $(O)/%,$(O)/asan/%,$(UNIT_BINS))
	@ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 tests/run $(O)/asan unit

bench: ## benchmarks (tools/bench); results go to tools/bench/RESULTS.md by hand
	@tools/deps.sh
	@$(MAKE) --no-print-directory all
	@tools/bench/run $(O)

run: ## build and start the gateway with working defaults (foreground)
	@tools/deps.sh
	@$(MAKE) --no-print-directory all
	@tools/run.sh $(O)

format: ## reformat C sources with the committed .clang-format
	clang-format -i $(DAEMON_SRCS) $(CTL_SRCS) $(MOCK_SRCS) $(UNIT_SRCS) $(BENCH_SRCS) \
		$(wildcard userspace/*.h include/tollgate/*.h migrations/*.h tests/unit/*.h \
			tools/tollctl/*.h tools/mock-llm/*.h)

clean: ## remove build output
	rm -rf $(O)

help: ## list targets
	@grep -hE '^[a-z-]+:.*## ' $(firstword $(MAKEFILE_LIST)) | sed -E 's/:.*## /\t/' | sort | \
		awk -F'\t' '{ printf "  make %-12s %s\n", $$1, $$2 }'

-include $(shell find $(O)/obj $(O)/bpf -name '*.d' 2>/dev/null)
