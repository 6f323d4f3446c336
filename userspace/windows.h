/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Time windows of the limits engine, pure (no I/O, no clock: every function takes the
 * instant it works on, so tests inject any time). Calendar periods in UTC (minute, hour,
 * day, month: month lengths and leap years from the civil calendar, not from the libc
 * time zone), and rings of fixed-size buckets of counters from which calendar and rolling
 * windows are summed.
 *
 * A ring keeps the last n buckets of `secs` seconds each; bucket id = floor(t / secs).
 * Each bucket remembers its id, so a slot reused for a newer bucket is reset, and an add
 * for a bucket older than what its slot holds is dropped (it is older than any window the
 * ring serves). Resolution: a rolling window of N buckets is summed as the current bucket
 * plus the N previous ones, so it covers between N and N + 1 bucket lengths back: usage
 * leaves a rolling window up to one bucket length late (never early), which errs on the
 * side of refusing.
 */
#ifndef TG_WINDOWS_H
#define TG_WINDOWS_H

#include <stdbool.h>
#include <stdint.h>

enum win_unit {
	WIN_MINUTE = 0,
	WIN_HOUR,
	WIN_DAY,
	WIN_MONTH,
	WIN__COUNT,
};

/* What a bucket counts; the order is the on-disk order of persisted buckets. */
enum win_metric {
	WIN_M_REQUESTS = 0, /* calls */
	WIN_M_TOKENS,	    /* prompt + completion tokens */
	WIN_M_COST,	    /* USD 1e-9 */
	WIN_M_BYTES,	    /* request + response body bytes */
	WIN_M_COMPUTE,	    /* upstream time, ms */
	WIN_M__COUNT,
};

/* "minute", "hour", "day", "month". */
const char *win_unit_name(enum win_unit u);
/* Days since 1970-01-01 of a proleptic Gregorian date (m 1..12, d 1..31). */
int64_t win_days_from_civil(int64_t y, unsigned m, unsigned d);
/* The calendar period of unit u holding Unix second t, UTC: [*start, *end). */
void win_calendar(enum win_unit u, int64_t t, int64_t *start, int64_t *end);
/* floor(t / secs), also for negative t. */
int64_t win_bucket_id(int64_t t, unsigned secs);

struct win_bucket {
	int64_t id; /* bucket id this slot holds; INT64_MIN = empty */
	uint64_t v[WIN_M__COUNT];
};

struct win_ring {
	unsigned secs;	      /* bucket length */
	unsigned n;	      /* buckets kept */
	struct win_bucket *b; /* n buckets, borrowed (embedded by the owner) */
};

/* Empties every bucket. */
void win_ring_reset(struct win_ring *r);
/*
 * Adds add[] to the bucket with id (saturating). Returns false (nothing added) if that
 * bucket is older than the ring keeps.
 */
bool win_ring_add(struct win_ring *r, int64_t id, const uint64_t add[WIN_M__COUNT]);
/* Replaces the bucket with id (a persisted bucket loaded at start); false if too old. */
bool win_ring_put(struct win_ring *r, int64_t id, const uint64_t v[WIN_M__COUNT]);
/* Sum of metric m over the buckets with ids in [from, to] still kept. */
uint64_t win_ring_sum(const struct win_ring *r, int64_t from, int64_t to, enum win_metric m);
/* Every metric summed over the buckets with ids in [from, to] still kept, into out. */
void win_ring_sum_all(const struct win_ring *r, int64_t from, int64_t to,
		      uint64_t out[WIN_M__COUNT]);
/* Metric m of bucket id (0 if not kept). */
uint64_t win_ring_get(const struct win_ring *r, int64_t id, enum win_metric m);

/*
 * A window a limit is counted over: a calendar period (unit, summed from the ring of
 * ring_unit buckets) or rolling (the current bucket of ring_unit and `back` previous ones).
 */
struct win_def {
	enum win_unit unit;	 /* calendar: the period */
	enum win_unit ring_unit; /* the ring summed: WIN_MINUTE, WIN_HOUR or WIN_DAY */
	bool rolling;
	unsigned back; /* rolling: previous buckets counted besides the current one */
};

/* Seconds of a ring bucket of unit u (minute, hour, day). */
unsigned win_unit_secs(enum win_unit u);
/* The first and last bucket ids (of ring_unit) the window holds at Unix second t. */
void win_span(const struct win_def *w, int64_t t, int64_t *from, int64_t *to);
/*
 * When the window next frees anything: calendar, the period's end; rolling, when the
 * oldest bucket counted leaves (the next bucket boundary).
 */
int64_t win_reset_at(const struct win_def *w, int64_t t);
/*
 * Rolling windows: the first instant at which at least `need` of metric m has left the
 * window (buckets leave oldest first); calendar windows: the period's end. INT64_MAX if the
 * window never frees that much (need exceeds what it holds).
 */
int64_t win_frees_at(const struct win_def *w, const struct win_ring *r, int64_t t, uint64_t need,
		     enum win_metric m);

#endif /* TG_WINDOWS_H */
