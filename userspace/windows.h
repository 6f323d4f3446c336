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

/*
 * A running total of a ring: every metric summed over the buckets with ids in [from, to]
 * that the ring still keeps, maintained by every change of the ring (an add, a put, a
 * slot reused for a newer bucket), so that reading it is O(1) while the span stays put
 * and O(buckets that entered or left) when it moves. Always equal to win_ring_sum_all over
 * the same span (the unit tests cross-check this at random).
 */
struct win_total {
	int64_t from, to; /* bucket ids summed (to - from < the ring's n); from > to: none yet */
	bool stale;	  /* a sum saturated (or would have): summed afresh on the next read */
	uint64_t sum[WIN_M__COUNT];
};

struct win_ring {
	unsigned secs;	       /* bucket length */
	unsigned n;	       /* buckets kept */
	struct win_bucket *b;  /* n buckets, borrowed (embedded by the owner) */
	struct win_total *tot; /* ntot running totals kept with the ring, borrowed; NULL: none */
	unsigned ntot;
};

/* Empties every bucket (the totals sum to 0 again). */
void win_ring_reset(struct win_ring *r);
/*
 * Adds add[] to the bucket with id (saturating). Returns false (nothing added) if that
 * bucket is older than the ring keeps.
 */
bool win_ring_add(struct win_ring *r, int64_t id, const uint64_t add[WIN_M__COUNT]);
/*
 * Running total k (< r->ntot) moved to the span [from, to] (clamped to what the ring
 * keeps, as win_ring_sum_all does): every metric's sum, valid until the ring next changes
 * or the total is moved. The buckets that left the span are subtracted and those that
 * entered added; a move longer than the span itself is summed afresh.
 */
const uint64_t *win_ring_total(struct win_ring *r, unsigned k, int64_t from, int64_t to);
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
 * The calendar periods (minute, hour, day, month) holding one instant and the bucket ids
 * of every ring unit there, computed once and reused while the instant stays in the same
 * minute: every boundary of an hour, a day or a month (UTC, no leap seconds) is a minute
 * boundary, so nothing else can change before the minute ends. A zeroed win_clock holds
 * nothing (the first win_clock_set computes).
 */
struct win_clock {
	int64_t t_from, t_until;		/* valid for t in [t_from, t_until) */
	int64_t id[WIN_DAY + 1];		/* bucket id of t, by ring unit */
	int64_t end[WIN__COUNT];		/* end of the period holding t, by unit */
	int64_t first[WIN__COUNT][WIN_DAY + 1]; /* first bucket id of the period, by unit, ring */
};

/* Makes c describe Unix second t: calendar arithmetic only when t left c's minute. */
void win_clock_set(struct win_clock *c, int64_t t);
/* win_span of w at c's instant (c set by win_clock_set), without calendar arithmetic. */
static inline void win_clock_span(const struct win_clock *c, const struct win_def *w, int64_t *from,
				  int64_t *to)
{
	*to = c->id[w->ring_unit];
	*from = w->rolling ? *to - (int64_t)w->back : c->first[w->unit][w->ring_unit];
}
/* win_reset_at of w at c's instant. */
static inline int64_t win_clock_reset_at(const struct win_clock *c, const struct win_def *w)
{
	return w->rolling ? c->end[w->ring_unit] : c->end[w->unit];
}
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
/*
 * Seconds from t until a call needing `need` more of metric m could fit in w: until that
 * much has left a rolling window, or the calendar period ends. When expiry alone never
 * frees that much (reservations or the call's own estimate are the excess), the window's
 * length: an honest upper bound for when to look again. At least 1.
 */
uint64_t win_retry_after(const struct win_def *w, const struct win_ring *r, int64_t t,
			 uint64_t need, enum win_metric m);

#endif /* TG_WINDOWS_H */
