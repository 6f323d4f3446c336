/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A tiny unit-test harness: each test file is a table of named cases run in order. Every case
 * prints one line that tests/run counts: "ok - <suite>: <case>", "not ok - <suite>: <case>"
 * (preceded by the failed checks, with file and line), or "skip - <suite>: <case>: <why>".
 * Header-only so each suite is one self-contained binary that runs without root.
 */
#ifndef TG_TEST_H
#define TG_TEST_H

#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct tg_case {
	const char *name; /* what the case proves, in words */
	void (*fn)(void); /* runs the case; failures are recorded with TG_CHECK */
};

/* State of the case being run; file-static so every suite has its own copy. */
static int tg_failed;
static const char *tg_skip_reason;

#define TG_CHECK(cond)                                                                             \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			tg_failed++;                                                               \
			fprintf(stdout, "#   %s:%d: check failed: %s\n", __FILE__, __LINE__,       \
				#cond);                                                            \
		}                                                                                  \
	} while (0)

#define TG_CHECK_INT(got, want)                                                                    \
	do {                                                                                       \
		long long tg_g_ = (long long)(got), tg_w_ = (long long)(want);                     \
		if (tg_g_ != tg_w_) {                                                              \
			tg_failed++;                                                               \
			fprintf(stdout, "#   %s:%d: %s is %lld, expected %lld\n", __FILE__,        \
				__LINE__, #got, tg_g_, tg_w_);                                     \
		}                                                                                  \
	} while (0)

#define TG_CHECK_STR(got, want)                                                                    \
	do {                                                                                       \
		const char *tg_g_ = (got), *tg_w_ = (want);                                        \
		if (!tg_g_ || !tg_w_ || strcmp(tg_g_, tg_w_) != 0) {                               \
			tg_failed++;                                                               \
			fprintf(stdout, "#   %s:%d: %s is \"%s\", expected \"%s\"\n", __FILE__,    \
				__LINE__, #got, tg_g_ ? tg_g_ : "(null)",                          \
				tg_w_ ? tg_w_ : "(null)");                                         \
		}                                                                                  \
	} while (0)

/* Stops the current case early when a precondition for the rest of it failed. */
#define TG_REQUIRE(cond)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			tg_failed++;                                                               \
			fprintf(stdout, "#   %s:%d: required: %s\n", __FILE__, __LINE__, #cond);   \
			return;                                                                    \
		}                                                                                  \
	} while (0)

#define TG_SKIP(why)                                                                               \
	do {                                                                                       \
		tg_skip_reason = (why);                                                            \
		return;                                                                            \
	} while (0)

#define TG_NCASES(table) (sizeof(table) / sizeof((table)[0]))

/* Runs every case of a suite; returns the process exit status (1 if any case failed). */
static inline int tg_run(const char *suite, const struct tg_case *cases, size_t n)
{
	int bad = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (size_t i = 0; i < n; i++) {
		tg_failed = 0;
		tg_skip_reason = NULL;
		cases[i].fn();
		if (tg_failed) {
			printf("not ok - %s: %s\n", suite, cases[i].name);
			bad = 1;
		} else if (tg_skip_reason) {
			printf("skip - %s: %s: %s\n", suite, cases[i].name, tg_skip_reason);
		} else {
			printf("ok - %s: %s\n", suite, cases[i].name);
		}
	}
	return bad;
}

/*
 * For the kill -9 tests: a child process writes 64-bit progress reports (the last sequence
 * it knows committed) into a pipe; this reads them for ~300 ms (longer while none has
 * arrived, at most 60 s) and returns the last one, 0 if none.
 */
static inline uint64_t tg_read_last_report(int fd)
{
	struct timespec t0, t;
	uint64_t last = 0, v;
	int64_t ms = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (ms < 60000 && !(ms >= 300 && last > 0)) {
		struct pollfd p = {.fd = fd, .events = POLLIN};

		if (poll(&p, 1, 50) == 1) {
			if (read(fd, &v, sizeof(v)) != sizeof(v))
				break;
			last = v;
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		ms = (t.tv_sec - t0.tv_sec) * 1000LL + (t.tv_nsec - t0.tv_nsec) / 1000000;
	}
	return last;
}

#endif /* TG_TEST_H */
