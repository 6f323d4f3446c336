# SPDX-License-Identifier: BSD-2-Clause
# tollgate: one non-recursive Makefile. Everything generated goes under $(O) (default build/).
# `make help` lists the targets.

O ?= build
CC ?= cc
SAN ?=

CFLAGS_BASE := -std=gnu11 -O2 -g -D_GNU_SOURCE -pthread \
	-Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 -Werror \
	-Iinclude -Iuserspace -Imigrations -I$(O)/bpf
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
BENCH_SRCS := $(wildcard tools/bench/*.c)
BENCH_BINS := $(BENCH_SRCS:tools/bench/%.c=$(O)/bench/%)

# Kernel programs: bpf/NAME.bpf.c -> $(O)/bpf/NAME.bpf.o -> $(O)/bpf/NAME.skel.h, whose embedded
# ELF the loader (userspace/kernel*.c) opens with the pin directory as pin root.
BPF_CLANG ?= clang
BPF_CFLAGS := -g -O2 -target bpf -Wall -Werror -Iinclude -Ibpf \
	-I/usr/include/$(shell uname -m)-linux-gnu
BPF_SKELS := $(O)/bpf/tollgate_tc.skel.h $(O)/bpf/tollgate_xdp.skel.h

.PHONY: all deps test unit integration asan bench run clean help format check-format
.DEFAULT_GOAL := all

all: $(O)/tollgated $(O)/tollctl $(O)/mock-llm $(UNIT_BINS) $(BENCH_BINS) ## build everything (-Werror)

$(O)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(O)/bpf/%.bpf.o: bpf/%.bpf.c $(wildcard bpf/lib/*.h) include/tollgate/abi.h
	@mkdir -p $(@D)
	$(BPF_CLANG) $(BPF_CFLAGS) -c $< -o $@

$(O)/bpf/%.skel.h: $(O)/bpf/%.bpf.o
	bpftool gen skeleton $< name $(subst .,_,$(basename $(notdir $<))) >$@

# The loader embeds the programs (their skeletons' ELF bytes).
$(O)/obj/userspace/kernel.o $(O)/obj/userspace/kernel_attach.o: $(BPF_SKELS)

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

test: ## install deps, build, run every test suite; last line "N passed, N failed"
	@tools/deps.sh
	@$(MAKE) --no-print-directory all
	@tests/run $(O)

unit: all ## unit tests only
	@tests/run $(O) unit

integration: all ## integration tests only (real daemon over HTTP)
	@tests/run $(O) integration

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

-include $(shell find $(O)/obj -name '*.d' 2>/dev/null)
